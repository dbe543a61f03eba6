"""The app's route table with each route's guard, for the deny-by-default check and tests."""

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from app.web.deps import RoleGuard, public

PUBLIC_MOUNTS = frozenset({"/static", "/static/swagger"})


@dataclass(frozen=True)
class RouteEntry:
    """One route as served, with its guard: a RoleGuard, ``"public"`` or ``None``."""

    path: str
    methods: frozenset[str]
    guard: RoleGuard | str | None


def find_guard(dependant: Dependant | None) -> RoleGuard | str | None:
    """The first RoleGuard or public mark in a route's dependency tree."""
    stack = list(dependant.dependencies) if dependant else []
    while stack:
        sub = stack.pop()
        if isinstance(sub.call, RoleGuard):
            return sub.call
        if sub.call is public:
            return "public"
        stack.extend(sub.dependencies)
    return None


def route_table(app: FastAPI) -> Iterator[RouteEntry]:
    """Every route and mount the app serves, included routers flattened."""
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute):
            yield RouteEntry(
                context.path or original.path,
                frozenset(context.methods or ()),
                find_guard(context.dependant),
            )
        elif isinstance(original, Mount):
            guard = "public" if original.path in PUBLIC_MOUNTS else None
            if getattr(original.app, "requires_bearer_token", False):
                guard = "bearer"
            yield RouteEntry(original.path, frozenset(), guard)


def ensure_routes_guarded(app: FastAPI) -> None:
    """Deny by default: refuse to start if a route names no role and is not marked public."""
    unguarded = [
        f"{sorted(entry.methods)} {entry.path}" for entry in route_table(app) if entry.guard is None
    ]
    if unguarded:
        raise RuntimeError("routes without a role guard: " + ", ".join(unguarded))

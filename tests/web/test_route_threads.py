"""Routes that use the database run in worker threads: an ``async def`` route doing blocking
database work stalls the event loop, and with SQLite it can hold the event loop on a lock that
only the loop itself could release (a request that never answers)."""

import inspect
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlmodel import Session

# Async routes that hand every database call to a worker thread themselves.
OFFLOADING = {
    "chat_page",
    "conversation_state",
    "send_message",
    "decide",
    "retry",
    "voice_answer",
    "create_transcription",
}


def uses_session(dependant: Dependant) -> bool:
    """Whether the route or one of its dependencies takes a database session."""
    stack = [dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            for param in inspect.signature(dependant.call).parameters.values():
                annotation = param.annotation
                if annotation is Session or Session in getattr(annotation, "__metadata__", ()):
                    return True
                if getattr(annotation, "__origin__", None) is Session:
                    return True
        stack.extend(dependant.dependencies)
    return False


def test_the_check_sees_a_blocking_route(app) -> None:
    from app.web.deps import SessionDep

    async def blocking(session: SessionDep) -> None:
        return None

    app.add_api_route("/test-blocking", blocking, methods=["GET"])
    [(_, endpoint, dependant)] = [r for r in routes(app) if r[0] == "/test-blocking"]
    assert endpoint is blocking and uses_session(dependant)


def routes(app) -> list[tuple[str, Any, Dependant]]:
    """(path, endpoint, dependant) of every API route, included routers flattened."""
    found = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute):
            found.append((context.path or original.path, original.endpoint, context.dependant))
    return found


def test_no_async_route_does_blocking_database_work(app) -> None:
    table = routes(app)
    assert len(table) > 50 and sum(uses_session(d) for _, _, d in table) > 40
    offenders = [
        f"{path} ({endpoint.__name__})"
        for path, endpoint, dependant in table
        if inspect.iscoroutinefunction(endpoint)
        and endpoint.__name__ not in OFFLOADING
        and uses_session(dependant)
    ]
    assert offenders == []

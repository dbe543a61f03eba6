"""Deny by default: every route names its roles; anonymous and wrong-role clients are refused.

The cases are generated from the app's own route table, so a new route is covered as soon
as it exists.
"""

import re

import pytest
from fastapi import APIRouter, FastAPI

from app.config.settings import Settings
from app.main import create_app
from app.web.route_table import ensure_routes_guarded, route_table
from models.users import Role

ROLE_USERS = {Role.secretary: "secretaire", Role.physician: "medecin", Role.admin: "admin"}


def _route_table() -> list[tuple[str, str, frozenset[Role]]]:
    settings = Settings(_env_file=None, database_url="sqlite://", secret_key="x")
    app = create_app(settings)
    table = []
    for entry in route_table(app):
        if entry.guard == "public" or not entry.methods:
            continue
        assert entry.guard is not None and not isinstance(entry.guard, str)
        path = re.sub(r"\{[^}]+\}", "1", entry.path)
        for method in sorted(entry.methods - {"HEAD"}):
            table.append((method, path, entry.guard.roles))
    return table


ROUTES = _route_table()
RESTRICTED = [(m, p, roles) for m, p, roles in ROUTES if set(Role) - roles]


def test_the_table_covers_the_staff_routes() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/", "/patients", "/api/patients", "/admin/audit", "/docs"} <= paths


@pytest.mark.parametrize(
    ("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_anonymous_is_refused(client, method: str, path: str, roles) -> None:
    api = client.request(
        method, path, headers={"accept": "application/json"}, follow_redirects=False
    )
    assert api.status_code in (401, 403), api.text
    page = client.request(method, path, headers={"accept": "text/html"}, follow_redirects=False)
    if method == "GET":
        assert page.status_code in (303, 401)
        if page.status_code == 303:
            assert page.headers["location"].startswith("/login?next=")
    else:
        assert page.status_code in (303, 401, 403)


@pytest.mark.parametrize(
    ("method", "path", "roles"), RESTRICTED, ids=[f"{m} {p}" for m, p, _ in RESTRICTED]
)
def test_wrong_roles_are_refused(logged_in, method: str, path: str, roles) -> None:
    for role in set(Role) - roles:
        client = logged_in(ROLE_USERS[role])
        response = client.request(
            method, path, headers={"accept": "application/json"}, follow_redirects=False
        )
        assert response.status_code == 403, (role, response.text)
        assert "accès" in response.json()["detail"]


def test_an_unguarded_route_stops_the_app_from_starting() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/oops")
    def oops() -> dict[str, str]:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match="/oops"):
        ensure_routes_guarded(app)

"""MCP client scopes: a token opens only its client's areas (403 elsewhere) and, when the client
is read-only, lists and runs only the read tools; both are enforced in code, audited, and a
change of scope or a revocation made at /admin/mcp applies to the very next call. Existing
clients keep full access through the migration."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from app.services.identity.mcp_clients import authenticate_token, create_client, hash_token
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import BearerTokenGuard
from models.db import make_engine
from models.mcp_clients import MCP_AREAS, McpClient
from models.migrate import downgrade, upgrade
from tests.conftest import csrf_from, login
from tests.support.mcp_helpers import (
    ADMIN,
    MCP_HEADERS,
    counts,
    events,
    mcp_session,
    payload,
    spy_tool_calls,
)
from tests.support.practice import PARIS, add_patient, add_practitioner

HTML = {"accept": "text/html"}
AGENDA_TOOLS = {
    "find_patients",
    "register_patient",
    "list_practitioners",
    "find_slots",
    "book_appointment",
    "move_appointment",
    "cancel_appointment",
    "list_appointments",
    "add_to_waiting_list",
}
# The agenda tools annotated read-only: all a read-only client may list or call.
AGENDA_READS = {"find_patients", "list_practitioners", "find_slots", "list_appointments"}
BEFORE_SCOPES = "3f5193472415"  # the revision before the scope columns


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Marie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


@pytest.fixture
def reached(app, monkeypatch) -> list[tuple[str, str]]:
    return spy_tool_calls(app, monkeypatch)


def next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def initialize(url: str, token: str) -> httpx.Response:
    """The first request any MCP client sends, with this bearer token."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    return httpx.post(url, json=body, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"})


@contextmanager
def admin_over_http(live_server: str) -> Iterator[tuple[httpx.Client, str]]:
    """An admin logged in on the live server, and the CSRF token of its forms."""
    with httpx.Client(base_url=live_server, headers=HTML, timeout=30) as http:
        assert login(http, "admin").status_code == 303  # type: ignore[arg-type]
        yield http, csrf_from(http, "/admin/mcp")  # type: ignore[arg-type]


def guard_of(app, area: str) -> BearerTokenGuard:
    return next(
        r.app
        for r in app.routes
        if isinstance(getattr(r, "app", None), BearerTokenGuard) and r.app.server == area
    )


def stored(db: Session, name: str) -> McpClient:
    db.expire_all()
    return db.exec(select(McpClient).where(McpClient.name == name)).one()


# -- areas ---------------------------------------------------------------------------------------


def test_client_areas_are_the_mounted_servers() -> None:
    assert tuple(SERVERS) == MCP_AREAS


@pytest.mark.anyio
async def test_a_knowledge_client_opens_knowledge_only(
    live_server: str, db: Session, reached
) -> None:
    client, token = create_client(db, ADMIN, "Borne documents", areas=["knowledge"])
    db.commit()
    async with mcp_session(f"{live_server}/mcp/knowledge/", token) as session:
        tools = (await session.list_tools()).tools
        assert [t.name for t in tools] == ["search_practice_knowledge"]
        result = await session.call_tool("search_practice_knowledge", {"query": "horaires"})
    # The call reached the tool: the practice has no document yet, and the tool says so.
    assert result.isError and "base de connaissances est vide" in result.content[0].text
    assert reached == [("knowledge", "search_practice_knowledge")]

    for area in ("agenda", "letters", "questionnaires"):
        refused = initialize(f"{live_server}/mcp/{area}/", token)
        assert refused.status_code == 403, (area, refused.text)
        error = refused.json()["error"]
        assert f"n'a pas accès au domaine « {area} »" in error, error
        assert f"no access to the '{area}' area" in error, error
        assert "insufficient_scope" in refused.headers["www-authenticate"]
    assert reached == [("knowledge", "search_practice_knowledge")]

    denied = events(db, "mcp.denied")
    assert [(e.record_type, e.record_id) for e in denied] == [
        ("mcp_server", "agenda"),
        ("mcp_server", "letters"),
        ("mcp_server", "questionnaires"),
    ]
    for event in denied:
        assert (event.actor_kind, event.actor_id, event.actor_name) == (
            "mcp_client",
            str(client.id),
            "Borne documents",
        )
        assert event.outcome == "denied"
        assert event.details == {"reason": "area_not_allowed"}
        written = str((event.actor_name, event.record_id, event.details, event.client_address))
        assert token not in written and hash_token(token) not in written
    [call] = events(db, "mcp.tool_call")
    assert (call.actor_name, call.record_id) == ("Borne documents", "search_practice_knowledge")


@pytest.mark.anyio
async def test_a_read_only_agenda_client_reads_but_never_writes(
    live_server: str, db: Session, practice, reached
) -> None:
    _, token = create_client(db, ADMIN, "Agenda en lecture", areas=["agenda"], can_write=False)
    db.commit()
    before = counts(db)
    monday = next_monday()
    writes = sorted(AGENDA_TOOLS - AGENDA_READS)
    assert "book_appointment" in writes and len(writes) == 5
    async with mcp_session(f"{live_server}/mcp/agenda/", token) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        assert listed == AGENDA_READS
        slots = payload(
            await session.call_tool(
                "find_slots", {"start_date": monday.isoformat(), "part_of_day": "afternoon"}
            )
        )
        assert slots[0]["label"].endswith("14:00")
        booked = await session.call_tool(
            "book_appointment",
            {
                "patient_id": practice["patient"],
                "practitioner_id": practice["practitioner"],
                "start": slots[0]["start"],
            },
        )
        refusals = [(await session.call_tool(name, {})) for name in writes]

    for result in [booked, *refusals]:
        assert result.isError
        message = result.content[0].text
        assert "Ce client MCP est en lecture seule" in message, message
        assert "This MCP client is read-only" in message, message
    assert "« book_appointment »" in booked.content[0].text
    assert counts(db) == before  # no appointment, patient or waiting-list entry was written
    assert reached == [("agenda", "find_slots")]  # no write tool ever ran
    assert [e.record_id for e in events(db, "mcp.tool_call")] == ["find_slots"]
    denied = events(db, "mcp.denied")
    assert [e.record_id for e in denied] == ["book_appointment", *writes]
    for event in denied:
        assert (event.record_type, event.outcome, event.actor_name) == (
            "mcp_tool",
            "denied",
            "Agenda en lecture",
        )
        assert event.details == {"reason": "read_only"}


def test_a_read_write_client_still_lists_every_tool(client: TestClient, db: Session) -> None:
    _, token = create_client(db, ADMIN, "Poste accueil", areas=["agenda"])
    db.commit()
    listing = client.post(
        "/mcp/agenda/",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**MCP_HEADERS, "authorization": f"Bearer {token}"},
    )
    assert listing.status_code == 200
    assert {t["name"] for t in listing.json()["result"]["tools"]} == AGENDA_TOOLS


# -- changes made by an admin apply to the next call ---------------------------------------------


@pytest.mark.anyio
async def test_a_scope_change_applies_at_once(
    app, live_server: str, db: Session, staff, practice
) -> None:
    client, token = create_client(db, ADMIN, "Poste accueil")
    db.commit()
    agenda_url = f"{live_server}/mcp/agenda/"
    async with mcp_session(agenda_url, token) as session:
        assert len((await session.list_tools()).tools) == len(AGENDA_TOOLS)
    assert guard_of(app, "agenda")._verified  # the token is trusted from the cache now

    with admin_over_http(live_server) as (admin, csrf):
        # Knowledge only: the agenda closes at once.
        changed = admin.post(
            f"/admin/mcp/clients/{client.id}/scope",
            data={"csrf_token": csrf, "areas": ["", "knowledge"]},
            follow_redirects=False,
        )
        assert changed.status_code == 303, changed.text
        assert initialize(agenda_url, token).status_code == 403
        # Back to the agenda, read only: writes are refused at once.
        changed = admin.post(
            f"/admin/mcp/clients/{client.id}/scope",
            data={"csrf_token": csrf, "areas": ["", "agenda"], "read_only": "1"},
            follow_redirects=False,
        )
        assert changed.status_code == 303, changed.text
        async with mcp_session(agenda_url, token) as session:
            listed = {t.name for t in (await session.list_tools()).tools}
            refused = await session.call_tool("register_patient", {})
        assert listed == AGENDA_READS
        assert refused.isError and "lecture seule" in refused.content[0].text
        page = admin.get("/admin/mcp").text
    assert "Lecture seule" in page
    assert initialize(f"{live_server}/mcp/knowledge/", token).status_code == 403

    updated = events(db, "mcp.client_updated")
    assert [e.details["after"] for e in updated] == [
        {"areas": ["knowledge"], "can_write": True},
        {"areas": ["agenda"], "can_write": False},
    ]
    assert updated[0].details["before"] == {"areas": list(MCP_AREAS), "can_write": True}
    assert {(e.actor_kind, e.actor_name, e.record_id) for e in updated} == {
        ("user", "admin", str(client.id))
    }


@pytest.mark.anyio
async def test_a_revocation_applies_at_once(app, live_server: str, db: Session, staff) -> None:
    client, token = create_client(db, ADMIN, "Ancien poste")
    db.commit()
    url = f"{live_server}/mcp/agenda/"
    async with mcp_session(url, token) as session:
        await session.list_tools()
    assert guard_of(app, "agenda")._verified  # trusted from the cache for a few seconds
    with admin_over_http(live_server) as (admin, csrf):
        revoked = admin.post(
            f"/admin/mcp/clients/{client.id}/revoke",
            data={"csrf_token": csrf},
            follow_redirects=False,
        )
    assert revoked.status_code == 303
    refused = initialize(url, token)
    assert refused.status_code == 401 and "Jeton MCP" in refused.json()["error"]
    assert not guard_of(app, "agenda")._verified


# -- the admin page ------------------------------------------------------------------------------


def test_the_creation_form_offers_every_area_checked_and_read_only(logged_in) -> None:
    client = logged_in("admin")
    page = client.get("/admin/mcp", headers=HTML).text
    for area in MCP_AREAS:
        assert f'id="area-{area}" name="areas" value="{area}" checked' in page
    assert 'name="read_only" value="1"' in page and "Lecture seule" in page
    english = client.get("/admin/mcp?lang=en", headers=HTML).text
    assert "Read only" in english and "Practice documents" in english


def test_admin_creates_clients_with_their_areas_and_access(logged_in, db: Session) -> None:
    client = logged_in("admin")
    csrf = client.headers["x-csrf-token"]
    page = client.post(
        "/admin/mcp/clients",
        data={
            "csrf_token": csrf,
            "name": "Borne",
            "areas": ["", "agenda", "letters"],
            "read_only": "1",
        },
        headers=HTML,
    )
    assert page.status_code == 200 and "Authorization: Bearer acc_" in page.text
    token = page.text.split("Authorization: Bearer ")[1].split("<")[0]
    borne = stored(db, "Borne")
    assert (borne.areas, borne.can_write) == (["agenda", "letters"], False)
    assert authenticate_token(db, token) is not None
    row = page.text.split("<td>Borne</td>")[1].split("</tr>")[0]
    assert "<td>Agenda, Courriers</td>" in row and "<td>Lecture seule</td>" in row

    full = client.post(
        "/admin/mcp/clients",
        data={"csrf_token": csrf, "name": "Poste", "areas": ["", *MCP_AREAS]},
        headers=HTML,
    )
    assert full.status_code == 200
    poste = stored(db, "Poste")
    assert (poste.areas, poste.can_write) == (list(MCP_AREAS), True)
    assert "<td>Lecture et écriture</td>" in full.text.split("<td>Poste</td>")[1]
    [event, _] = events(db, "mcp_client.create")
    assert event.details == {"areas": ["agenda", "letters"], "can_write": False}


def test_admin_changes_a_clients_areas_and_access(logged_in, db: Session) -> None:
    created, _ = create_client(db, ADMIN, "Poste accueil")
    db.commit()
    client = logged_in("admin")
    csrf = client.headers["x-csrf-token"]
    page = client.get("/admin/mcp", headers=HTML).text
    assert f'action="/admin/mcp/clients/{created.id}/scope"' in page
    changed = client.post(
        f"/admin/mcp/clients/{created.id}/scope",
        data={"csrf_token": csrf, "areas": ["", "questionnaires", "agenda"], "read_only": "1"},
        headers=HTML,
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/admin/mcp"
    row = stored(db, "Poste accueil")
    assert (row.areas, row.can_write) == (["agenda", "questionnaires"], False)
    # Unchecking "read only" gives write access back; the same choice again changes nothing.
    for _ in range(2):
        again = client.post(
            f"/admin/mcp/clients/{created.id}/scope",
            data={"csrf_token": csrf, "areas": ["", "agenda"]},
            headers=HTML,
            follow_redirects=False,
        )
        assert again.status_code == 303
    row = stored(db, "Poste accueil")
    assert (row.areas, row.can_write) == (["agenda"], True)
    updated = events(db, "mcp.client_updated")
    assert len(updated) == 2 and updated[1].details == {
        "before": {"areas": ["agenda", "questionnaires"], "can_write": False},
        "after": {"areas": ["agenda"], "can_write": True},
    }


@pytest.mark.parametrize(
    ("form", "status", "french"),
    [
        (
            {"name": "Borne", "areas": ["", "agenda", "billing"]},
            422,
            "Domaine MCP inconnu : billing",
        ),
        ({"name": "Borne", "areas": [""]}, 422, "Choisissez au moins un domaine"),
        ({"name": "Borne", "areas": ["", "<b>x</b>"]}, 422, "Domaine MCP inconnu : &lt;b&gt;"),
        ({"scope": True, "areas": ["", "billing"]}, 422, "Domaine MCP inconnu : billing"),
        ({"scope": True, "areas": [""]}, 422, "Choisissez au moins un domaine"),
        ({"scope": True}, 422, "Choisissez au moins un domaine"),
        ({"scope": True, "areas": ["", "agenda"], "missing": True}, 404, "Client MCP introuvable"),
    ],
    ids=[
        "create-unknown",
        "create-none",
        "create-markup",
        "update-unknown",
        "update-none",
        "update-no-field",
        "update-missing-client",
    ],
)
def test_bad_scopes_are_refused_and_change_nothing(
    logged_in, db: Session, form: dict, status: int, french: str
) -> None:
    created, _ = create_client(db, ADMIN, "Poste accueil", areas=["knowledge"], can_write=False)
    db.commit()
    client = logged_in("admin")
    data = {"csrf_token": client.headers["x-csrf-token"]}
    data |= {k: v for k, v in form.items() if k in ("name", "areas")}
    client_id = 999999 if form.get("missing") else created.id
    path = f"/admin/mcp/clients/{client_id}/scope" if form.get("scope") else "/admin/mcp/clients"
    response = client.post(path, data=data, headers=HTML, follow_redirects=False)
    assert response.status_code == status, response.text
    assert french in response.text
    assert 'role="alert"' in response.text
    db.expire_all()
    assert [(c.name, c.areas, c.can_write) for c in db.exec(select(McpClient)).all()] == [
        ("Poste accueil", ["knowledge"], False)
    ]
    assert events(db, "mcp.client_updated") == []
    english = client.post(path + "?lang=en", data=data, headers=HTML, follow_redirects=False)
    assert english.status_code == status and "MCP" in english.text
    assert french not in english.text


def test_only_admins_change_a_scope_and_only_with_the_csrf_token(logged_in, db: Session) -> None:
    created, _ = create_client(db, ADMIN, "Poste accueil")
    db.commit()
    path = f"/admin/mcp/clients/{created.id}/scope"
    data = {"areas": ["", "knowledge"], "read_only": "1"}
    secretary = logged_in("secretaire")
    csrf = secretary.headers.pop("x-csrf-token")
    assert secretary.post(path, data=data | {"csrf_token": csrf}, headers=HTML).status_code == 403
    admin = logged_in("admin")
    admin.headers.pop("x-csrf-token")
    assert admin.post(path, data=data, headers=HTML).status_code == 403
    row = stored(db, "Poste accueil")
    assert (row.areas, row.can_write) == (list(MCP_AREAS), True)


# -- the migration -------------------------------------------------------------------------------


def test_the_migration_keeps_existing_clients_full_access(empty_database_url: str) -> None:
    upgrade(empty_database_url, BEFORE_SCOPES)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO mcp_clients (name, token_hash, created_at) "
                    "VALUES ('Poste historique', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": hash_token("acc_old")},
            )
        upgrade(empty_database_url)
        with Session(engine) as session:
            old = session.exec(select(McpClient)).one()
            assert (old.areas, old.can_write) == (list(MCP_AREAS), True)
            assert authenticate_token(session, "acc_old") is not None
            session.rollback()
        downgrade(empty_database_url, BEFORE_SCOPES)
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM mcp_clients")).scalars().all()
        assert names == ["Poste historique"]
        upgrade(empty_database_url)
        with Session(engine) as session:
            again = session.exec(select(McpClient)).one()
            assert (again.areas, again.can_write) == (list(MCP_AREAS), True)
    finally:
        engine.dispose()

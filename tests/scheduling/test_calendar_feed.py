"""The per-practitioner iCalendar feed: valid RFC 5545, UTC times, no medical content, audited."""

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import text
from sqlmodel import Session, select

from app.config.settings import Settings
from app.main import create_app
from app.services.core.audit import Actor
from app.services.core.errors import NotFound
from app.services.scheduling import calendar_feed
from models.appointments import Appointment, AppointmentStatus
from models.audit import ActorKind, AuditEvent
from models.practice import CalendarFeed
from tests.conftest import Staff, login
from tests.support.practice import add_patient, add_practitioner, paris

HTML = {"accept": "text/html"}
ADMIN = Actor(kind=ActorKind.user, id="3", name="admin", address="127.0.0.1")
REASON = "Douleur thoracique"
NOTES = "Antécédent d'infarctus"
URL = re.compile(r'value="(http://testserver/ical/([A-Za-z0-9_-]+)\.ics)"')


def _appointment(
    db: Session,
    practitioner_id: int,
    patient_id: int,
    start: datetime,
    status: AppointmentStatus = AppointmentStatus.booked,
    minutes: int = 20,
) -> Appointment:
    appointment = Appointment(
        practitioner_id=practitioner_id,
        patient_id=patient_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
        status=status,
        reason=REASON,
        notes=NOTES,
        visit_type="vaccination",
    )
    db.add(appointment)
    db.flush()
    return appointment


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    """Dr Claire Martin, Mme Marie Durand, and no appointment yet."""
    practitioner = add_practitioner(db)
    patient_id = add_patient(db, "Durand", "Marie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient_id}


def _feed(db: Session, practitioner_id: int, names: bool = False) -> tuple[CalendarFeed, str]:
    feed, token = calendar_feed.create_feed(
        db, ADMIN, practitioner_id, include_patient_names=names, created_by_id=None
    )
    db.commit()
    return feed, token


def _admin_client(app, staff: Staff) -> TestClient:
    client = TestClient(app, base_url="http://testserver")
    assert login(client, staff.admin).status_code == 303
    client.headers["x-csrf-token"] = client.get("/api/csrf").json()["csrf_token"]
    return client


@pytest.fixture
def names_on(settings: Settings, staff: Staff) -> Iterator[tuple[Settings, TestClient]]:
    """Settings and a logged-in admin client of an app where the practice allows names."""
    allowed = settings.model_copy(update={"ical_patient_names": True})
    app = create_app(allowed)
    with _admin_client(app, staff) as client:
        yield allowed, client
    app.state.engine.dispose()


def test_feed_has_one_utc_event_per_live_appointment_in_range(
    db: Session, settings: Settings, practice: dict[str, int]
) -> None:
    doctor, patient = practice["practitioner"], practice["patient"]
    now = paris(2026, 1, 15, 12)
    winter = _appointment(db, doctor, patient, paris(2026, 1, 20, 10, 0))
    summer = _appointment(
        db, doctor, patient, paris(2026, 7, 1, 10, 0), AppointmentStatus.confirmed, minutes=30
    )
    past = _appointment(db, doctor, patient, paris(2026, 1, 5, 9), AppointmentStatus.honoured)
    _appointment(db, doctor, patient, paris(2026, 1, 21, 9), AppointmentStatus.cancelled)
    _appointment(db, doctor, patient, paris(2025, 12, 1, 9))  # more than 30 days ago
    _appointment(db, doctor, patient, paris(2026, 8, 1, 9))  # more than 180 days ahead
    other = add_practitioner(db, "Bernard")
    _appointment(db, other.id or 0, patient, paris(2026, 1, 22, 9))
    db.commit()
    feed, token = _feed(db, doctor)

    body = calendar_feed.render_feed(db, token, settings, now=now)
    db.commit()

    calendar = Calendar.from_ical(body)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    assert calendar["CALSCALE"] == "GREGORIAN" and calendar["METHOD"] == "PUBLISH"
    assert calendar["X-WR-CALNAME"] == "Dr Claire Martin — Cabinet médical"
    assert calendar["X-WR-TIMEZONE"] == "Europe/Paris"
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {f"appointment-{a.id}@accueil" for a in (past, winter, summer)}
    w, s = events[f"appointment-{winter.id}@accueil"], events[f"appointment-{summer.id}@accueil"]
    # Winter is UTC+1, summer UTC+2: 10:00 in Paris is 09:00Z, then 08:00Z.
    assert w.start == datetime(2026, 1, 20, 9, 0, tzinfo=UTC) and w.start.utcoffset() == timedelta(
        0
    )
    assert w.end == datetime(2026, 1, 20, 9, 20, tzinfo=UTC)
    assert s.start == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert s.end == datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    assert b"DTSTART:20260701T080000Z" in body and b"DTEND:20260120T092000Z" in body
    assert str(w["STATUS"]) == "TENTATIVE" and str(s["STATUS"]) == "CONFIRMED"
    for event in events.values():
        assert str(event["SUMMARY"]) == "Rendez-vous"
        assert "DTSTAMP" in event and "LAST-MODIFIED" in event
        assert "DESCRIPTION" not in event and "LOCATION" not in event
    db.refresh(feed)
    assert feed.last_used_at == now


def test_an_empty_feed_is_still_a_valid_calendar(
    db: Session, settings: Settings, practice: dict[str, int]
) -> None:
    _, token = _feed(db, practice["practitioner"])
    calendar = Calendar.from_ical(calendar_feed.render_feed(db, token, settings))
    assert not calendar.walk("VEVENT") and calendar.walk("VTIMEZONE")


def test_feed_over_http_shows_no_name_and_no_reason(
    client: TestClient, db: Session, practice: dict[str, int]
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    _appointment(db, practice["practitioner"], practice["patient"], start)
    db.commit()
    _, token = _feed(db, practice["practitioner"])

    response = client.get(f"/ical/{token}.ics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers.get_list("cache-control") == ["private, max-age=300"]
    body = response.text
    assert len(Calendar.from_ical(response.content).walk("VEVENT")) == 1
    for secret in ("Durand", "Marie", REASON, "thoracique", NOTES, "vaccination"):
        assert secret not in body


def test_names_appear_only_with_both_switches_on(
    db: Session, settings: Settings, practice: dict[str, int]
) -> None:
    start = datetime.now(UTC) + timedelta(days=3)
    _appointment(db, practice["practitioner"], practice["patient"], start)
    db.commit()
    allowed = settings.model_copy(update={"ical_patient_names": True})
    _, plain = _feed(db, practice["practitioner"], names=False)
    _, named = _feed(db, practice["practitioner"], names=True)

    def summary(token: str, with_settings: Settings) -> str:
        body = calendar_feed.render_feed(db, token, with_settings)
        return str(Calendar.from_ical(body).walk("VEVENT")[0]["SUMMARY"])

    assert summary(named, settings) == "Rendez-vous"  # the practice has not allowed names
    assert summary(plain, allowed) == "Rendez-vous"  # the feed has not asked for them
    assert summary(named, allowed) == "Rendez-vous — Durand Marie"


def test_admin_creates_a_named_feed_when_the_practice_allows_it(
    names_on: tuple[Settings, TestClient], db: Session, practice: dict[str, int]
) -> None:
    _, client = names_on
    _appointment(
        db, practice["practitioner"], practice["patient"], datetime.now(UTC) + timedelta(days=1)
    )
    db.commit()
    page = client.get("/admin/agendas", headers=HTML)
    assert 'name="include_patient_names"' in page.text
    assert "disabled" not in page.text.split('id="f-names"')[1].split(">")[0]

    created = client.post(
        "/admin/agendas/feeds",
        data={"practitioner_id": practice["practitioner"], "include_patient_names": "true"},
        headers=HTML,
    )

    assert created.status_code == 200
    url = URL.search(created.text)
    assert url
    body = client.get(url.group(1)).text
    assert "SUMMARY:Rendez-vous — Durand Marie" in body
    assert REASON not in body
    page = client.get("/admin/agendas", headers=HTML)
    assert "Affichés" in page.text


def test_names_cannot_be_asked_for_while_the_practice_forbids_them(
    logged_in: Callable[[str], TestClient], db: Session, practice: dict[str, int]
) -> None:
    client = logged_in("admin")
    page = client.get("/admin/agendas", headers=HTML)
    checkbox = page.text.split('id="f-names"')[1].split(">")[0]
    assert "disabled" in checkbox
    assert "ACCUEIL_ICAL_PATIENT_NAMES" in page.text

    refused = client.post(
        "/admin/agendas/feeds",
        data={"practitioner_id": practice["practitioner"], "include_patient_names": "true"},
        headers=HTML,
    )

    assert refused.status_code == 422
    assert "autorise pas les noms" in refused.text and not URL.search(refused.text)
    assert db.exec(select(CalendarFeed)).all() == []


def test_admin_page_shows_the_url_once_and_stores_only_a_hash(
    logged_in: Callable[[str], TestClient], db: Session, practice: dict[str, int]
) -> None:
    client = logged_in("admin")
    created = client.post(
        "/admin/agendas/feeds", data={"practitioner_id": practice["practitioner"]}, headers=HTML
    )
    assert created.status_code == 200
    match = URL.search(created.text)
    assert match
    url, token = match.groups()
    assert len(token) >= 43

    page = client.get("/admin/agendas", headers=HTML)
    assert token not in page.text
    assert "Dr Claire Martin" in page.text and "Jamais" in page.text and "Masqués" in page.text

    feed = db.exec(select(CalendarFeed)).one()
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert feed.created_by_id is not None
    rows = db.connection().execute(text("SELECT * FROM calendar_feeds")).all()
    assert rows and all(token not in str(value) for row in rows for value in row)
    audit_rows = db.connection().execute(text("SELECT * FROM audit_events")).all()
    assert all(token not in str(value) for row in audit_rows for value in row)

    assert client.get(url).status_code == 200
    page = client.get("/admin/agendas", headers=HTML)
    assert "Jamais" not in page.text


def test_unknown_and_revoked_tokens_are_a_plain_404(
    logged_in: Callable[[str], TestClient], db: Session, practice: dict[str, int]
) -> None:
    _, token = _feed(db, practice["practitioner"])
    feed_id = db.exec(select(CalendarFeed)).one().id
    client = logged_in("admin")
    assert client.get(f"/ical/{token}.ics").status_code == 200

    for bad in ("nope", "x" * 5000, token[:-1], token.upper(), "%00", "%FF", "été", "a.b"):
        response = client.get(f"/ical/{bad}.ics", headers=HTML)
        assert response.status_code == 404, bad
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Agenda introuvable."
    for bad in (
        f"/ical/{token}",
        "/ical/.ics",
        f"/ical/{token}.ics/x",
        "/ical/..%2F..%2Fadmin.ics",
    ):
        assert client.get(bad, headers=HTML).status_code == 404, bad

    revoked = client.post(f"/admin/agendas/feeds/{feed_id}/revoke", follow_redirects=False)
    assert revoked.status_code == 303
    assert client.get("/admin/agendas?revoked=1", headers=HTML).text.count("Révoquer") == 0
    client.cookies.clear()
    gone = client.get(f"/ical/{token}.ics")
    assert gone.status_code == 404 and gone.text == "Agenda introuvable."
    with pytest.raises(NotFound):
        calendar_feed.render_feed(db, token, Settings(_env_file=None))


def test_create_read_and_revoke_are_audited(
    logged_in: Callable[[str], TestClient], db: Session, practice: dict[str, int]
) -> None:
    client = logged_in("admin")
    created = client.post(
        "/admin/agendas/feeds", data={"practitioner_id": practice["practitioner"]}, headers=HTML
    )
    match = URL.search(created.text)
    assert match
    feed_id = db.exec(select(CalendarFeed)).one().id
    client.cookies.clear()
    client.get(match.group(1))
    client.get(match.group(1))
    client = logged_in("admin")
    client.post(f"/admin/agendas/feeds/{feed_id}/revoke", follow_redirects=False)
    client.post(f"/admin/agendas/feeds/{feed_id}/revoke", follow_redirects=False)

    events = db.exec(
        select(AuditEvent).where(AuditEvent.record_type == "calendar_feed").order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == [
        "calendar_feed.create",
        "calendar_feed.read",
        "calendar_feed.read",
        "calendar_feed.revoke",
    ]
    create, read, _, revoke = events
    assert create.actor_kind == ActorKind.user and create.actor_name == "admin"
    assert revoke.actor_kind == ActorKind.user and revoke.actor_name == "admin"
    assert create.record_id == str(feed_id) == revoke.record_id
    assert read.actor_kind == ActorKind.system
    assert read.actor_name == f"calendar_feed:{feed_id}"
    assert read.details["events"] == 0 and read.details["patient_names"] is False


def test_only_admins_reach_the_feed_page(logged_in: Callable[[str], TestClient]) -> None:
    for username in ("secretaire", "medecin"):
        client = logged_in(username)
        assert client.get("/admin/agendas").status_code == 403
        page = client.get("/", headers=HTML)
        assert "/admin/agendas" not in page.text
    client = logged_in("admin")
    assert "/admin/agendas" in client.get("/", headers=HTML).text
    assert client.get("/admin/agendas", headers=HTML).status_code == 200


def test_bad_form_input_is_shown_on_the_page(
    logged_in: Callable[[str], TestClient], db: Session, practice: dict[str, int]
) -> None:
    client = logged_in("admin")
    for data, status, message in (
        ({}, 422, "Choisissez un praticien."),
        ({"practitioner_id": "abc"}, 422, "Choisissez un praticien."),
        ({"practitioner_id": "99999999999999999999999"}, 404, "Praticien introuvable."),
        ({"practitioner_id": "424242"}, 404, "Praticien introuvable."),
    ):
        response = client.post("/admin/agendas/feeds", data=data, headers=HTML)
        assert response.status_code == status and message in response.text, data
    for feed_id in ("424242", "99999999999999999999999"):
        response = client.post(f"/admin/agendas/feeds/{feed_id}/revoke", headers=HTML)
        assert response.status_code == 404 and "introuvable" in response.text
    assert client.post("/admin/agendas/feeds/abc/revoke", headers=HTML).status_code == 404
    assert db.exec(select(CalendarFeed)).all() == []

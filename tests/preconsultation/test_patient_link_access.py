"""Patient links, generated from the app's route table: every route with a ``{token}`` answers
an unknown, malformed, tampered, expired, used or revoked token with a clean 4xx and a French
message (never a 5xx, never data, nothing written); one patient's link never reaches another
patient's pre-consultation, appointment or offer, whatever ids are slipped into the request;
and a patient's session opens no staff route."""

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config.settings import Settings
from app.main import create_app
from app.services.patients.records import create_patient
from app.services.preconsultation import links as pc
from app.services.preconsultation.questionnaires import import_bundled
from app.services.scheduling import calendar_feed, offer_links, self_service
from app.web.i18n import translate
from app.web.route_table import route_table
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.notifications import AppointmentLink, NotificationConsent
from models.patients import PatientCreate, Sex
from models.practice import CalendarFeed
from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.practice import ACTOR, PARIS, add_practitioner
from tests.support.preconsultation import SECRET, link_csrf, session_csrf, verify

HTML = {"accept": "text/html"}
JSON = {"accept": "application/json"}
FAMILIES = {"/p/": "pc", "/rdv/": "rdv", "/offre/": "offre", "/ical/": "ical"}
# Token routes that are no patient link, each tested where it lives: the online booking's
# slot holds (a hold names no patient until the code is proven; tests/booking/test_pages.py).
OWN_TESTS = ("/rendez-vous/r/",)
# What no refusal may show: both patients' names and birth dates, visit reasons, doctors.
PRIVATE = ("Durand", "Petit", "02/01/1980", "1980-01-02", "15/06/1975", "1975-06-15",
           "Martin", "Bernard", "Migraine", "Lombalgie")  # fmt: skip


def _token_routes() -> tuple[list[tuple[str, str]], list, list[tuple[str, str]]]:
    app = create_app(Settings(_env_file=None, database_url="sqlite://", secret_key="x"))
    table = list(route_table(app))
    app.state.engine.dispose()
    token_routes = [
        (method, entry.path)
        for entry in table
        if "{token}" in entry.path and not entry.path.startswith(OWN_TESTS)
        for method in sorted(entry.methods - {"HEAD"})
    ]
    staff = [
        (method, re.sub(r"\{[^}]+\}", "1", entry.path))
        for entry in table
        if entry.methods and not isinstance(entry.guard, str)
        for method in sorted(entry.methods - {"HEAD"})
    ]
    return token_routes, table, staff


TOKEN_ROUTES, TABLE, STAFF_REQUESTS = _token_routes()
IDS = [f"{m} {p}" for m, p in TOKEN_ROUTES]


def family(path: str) -> str:
    return next(name for prefix, name in FAMILIES.items() if path.startswith(prefix))


def url(path: str, token: str) -> str:
    path = path.replace("{token}", token).replace("{choice}", "accepter")
    return re.sub(r"\{[^}]+\}", "1", path)


def send(client: TestClient, method: str, path: str, token: str, **extra):
    """One request to a token route, shaped as its page would send it (form, JSON, audio)."""
    target = url(path, token)
    client.cookies.clear()  # someone holding only the link: no session, no CSRF token
    if method == "GET":
        return client.get(target, headers=HTML, params=extra.get("params"))
    if path.endswith("/answers"):
        body = {"answers": {"motif": "Toux"}, **extra.get("json", {})}
        return client.post(target, json=body, headers={**JSON, **extra.get("headers", {})})
    if path.endswith("/voix"):
        files = {"file": ("r.wav", b"RIFF\0\0\0\0WAVEfmt ", "audio/wav")}
        return client.post(target, files=files, headers={**JSON, **extra.get("headers", {})})
    data = {"link_csrf": "x", "birth_date": "1980-01-02", "motif": "Toux", **extra.get("data", {})}
    return client.post(target, data=data, headers=HTML, follow_redirects=False)


def text_of(response) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json().get("detail", ""))
    return html.unescape(response.text)


# -- the practice: two patients, each with every kind of link ---------------------------------


@dataclass
class Patient:
    id: int
    birth_date: str
    appointment: Appointment
    pc_token: str = ""
    rdv_token: str = ""
    offer: WaitingOffer | None = None
    offer_token: str = ""
    entry_id: int = 0


@dataclass
class Practice:
    a: Patient
    b: Patient
    feed_token: str
    bad: dict[str, dict[str, tuple[str, int, str]]] = field(default_factory=dict)


def next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def appointment(db: Session, patient_id: int, practitioner_id: int, start: datetime, reason: str):
    row = Appointment(
        practitioner_id=practitioner_id,
        patient_id=patient_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
        visit_type="consultation",
        reason=reason,
    )
    db.add(row)
    db.flush()
    return row


def offer(db: Session, patient_id: int, practitioner_id: int, start: datetime):
    entry = WaitingListEntry(
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        earliest=start.date() - timedelta(days=1),
        latest=start.date() + timedelta(days=1),
    )
    db.add(entry)
    db.flush()
    row = WaitingOffer(
        entry_id=entry.id or 0,
        practitioner_id=practitioner_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
        expires_at=datetime.now(UTC) + timedelta(hours=2),
    )
    db.add(row)
    db.flush()
    return entry, row, offer_links.offer_token(db, SECRET, row)


@pytest.fixture
def practice(db: Session) -> Practice:
    import_bundled(db)
    martin = add_practitioner(db, "Martin")
    bernard = add_practitioner(db, "Bernard")
    monday = next_monday() + timedelta(days=7)
    people = []
    for name, first, born, doctor, hour, reason in (
        ("Durand", "Marie", date(1980, 1, 2), martin, 9, "Migraine"),
        ("Petit", "Jeanne", date(1975, 6, 15), bernard, 15, "Lombalgie"),
    ):
        data = PatientCreate(birth_name=name, first_name=first, birth_date=born, sex=Sex.female)
        patient_id = create_patient(db, ACTOR, data).id or 0
        row = appointment(db, patient_id, doctor.id or 0, at(monday, hour), reason)
        person = Patient(patient_id, born.isoformat(), row)
        person.pc_token = pc.send_preconsultation(db, ACTOR, row.id or 0, secret=SECRET).token
        person.rdv_token = self_service.link_token(db, SECRET, row)
        entry, person.offer, person.offer_token = offer(
            db, patient_id, doctor.id or 0, at(monday + timedelta(days=1), hour + 1)
        )
        person.entry_id = entry.id or 0
        people.append(person)
    _, feed_token = calendar_feed.create_feed(
        db, ACTOR, martin.id or 0, include_patient_names=False, created_by_id=None
    )
    db.commit()
    result = Practice(people[0], people[1], feed_token)
    result.bad = spent_links(db, people[0].id, martin.id or 0, monday)
    return result


def spent_links(db: Session, patient_id: int, doctor_id: int, monday: date) -> dict:
    """For each link kind: (token, expected status, problem shown) per spent state."""
    now = datetime.now(UTC)
    states: dict[str, dict[str, tuple[str, int, str]]] = {"pc": {}, "rdv": {}, "offre": {}}

    def pc_link(day: int) -> tuple[Appointment, pc.SentLink]:
        row = appointment(db, patient_id, doctor_id, at(monday + timedelta(days=day), 11), "x")
        return row, pc.send_preconsultation(db, ACTOR, row.id or 0, secret=SECRET)

    _, sent = pc_link(2)
    sent.preconsultation.expires_at = now - timedelta(seconds=1)
    sent.preconsultation.status = PreConsultationStatus.expired  # as its first refusal marks it
    states["pc"]["expired"] = (sent.token, 410, "expired")
    row, first = pc_link(3)
    pc.send_preconsultation(db, ACTOR, row.id or 0, secret=SECRET)  # replaces the first
    states["pc"]["revoked"] = (first.token, 410, "revoked")
    _, sent = pc_link(4)
    sent.preconsultation.status = PreConsultationStatus.submitted
    states["pc"]["submitted"] = (sent.token, 410, "submitted")
    _, sent = pc_link(5)
    sent.preconsultation.failed_identity_checks = 5
    states["pc"]["locked"] = (sent.token, 423, "locked")
    row, sent = pc_link(6)
    row.status = AppointmentStatus.cancelled
    states["pc"]["visit cancelled"] = (sent.token, 410, "revoked")

    def rdv_link(day: int) -> tuple[Appointment, str]:
        row = appointment(db, patient_id, doctor_id, at(monday + timedelta(days=day), 12), "x")
        return row, self_service.link_token(db, SECRET, row)

    row, token = rdv_link(2)
    link = db.exec(select(AppointmentLink).where(AppointmentLink.appointment_id == row.id)).one()
    link.used_at = now
    states["rdv"]["used"] = (token, 410, "used")
    row, token = rdv_link(3)
    row.status = AppointmentStatus.cancelled
    states["rdv"]["cancelled"] = (token, 410, "cancelled")
    row = appointment(db, patient_id, doctor_id, now - timedelta(days=1), "x")
    states["rdv"]["expired"] = (self_service.link_token(db, SECRET, row), 410, "expired")

    for status, code, problem in (
        (None, 410, "offer_expired"),
        (OfferStatus.accepted, 409, "offer_accepted"),
        (OfferStatus.declined, 409, "offer_declined"),
        (OfferStatus.superseded, 409, "offer_taken"),
    ):
        _, row, token = offer(db, patient_id, doctor_id, at(monday + timedelta(days=3), 16))
        if status is None:
            row.expires_at = now - timedelta(minutes=1)
        else:
            row.status = status
        db.add(row)
        states["offre"][problem] = (token, code, problem)
    db.flush()
    db.commit()
    return states


def snapshot(db: Session) -> dict:
    """Everything a patient link could change."""
    db.expire_all()
    return {
        "pc": sorted(
            (p.id, p.status, repr(p.answers), p.failed_identity_checks, p.token_hash)
            for p in db.exec(select(PreConsultation)).all()
        ),
        "appointments": sorted(
            (a.id, a.patient_id, a.status, a.starts_at) for a in db.exec(select(Appointment)).all()
        ),
        "links": sorted(
            (lk.id, lk.used_at, lk.confirmed_at) for lk in db.exec(select(AppointmentLink)).all()
        ),
        "offers": sorted((o.id, o.status) for o in db.exec(select(WaitingOffer)).all()),
        "waiting": sorted((e.id, e.status) for e in db.exec(select(WaitingListEntry)).all()),
        "consents": len(db.exec(select(NotificationConsent)).all()),
    }


def assert_refused(response, status: int | tuple[int, ...], french: str | tuple[str, ...]):
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    text = text_of(response)
    phrases = french if isinstance(french, tuple) else (french,)
    assert any(p in text for p in phrases), (phrases, text[:500])
    leaked = [word for word in PRIVATE if word in response.text]
    assert leaked == [], leaked


# -- the tests -------------------------------------------------------------------------------


def test_every_token_route_is_public_and_of_a_known_link_kind() -> None:
    assert len(TOKEN_ROUTES) >= 17
    for entry in TABLE:
        if "{token}" in entry.path:
            assert entry.guard == "public", entry.path
            # a new kind of patient link must be added to FAMILIES (and to these tests)
            known = (*FAMILIES, *OWN_TESTS)
            assert any(entry.path.startswith(prefix) for prefix in known), entry.path


INVALID_TITLE = {
    "pc": translate("fr", "pc.problem.invalid.title"),
    "rdv": translate("fr", "ss.problem.invalid.title"),
    "offre": translate("fr", "ss.problem.offer_invalid.title"),
    "ical": "Agenda introuvable.",
}
INVALID_JSON = translate("fr", "pc.problem.invalid.text")
VALIDATION = translate("fr", "errors.validation")
NOT_FOUND = translate("fr", "errors.not_found")  # an encoded "/" makes it another path


def malformed(kind: str, p: Practice) -> dict[str, str]:
    """Tokens that name no link: garbage, a real one altered, one of another kind or patient."""
    own = {"pc": p.a.pc_token, "rdv": p.a.rdv_token, "offre": p.a.offer_token, "ical": p.feed_token}
    real = own[kind]
    tokens = {
        "garbage": "nope",
        "empty signature": "1.",
        "encoded traversal": "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "unicode": "é✓ü.Ω",
        "nul byte": "1.AAAA%00",
        "huge row id": "99999999999999999999.AAAA",
        "negative row id": "-1.AAAAAAAAAAAAAAAAAAAAAAAA",
        "tampered": real[:-1] + ("A" if real[-1] != "A" else "B"),
        "truncated": real[: len(real) // 2],
        "doubled": real + real,
    }
    tokens |= {f"{other} token": t for other, t in own.items() if other != kind}
    if kind == "rdv":  # the signature of one row under another row's id
        tokens["other row id"] = f"{p.b.rdv_token.split('.')[0]}.{real.split('.')[1]}"
    if kind == "offre":
        tokens["other row id"] = f"{p.b.offer_token.split('.')[0]}.{real.split('.')[1]}"
    return tokens


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES, ids=IDS)
def test_unknown_and_malformed_tokens_get_a_clean_refusal(
    client: TestClient, db: Session, practice: Practice, method: str, path: str
) -> None:
    kind = family(path)
    before = snapshot(db)
    for label, token in malformed(kind, practice).items():
        response = send(client, method, path, token)
        expected = (INVALID_JSON if response.headers.get("content-type", "").startswith(
            "application/json") else INVALID_TITLE[kind])  # fmt: skip
        assert_refused(response, (404, 422), (expected, VALIDATION, NOT_FOUND))
        assert response.status_code == 404 or label == "doubled", label
    too_long = send(client, method, path, "A" * 200)
    assert_refused(too_long, (404, 422), (INVALID_TITLE[kind], VALIDATION))
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [r for r in TOKEN_ROUTES if family(r[1]) != "ical"],
    ids=[i for i, r in zip(IDS, TOKEN_ROUTES, strict=True) if family(r[1]) != "ical"],
)
def test_spent_links_get_a_clean_refusal(
    client: TestClient, db: Session, practice: Practice, method: str, path: str
) -> None:
    kind = family(path)
    before = snapshot(db)
    for state, (token, status, problem) in practice.bad[kind].items():
        response = send(client, method, path, token)
        if response.headers.get("content-type", "").startswith("application/json"):
            message = translate("fr", f"pc.problem.{problem}.text")
        else:
            message = translate("fr", f"{'pc' if kind == 'pc' else 'ss'}.problem.{problem}.title")
        assert_refused(response, status, message)
        assert state  # each state is named in the failure
    assert snapshot(db) == before


def test_a_revoked_calendar_feed_is_refused(client: TestClient, db: Session, practice) -> None:
    assert client.get(f"/ical/{practice.feed_token}.ics").status_code == 200
    [feed] = db.exec(select(CalendarFeed)).all()
    calendar_feed.revoke_feed(db, ACTOR, feed.id or 0)
    db.commit()
    response = client.get(f"/ical/{practice.feed_token}.ics")
    assert response.status_code == 404 and response.text == "Agenda introuvable."


def _verified(client: TestClient, person: Patient) -> dict[str, str]:
    path = f"/p/{person.pc_token}"
    assert verify(client, path, person.birth_date).status_code == 303
    page = client.get(f"{path}/etape/1", headers=HTML)
    return {"x-link-csrf": link_csrf(page.text), "x-csrf-token": session_csrf(page.text)}


def test_a_preconsultation_link_reaches_only_its_own_record(
    client: TestClient, db: Session, practice: Practice
) -> None:
    a, b = practice.a, practice.b
    path_a, path_b = f"/p/{a.pc_token}", f"/p/{b.pc_token}"
    # B's birth date does not open A's link.
    page = client.get(path_a, headers=HTML)
    wrong = client.post(
        f"{path_a}/identite",
        data={"birth_date": b.birth_date, "link_csrf": link_csrf(page.text),
              "csrf_token": session_csrf(page.text)},
        headers=HTML,
    )  # fmt: skip
    assert wrong.status_code == 422
    headers_a = _verified(client, a)
    ids_of_b = {
        "preconsultation_id": b.appointment.id,
        "appointment_id": b.appointment.id,
        "patient_id": b.id,
        "token": b.pc_token,
    }
    saved = client.post(
        f"{path_a}/answers",
        json={"answers": {"motif": "Céphalées"}, **ids_of_b},
        params=ids_of_b,
        headers={**JSON, **headers_a},
    )
    assert saved.status_code == 200 and saved.json()["saved"] == ["motif"]
    db.expire_all()
    rows = {p.appointment_id: p for p in db.exec(select(PreConsultation)).all()}
    assert rows[a.appointment.id].answers == {"motif": "Céphalées"}
    assert rows[b.appointment.id].answers == {}
    for page_path in ("/etape/1", "/relecture"):
        page = client.get(f"{path_a}{page_path}", params=ids_of_b, headers=HTML)
        assert page.status_code == 200 and "Céphalées" in html.unescape(page.text)
        assert "Petit" not in page.text and "Bernard" not in page.text

    # A's verified session does not open B's link, and A's form token is not B's.
    assert (
        client.get(f"{path_b}/etape/1", headers=HTML, follow_redirects=False).headers["location"]
        == path_b
    )
    for headers in (headers_a, {"x-csrf-token": headers_a["x-csrf-token"]}):
        refused = client.post(
            f"{path_b}/answers", json={"answers": {"motif": "x"}}, headers={**JSON, **headers}
        )
        assert refused.status_code == 401 and refused.json()["problem"] == "identity"
        assert "Confirmez d'abord votre identité" in refused.json()["detail"]
    _verified(client, b)  # the same browser now holds both (a shared family device)
    forged = client.post(
        f"{path_b}/answers", json={"answers": {"motif": "x"}}, headers={**JSON, **headers_a}
    )
    assert forged.status_code == 403 and "expiré" in forged.json()["detail"]
    step = client.post(
        f"{path_b}/etape/1",
        data={"motif": "x", "link_csrf": headers_a["x-link-csrf"],
              "csrf_token": headers_a["x-csrf-token"]},
        headers=HTML,
    )  # fmt: skip
    assert step.status_code == 403
    db.expire_all()
    row_b = db.exec(
        select(PreConsultation).where(PreConsultation.appointment_id == b.appointment.id)
    ).one()
    assert row_b.answers == {} and row_b.status == PreConsultationStatus.opened


def _form_value(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, name
    return match.group(1)


def test_an_appointment_link_reaches_only_its_own_appointment(
    client: TestClient, db: Session, practice: Practice
) -> None:
    a, b = practice.a, practice.b
    page_a = client.get(f"/rdv/{a.rdv_token}", params={"appointment_id": b.appointment.id})
    assert page_a.status_code == 200 and "Martin" in page_a.text and "Bernard" not in page_a.text
    form_a = {"csrf_token": _form_value(page_a.text, "csrf_token"),
              "link_csrf": _form_value(page_a.text, "link_csrf")}  # fmt: skip
    ids_of_b = {"appointment_id": str(b.appointment.id), "patient_id": str(b.id),
                "link_id": b.rdv_token.split(".")[0], "token": b.rdv_token}  # fmt: skip
    before = snapshot(db)

    # A's form token does not work on B's link.
    for action in ("confirmer", "annuler", "desinscription", "questionnaire"):
        forged = client.post(f"/rdv/{b.rdv_token}/{action}", data=form_a, headers=HTML)
        assert forged.status_code == 403, action
        assert translate("fr", "ss.problem.form_expired.title") in html.unescape(forged.text)
    assert snapshot(db) == before

    # B's ids slipped into A's forms act on A only.
    confirmed = client.post(
        f"/rdv/{a.rdv_token}/confirmer", data={**form_a, **ids_of_b}, headers=HTML,
        follow_redirects=False,
    )  # fmt: skip
    assert confirmed.status_code == 303
    opted_out = client.post(
        f"/rdv/{a.rdv_token}/desinscription", data={**form_a, **ids_of_b}, headers=HTML,
        follow_redirects=False,
    )  # fmt: skip
    assert opted_out.status_code == 303
    db.expire_all()
    assert db.get(Appointment, a.appointment.id).status == AppointmentStatus.confirmed
    assert db.get(Appointment, b.appointment.id).status == AppointmentStatus.booked
    consents = db.exec(select(NotificationConsent)).all()
    assert consents and {c.patient_id for c in consents} == {a.id}
    assert all(c.opted_out for c in consents)


def test_an_offer_link_books_only_its_own_patient(
    client: TestClient, db: Session, practice: Practice
) -> None:
    a, b = practice.a, practice.b
    page_a = client.get(f"/offre/{a.offer_token}", params={"offer_id": b.offer.id})
    assert page_a.status_code == 200 and "Martin" in page_a.text and "Bernard" not in page_a.text
    form_a = {"csrf_token": _form_value(page_a.text, "csrf_token"),
              "link_csrf": _form_value(page_a.text, "link_csrf")}  # fmt: skip
    before = snapshot(db)
    forged = client.post(f"/offre/{b.offer_token}/accepter", data=form_a, headers=HTML)
    assert forged.status_code == 403 and snapshot(db) == before

    ids_of_b = {"offer_id": str(b.offer.id), "entry_id": str(b.entry_id),
                "patient_id": str(b.id)}  # fmt: skip
    accepted = client.post(
        f"/offre/{a.offer_token}/accepter", data={**form_a, **ids_of_b}, params=ids_of_b,
        headers=HTML,
    )  # fmt: skip
    assert accepted.status_code == 200, accepted.text
    db.expire_all()
    booked = db.exec(select(Appointment).where(Appointment.starts_at == a.offer.starts_at)).one()
    assert booked.patient_id == a.id
    assert db.get(WaitingListEntry, a.entry_id).status == WaitingStatus.booked
    assert db.get(WaitingListEntry, b.entry_id).status == WaitingStatus.waiting
    assert db.get(WaitingOffer, b.offer.id).status == OfferStatus.pending


def test_a_patient_session_opens_no_staff_route(
    client: TestClient, db: Session, practice: Practice
) -> None:
    a = practice.a
    _verified(client, a)
    assert client.get(f"/rdv/{a.rdv_token}").status_code == 200
    assert client.get(f"/offre/{a.offer_token}").status_code == 200
    assert client.cookies.get("accueil_session")  # the patient's browser holds a session
    assert len(STAFF_REQUESTS) > 50
    opened = []
    for method, path in STAFF_REQUESTS:
        response = client.request(method, path, headers=JSON, follow_redirects=False)
        refused = response.status_code in (401, 403) and (
            "connecter" in response.json()["detail"] or "expiré" in response.json()["detail"]
        )
        if not refused:
            opened.append((method, path, response.status_code))
        if method == "GET":
            page = client.get(path, headers=HTML, follow_redirects=False)
            to_login = page.status_code == 303 and page.headers["location"].startswith("/login")
            if not to_login and page.status_code != 401:
                opened.append((method, path, page.status_code))
    assert opened == []

"""The public booking page through HTTP: the steps, enumeration-safe answers, rate limits,
the proof-of-work under load, the embed's frame policy."""

import re
import statistics
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.services.booking import challenge, throttle
from app.web.route_table import route_table
from models.appointments import Appointment, AppointmentSource
from models.audit import AuditEvent
from models.online_booking import SlotHold
from models.patients import Patient, RegistrationStatus
from tests.booking.conftest import Practice, code_from, first_slot
from tests.support.notification_helpers import add_reachable_patient
from tests.support.practice import PARIS

IDENTITY = {
    "birth_name": "Durand",
    "first_name": "Marie",
    "birth_date": "1980-01-02",
    "sex": "F",
    "phone": "06 12 34 56 78",
}


def _form_token(html: str) -> str:
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', html)
    assert found
    return found.group(1)


@pytest.fixture(autouse=True)
def generous_limits(app) -> None:  # type: ignore[no-untyped-def]
    """Many holds from the test client's one address: no challenge unless a test asks."""
    app.state.booking_limits = throttle.Limits(
        holds_per_address=1000, pow_after_holds=1000, codes_per_contact=1000
    )
    app.state.booking_page_limiter = throttle.PageLimiter(rate=1000, burst=1000)


def _page_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found
    return found.group(1)


def _session_csrf(client: TestClient) -> str:
    page = client.get(
        "/rendez-vous/creneaux", params={"praticien": "premier", "motif": "consultation"}
    )
    return _page_csrf(page.text) if 'name="csrf_token"' in page.text else ""


def _pick(client: TestClient, slot, who: str = "premier", **extra: str):  # type: ignore[no-untyped-def]
    token = _session_csrf(client)
    return client.post(
        "/rendez-vous/reserver",
        data={
            "praticien": who,
            "motif": "consultation",
            "creneau": f"{slot.practitioner_id}|{slot.starts_at.isoformat()}",
            "csrf_token": token,
            **extra,
        },
        follow_redirects=False,
    )


def _identity(client: TestClient, location: str, email: str):  # type: ignore[no-untyped-def]
    page = client.get(location)
    assert page.status_code == 200
    token = location.split("/")[3].split("?")[0]
    return client.post(
        f"/rendez-vous/r/{token}/identite",
        data={
            **IDENTITY,
            "email": email,
            "form_token": _form_token(page.text),
            "csrf_token": _page_csrf(page.text),
        },
        follow_redirects=False,
    ), token


def test_the_steps_book_a_new_patient(
    client: TestClient, db: Session, practice: Practice, smtp_server
) -> None:
    start = client.get("/rendez-vous")
    assert start.status_code == 200 and "Premier disponible" in start.text
    slots = client.get(
        "/rendez-vous/creneaux", params={"praticien": "premier", "motif": "consultation"}
    )
    assert slots.status_code == 200 and 'name="creneau"' in slots.text
    slot = first_slot(db)
    picked = _pick(client, slot)
    assert picked.status_code == 303
    sent, token = _identity(client, picked.headers["location"], "nouvelle@example.org")
    assert sent.status_code == 303 and sent.headers["location"].startswith(
        f"/rendez-vous/r/{token}/code"
    )
    code_page = client.get(sent.headers["location"])
    assert "code" in code_page.text
    wrong = client.post(
        f"/rendez-vous/r/{token}/code",
        data={
            "code": "000000x",
            "form_token": _form_token(code_page.text),
            "csrf_token": _page_csrf(code_page.text),
        },
    )
    assert wrong.status_code == 422 and 'aria-invalid="true"' in wrong.text
    done = client.post(
        f"/rendez-vous/r/{token}/code",
        data={
            "code": code_from(smtp_server.mailbox, "nouvelle@example.org"),
            "form_token": _form_token(code_page.text),
            "csrf_token": _page_csrf(code_page.text),
        },
    )
    assert done.status_code == 200 and "Rendez-vous confirmé" in done.text
    db.expire_all()
    appointment = db.exec(select(Appointment)).one()
    assert appointment.source == AppointmentSource.online
    assert appointment.starts_at == slot.starts_at
    assert db.get(Patient, appointment.patient_id).registration_status == RegistrationStatus.pending
    actions = {e.action for e in db.exec(select(AuditEvent)).all()}
    assert {
        "online_booking.hold",
        "online_booking.identity",
        "online_booking.code_sent",
        "online_booking.code_wrong",
        "online_booking.confirm",
        "appointment.book",
    } <= actions


def _send_identity(client: TestClient, db: Session, language: str = "fr"):  # type: ignore[no-untyped-def]
    """Pick a slot and open its identity page; returns how to post the identity typed."""
    location = _pick(client, first_slot(db)).headers["location"]
    page = client.get(location)
    token = location.split("/")[3].split("?")[0]

    def send(**typed: str):  # type: ignore[no-untyped-def]
        return client.post(
            f"/rendez-vous/r/{token}/identite",
            data={
                **IDENTITY,
                "email": "marie@example.org",
                **typed,
                "form_token": _form_token(page.text),
                "csrf_token": _page_csrf(page.text),
            },
            headers={"accept-language": language},
        )

    return send


def test_bad_identity_fields_are_named_and_linked(
    client: TestClient, db: Session, practice: Practice
) -> None:
    answer = _send_identity(client, db)(birth_date="", email="pas-un-email")
    assert answer.status_code == 422
    assert 'href="#f-email"' in answer.text and 'aria-describedby="e-email"' in answer.text
    assert 'href="#f-birth_date"' in answer.text


@pytest.mark.parametrize(
    ("language", "expected", "future"),
    [
        (
            "fr",
            ["Adresse e-mail invalide.", "Numéro de téléphone illisible.", "Date invalide"],
            "La date de naissance est dans le futur.",
        ),
        (
            "en",
            ["Invalid email address.", "Unreadable phone number.", "Invalid date"],
            "The date of birth is in the future.",
        ),
    ],
)
def test_identity_errors_speak_the_page_language(
    client: TestClient,
    db: Session,
    practice: Practice,
    language: str,
    expected: list[str],
    future: str,
) -> None:
    send = _send_identity(client, db, language)
    answer = send(birth_date="1980-02-31", phone="pas un numéro", email="pas-un-email")
    assert answer.status_code == 422
    for message in expected:
        assert message in answer.text
    for field in ("email", "phone", "birth_date"):
        assert f'href="#f-{field}"' in answer.text
    # A check of the whole identity (no field of its own) is tied to its field too.
    later = send(birth_date="2999-01-01")
    assert later.status_code == 422 and future in later.text
    assert 'href="#f-birth_date"' in later.text


def _normalised(html: str) -> str:
    """The page without what belongs to the slot or the request: its tokens, its times and its
    day (twenty slots in a row may span two days, depending on the time the test runs)."""
    html = re.sub(r"/rendez-vous/r/[A-Za-z0-9_-]+", "/rendez-vous/r/TOKEN", html)
    html = re.sub(r'<dd class="ss-when">[^<]*</dd>', '<dd class="ss-when">WHEN</dd>', html)
    html = re.sub(r'value="[0-9a-f]{64}"', 'value="FORM"', html)
    return re.sub(r"\d\d:\d\d", "HH:MM", html)


def test_known_and_unknown_identities_get_the_same_answer(
    client: TestClient, db: Session, practice: Practice
) -> None:
    add_reachable_patient(db, "Durand", "Marie", "marie@example.org")
    db.commit()
    from app.services.booking import rules as booking_rules
    from app.services.booking.public_slots import public_slots

    slots = public_slots(
        db,
        PARIS,
        booking_rules.current(db),
        practitioner_id=practice.practitioner_ids[0],
        visit_type="consultation",
        now=datetime.now(UTC),
    )[4:24]
    pages: dict[str, list[str]] = {"known": [], "unknown": []}
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for i, slot in enumerate(slots):
        kind = "known" if i % 2 == 0 else "unknown"
        email = "marie@example.org" if kind == "known" else f"inconnu{i}@example.org"
        picked = _pick(client, slot)
        began = time.perf_counter()
        sent, _ = _identity(client, picked.headers["location"], email)
        timings[kind].append(time.perf_counter() - began)
        assert sent.status_code == 303
        pages[kind].append(_normalised(client.get(sent.headers["location"]).text))
    assert set(pages["known"]) == set(pages["unknown"]) and len(set(pages["known"])) == 1
    # Same work on both paths: the medians differ by noise only (generous bound: a busy box).
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    assert abs(known - unknown) < max(known, unknown) * 0.5 + 0.02


def test_a_taken_slot_gets_the_clear_message_and_next_slots(
    client: TestClient, db: Session, practice: Practice
) -> None:
    slot = first_slot(db, practice.practitioner_ids[0])
    assert _pick(client, slot, str(practice.practitioner_ids[0])).status_code == 303
    again = _pick(client, slot, str(practice.practitioner_ids[0]))
    assert again.status_code == 409
    assert "Créneau déjà pris. Prochains créneaux libres" in again.text


def test_page_views_are_rate_limited_per_address(  # type: ignore[no-untyped-def]
    app, client: TestClient, db: Session, practice: Practice
) -> None:
    params = {"praticien": "premier", "motif": "consultation"}
    app.state.booking_page_limiter = throttle.PageLimiter(rate=0.05, burst=20)
    abusive = {"x-forwarded-for": "198.51.100.9"}
    polite = {"x-forwarded-for": "198.51.100.10"}
    codes = [
        client.get("/rendez-vous/creneaux", params=params, headers=abusive).status_code
        for _ in range(40)
    ]
    assert codes[0] == 200 and codes.count(429) >= 15
    slowed = client.get("/rendez-vous/creneaux", params=params, headers=abusive)
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
    assert "Trop de demandes" in slowed.text
    assert client.get("/rendez-vous/creneaux", params=params, headers=polite).status_code == 200


def test_holds_need_a_proof_of_work_past_a_few(  # type: ignore[no-untyped-def]
    app, client: TestClient, db: Session, practice: Practice
) -> None:
    from app.services.booking import rules as booking_rules
    from app.services.booking.public_slots import public_slots

    slots = public_slots(
        db,
        PARIS,
        booking_rules.current(db),
        practitioner_id=None,
        visit_type="consultation",
        now=datetime.now(UTC),
    )[3:10]
    app.state.booking_limits = throttle.Limits(pow_after_holds=3)
    for slot in slots[:3]:
        assert _pick(client, slot).status_code == 303
    asked = _pick(client, slots[3])
    assert asked.status_code == 200 and "booking-pow.js" in asked.text
    text = re.search(r'data-challenge="([^"]+)"', asked.text).group(1)  # type: ignore[union-attr]
    bits = int(re.search(r'data-bits="(\d+)"', asked.text).group(1))  # type: ignore[union-attr]
    # A wrong answer is asked again (a fresh challenge), never held.
    wrong = _pick(client, slots[3], pow_challenge=text, pow_counter="1")
    assert wrong.status_code == 200 and "data-challenge" in wrong.text
    counter = challenge.solve(text, bits)
    assert _pick(client, slots[4], pow_challenge=text, pow_counter=str(counter)).status_code == 303


def test_the_embed_may_be_framed_by_the_practice_site_only(client: TestClient, db: Session) -> None:
    from tests.booking.conftest import open_booking

    open_booking(db, frame_ancestors="https://www.cabinet-tilleuls.fr")
    db.commit()
    plain = client.get("/rendez-vous")
    assert "frame-ancestors 'none'" in plain.headers["content-security-policy"]
    assert plain.headers["x-frame-options"] == "DENY"
    embed = client.get("/rendez-vous?embed=1")
    assert embed.status_code == 200
    assert (
        "frame-ancestors 'self' https://www.cabinet-tilleuls.fr"
        in embed.headers["content-security-policy"]
    )
    assert "x-frame-options" not in embed.headers
    assert 'class="site-header"' not in embed.text


def test_closed_until_an_admin_opens_it(client: TestClient) -> None:
    page = client.get("/rendez-vous")
    assert page.status_code == 200 and "pas ouverte" in page.text
    assert client.get("/rendez-vous?lang=en").text.count("not open") == 1


def test_an_unknown_hold_token_is_a_clear_410(client: TestClient, practice: Practice) -> None:
    page = client.get("/rendez-vous/r/not-a-token")
    assert page.status_code == 410 and "expirée" in page.text
    assert SlotHold  # the model is there


def test_odd_input_gets_a_clear_answer_never_a_500(  # type: ignore[no-untyped-def]
    client: TestClient, practice: Practice
) -> None:
    params = {"praticien": "premier", "motif": "consultation"}
    for after in ("0001-01-01", "9999-12-31", "2026-13-40"):
        assert (
            client.get("/rendez-vous/creneaux", params={**params, "apres": after}).status_code < 500
        )
    for who in ("²", "99999999999", "-1", ""):
        assert (
            client.get("/rendez-vous/creneaux", params={**params, "praticien": who}).status_code
            < 500
        )
    token = _session_csrf(client)
    for slot in (
        "1|0001-01-01T00:00:00+14:00",
        "²|2027-01-01T10:00:00+01:00",
        "x",
        "1|9999-12-31T23:59:59-12:00",
    ):
        answer = client.post(
            "/rendez-vous/reserver",
            data={"praticien": "²", "motif": "consultation", "creneau": slot, "csrf_token": token},
        )
        assert answer.status_code in (409, 422), (slot, answer.status_code)


HOLD_ROUTES = [
    ("GET", "/rendez-vous/r/{token}"),
    ("POST", "/rendez-vous/r/{token}/identite"),
    ("GET", "/rendez-vous/r/{token}/code"),
    ("POST", "/rendez-vous/r/{token}/code"),
    ("POST", "/rendez-vous/r/{token}/annuler"),
]


def test_every_hold_route_is_listed_here(app) -> None:  # type: ignore[no-untyped-def]
    """tests/preconsultation/test_patient_link_access.py leaves hold tokens to this file."""
    served = {
        (method, entry.path)
        for entry in route_table(app)
        if entry.path.startswith("/rendez-vous/r/")
        for method in entry.methods - {"HEAD"}
    }
    assert served == set(HOLD_ROUTES)


@pytest.mark.parametrize(("method", "path"), HOLD_ROUTES, ids=[f"{m} {p}" for m, p in HOLD_ROUTES])
def test_malformed_hold_tokens_get_a_clean_refusal(
    client: TestClient, db: Session, practice: Practice, method: str, path: str
) -> None:
    slot = first_slot(db)
    location = _pick(client, slot).headers["location"]
    real = location.split("/")[3].split("?")[0]
    holds_before = [(h.id, h.released_at) for h in db.exec(select(SlotHold)).all()]
    tokens = {
        "garbage": "nope",
        "encoded traversal": "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "unicode": "é✓ü.Ω",
        "nul byte": "1.AAAA%00",
        "huge": "9" * 40,
        "tampered": real[:-1] + ("A" if real[-1] != "A" else "B"),
        "truncated": real[: len(real) // 2],
        "doubled": real + real,
        "too long": "A" * 200,
    }
    for label, token in tokens.items():
        target = path.replace("{token}", token)
        if method == "GET":
            response = client.get(target)
        else:
            response = client.post(target, data={"code": "123456"}, follow_redirects=False)
        # a POST without the page's CSRF token is refused before the token is even read
        allowed = (404, 410, 422) if method == "GET" else (403, 404, 410, 422)
        assert response.status_code in allowed, (label, response.status_code)
        assert "Traceback" not in response.text and "Internal" not in response.text, label
    db.expire_all()
    assert [(h.id, h.released_at) for h in db.exec(select(SlotHold)).all()] == holds_before
    assert db.exec(select(Appointment)).all() == []

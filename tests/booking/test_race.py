"""Fifty patients race for one slot through the public page: one appointment, and every
other patient is told the slot is taken, with the next free slots.

Runs on the test database of the session: SQLite by default, PostgreSQL with
ACCUEIL_TEST_DATABASE_URL."""

import re
import threading

import httpx
from sqlmodel import Session, select

from app.services.booking import throttle
from models.appointments import Appointment
from models.online_booking import SlotHold
from tests.booking.conftest import Practice, code_from, first_slot

PATIENTS = 50


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return found.group(1)


def test_fifty_patients_one_slot_one_appointment(  # type: ignore[no-untyped-def]
    app, live_server: str, db: Session, practice: Practice, smtp_server
) -> None:
    app.state.booking_limits = throttle.Limits(
        holds_per_address=1000, pow_after_holds=1000, busy_holds_per_minute=1000
    )
    app.state.booking_page_limiter = throttle.PageLimiter(rate=1000, burst=1000)
    slot = first_slot(db, practice.practitioner_ids[0])
    db.commit()
    barrier = threading.Barrier(PATIENTS)
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def patient(number: int) -> None:
        with httpx.Client(base_url=live_server, timeout=60) as browser:
            barrier.wait()
            answer = browser.post(
                "/rendez-vous/reserver",
                data={
                    "praticien": str(slot.practitioner_id),
                    "motif": "consultation",
                    "creneau": f"{slot.practitioner_id}|{slot.starts_at.isoformat()}",
                },
            )
            result = (answer.status_code, answer.headers.get("location", ""))
            if answer.status_code == 303:
                location = answer.headers["location"]
                page = browser.get(location)
                token = location.split("/")[3].split("?")[0]
                email = f"patient{number}@example.org"
                sent = browser.post(
                    f"/rendez-vous/r/{token}/identite",
                    data={
                        "birth_name": f"Patient{number}",
                        "first_name": "Test",
                        "birth_date": "1990-05-06",
                        "sex": "M",
                        "phone": "0612345678",
                        "email": email,
                        "form_token": _hidden(page.text, "form_token"),
                        "csrf_token": _hidden(page.text, "csrf_token"),
                    },
                )
                assert sent.status_code == 303, sent.text
                sent = browser.get(sent.headers["location"])  # the code page
                done = browser.post(
                    f"/rendez-vous/r/{token}/code",
                    data={
                        "code": code_from(smtp_server.mailbox, email),
                        "form_token": _hidden(sent.text, "form_token"),
                        "csrf_token": _hidden(sent.text, "csrf_token"),
                    },
                )
                result = (
                    done.status_code,
                    "booked" if "Rendez-vous confirmé" in done.text else done.text,
                )
            else:
                result = (answer.status_code, answer.text)
        with lock:
            outcomes.append(result)

    def guarded(number: int) -> None:
        try:
            patient(number)
        except Exception as exc:  # reported by the assertions below
            with lock:
                outcomes.append((0, f"{type(exc).__name__}: {exc}"))

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(PATIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(outcomes) == PATIENTS
    booked = [o for o in outcomes if o[1] == "booked"]
    assert len(booked) == 1, [o for o in outcomes if o[0] != 409]
    losers = [o for o in outcomes if o[1] != "booked"]
    assert all(status == 409 for status, _ in losers), {s for s, _ in losers}
    assert all("Créneau déjà pris. Prochains créneaux libres" in text for _, text in losers)
    db.expire_all()
    assert len(db.exec(select(Appointment)).all()) == 1
    live = db.exec(select(SlotHold).where(SlotHold.released_at == None)).all()  # noqa: E711
    assert live == []  # the winner's hold became the appointment

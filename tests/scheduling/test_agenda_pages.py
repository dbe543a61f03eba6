"""Agenda pages: day and week views, booking by form, moving, cancelling, attendance."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlmodel import Session, select

from app.services.scheduling.agenda import book_appointment
from app.services.scheduling.waiting_list import add_to_waiting_list
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    WaitingOffer,
    WaitingStatus,
)
from models.audit import AuditEvent
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner

HTML = {"accept": "text/html"}


def next_monday(hour: int = 10, minute: int = 0) -> datetime:
    """Next week's Monday at a local time: always in the future, always a working day."""
    today = datetime.now(PARIS).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime.combine(monday, time(hour, minute), tzinfo=PARIS)


def local_iso(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


@dataclass
class Practice:
    practitioner: int
    other_practitioner: int
    durand: int
    petit: int


@pytest.fixture
def practice(db: Session, staff) -> Practice:
    martin = add_practitioner(db, "Martin")
    bernard = add_practitioner(db, "Bernard")
    durand = add_patient(db, "Durand", "Marie")
    petit = add_patient(db, "Petit", "Jeanne")
    db.commit()
    return Practice(martin.id or 0, bernard.id or 0, durand, petit)


def _book(db: Session, practice: Practice, starts_at: datetime, reason: str = "Contrôle") -> int:
    appointment = book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=practice.durand,
        practitioner_id=practice.practitioner,
        starts_at=starts_at,
        reason=reason,
    )
    db.commit()
    return appointment.id or 0


def _events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _appointments(db: Session) -> list[Appointment]:
    db.expire_all()
    return list(db.exec(select(Appointment).order_by(Appointment.id)).all())


def test_day_view_lists_appointments_and_free_slots(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    _book(db, practice, monday)
    page = client.get(
        "/agenda",
        params={"practitioner": practice.practitioner, "date": monday.date().isoformat()},
        headers=HTML,
    )
    assert page.status_code == 200
    assert "Durand Marie" in page.text and "10:00–10:20" in page.text
    book_link = f"/agenda/new?practitioner={practice.practitioner}&amp;start="
    free = re.findall(re.escape(book_link) + r"([0-9T:-]+)", page.text)
    assert local_iso(monday + timedelta(minutes=20)) in free
    assert local_iso(monday - timedelta(minutes=30)) in free
    assert local_iso(monday) not in free  # taken
    assert len(free) == 4 + 6 + 15  # 8:30-10:00, 10:20-12:30 and 14:00-19:00 by 20 minutes
    assert re.search(
        rf'aria-current="date">\s*<abbr title="lundi">lun\.</abbr> {monday:%d/%m}', page.text
    )
    assert 'href="/agenda?practitioner=' in page.text and "Jour suivant" in page.text
    listed = _events(db, "appointment.list")
    # the list and the time grid of the page share one read of the appointments
    assert len(listed) == 1 and listed[0].actor_name == "secretaire"


def test_all_practitioners_side_by_side_and_cancelled_hidden(logged_in, db, practice) -> None:
    client = logged_in("medecin")
    monday = next_monday()
    kept = _book(db, practice, monday, "Gardé")
    gone = _book(db, practice, monday + timedelta(hours=1), "Annulé ensuite")
    client.post(
        f"/agenda/appointments/{gone}/cancel",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
    )
    page = client.get("/agenda", params={"date": monday.date().isoformat()}, headers=HTML)
    assert page.status_code == 200
    headings = re.findall(r'<h2 id="col-\d+">\s*([^<]+?)\s*</h2>', page.text)
    assert headings == ["Dr Claire Martin", "Dr Claire Bernard"]
    assert f"/agenda/appointments/{kept}" in page.text
    assert f"/agenda/appointments/{gone}" not in page.text
    shown = client.get(
        "/agenda", params={"date": monday.date().isoformat(), "cancelled": "1"}, headers=HTML
    )
    assert f"/agenda/appointments/{gone}" in shown.text and "status-cancelled" in shown.text


def test_week_view_shows_monday_to_sunday_for_one_practitioner(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    tuesday = next_monday() + timedelta(days=1)
    _book(db, practice, tuesday.replace(hour=15))
    page = client.get(
        "/agenda",
        params={
            "practitioner": practice.practitioner,
            "date": tuesday.date().isoformat(),
            "view": "week",
        },
        headers=HTML,
    )
    assert page.status_code == 200
    headings = re.findall(r'<h2 id="col-\d+">\s*<a [^>]*>([^<]+)</a>', page.text)
    assert [h.split()[0] for h in headings] == [
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
    ]
    assert "Durand Marie" in page.text and "15:00–15:20" in page.text
    assert "Semaine suivante" in page.text
    assert page.text.count('aria-current="date"') == 2  # the week strip and the day's heading


def test_booking_through_the_form_creates_the_appointment(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday(11, 0)
    form = client.get(
        "/agenda/new",
        params={"practitioner": practice.practitioner, "start": local_iso(monday), "q": "durand"},
        headers=HTML,
    )
    assert form.status_code == 200
    assert f'name="patient_id" value="{practice.durand}"' in form.text
    assert f'value="{monday.date().isoformat()}"' in form.text and 'value="11:00"' in form.text
    booked = client.post(
        "/agenda/appointments",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "patient_id": practice.durand,
            "practitioner": practice.practitioner,
            "date": monday.date().isoformat(),
            "time": "11:00",
            "reason": "Renouvellement",
            "duration": "30",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert booked.status_code == 303, booked.text
    [appointment] = _appointments(db)
    assert appointment.patient_id == practice.durand
    assert appointment.practitioner_id == practice.practitioner
    assert appointment.starts_at == monday.astimezone(UTC)
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=30)
    assert appointment.reason == "Renouvellement" and appointment.source == "secretary"
    [event] = _events(db, "appointment.book")
    assert event.actor_name == "secretaire" and event.record_id == str(appointment.id)
    day_view = client.get(booked.headers["location"], headers=HTML)
    assert "Rendez-vous réservé." in day_view.text and "just-booked" in day_view.text


def test_a_taken_slot_shows_alternatives_and_books_nothing(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    _book(db, practice, monday)
    data = {
        "csrf_token": client.headers["x-csrf-token"],
        "patient_id": str(practice.petit),
        "practitioner": str(practice.practitioner),
        "date": monday.date().isoformat(),
        "time": "10:00",
        "reason": "Vaccin grippe",
        "q": "petit",
    }
    taken = client.post("/agenda/appointments", data=data, headers=HTML)
    assert taken.status_code == 409
    assert "Créneau déjà pris" in taken.text and 'role="alert"' in taken.text
    assert 'value="Vaccin grippe"' in taken.text  # nothing typed is lost
    alternative = local_iso(monday + timedelta(minutes=20))
    assert f'name="start" value="{alternative}"' in taken.text
    assert len(_appointments(db)) == 1
    # One click on the first alternative books it with everything typed.
    one_click = {k: v for k, v in data.items() if k not in ("date", "time")}
    again = client.post(
        "/agenda/appointments",
        data={**one_click, "start": alternative},
        headers=HTML,
        follow_redirects=False,
    )
    assert again.status_code == 303
    latest = _appointments(db)[-1]
    assert latest.patient_id == practice.petit and latest.reason == "Vaccin grippe"
    assert latest.starts_at == (monday + timedelta(minutes=20)).astimezone(UTC)


def test_form_errors_are_listed_and_values_kept(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    page = client.post(
        "/agenda/appointments",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "practitioner": str(practice.practitioner),
            "date": "03/03/2031",
            "time": "25:00",
            "reason": "Douleur",
        },
        headers=HTML,
    )
    assert page.status_code == 422
    assert "Choisissez un patient." in page.text
    assert "Date invalide" in page.text and "Heure invalide" in page.text
    assert 'value="Douleur"' in page.text and 'aria-invalid="true"' in page.text
    outside = client.post(
        "/agenda/appointments",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "patient_id": str(practice.durand),
            "practitioner": str(practice.practitioner),
            "date": next_monday().date().isoformat(),
            "time": "07:00",
        },
        headers=HTML,
    )
    assert outside.status_code == 422 and "En dehors des horaires" in outside.text
    assert _appointments(db) == []


def test_detail_page_moves_with_a_suggested_slot_and_by_date(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    page = client.get(f"/agenda/appointments/{appointment_id}", headers=HTML)
    assert page.status_code == 200
    assert f'href="/patients/{practice.durand}"' in page.text and "10:00–10:20" in page.text
    suggested = re.findall(r'name="start" value="([0-9T:-]+)"', page.text)
    assert 1 <= len(suggested) <= 6
    token = client.headers["x-csrf-token"]
    moved = client.post(
        f"/agenda/appointments/{appointment_id}/move",
        data={"csrf_token": token, "start": suggested[0]},
        headers=HTML,
        follow_redirects=False,
    )
    assert moved.status_code == 303
    [appointment] = _appointments(db)
    assert local_iso(appointment.starts_at) == suggested[0]
    by_date = client.post(
        f"/agenda/appointments/{appointment_id}/move",
        data={
            "csrf_token": token,
            "date": monday.date().isoformat(),
            "time": "16:40",
            "practitioner": str(practice.other_practitioner),
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert by_date.status_code == 303
    [appointment] = _appointments(db)
    assert appointment.starts_at == monday.replace(hour=16, minute=40).astimezone(UTC)
    assert appointment.practitioner_id == practice.other_practitioner
    assert len(_events(db, "appointment.move")) == 2
    assert "Rendez-vous déplacé." in client.get(by_date.headers["location"], headers=HTML).text


def test_moving_onto_a_taken_slot_keeps_the_appointment(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    first = _book(db, practice, monday)
    _book(db, practice, monday + timedelta(hours=1))
    page = client.post(
        f"/agenda/appointments/{first}/move",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "date": monday.date().isoformat(),
            "time": "11:00",
        },
        headers=HTML,
    )
    assert page.status_code == 409 and "Créneau déjà pris" in page.text
    assert 'value="11:00"' in page.text
    assert _appointments(db)[0].starts_at == monday.astimezone(UTC)


def test_cancel_offers_the_slot_to_the_waiting_list(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    entry = add_to_waiting_list(
        db,
        ACTOR,
        patient_id=practice.petit,
        earliest=monday.date(),
        latest=monday.date() + timedelta(days=3),
        practitioner_id=practice.practitioner,
    )
    db.commit()
    cancelled = client.post(
        f"/agenda/appointments/{appointment_id}/cancel",
        data={"csrf_token": client.headers["x-csrf-token"], "reason": "Empêchement"},
        headers=HTML,
        follow_redirects=False,
    )
    assert cancelled.status_code == 303
    [appointment] = _appointments(db)
    assert appointment.status == AppointmentStatus.cancelled
    assert appointment.cancel_reason == "Empêchement"
    [offer] = db.exec(select(WaitingOffer)).all()
    assert offer.entry_id == entry.id and offer.status == OfferStatus.pending
    assert offer.starts_at == monday.astimezone(UTC)
    page = client.get(cancelled.headers["location"], headers=HTML)
    assert "Rendez-vous annulé." in page.text
    assert "Créneau proposé à Petit Jeanne (liste d&#39;attente)." in page.text
    assert "Déplacer le rendez-vous" not in page.text  # a cancelled appointment stays put
    db.refresh(entry)
    assert entry.status == WaitingStatus.offered


def test_attendance_is_marked_on_past_appointments(logged_in, db, practice) -> None:
    client = logged_in("medecin")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    past = Appointment(
        practitioner_id=practice.practitioner,
        patient_id=practice.durand,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
    )
    db.add(past)
    db.commit()
    page = client.get(f"/agenda/appointments/{past.id}", headers=HTML)
    assert "Patient non venu" in page.text
    marked = client.post(
        f"/agenda/appointments/{past.id}/attendance",
        data={"csrf_token": client.headers["x-csrf-token"], "honoured": "0"},
        headers=HTML,
        follow_redirects=False,
    )
    assert marked.status_code == 303
    assert _appointments(db)[0].status == AppointmentStatus.missed
    assert _events(db, "appointment.attendance")[0].details == {"status": "missed"}
    future = _book(db, practice, next_monday())
    early = client.post(
        f"/agenda/appointments/{future}/attendance",
        data={"csrf_token": client.headers["x-csrf-token"], "honoured": "1"},
        headers=HTML,
    )
    assert early.status_code == 422 and "pas encore commencé" in early.text


def test_posts_without_csrf_token_are_refused(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    client.headers.pop("x-csrf-token")
    booking = client.post(
        "/agenda/appointments",
        data={
            "patient_id": str(practice.petit),
            "practitioner": str(practice.practitioner),
            "date": monday.date().isoformat(),
            "time": "11:00",
        },
        headers=HTML,
    )
    assert booking.status_code == 403 and "Le formulaire a expiré" in booking.text
    cancel = client.post(f"/agenda/appointments/{appointment_id}/cancel", headers=HTML)
    assert cancel.status_code == 403
    [appointment] = _appointments(db)
    assert appointment.status == AppointmentStatus.booked


def test_pages_speak_english_and_reject_bad_input(logged_in, practice) -> None:
    client = logged_in("secretaire")
    page = client.get("/agenda", params={"lang": "en", "view": "week"}, headers=HTML)
    assert page.status_code == 200 and "Schedule" in page.text and "Next week" in page.text
    bad_date = client.get("/agenda", params={"date": "demain"}, headers=HTML)
    assert bad_date.status_code == 200 and "Date invalide" in bad_date.text
    unknown = client.get("/agenda", params={"practitioner": "999"}, headers=HTML)
    assert unknown.status_code == 404 and "Praticien introuvable." in unknown.text
    assert client.get("/agenda/appointments/999", headers=HTML).status_code == 404


def test_day_links_cover_the_week(logged_in, practice) -> None:
    client = logged_in("secretaire")
    day = date(2031, 1, 8)  # a Wednesday
    page = client.get("/agenda", params={"date": day.isoformat()}, headers=HTML)
    for offset in range(-2, 5):
        assert f"date={(day + timedelta(days=offset)).isoformat()}" in page.text

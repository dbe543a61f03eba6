"""The admin's rules page and the secretary's refusal of an online booking."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.services.booking import rules as booking_rules
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from tests.booking.conftest import Practice, first_slot
from tests.booking.test_service import PUBLIC, _book, _identity
from tests.conftest import csrf_from


def test_an_admin_sets_the_rules_and_gets_the_snippet(
    logged_in, db: Session, practice: Practice
) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = logged_in("admin")
    page = client.get("/admin/rendez-vous-en-ligne")
    assert page.status_code == 200
    assert "/rendez-vous?embed=1" in page.text and "&lt;iframe" in page.text
    token = csrf_from(client, "/admin/rendez-vous-en-ligne")
    form = {
        "csrf_token": token,
        "enabled": "1",
        "min_notice_hours": "4",
        "horizon_days": "14",
        "max_future_bookings": "1",
        "hold_minutes": "7",
        "visit_types": ["consultation"],
        "practitioner_ids": [str(practice.practitioner_ids[0])],
        "phone_ranges": "0 08:00-10:00\n4 17:00-19:00",
        "frame_ancestors": "https://www.cabinet-tilleuls.fr",
    }
    saved = client.post("/admin/rendez-vous-en-ligne", data=form, follow_redirects=False)
    assert saved.status_code == 303
    db.expire_all()
    rules = booking_rules.current(db)
    assert (rules.min_notice_hours, rules.horizon_days, rules.hold_minutes) == (4, 14, 7)
    assert rules.allow_new_patients is False and rules.visit_types == ["consultation"]
    assert len(rules.phone_ranges) == 2
    assert db.exec(
        select(AuditEvent).where(AuditEvent.action == "online_booking.rules_update")
    ).all()
    bad = client.post(
        "/admin/rendez-vous-en-ligne",
        data={**form, "phone_ranges": "lundi matin", "horizon_days": "x"},
    )
    assert bad.status_code == 422 and 'href="#phone_ranges"' in bad.text


def test_the_rules_page_is_for_admins_only(logged_in, practice: Practice) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = logged_in("secretaire")
    assert client.get("/admin/rendez-vous-en-ligne").status_code == 403


def test_a_secretary_sees_and_refuses_an_online_booking(  # type: ignore[no-untyped-def]
    logged_in, db: Session, practice: Practice, settings, smtp_server
) -> None:
    booked = _book(db, settings, smtp_server, _identity("en-ligne@example.org"), first_slot(db))
    client: TestClient = logged_in("secretaire")
    day = booked.appointment.starts_at.astimezone(settings.tz).date().isoformat()
    agenda = client.get(f"/agenda?date={day}&view=day")
    assert "booking-online" in agenda.text and "booking-pending" in agenda.text
    detail = client.get(f"/agenda/appointments/{booked.appointment.id}")
    assert "refuser-en-ligne" in detail.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail.text).group(1)  # type: ignore[union-attr]
    refused = client.post(
        f"/agenda/rendez-vous/{booked.appointment.id}/refuser-en-ligne",
        data={"csrf_token": token, "reason": "Merci d'appeler le cabinet"},
        follow_redirects=False,
    )
    assert refused.status_code == 303
    db.expire_all()
    assert db.get(Appointment, booked.appointment.id).status == AppointmentStatus.cancelled
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "online_booking.refuse")).all()
    assert PUBLIC.kind  # the booking came from the public side

"""Practice set-up pages: practitioners, weekly hours, absences, closures and visit types."""

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import Session, select

from app.services.scheduling.agenda import book_appointment
from app.services.scheduling.practice_setup import create_visit_type, weekly_hours
from app.services.scheduling.slots import SlotQuery, find_slots, resolve_duration
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from models.practice import (
    Absence,
    PracticeClosure,
    Practitioner,
    VisitType,
    VisitTypeDuration,
)
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner

HTML = {"accept": "text/html"}
T = time.fromisoformat


def next_monday(hour: int = 0, minute: int = 0) -> datetime:
    """Next week's Monday at a local time: always in the future."""
    today = datetime.now(PARIS).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime.combine(monday, time(hour, minute), tzinfo=PARIS)


def events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def form(client, **fields: object) -> dict[str, object]:
    return {"csrf_token": client.headers["x-csrf-token"], **fields}


def alert(html: str) -> str:
    match = re.search(r'<div class="error-summary" role="alert">(.*?)</div>', html, re.S)
    assert match, "no error summary"
    return re.sub(r"<[^>]+>", "", match.group(1))


@pytest.fixture
def martin(db: Session, staff) -> int:
    practitioner = add_practitioner(db, "Martin")
    db.commit()
    return practitioner.id or 0


# --- practitioners -------------------------------------------------------------------------


def test_admin_creates_a_practitioner(logged_in, db: Session) -> None:
    client = logged_in("admin")
    page = client.get("/admin/praticiens", headers=HTML)
    assert page.status_code == 200
    assert "Aucun praticien" in page.text and 'action="/admin/praticiens"' in page.text
    assert '<a href="/admin/types-de-visite">' in page.text  # the admin's navigation
    created = client.post(
        "/admin/praticiens",
        data=form(
            client,
            title="Dr",
            first_name="Claire",
            last_name="Martin",
            specialty="Pédiatrie",
            rpps="10001234567",
            default_duration_minutes="15",
        ),
        headers=HTML,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    [practitioner] = db.exec(select(Practitioner)).all()
    assert practitioner.display_name == "Dr Claire Martin"
    assert practitioner.specialty == "Pédiatrie" and practitioner.rpps == "10001234567"
    assert practitioner.default_duration_minutes == 15 and practitioner.is_active
    assert created.headers["location"] == f"/admin/praticiens/{practitioner.id}?fait=created"
    [event] = events(db, "practitioner.create")
    assert event.actor_name == "admin" and event.record_id == str(practitioner.id)
    detail = client.get(created.headers["location"], headers=HTML)
    assert "Praticien créé" in detail.text and 'name="h0_0_start"' in detail.text
    listing = client.get("/admin/praticiens", headers=HTML)
    assert f'<a href="/admin/praticiens/{practitioner.id}">Dr Claire Martin</a>' in listing.text


def test_practitioner_form_errors_keep_what_was_typed(logged_in, db: Session) -> None:
    client = logged_in("admin")
    page = client.post(
        "/admin/praticiens",
        data=form(
            client,
            first_name="Claire",
            last_name="Martin",
            specialty="Médecine générale",
            rpps="12345",
            default_duration_minutes="20",
        ),
        headers=HTML,
    )
    assert page.status_code == 422
    assert "11 chiffres" in alert(page.text)
    assert 'value="12345"' in page.text and 'value="Martin"' in page.text
    assert re.search(r'id="f-rpps"[^>]*aria-invalid="true"', page.text, re.S)
    too_short = client.post(
        "/admin/praticiens",
        data=form(
            client,
            first_name="Claire",
            last_name="Martin",
            specialty="Médecine générale",
            default_duration_minutes="2",
        ),
        headers=HTML,
    )
    assert too_short.status_code == 422 and "entre 5 et 240" in alert(too_short.text)
    missing = client.post("/admin/praticiens", data=form(client, first_name="Claire"), headers=HTML)
    assert missing.status_code == 422 and "Champ obligatoire" in alert(missing.text)
    assert db.exec(select(Practitioner)).all() == []
    assert events(db, "practitioner.create") == []


def test_admin_edits_details_and_deactivates(logged_in, db: Session, martin: int) -> None:
    client = logged_in("admin")
    saved = client.post(
        f"/admin/praticiens/{martin}/details",
        data=form(
            client,
            title="Pr",
            first_name="Claire",
            last_name="Martin",
            specialty="Gériatrie",
            default_duration_minutes="30",
        ),
        headers=HTML,
        follow_redirects=False,
    )
    assert saved.status_code == 303
    db.expire_all()
    practitioner = db.get(Practitioner, martin)
    assert practitioner is not None
    assert practitioner.display_name == "Pr Claire Martin"
    assert practitioner.default_duration_minutes == 30
    [event] = events(db, "practitioner.update")
    assert set(event.details["changed"]) == {"title", "specialty", "default_duration_minutes"}
    page = client.post(f"/admin/praticiens/{martin}/deactivate", data=form(client), headers=HTML)
    db.expire_all()
    assert not db.get(Practitioner, martin).is_active  # type: ignore[union-attr]
    assert "Praticien désactivé" in page.text and "Réactiver le praticien" in page.text
    assert len(events(db, "practitioner.deactivate")) == 1


# --- weekly hours --------------------------------------------------------------------------


def test_editing_hours_changes_the_slots_found(logged_in, db: Session, martin: int) -> None:
    client = logged_in("admin")
    page = client.get(f"/admin/praticiens/{martin}", headers=HTML)
    assert re.search(r'name="h0_0_start" type="time" value="08:30"', page.text)
    assert re.search(r'name="h0_1_end" type="time" value="19:00"', page.text)
    assert '<label class="visually-hidden" for="f-h0_2_start">lundi, plage 3 : début' in page.text
    assert '<th scope="row">Lundi</th>' in page.text
    # Monday: 09:00-11:00 and 15:00-16:00; Tuesday unchanged; the rest of the week closed.
    fields = {"h0_0_start": "09:00", "h0_0_end": "11:00", "h0_1_start": "15:00"}
    fields |= {"h0_1_end": "16:00", "h1_0_start": "08:30", "h1_0_end": "12:30"}
    fields |= {"h1_1_start": "14:00", "h1_1_end": "19:00"}
    saved = client.post(
        f"/admin/praticiens/{martin}/hours",
        data=form(client, **fields),
        headers=HTML,
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/admin/praticiens/{martin}?fait=hours"
    db.expire_all()
    week = weekly_hours(db, martin)
    assert week[0] == [(T("09:00"), T("11:00")), (T("15:00"), T("16:00"))]
    assert week[1] == [(T("08:30"), T("12:30")), (T("14:00"), T("19:00"))]
    assert week[2] == week[3] == week[4] == []
    changed = events(db, "working_hours.set")
    assert sorted(e.details["weekday"] for e in changed) == [0, 2, 3, 4]  # Tuesday untouched
    assert all(e.actor_name == "admin" for e in changed)
    monday = next_monday()
    slots = find_slots(
        db,
        PARIS,
        SlotQuery(start=monday, end=monday + timedelta(days=3), practitioner_id=martin, limit=100),
    )
    local = [s.starts_at.astimezone(PARIS) for s in slots]
    monday_times = [f"{m:%H:%M}" for m in local if m.date() == monday.date()]
    morning = ["09:00", "09:20", "09:40", "10:00", "10:20", "10:40"]
    assert monday_times == [*morning, "15:00", "15:20", "15:40"]
    assert f"{local[len(monday_times)]:%a %H:%M}" == "Tue 08:30"
    assert all(m.weekday() in (0, 1) for m in local)  # Wednesday is closed now
    shown = client.get(saved.headers["location"], headers=HTML)
    assert "Horaires enregistrés." in shown.text
    assert re.search(r'name="h0_1_start" type="time" value="15:00"', shown.text)


def test_overlapping_or_incomplete_hours_are_refused(logged_in, db: Session, martin: int) -> None:
    client = logged_in("admin")
    before = weekly_hours(db, martin)
    fields = {"h2_0_start": "08:00", "h2_0_end": "12:00", "h2_1_start": "11:00"}
    fields["h2_1_end"] = "14:00"
    overlap = client.post(f"/admin/praticiens/{martin}/hours", data=form(client, **fields))
    assert overlap.status_code == 422
    assert "Mercredi : les plages 08:00–12:00 et 11:00–14:00 se chevauchent." in alert(overlap.text)
    assert 'value="11:00"' in overlap.text and 'value="14:00"' in overlap.text  # kept
    assert re.search(r'id="f-h2_1_start"[^>]*aria-invalid="true"', overlap.text)
    incomplete = client.post(
        f"/admin/praticiens/{martin}/hours",
        data=form(client, h0_0_start="08:00", h0_1_start="25:99", h0_1_end="12:00"),
    )
    assert incomplete.status_code == 422
    message = alert(incomplete.text)
    assert "lundi, plage 1 : fin : Indiquez le début et la fin de la plage." in message
    assert "lundi, plage 2 : début : Heure invalide" in message
    early = client.post(
        f"/admin/praticiens/{martin}/hours", data=form(client, h4_0_start="05:00", h4_0_end="09:00")
    )
    assert early.status_code == 422 and "entre 06:00 et 23:00" in alert(early.text)
    db.expire_all()
    assert weekly_hours(db, martin) == before
    assert events(db, "working_hours.set") == []


# --- absences ------------------------------------------------------------------------------


def test_secretary_adds_an_absence_and_sees_the_kept_appointments(
    logged_in, db: Session, martin: int
) -> None:
    patient = add_patient(db)
    monday = next_monday()
    booked = book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=patient,
        practitioner_id=martin,
        starts_at=monday.replace(hour=9),
    )
    db.commit()
    client = logged_in("secretaire")
    home = client.get("/", headers=HTML)
    assert '<a href="/admin/praticiens">Praticiens</a>' in home.text
    page = client.get(f"/admin/praticiens/{martin}", headers=HTML)
    assert page.status_code == 200
    assert f'action="/admin/praticiens/{martin}/absences"' in page.text
    assert f'action="/admin/praticiens/{martin}/hours"' not in page.text  # admins only
    assert "08:30–12:30, 14:00–19:00" in page.text  # the hours, read only
    added = client.post(
        f"/admin/praticiens/{martin}/absences",
        data=form(
            client,
            start_date=monday.date().isoformat(),
            end_date=(monday + timedelta(days=1)).date().isoformat(),
            reason="Congrès",
        ),
        headers=HTML,
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    [absence] = db.exec(select(Absence)).all()
    assert absence.practitioner_id == martin and absence.reason == "Congrès"
    assert absence.starts_at == monday.astimezone(UTC)
    assert absence.ends_at == (monday + timedelta(days=2)).astimezone(UTC)  # both days
    db.expire_all()
    assert db.get(Appointment, booked.id).status == AppointmentStatus.booked  # type: ignore[union-attr]
    [event] = events(db, "absence.create")
    assert event.actor_name == "secretaire" and event.details["appointments_kept"] == [booked.id]
    shown = client.get(added.headers["location"], headers=HTML)
    assert "Absence enregistrée." in shown.text
    assert "Rendez-vous maintenus pendant cette période : 1" in shown.text
    assert f'href="/agenda/appointments/{booked.id}"' in shown.text
    days = f"du {monday:%d/%m/%Y} au {monday + timedelta(days=1):%d/%m/%Y}"
    assert f'<th scope="row">{days}</th>' in shown.text
    assert (
        find_slots(
            db,
            PARIS,
            SlotQuery(start=monday, end=monday + timedelta(days=2), practitioner_id=martin),
        )
        == []
    )
    deleted = client.post(
        f"/admin/praticiens/{martin}/absences/{absence.id}/delete",
        data=form(client),
        headers=HTML,
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert db.exec(select(Absence)).all() == []
    assert events(db, "absence.delete")[0].actor_name == "secretaire"


def test_absence_with_times_and_errors(logged_in, db: Session, martin: int) -> None:
    client = logged_in("admin")
    monday = next_monday()
    bad = client.post(
        f"/admin/praticiens/{martin}/absences",
        data=form(
            client,
            start_date=monday.date().isoformat(),
            start_time="14:00",
            end_time="10:00",
            reason="Réunion",
        ),
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "La fin doit suivre le début." in alert(bad.text)
    assert 'value="Réunion"' in bad.text and 'value="14:00"' in bad.text
    missing = client.post(
        f"/admin/praticiens/{martin}/absences", data=form(client, start_time="10:00"), headers=HTML
    )
    assert missing.status_code == 422 and "Du (date)" in alert(missing.text)
    assert db.exec(select(Absence)).all() == []
    good = client.post(
        f"/admin/praticiens/{martin}/absences",
        data=form(
            client, start_date=monday.date().isoformat(), start_time="14:00", end_time="16:30"
        ),
        headers=HTML,
    )
    assert good.status_code == 200  # followed the redirect
    [absence] = db.exec(select(Absence)).all()
    assert absence.starts_at == monday.replace(hour=14).astimezone(UTC)
    assert absence.ends_at == monday.replace(hour=16, minute=30).astimezone(UTC)
    assert f"le {monday:%d/%m/%Y} de 14:00 à 16:30" in good.text
    assert "Rendez-vous maintenus pendant" not in good.text


def test_physicians_do_not_manage_absences(logged_in, martin: int) -> None:
    client = logged_in("medecin")
    assert client.get(f"/admin/praticiens/{martin}", headers=HTML).status_code == 403
    refused = client.post(
        f"/admin/praticiens/{martin}/absences",
        data=form(client, start_date="2031-01-06"),
        headers={"accept": "application/json"},
    )
    assert refused.status_code == 403


# --- closures ------------------------------------------------------------------------------


def test_admin_closes_the_practice(logged_in, db: Session, martin: int) -> None:
    bernard = add_practitioner(db, "Bernard").id or 0
    patient = add_patient(db)
    monday = next_monday()
    first = book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=patient,
        practitioner_id=bernard,
        starts_at=monday.replace(hour=9),
    )
    db.commit()
    client = logged_in("admin")
    page = client.get("/admin/fermetures", headers=HTML)
    assert page.status_code == 200 and "Aucune fermeture prévue." in page.text
    added = client.post(
        "/admin/fermetures",
        data=form(client, start_date=monday.date().isoformat(), reason="Lundi de Pentecôte"),
        headers=HTML,
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    [closure] = db.exec(select(PracticeClosure)).all()
    assert closure.starts_at == monday.astimezone(UTC)
    assert closure.ends_at == (monday + timedelta(days=1)).astimezone(UTC)
    [event] = events(db, "closure.create")
    assert event.actor_name == "admin" and event.details["appointments_kept"] == [first.id]
    shown = client.get(added.headers["location"], headers=HTML)
    assert "Fermeture enregistrée." in shown.text and "Lundi de Pentecôte" in shown.text
    assert "Rendez-vous maintenus pendant cette période : 1" in shown.text
    assert "Dr Claire Bernard" in shown.text
    assert "/agenda/appointments/" not in shown.text  # admins do not open appointments
    slots = find_slots(db, PARIS, SlotQuery(start=monday, end=monday + timedelta(days=1)))
    assert slots == []
    bad = client.post(
        "/admin/fermetures",
        data=form(client, start_date="01/06/2031", reason="Travaux"),
        headers=HTML,
    )
    assert bad.status_code == 422 and "Date invalide" in alert(bad.text)
    assert 'value="Travaux"' in bad.text
    client.post(f"/admin/fermetures/{closure.id}/delete", data=form(client), headers=HTML)
    assert db.exec(select(PracticeClosure)).all() == []
    assert len(events(db, "closure.delete")) == 1


# --- visit types and durations -------------------------------------------------------------


def test_admin_manages_visit_types(logged_in, db: Session) -> None:
    client = logged_in("admin")
    created = client.post(
        "/admin/types-de-visite",
        data=form(client, code="vaccination", label="Vaccination", duration_minutes="10"),
        headers=HTML,
        follow_redirects=False,
    )
    assert created.status_code == 303
    [kind] = db.exec(select(VisitType)).all()
    assert (kind.code, kind.label, kind.duration_minutes, kind.is_active) == (
        "vaccination",
        "Vaccination",
        10,
        True,
    )
    duplicate = client.post(
        "/admin/types-de-visite",
        data=form(client, code="vaccination", label="Encore"),
        headers=HTML,
    )
    assert duplicate.status_code == 409
    assert "Le code « vaccination » est déjà utilisé." in alert(duplicate.text)
    assert 'value="Encore"' in duplicate.text
    bad_code = client.post(
        "/admin/types-de-visite",
        data=form(client, code="Bilan annuel", label="Bilan"),
        headers=HTML,
    )
    assert bad_code.status_code == 422 and "minuscules" in alert(bad_code.text)
    updated = client.post(
        f"/admin/types-de-visite/{kind.id}",
        data=form(client, label="Vaccin grippe", duration_minutes="15"),
        headers=HTML,
        follow_redirects=False,
    )
    assert updated.status_code == 303
    db.expire_all()
    kind = db.get(VisitType, kind.id)
    assert kind is not None and kind.label == "Vaccin grippe" and kind.duration_minutes == 15
    bad_row = client.post(
        f"/admin/types-de-visite/{kind.id}",
        data=form(client, label="Vaccin", duration_minutes="500"),
        headers=HTML,
    )
    assert bad_row.status_code == 422
    assert f'href="#vt-{kind.id}-duration_minutes"' in bad_row.text
    assert 'value="500"' in bad_row.text
    client.post(f"/admin/types-de-visite/{kind.id}/deactivate", data=form(client))
    db.expire_all()
    assert not db.get(VisitType, kind.id).is_active  # type: ignore[union-attr]
    actions = [
        e.action
        for e in db.exec(select(AuditEvent).where(AuditEvent.record_type == "visit_type")).all()
    ]
    assert actions == ["visit_type.create", "visit_type.update", "visit_type.deactivate"]


def test_practitioner_durations_and_the_booking_form(logged_in, db: Session, martin: int) -> None:
    vaccine = create_visit_type(db, ACTOR, "vaccination", "Vaccination", 10)
    check_up = create_visit_type(db, ACTOR, "bilan", "Bilan", None)
    retired = create_visit_type(db, ACTOR, "ancien", "Ancien type", None)
    retired.is_active = False
    patient = add_patient(db)
    db.commit()
    admin = logged_in("admin")
    page = admin.get(f"/admin/praticiens/{martin}", headers=HTML)
    assert f'<label for="f-vt_{check_up.id}">Bilan</label>' in page.text
    assert "Ancien type" not in page.text
    saved = admin.post(
        f"/admin/praticiens/{martin}/durations",
        data=form(admin, **{f"vt_{check_up.id}": "45", f"vt_{vaccine.id}": ""}),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    [row] = db.exec(select(VisitTypeDuration)).all()
    assert (row.practitioner_id, row.visit_type_id, row.duration_minutes) == (
        martin,
        check_up.id,
        45,
    )
    assert events(db, "visit_type_duration.set")[0].actor_name == "admin"
    practitioner = db.get(Practitioner, martin)
    assert practitioner is not None
    assert resolve_duration(db, practitioner, "bilan") == 45
    assert resolve_duration(db, practitioner, "vaccination") == 10
    bad = admin.post(
        f"/admin/praticiens/{martin}/durations",
        data=form(admin, **{f"vt_{check_up.id}": "1"}),
        headers=HTML,
    )
    assert bad.status_code == 422 and "Bilan" in alert(bad.text)
    # The booking form offers the active visit types; the choice sets the duration.
    secretary = logged_in("secretaire")
    new = secretary.get("/agenda/new", params={"practitioner": martin}, headers=HTML)
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', new.text)
    assert ("", "Consultation standard (durée habituelle du praticien)") in options
    assert ("bilan", "Bilan") in options and ("vaccination", "Vaccination") in options
    assert all(code != "ancien" for code, _ in options)
    monday = next_monday(10)
    booked = secretary.post(
        "/agenda/appointments",
        data=form(
            secretary,
            patient_id=patient,
            practitioner=martin,
            date=monday.date().isoformat(),
            time="10:00",
            visit_type="bilan",
        ),
        headers=HTML,
        follow_redirects=False,
    )
    assert booked.status_code == 303, booked.text
    [appointment] = db.exec(select(Appointment)).all()
    assert appointment.visit_type == "bilan"
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=45)

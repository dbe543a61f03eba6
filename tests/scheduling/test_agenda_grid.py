"""The time grid's server side: its JSON data, moves and resizes from the grid, the day sheet."""

import json
import re
from datetime import date, datetime, time, timedelta

import pytest
from sqlmodel import select

from app.services.preconsultation.links import send_preconsultation
from app.services.preconsultation.questionnaires import import_bundled
from app.services.scheduling.agenda_grid import FreeBand, agenda_grid, free_bands
from app.services.scheduling.practice_setup import add_absence
from app.services.scheduling.slots import Slot, active_practitioners
from app.services.scheduling.waiting_list import add_to_waiting_list
from models.appointments import Appointment
from models.audit import AuditEvent
from models.practice import PracticeClosure
from models.questionnaires import PreConsultationStatus
from tests.scheduling.test_agenda_pages import _book, local_iso, next_monday, practice
from tests.support.practice import ACTOR, PARIS

__all__ = ["practice"]  # the fixture, used by name

JSON = {"accept": "application/json"}


def _grid(client, **params: str) -> dict:
    response = client.get("/agenda/grid", params=params, headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()


def _kinds(data: dict, kind: str) -> list[dict]:
    return [e for e in data["events"] if e["extendedProps"]["kind"] == kind]


def test_grid_data_has_practitioners_appointments_and_free_slots(logged_in, db, practice) -> None:
    monday = next_monday()
    appointment_id = _book(db, practice, monday, reason="Toux")
    client = logged_in("secretaire")
    data = _grid(client, date=monday.date().isoformat())

    assert data["view"] == "resourceTimeGridDay" and data["date"] == monday.date().isoformat()
    assert [r["id"] for r in data["resources"]] == [
        str(practice.practitioner),
        str(practice.other_practitioner),
    ]
    assert (data["slotMinTime"], data["slotMaxTime"]) == ("08:30", "19:00")
    assert 5 <= int(data["slotDuration"].split(":")[1]) <= 15
    [event] = _kinds(data, "appointment")
    assert event["id"] == f"a{appointment_id}"
    assert event["resourceId"] == str(practice.practitioner)
    assert event["start"] == monday.strftime("%Y-%m-%dT10:00:00")  # wall clock, no offset
    assert event["end"] == monday.strftime("%Y-%m-%dT10:20:00")
    assert event["extendedProps"]["reason"] == "Toux"
    assert event["extendedProps"]["statusLabel"] == "Réservé"
    assert any(c.startswith("vt-") for c in event["classNames"])
    assert "st-booked" in event["classNames"]
    free = _kinds(data, "free")
    assert {e["resourceId"] for e in free} == {
        str(practice.practitioner),
        str(practice.other_practitioner),
    }
    assert all(e["display"] == "background" for e in free)
    slots = data["freeSlots"]
    assert {"resourceId": str(practice.practitioner), "start": monday.strftime("%Y-%m-%dT10:20:00"),
            "end": monday.strftime("%Y-%m-%dT10:40:00")} in slots  # fmt: skip
    assert not [x for x in slots if x["resourceId"] == event["resourceId"]
                and x["start"] < event["end"] and x["end"] > event["start"]]  # fmt: skip
    assert len(free) < len(slots)  # back-to-back slots are drawn as one band
    assert not any(
        e["start"] == event["start"] and e["resourceId"] == event["resourceId"] for e in free
    )
    reads = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.list")).all()
    assert reads, "the grid's read of appointments is audited like the list view"


def test_grid_week_shades_absences_and_closures_and_flags_preconsultations(
    logged_in, db, practice
) -> None:
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    add_absence(
        db,
        ACTOR,
        practitioner_id=practice.other_practitioner,
        starts_at=monday.replace(hour=8),
        ends_at=monday.replace(hour=13),
        reason="Formation",
    )
    db.add(
        PracticeClosure(
            starts_at=monday + timedelta(days=2, hours=-10),
            ends_at=monday + timedelta(days=3, hours=-10),
            reason="Travaux",
        )
    )
    import_bundled(db)
    sent = send_preconsultation(db, ACTOR, appointment_id, secret="s" * 32)
    sent.preconsultation.status = PreConsultationStatus.submitted
    sent.preconsultation.red_flags = [{"id": "chest-pain"}]
    db.add(sent.preconsultation)
    db.commit()
    client = logged_in("secretaire")
    data = _grid(client, date=monday.date().isoformat(), view="week")

    assert data["view"] == "resourceTimeGridWeek"
    [absence] = _kinds(data, "absence")
    assert absence["resourceId"] == str(practice.other_practitioner)
    assert absence["title"] == "Formation"
    closures = _kinds(data, "closure")
    assert {c["resourceId"] for c in closures} == {
        str(practice.practitioner),
        str(practice.other_practitioner),
    }
    assert closures[0]["title"] == "Travaux"
    [event] = _kinds(data, "appointment")
    assert event["extendedProps"]["preconsultation"] == "submitted"
    assert event["extendedProps"]["redFlag"] is True and "red-flag" in event["classNames"]
    wednesday = (monday + timedelta(days=2)).date().isoformat()
    assert not [e for e in _kinds(data, "free") if e["start"].startswith(wednesday)]


def test_grid_rejects_bad_queries_in_french(logged_in, practice) -> None:
    client = logged_in("secretaire")
    bad = client.get("/agenda/grid", params={"date": "31/12/2026"}, headers=JSON)
    assert bad.status_code == 422 and "invalide" in bad.json()["detail"]
    unknown = client.get("/agenda/grid", params={"practitioner": "999"}, headers=JSON)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "Praticien introuvable."


def test_grid_needs_a_staff_session(client, practice) -> None:
    assert client.get("/agenda/grid", headers=JSON).status_code == 401


def test_grid_move_and_resize_go_through_the_scheduling_service(logged_in, db, practice) -> None:
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    client = logged_in("secretaire")
    later = monday + timedelta(hours=1)
    moved = client.post(
        f"/agenda/appointments/{appointment_id}/grid-move",
        json={"start": local_iso(later), "practitioner": practice.other_practitioner},
        headers=JSON,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["message"] == "Rendez-vous déplacé."
    resized = client.post(
        f"/agenda/appointments/{appointment_id}/grid-move",
        json={"start": local_iso(later), "duration": 40},
        headers=JSON,
    )
    assert resized.status_code == 200, resized.text
    db.expire_all()
    appointment = db.get(Appointment, appointment_id)
    assert appointment is not None
    assert appointment.practitioner_id == practice.other_practitioner
    assert appointment.starts_at == later.astimezone(appointment.starts_at.tzinfo)
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=40)
    moves = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.move")).all()
    assert len(moves) == 2


def test_grid_move_onto_a_taken_slot_is_refused_and_changes_nothing(
    logged_in, db, practice
) -> None:
    monday = next_monday()
    first = _book(db, practice, monday)
    _book(db, practice, monday + timedelta(hours=1))
    client = logged_in("secretaire")
    refused = client.post(
        f"/agenda/appointments/{first}/grid-move",
        json={"start": local_iso(monday + timedelta(hours=1))},
        headers=JSON,
    )
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("Créneau déjà pris")
    db.expire_all()
    appointment = db.get(Appointment, first)
    assert appointment is not None
    assert appointment.starts_at == monday.astimezone(appointment.starts_at.tzinfo)


def test_grid_move_offers_the_freed_slot_to_the_waiting_list(logged_in, db, practice) -> None:
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    add_to_waiting_list(
        db,
        ACTOR,
        patient_id=practice.petit,
        earliest=monday.date(),
        latest=monday.date() + timedelta(days=3),
        practitioner_id=practice.practitioner,
    )
    db.commit()
    client = logged_in("secretaire")
    moved = client.post(
        f"/agenda/appointments/{appointment_id}/grid-move",
        json={"start": local_iso(monday + timedelta(days=1))},
        headers=JSON,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["offer"] == "Créneau proposé à Petit Jeanne (liste d'attente)."


def test_grid_move_checks_its_input_and_csrf(logged_in, db, practice) -> None:
    monday = next_monday()
    appointment_id = _book(db, practice, monday)
    client = logged_in("secretaire")
    url = f"/agenda/appointments/{appointment_id}/grid-move"
    bad = client.post(url, json={"start": "demain"}, headers=JSON)
    assert bad.status_code == 422 and "invalide" in bad.json()["detail"]
    too_long = client.post(url, json={"start": local_iso(monday), "duration": 999}, headers=JSON)
    assert too_long.status_code == 422
    missing = client.post(
        "/agenda/appointments/999999/grid-move", json={"start": local_iso(monday)}, headers=JSON
    )
    assert missing.status_code == 404
    token = client.headers.pop("x-csrf-token")
    forged = client.post(url, json={"start": local_iso(monday)}, headers=JSON)
    client.headers["x-csrf-token"] = token
    assert forged.status_code == 403


def test_agenda_page_carries_the_grid_and_keeps_the_list_fallback(logged_in, db, practice) -> None:
    monday = next_monday()
    _book(db, practice, monday)
    client = logged_in("secretaire")
    html = client.get(
        "/agenda", params={"date": monday.date().isoformat()}, headers={"accept": "text/html"}
    ).text
    assert 'id="agenda-grid-section"' in html and "hidden" in html
    assert "/static/vendor/event-calendar/event-calendar.min.js" in html
    assert f'data-url="/agenda/grid?view=day&amp;date={monday.date().isoformat()}"' in html
    assert "agenda-table" in html  # the list view, for browsers without JavaScript
    assert "<script>" not in html  # strict CSP: no inline script


def _embedded_grid(html: str) -> dict:
    found = re.search(
        r'<script type="application/json" id="agenda-grid-data">(.*?)</script>', html, re.S
    )
    assert found, "the agenda page carries no grid data"
    return json.loads(found.group(1))


def test_agenda_page_embeds_the_grid_data_of_its_first_draw(logged_in, db, practice) -> None:
    monday = next_monday()
    hostile = "</script><script>alert(1)</script> & co"
    appointment_id = _book(db, practice, monday, reason=hostile)
    client = logged_in("secretaire")
    params = {"date": monday.date().isoformat(), "view": "week"}
    html = client.get("/agenda", params=params, headers={"accept": "text/html"}).text

    assert "<script>alert(1)" not in html  # the JSON cannot close its script element
    embedded = _embedded_grid(html)
    fetched = _grid(client, **params)
    embedded.pop("now"), fetched.pop("now")
    assert embedded == fetched  # the same document as GET /agenda/grid
    [event] = _kinds(embedded, "appointment")
    assert event["id"] == f"a{appointment_id}" and event["extendedProps"]["reason"] == hostile
    assert [r["id"] for r in embedded["resources"]] == [
        str(practice.practitioner),
        str(practice.other_practitioner),
    ]  # every practitioner in week view, as the grid's own request


def test_print_sheet_has_one_section_per_practitioner(logged_in, db, practice) -> None:
    monday = next_monday()
    _book(db, practice, monday, reason="Vaccin")
    client = logged_in("secretaire")
    page = client.get(
        "/agenda/print", params={"date": monday.date().isoformat()}, headers={"accept": "text/html"}
    )
    assert page.status_code == 200
    assert page.text.count('class="day-sheet"') == 2
    assert "Durand Marie" in page.text and "Vaccin" in page.text
    assert "/static/agenda-print.css" in page.text
    one = client.get(
        "/agenda/print",
        params={
            "date": monday.date().isoformat(),
            "practitioner": str(practice.other_practitioner),
        },
        headers={"accept": "text/html"},
    )
    assert one.text.count('class="day-sheet"') == 1 and "Durand Marie" not in one.text
    reads = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.list")).all()
    assert reads


def test_vendored_calendar_is_served_with_its_licence(client) -> None:
    script = client.get("/static/vendor/event-calendar/event-calendar.min.js")
    assert script.status_code == 200 and "EventCalendar" in script.text
    assert "MIT License" in client.get("/static/vendor/event-calendar/LICENSE").text
    assert client.get("/static/agenda-grid.js").status_code == 200


def test_grid_shades_a_closed_public_holiday_by_name(logged_in, practice) -> None:
    client = logged_in("secretaire")
    data = _grid(client, date="2027-07-14", view="week")  # Wednesday 14 July 2027

    holiday = [e for e in _kinds(data, "closure") if e["title"] == "Fête nationale"]
    assert {e["resourceId"] for e in holiday} == {
        str(practice.practitioner),
        str(practice.other_practitioner),
    }
    assert {(e["start"], e["end"]) for e in holiday} == {
        ("2027-07-14T00:00:00", "2027-07-15T00:00:00")
    }
    free_that_day = [e for e in _kinds(data, "free") if e["start"].startswith("2027-07-14")]
    assert free_that_day == []


# The scheduling service the grid's route calls (app/services/scheduling/agenda_grid.py).


def test_service_grid_of_a_week_with_badges_shadings_and_free_time(db, practice) -> None:
    monday = next_monday()
    flagged = _book(db, practice, monday)
    plain = _book(db, practice, monday + timedelta(days=1))
    add_absence(
        db,
        ACTOR,
        practitioner_id=practice.other_practitioner,
        starts_at=monday.replace(hour=8),
        ends_at=monday.replace(hour=12),
    )
    import_bundled(db)
    sent = send_preconsultation(db, ACTOR, flagged, secret="s" * 32)
    sent.preconsultation.status = PreConsultationStatus.in_progress
    sent.preconsultation.red_flags = [{"id": "chest-pain"}]
    db.add(sent.preconsultation)
    db.commit()
    days = [monday.date() + timedelta(days=i) for i in range(7)]

    grid = agenda_grid(
        db, ACTOR, PARIS, practitioners=active_practitioners(db, None), days=days, language="en"
    )

    badges = {g.view.appointment.id: (g.preconsultation, g.red_flag) for g in grid.appointments}
    assert badges == {flagged: ("in_progress", True), plain: ("", False)}
    [absence] = [s for s in grid.shadings if s.kind == "absence"]
    assert absence.practitioner_id == practice.other_practitioner
    assert absence.label == ""  # no reason: the page shows its own wording
    assert (grid.opens, grid.closes) == (time(8, 30), time(19, 0))
    for item in grid.appointments:
        a = item.view.appointment
        assert not [
            s for s in grid.free_slots
            if s.practitioner_id == a.practitioner_id
            and s.starts_at < a.ends_at and s.ends_at > a.starts_at
        ], "no free slot over an appointment"  # fmt: skip
    assert not [
        s for s in grid.free_slots
        if s.practitioner_id == practice.other_practitioner
        and s.starts_at < absence.ends_at and s.ends_at > absence.starts_at
    ], "no free slot during an absence"  # fmt: skip
    assert grid.free_bands == free_bands(grid.free_slots)
    assert len(grid.free_bands) < len(grid.free_slots)
    reads = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.list")).all()
    assert len(reads) == 1, "the grid's read is audited once"


def test_service_grid_names_a_closed_holiday_in_the_language_asked(db, practice) -> None:
    day = date(2027, 7, 14)
    shown = active_practitioners(db, practice.practitioner)
    french = agenda_grid(db, ACTOR, PARIS, practitioners=shown, days=[day])
    english = agenda_grid(db, ACTOR, PARIS, practitioners=shown, days=[day], language="en")

    assert [(s.kind, s.practitioner_id, s.label) for s in french.shadings] == [
        ("closure", practice.practitioner, "Fête nationale")
    ]
    assert english.shadings[0].label != "Fête nationale" and english.shadings[0].label
    start = datetime.combine(day, time.min, tzinfo=PARIS)
    assert (french.shadings[0].starts_at, french.shadings[0].ends_at) == (
        start,
        start + timedelta(days=1),
    )
    assert french.free_slots == [] and french.free_bands == []


def test_service_grid_without_practitioners_or_days(db, practice) -> None:
    empty = agenda_grid(db, ACTOR, PARIS, practitioners=[], days=[next_monday().date()])
    assert (empty.appointments, empty.shadings, empty.free_slots) == ([], [], [])
    with pytest.raises(ValueError):
        agenda_grid(db, ACTOR, PARIS, practitioners=[], days=[])


def test_free_bands_merge_back_to_back_slots_per_practitioner() -> None:
    at = datetime(2027, 3, 1, 9, 0, tzinfo=PARIS)

    def slot(pid: int, minutes: int) -> Slot:
        start = at + timedelta(minutes=minutes)
        return Slot(practitioner_id=pid, starts_at=start, ends_at=start + timedelta(minutes=20))

    slots = [slot(2, 0), slot(1, 40), slot(1, 0), slot(1, 20), slot(2, 60)]
    assert free_bands(slots) == [
        FreeBand(1, at, at + timedelta(minutes=60)),
        FreeBand(2, at, at + timedelta(minutes=20)),
        FreeBand(2, at + timedelta(minutes=60), at + timedelta(minutes=80)),
    ]
    assert free_bands([]) == []

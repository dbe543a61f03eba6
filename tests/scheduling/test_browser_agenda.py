"""The agenda in a real browser: booking a free slot with the keyboard only (list view), and
the time grid: drag and drop, a refused drop, a keyboard-only move, and its render time."""

import re
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.services.scheduling.agenda import book_appointment
from models.appointments import Appointment
from tests.conftest import PASSWORD
from tests.scheduling.test_agenda_pages import next_monday
from tests.support.browser import sign_in
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.browser


def test_secretary_books_a_free_slot_with_the_keyboard(browser_page, db: Session, staff) -> None:
    add_practitioner(db, "Martin")
    patient_id = add_patient(db, "Durand", "Marie")
    db.commit()
    monday = next_monday()  # a future weekday; its free slots run 08:30, 08:50, ... 10:10
    page = browser_page
    page.goto(f"{page.base_url}/agenda?date={monday.date().isoformat()}")
    assert "/login" in page.url  # anonymous: sent to the login page, then back
    page.get_by_label("Identifiant").fill("secretaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url("**/agenda?date=*")
    assert (
        page.get_by_role("link", name=re.compile(r"^lun\. ")).get_attribute("aria-current")
        == "date"
    )

    page.get_by_role("link", name="Réserver 10:10, Dr Claire Martin").press("Enter")
    page.wait_for_url("**/agenda/new?*")
    search = page.get_by_label("Rechercher un patient (nom, prénom)")
    search.press_sequentially("durand")
    search.press("Enter")
    page.wait_for_url("**q=durand*")
    choice = page.get_by_label("Durand Marie (02/01/1980)")
    choice.press("Space")
    assert choice.is_checked()
    assert page.get_by_label("Heure").input_value() == "10:10"
    reason = page.get_by_label("Motif", exact=True)
    reason.press_sequentially("Renouvellement")
    reason.press("Enter")  # submits the booking form

    page.wait_for_url("**/agenda?*booked=*")
    assert page.get_by_role("status").first.inner_text().startswith("Rendez-vous réservé.")
    row = page.get_by_role("row", name=re.compile("10:10–10:30"))
    assert "Durand Marie" in row.inner_text() and "Renouvellement" in row.inner_text()
    db.expire_all()
    [appointment] = db.exec(select(Appointment)).all()
    assert appointment.patient_id == patient_id and appointment.reason == "Renouvellement"
    assert page.off_box.urls == []


DESKTOP = {"width": 1280, "height": 900}


def _grid_practice(db: Session) -> tuple[int, int, int, datetime]:
    """Martin and Bernard, Marie Durand booked with Martin next Monday at 10:00."""
    martin = add_practitioner(db, "Martin").id or 0
    bernard = add_practitioner(db, "Bernard").id or 0
    patient = add_patient(db, "Durand", "Marie")
    monday = next_monday()
    appointment = book_appointment(
        db, ACTOR, PARIS, patient_id=patient, practitioner_id=martin, starts_at=monday
    )
    db.commit()
    return martin, bernard, appointment.id or 0, monday


def _open_grid(page, monday: datetime, view: str = "day") -> None:
    page.set_viewport_size(DESKTOP)
    day = monday.date().isoformat()
    sign_in(
        page,
        f"/agenda?date={day}&view={view}",
        "secretaire",
        PASSWORD,
        landing="**/agenda?date=*",
    )
    page.wait_for_selector("#agenda-grid-section[data-ready='1']")


def _top_left(page, target) -> tuple[float, float]:
    box = target.bounding_box()
    assert box is not None
    return box["x"], box["y"]


def _free_point(page, resource: int, moment: datetime) -> tuple[float, float]:
    """Where ``moment`` lies in the free band of ``resource`` (bands join back-to-back slots)."""
    point = page.evaluate(
        """([resource, at]) => {
          const bands = `[data-kind='free'][data-resource='${resource}']`;
          for (const el of document.querySelectorAll(bands)) {
            if (el.dataset.start <= at && at < el.dataset.end) {
              const box = el.getBoundingClientRect();
              const ms = (s) => new Date(s).getTime();
              const [from, to] = [ms(el.dataset.start), ms(el.dataset.end)];
              const share = (ms(at) - from) / (to - from);
              return [box.left, box.top + share * box.height];
            }
          }
          return null;
        }""",
        [str(resource), moment.strftime("%Y-%m-%dT%H:%M")],
    )
    assert point is not None, f"no free band at {moment}"
    return point[0], point[1]


def _drag(page, source, target) -> None:
    """Press a few pixels below the top of ``source`` and release at the same offset from
    ``target()`` (a point, read once the page has scrolled): the block's new start is there."""
    source.evaluate("el => el.scrollIntoView({block: 'center'})")
    start = source.bounding_box()
    assert start is not None
    end_x, end_y = target()
    page.mouse.move(start["x"] + 20, start["y"] + 4)
    page.mouse.down()
    page.mouse.move(start["x"] + 25, start["y"] + 12, steps=3)  # past the drag threshold
    page.mouse.move(end_x + 20, end_y + 4, steps=12)
    page.mouse.up()


def _stored(db: Session, appointment_id: int) -> Appointment:
    db.expire_all()
    appointment = db.get(Appointment, appointment_id)
    assert appointment is not None
    return appointment


def test_drag_an_appointment_to_a_free_slot_and_confirm(browser_page, db: Session, staff) -> None:
    martin, bernard, appointment_id, monday = _grid_practice(db)
    page = browser_page
    _open_grid(page, monday)
    block = page.locator(f".ec-event[data-appointment-id='{appointment_id}']")
    target_start = monday.replace(hour=11, minute=10)
    _drag(page, block, lambda: _free_point(page, bernard, target_start))

    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    assert "Dr Claire Bernard" in dialog.inner_text() and "11:10" in dialog.inner_text()
    assert _stored(db, appointment_id).practitioner_id == martin  # nothing before confirming
    with page.expect_response("**/grid-move") as answer:
        dialog.get_by_role("button", name="Confirmer le déplacement").click()
    assert answer.value.status == 200
    page.wait_for_selector("#agenda-grid-done:has-text('Rendez-vous déplacé.')")
    moved = _stored(db, appointment_id)
    assert moved.practitioner_id == bernard
    assert moved.starts_at == target_start.astimezone(moved.starts_at.tzinfo)
    assert moved.ends_at - moved.starts_at == timedelta(minutes=20)
    assert page.off_box.urls == []


def test_drag_onto_a_taken_slot_is_refused_and_snaps_back(browser_page, db: Session, staff) -> None:
    martin, _, appointment_id, monday = _grid_practice(db)
    other = add_patient(db, "Petit", "Jeanne")
    taken = book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=other,
        practitioner_id=martin,
        starts_at=monday + timedelta(hours=1),
    )
    db.commit()
    page = browser_page
    _open_grid(page, monday)
    block = page.locator(f".ec-event[data-appointment-id='{appointment_id}']")
    taken_block = page.locator(f".ec-event[data-appointment-id='{taken.id}']")
    _drag(page, block, lambda: _top_left(page, taken_block))

    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    with page.expect_response("**/grid-move") as answer:
        dialog.get_by_role("button", name="Confirmer le déplacement").click()
    assert answer.value.status == 409
    alert = page.locator("#agenda-grid-messages")
    alert.locator("text=Créneau déjà pris").wait_for()
    assert alert.get_attribute("role") == "alert"
    page.wait_for_function(
        "([id, place]) => window.accueilAgendaGrid.placeOf(id) === place",
        arg=[appointment_id, f"{monday.strftime('%Y-%m-%dT%H:%M')} {martin}"],
    )  # snapped back to where it was
    unchanged = _stored(db, appointment_id)
    assert unchanged.starts_at == monday.astimezone(unchanged.starts_at.tzinfo)
    assert unchanged.practitioner_id == martin


def test_move_an_appointment_with_the_keyboard_only(browser_page, db: Session, staff) -> None:
    martin, _, appointment_id, monday = _grid_practice(db)
    page = browser_page
    _open_grid(page, monday)
    page.get_by_role("link", name="Feuille du jour (impression)").focus()
    for _ in range(40):  # Tab through the page until the appointment has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.appointmentId || ''") == str(
            appointment_id
        ):
            break
    else:
        pytest.fail("the appointment block cannot be reached with Tab")
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert "Durand Marie" in label and "10:00" in label
    page.keyboard.press("Enter")

    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    hour = page.get_by_label("Nouvelle heure")
    assert page.evaluate("document.activeElement.id") == "m-time"
    hour.press_sequentially("1130")
    assert hour.input_value() == "11:30"
    with page.expect_response("**/grid-move") as answer:
        page.keyboard.press("Enter")  # submits with the first button: confirm
    assert answer.value.status == 200
    page.wait_for_selector("#agenda-grid-done:has-text('Rendez-vous déplacé.')")
    moved = _stored(db, appointment_id)
    assert moved.starts_at == monday.replace(hour=11, minute=30).astimezone(moved.starts_at.tzinfo)
    assert moved.practitioner_id == martin
    page.wait_for_function(  # the focus is back on the appointment, in its new place
        "id => document.activeElement.dataset.appointmentId === id", arg=str(appointment_id)
    )


def add_week_of_appointments(db: Session, monday: datetime, count: int = 200) -> int:
    """Three practitioners and ``count`` appointments spread over their week (20 minutes each)."""
    ids = [add_practitioner(db, name).id or 0 for name in ("Martin", "Bernard", "Petit")]
    patients = [add_patient(db, f"Patient{i:02d}", "Test") for i in range(20)]
    starts = [
        monday.replace(hour=8, minute=30) + timedelta(days=d, minutes=20 * k)
        for d in range(5)
        for k in range(12)
    ] + [
        monday.replace(hour=14) + timedelta(days=d, minutes=20 * k)
        for d in range(5)
        for k in range(2)
    ]
    made = 0
    for i in range(count):
        starts_at = starts[i // len(ids)]
        db.add(
            Appointment(
                practitioner_id=ids[i % len(ids)],
                patient_id=patients[i % len(patients)],
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=20),
                visit_type=("consultation", "vaccination", "suivi")[i % 3],
                reason="Contrôle",
            )
        )
        made += 1
    db.commit()
    return made


RENDER_ENTRIES = """name => performance.getEntriesByName(name, "measure").map(e => e.duration)"""
FIRST_RENDER = """() => {
  const grid = window.accueilAgendaGrid;
  const [mark] = performance.getEntriesByName("agenda-grid:render-end", "mark");
  return {drawn: grid.drawn, appointments: grid.appointments, renderMs: grid.renderMs,
          fromNavigation: mark.startTime};
}"""


def test_grid_renders_three_practitioners_a_week_with_200_appointments(
    browser_page, db: Session, staff, record_property
) -> None:
    """The page measures its first render (User Timing, from the start of the calendar's
    creation to the last event drawn) once every block is drawn; this test checks the drawing
    is complete when the measure is taken and records the time. The < 300 ms goal is checked
    by ``python -m benchmarks agenda_grid``, not here: a timing bound would fail on a loaded
    machine without anything being wrong."""
    monday = next_monday()
    add_week_of_appointments(db, monday)
    page = browser_page
    grid_requests: list[str] = []
    page.on("request", lambda r: grid_requests.extend([r.url] if "/agenda/grid" in r.url else []))
    _open_grid(page, monday, view="week")
    assert grid_requests == []  # the first week's data came embedded in the page
    assert page.locator(".ec-event.appointment").count() == 200
    first = page.evaluate(FIRST_RENDER)
    assert first["drawn"] == first["appointments"] == 200  # all drawn when measured
    assert page.locator("#agenda-grid-section").get_attribute("data-drawn") == "200"
    assert page.evaluate(RENDER_ENTRIES, "agenda-grid:render") == [first["renderMs"]]
    assert first["fromNavigation"] >= first["renderMs"] > 0
    measured = page.evaluate("window.accueilAgendaGrid.measure()")
    assert measured["appointments"] == 200
    assert page.evaluate(RENDER_ENTRIES, "agenda-grid:redraw") == [measured["ms"]]
    record_property("agenda_grid_first_render_ms", round(first["renderMs"], 1))
    record_property("agenda_grid_navigation_to_drawn_ms", round(first["fromNavigation"], 1))
    record_property("agenda_grid_redraw_ms", round(measured["ms"], 1))
    print(
        f"grid render: first {first['renderMs']:.0f} ms "
        f"({first['fromNavigation']:.0f} ms from navigation), "
        f"again {measured['ms']:.0f} ms (goal < 300 ms, checked by the benchmark)"
    )


def test_a_day_with_nothing_to_draw_is_still_drawn(browser_page, db: Session, staff) -> None:
    """A Sunday (no hours, no appointment): the grid has no event at all, and is drawn."""
    add_practitioner(db, "Martin")
    db.commit()
    sunday = next_monday() - timedelta(days=1)
    page = browser_page
    _open_grid(page, sunday)
    assert page.locator(".ec-event").count() == 0
    assert page.locator("#agenda-grid-section").get_attribute("data-drawn") == "0"

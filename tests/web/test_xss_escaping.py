"""Markup typed by a patient (answers), by staff (names, reasons, a letter instruction) or
echoed by a model (summary sentences, letter fields) is shown escaped on every staff page:
every GET page of the route table is fetched, with the records holding the markup and with
the markup in every query parameter, and never contains it raw."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlmodel import Session

from agents.scripted_model import ScriptedChatModel, call
from app.config.settings import Settings
from app.main import create_app
from app.services.patients.records import create_patient
from app.services.preconsultation import links as pc
from app.services.preconsultation import summaries
from app.services.preconsultation.questionnaires import import_bundled
from app.services.scheduling.waiting_list import add_to_waiting_list
from app.web.route_table import find_guard
from models.appointments import Appointment
from models.patients import PatientCreate, Sex
from models.users import Role
from tests.support.jobs_helpers import run_jobs
from tests.support.practice import ACTOR, PARIS, add_practitioner
from tests.support.preconsultation import SECRET
from tests.support.review_helpers import letter_call, scripted_model

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
RAW = ("<script>alert(1)", "<img src=x onerror")  # what must never reach a page as is
ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;")
ROLE_USERS = {Role.secretary: "secretaire", Role.physician: "medecin", Role.admin: "admin"}


def _get_pages() -> list[tuple[str, frozenset[Role], tuple[str, ...]]]:
    """Every staff GET route, its roles and its query parameters."""
    app = create_app(Settings(_env_file=None, database_url="sqlite://", secret_key="x"))
    pages = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or "GET" not in (context.methods or ()):
            continue
        guard = find_guard(context.dependant)
        if guard is None or isinstance(guard, str):
            continue
        query = tuple(sorted({p.alias for p in context.dependant.query_params}))
        pages.append((context.path or route.path, guard.roles, query))
    app.state.engine.dispose()
    return pages


PAGES = _get_pages()


@pytest.fixture
def model(monkeypatch) -> ScriptedChatModel:
    return scripted_model(monkeypatch)


@pytest.fixture
def records(db: Session, job_queue, model, logged_in, staff) -> dict[str, int]:
    """A patient, an appointment, answers, a summary, a letter and a waiting-list entry, all
    carrying markup."""
    import_bundled(db)
    practitioner = add_practitioner(db)
    patient = create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name=f"Durand{SCRIPT}", first_name=IMG, used_name=f"U{SCRIPT}",
            birth_date=datetime(1980, 1, 2).date(), sex=Sex.female,
            address_line=IMG, city=SCRIPT,
        ),
    )  # fmt: skip
    start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(hours=1)
    appointment = Appointment(
        practitioner_id=practitioner.id or 0,
        patient_id=patient.id or 0,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
        visit_type="consultation",
        reason=f"Motif {SCRIPT}",
        notes=f"Note {IMG}",
    )
    db.add(appointment)
    db.flush()
    add_to_waiting_list(
        db, ACTOR, patient_id=patient.id or 0, earliest=start.date(),
        latest=start.date() + timedelta(days=5), reason=f"Attente {IMG}",
    )  # fmt: skip
    sent = pc.send_preconsultation(db, ACTOR, appointment.id or 0, secret=SECRET)
    p = sent.preconsultation
    pc.save_answers(
        db,
        ACTOR,
        p,
        {
            "motif": f"Toux {SCRIPT} {IMG}",
            "traitements-en-cours": True,
            "traitements-liste": f"Doliprane {IMG}",
            "allergies": True,
            "allergies-liste": f"Pénicilline {SCRIPT}",
            "antecedents-autres": IMG,
        },
    )
    pc.submit(db, ACTOR, p)
    db.commit()
    model.extend(
        [
            call(
                "PhysicianSummary",
                sections=[
                    {
                        "title": f"Motif {IMG}",
                        "sentences": [
                            {"text": f"Toux {SCRIPT}.", "sources": ["motif"]},
                            {"text": f"Allergie {IMG}.", "sources": ["allergies-liste"]},
                        ],
                    }
                ],
            )
        ]
    )
    run_jobs(job_queue)
    db.expire_all()
    summary = summaries.summary_document(db, p.id or 0)
    assert summary is not None
    client = logged_in("medecin")
    assert client.post(f"/medecin/documents/{summary.id}/approuver").status_code == 200
    letter = client.post(
        "/medecin/courriers",
        data={
            "patient_id": str(patient.id),
            "template": "adressage",
            "instruction": f"Consigne {SCRIPT} {IMG}",
            "summary_id": str(summary.id),
            "appointment_id": str(appointment.id),
        },
        follow_redirects=False,
    )
    assert letter.status_code == 303, letter.text
    letter_id = int(re.search(r"/medecin/documents/(\d+)", letter.headers["location"]).group(1))
    model.extend([letter_call(body=f"Corps {SCRIPT} {IMG}", destinataire=f"Dr {IMG}")])
    run_jobs(job_queue)
    return {
        "patient_id": patient.id or 0,
        "appointment_id": appointment.id or 0,
        "summary_id": summary.id or 0,
        "letter_id": letter_id,
        "practitioner_id": practitioner.id or 0,
        "day": int(start.astimezone(PARIS).strftime("%Y%m%d")),
    }


def paths_for(path: str, ids: dict[str, int]) -> list[str]:
    if "{document_id}" in path:
        return [path.replace("{document_id}", str(ids[k])) for k in ("summary_id", "letter_id")]
    for name in ("patient_id", "appointment_id", "practitioner_id"):
        path = path.replace("{" + name + "}", str(ids[name]))
    return [re.sub(r"\{[^}]+\}", "1", path)]


def raw_markup(response) -> list[str]:
    """The payloads found unescaped in an HTML answer (other types are not read as HTML)."""
    if "text/html" not in response.headers.get("content-type", ""):
        return []
    return [marker for marker in RAW if marker in response.text]


def test_no_staff_page_shows_markup_raw(logged_in, records: dict[str, int]) -> None:
    assert len(PAGES) > 30
    day = str(records["day"])
    day = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    extra = [
        ("/patients", {"q": "Durand"}),
        ("/agenda", {"date": day}),
        ("/agenda", {"date": day, "view": "week"}),
        ("/admin/rgpd", {"q": "Durand"}),
    ]
    found: list[tuple[str, str, list[str]]] = []
    shown: dict[str, int] = {}
    for role, username in ROLE_USERS.items():
        client = logged_in(username)
        for path, roles, query in PAGES:
            if role not in roles:
                continue
            for target in paths_for(path, records):
                requests = [(target, None), (target, {name: SCRIPT + IMG for name in query})]
                requests += [(p, q) for p, q in extra if p == path]
                for url, params in requests:
                    response = client.get(url, params=params, headers={"accept": "text/html"})
                    assert response.status_code < 500, (username, url, params)
                    if bad := raw_markup(response):
                        found.append((username, f"{url} {params or ''}", bad))
                    if any(e in response.text for e in ESCAPED):
                        shown[f"{url}"] = shown.get(url, 0) + 1
    assert found == []
    # the markup was really on the pages that show these records (escaped)
    ids = records
    for expected in (
        "/medecin",
        f"/patients/{ids['patient_id']}",
        f"/agenda/appointments/{ids['appointment_id']}",
        f"/medecin/documents/{ids['summary_id']}",
        f"/medecin/documents/{ids['letter_id']}",
        "/liste-attente",
        "/patients",
        "/agenda",
    ):
        assert expected in shown, (expected, sorted(shown))


def test_the_letter_instruction_and_answers_are_escaped_where_they_are_read(
    logged_in, records: dict[str, int]
) -> None:
    client = logged_in("medecin")
    html_page = {"accept": "text/html"}
    summary = client.get(f"/medecin/documents/{records['summary_id']}", headers=html_page)
    text = html.unescape(summary.text)
    assert f"Toux {SCRIPT} {IMG}" in text  # the patient's answer, beside the sentence
    assert not raw_markup(summary)
    letter = client.get(f"/medecin/documents/{records['letter_id']}", headers=html_page)
    shown = html.unescape(letter.text)
    assert f"Corps {SCRIPT} {IMG}" in shown and f"Consigne {SCRIPT} {IMG}" in shown
    assert not raw_markup(letter)
    form = client.get(
        "/medecin/courriers/nouveau",
        params={"patient_id": records["patient_id"], "summary_id": records["summary_id"],
                "instruction": SCRIPT},
        headers={"accept": "text/html"},
    )  # fmt: skip
    assert form.status_code == 200 and not raw_markup(form)

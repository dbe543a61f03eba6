"""Application logs carry no patient identifiers: a full scenario (register, search, book, open
the record, send a pre-consultation link, the patient autosaves free text, a knowledge search)
is run with every logger at INFO, then every log record and the process's output are searched
for the patient's names, birth date, phone, e-mail, NIR, address, free text and link token."""

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from app.services.preconsultation.questionnaires import import_bundled
from models.appointments import Appointment
from models.patients import Patient
from tests.support.practice import add_practitioner
from tests.support.preconsultation import autosave, verify

PARIS = ZoneInfo("Europe/Paris")
HTML = {"accept": "text/html"}
PATIENT = {
    "birth_name": "Quenouille",
    "used_name": "Vermandois",
    "first_name": "Eulalie",
    "birth_date": "1983-07-14",
    "sex": "F",
    "phone": "06 47 82 19 35",
    "email": "eulalie.quenouille@example.org",
    "address_line": "17 impasse des Grillons",
    "postal_code": "38410",
    "city": "Vaulnaveys",
    "nir": "283073841012345",
}
FREE_TEXT = "Palpitations nocturnes depuis la mort de mon chat Zéphyrin"


class Everything(logging.Handler):
    """Keeps every record's formatted text, arguments and exception included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if _test_client_request(record):
            return
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))


def _test_client_request(record: logging.LogRecord) -> bool:
    """The test client's own request line (httpx), not the app's."""
    return record.name.startswith("httpx") and "http://testserver" in record.getMessage()


def _nir_with_key(body: str) -> str:
    return f"{body}{97 - int(body) % 97:02d}"


def _all_loggers_at_info() -> None:
    logging.getLogger().setLevel(logging.INFO)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(logging.INFO)


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture):
    handler = Everything()
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.INFO)
    yield handler
    root.removeHandler(handler)


def test_a_full_scenario_logs_no_patient_identifier(
    logged_in, staff, db: Session, capture: Everything, caplog, capfd
) -> None:
    import_bundled(db)
    practitioner = add_practitioner(db)
    db.commit()
    _all_loggers_at_info()
    patient = {**PATIENT, "nir": _nir_with_key(PATIENT["nir"][:13])}

    client = logged_in(staff.secretary)
    _all_loggers_at_info()  # loggers created while the app started
    created = client.post(
        "/patients",
        data={**patient, "csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    patient_id = db.exec(select(Patient.id).where(Patient.birth_name == "Quenouille")).one()

    assert "Quenouille" in client.get("/patients", params={"q": "quenouille eulalie"}).text
    assert client.get("/api/patients", params={"q": "Vermandois"}).json()
    assert client.get("/api/patients", params={"phone": patient["phone"]}).status_code == 200
    assert client.get("/patients", params={"birth_date": patient["birth_date"]}).status_code == 200
    client.get("/patients", params={"birth_date": "14/07/1983"})  # an invalid date, echoed back

    today = datetime.now(PARIS).date()
    monday = today + timedelta(days=7 - today.weekday())
    booked = client.post(
        "/agenda/appointments",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "patient_id": patient_id,
            "practitioner": practitioner.id,
            "date": monday.isoformat(),
            "time": "11:00",
            "reason": "Palpitations",
            "duration": "20",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert booked.status_code == 303, booked.text
    appointment_id = db.exec(
        select(Appointment.id).where(Appointment.patient_id == patient_id)
    ).one()
    assert client.get(f"/patients/{patient_id}", headers=HTML).status_code == 200
    assert client.get(f"/agenda/appointments/{appointment_id}", headers=HTML).status_code == 200

    sent = client.post(f"/agenda/appointments/{appointment_id}/preconsultation", headers=HTML)
    assert sent.status_code == 200, sent.text
    start = sent.text.index("/p/")
    path = sent.text[start : sent.text.index('"', start)].split("<")[0]
    token = path.removeprefix("/p/")
    assert len(token) > 20

    client.cookies.clear()
    client.headers.pop("x-csrf-token", None)
    assert verify(client, path, patient["birth_date"]).status_code == 303
    saved = autosave(client, path, {"motif": FREE_TEXT})
    assert saved.status_code == 200, saved.text
    assert verify(client, path, "1983-07-15").status_code in (200, 303, 400, 422)

    client = logged_in(staff.secretary)
    hit = client.get("/connaissances", params={"q": "Eulalie Quenouille horaires du cabinet"})
    assert hit.status_code == 200
    logging.getLogger("accueil.check").info("scenario finished")  # the capture works

    out, err = capfd.readouterr()
    texts = [
        *capture.texts,
        *(r.getMessage() for r in caplog.records if not _test_client_request(r)),
    ]
    texts += [line for line in (out + err).splitlines() if "http://testserver" not in line]
    assert any("scenario finished" in t for t in texts)
    assert any("/patients" in t for t in texts)  # requests are logged, by route
    assert any("GET /p/{token}/etape/{number} 200" in t for t in texts)
    birth = datetime.combine(datetime.fromisoformat(patient["birth_date"]), time()).date()
    identifiers = [
        "Quenouille",
        "quenouille",
        "Vermandois",
        "Eulalie",
        "eulalie",
        patient["birth_date"],
        f"{birth:%d/%m/%Y}",
        "14/07/1983",
        "647821935",
        "47 82 19 35",
        patient["email"],
        patient["nir"],
        patient["nir"][:13],
        "Grillons",
        "Vaulnaveys",
        "Zéphyrin",
        "Palpitations nocturnes",
        token,
    ]
    leaks = sorted({i for i in identifiers for t in texts if i in t})
    assert not leaks, [t for t in texts if any(i in t for i in leaks)][:5]

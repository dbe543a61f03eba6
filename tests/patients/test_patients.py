"""Patients: French identifiers, registration, reading, changes and search, each audited."""

from datetime import date

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.operations.demo import nir_for
from app.services.patients.records import create_patient, fold, search_patients
from models.audit import ActorKind, AuditEvent
from models.patients import PatientCreate, PatientInputError, Sex, normalize_nir, normalize_phone

ACTOR = Actor(kind=ActorKind.user, id="1", name="secretaire", address="127.0.0.1")


def _events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


@pytest.mark.parametrize(
    "nir",
    [
        "269054958815780",  # the classic example, key 80
        "2 69 05 49 588 157 80",  # spaces are accepted
        "1 85 12 2A 123 456 48",  # Corsica, 2A
        "2 91 03 2B 321 654 45",  # Corsica, 2B
    ],
)
def test_valid_nir_keys_are_accepted(nir: str) -> None:
    compact = normalize_nir(nir)
    assert compact == nir.replace(" ", "")


@pytest.mark.parametrize(
    "nir",
    [
        "269054958815781",  # wrong key
        "269054958815700",
        "26905495881578",  # too short
        "369054958815780",  # sex digit 3
        "2690549588157AB",
    ],
)
def test_invalid_nir_keys_are_rejected(nir: str) -> None:
    with pytest.raises(PatientInputError, match="sécurité sociale"):
        normalize_nir(nir)


def test_generated_demo_nirs_are_valid() -> None:
    import random

    rng = random.Random(1)
    for year in (1931, 1969, 2004, 2023):
        nir = nir_for(rng, Sex.female, date(year, 5, 2))
        assert normalize_nir(nir) == nir and nir.startswith(f"2{year % 100:02d}05")


def test_nir_must_match_sex_and_birth_year() -> None:
    base = {"birth_name": "Durand", "first_name": "Marie", "nir": "269054958815780"}
    PatientCreate(**base, birth_date=date(1969, 5, 2), sex=Sex.female)
    with pytest.raises(ValidationError, match="sexe"):
        PatientCreate(**base, birth_date=date(1969, 5, 2), sex=Sex.male)
    with pytest.raises(ValidationError, match="année"):
        PatientCreate(**base, birth_date=date(1970, 5, 2), sex=Sex.female)


def test_french_phones_are_normalised() -> None:
    assert normalize_phone("06 12 34 56 78") == "+33612345678"
    assert normalize_phone("+33 1 42 68 53 00") == "+33142685300"
    with pytest.raises(PatientInputError):
        normalize_phone("12")


def test_names_are_folded_for_search() -> None:
    assert fold("  Lefèvre-Dupré ") == "lefevre dupre"
    assert fold("D'ARTAGNAN Hélène") == "d artagnan helene"


def test_search_ignores_accents_case_and_finds_usage_names(db: Session) -> None:
    create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name="LEFÈVRE",
            used_name="Dupré",
            first_name="Hélène",
            birth_date=date(1975, 3, 4),
            sex=Sex.female,
            phone="0612345678",
        ),
    )
    create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name="Martin", first_name="Paul", birth_date=date(1990, 1, 1), sex=Sex.male
        ),
    )
    assert [p.first_name for p in search_patients(db, ACTOR, text="lefevre")] == ["Hélène"]
    assert [p.first_name for p in search_patients(db, ACTOR, text="DUPRE helene")] == ["Hélène"]
    assert [p.first_name for p in search_patients(db, ACTOR, phone="06 12 34 56 78")] == ["Hélène"]
    assert [p.first_name for p in search_patients(db, ACTOR, birth_date=date(1990, 1, 1))] == [
        "Paul"
    ]
    assert search_patients(db, ACTOR, text="durand") == []


def test_api_create_read_update_search_write_audit_events(logged_in, db: Session) -> None:
    client = logged_in("secretaire")
    created = client.post(
        "/api/patients",
        json={
            "birth_name": "Durand",
            "first_name": "Marie",
            "birth_date": "1969-05-02",
            "sex": "F",
            "phone": "06 11 22 33 44",
            "email": "marie.durand@example.org",
            "nir": "2 69 05 49 588 157 80",
        },
    )
    assert created.status_code == 201, created.text
    patient = created.json()
    assert patient["phone"] == "+33611223344" and patient["nir"] == "269054958815780"
    pid = patient["id"]

    read = client.get(f"/api/patients/{pid}")
    assert read.json()["birth_name"] == "Durand"

    changed = client.patch(f"/api/patients/{pid}", json={"used_name": "Petit", "city": "Lyon"})
    assert changed.status_code == 200 and changed.json()["used_name"] == "Petit"

    found = client.get("/api/patients", params={"q": "petit marie"})
    assert [p["id"] for p in found.json()] == [pid]

    for action in ("patient.create", "patient.read", "patient.update", "patient.search"):
        events = _events(db, action)
        assert len(events) == 1, action
        event = events[0]
        assert event.actor_name == "secretaire" and event.actor_kind == "user"
        assert event.client_address == "testclient"
    assert _events(db, "patient.read")[0].patient_id == pid
    assert _events(db, "patient.update")[0].details == {"fields": ["city", "used_name"]}
    assert _events(db, "patient.search")[0].details["patient_ids"] == [pid]
    # The audit trail names records, never their content.
    for event in db.exec(select(AuditEvent)).all():
        assert "Durand" not in str(event.details) and "269054958815780" not in str(event.details)


def test_duplicate_nir_is_a_conflict(logged_in) -> None:
    client = logged_in("secretaire")
    payload = {
        "birth_name": "Durand",
        "first_name": "Marie",
        "birth_date": "1969-05-02",
        "sex": "F",
        "nir": "269054958815780",
    }
    assert client.post("/api/patients", json=payload).status_code == 201
    again = client.post("/api/patients", json={**payload, "first_name": "Marion"})
    assert again.status_code == 409
    assert "existe déjà" in again.json()["detail"]


def test_invalid_input_gets_french_field_messages(logged_in) -> None:
    client = logged_in("medecin")
    response = client.post(
        "/api/patients",
        json={"birth_name": "", "birth_date": "02/05/1969", "sex": "Z", "nir": "123"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "Certains champs sont invalides."
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages["first_name"] == "Champ obligatoire."
    assert messages["birth_date"].startswith("Date invalide")
    assert "F" in messages["sex"] and "Valeur non autorisée" in messages["sex"]
    assert "sécurité sociale" in messages["nir"]
    assert messages["birth_name"] == "Ce nom ne peut pas être vide."


def test_english_messages_on_request(logged_in) -> None:
    client = logged_in("secretaire")
    assert client.get("/lang/en?next=/patients", follow_redirects=False).status_code == 303
    response = client.post("/api/patients", json={"birth_name": "X"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Some fields are invalid."
    assert response.json()["errors"][0]["message"] == "This field is required."


def test_unknown_patient_is_a_clear_404(logged_in) -> None:
    client = logged_in("secretaire")
    response = client.get("/api/patients/999999")
    assert response.status_code == 404 and response.json()["detail"] == "Patient introuvable."


def test_form_registers_then_edits_a_patient(logged_in, db: Session) -> None:
    client = logged_in("secretaire")
    token = client.headers["x-csrf-token"]
    html = {"accept": "text/html"}
    bad = client.post(
        "/patients",
        data={
            "csrf_token": token,
            "birth_name": "Roux",
            "first_name": "Léa",
            "sex": "F",
            "birth_date": "2030-01-01",
        },
        headers=html,
    )
    assert bad.status_code == 422 and "dans le futur" in bad.text
    assert 'value="Roux"' in bad.text  # nothing typed is lost
    created = client.post(
        "/patients",
        data={
            "csrf_token": token,
            "birth_name": "Roux",
            "first_name": "Léa",
            "sex": "F",
            "birth_date": "2001-07-14",
            "phone": "0611223344",
            "language": "fr",
        },
        headers=html,
        follow_redirects=False,
    )
    assert created.status_code == 303
    page = client.get(created.headers["location"], headers=html)
    assert "Roux Léa" in page.text and "Patient enregistré." in page.text
    pid = int(created.headers["location"].split("/")[2].split("?")[0])
    edited = client.post(
        f"/patients/{pid}",
        data={
            "csrf_token": token,
            "birth_name": "Roux",
            "first_name": "Léa",
            "sex": "F",
            "birth_date": "2001-07-14",
            "used_name": "Blanc",
            "language": "en",
        },
        headers=html,
        follow_redirects=False,
    )
    assert edited.status_code == 303
    db.expire_all()
    from models.patients import Patient

    patient = db.get(Patient, pid)
    assert patient is not None
    assert patient.used_name == "Blanc" and patient.language == "en" and patient.phone is None


def test_admin_cannot_read_patient_records(logged_in) -> None:
    client = logged_in("admin")
    assert client.get("/api/patients").status_code == 403


def test_look_alike_patients_need_a_confirmation(logged_in, db: Session) -> None:
    client = logged_in("secretaire")
    payload = {
        "birth_name": "Lefèvre",
        "first_name": "Hélène",
        "birth_date": "1975-03-04",
        "sex": "F",
    }
    first = client.post("/api/patients", json=payload)
    assert first.status_code == 201
    # Same person typed differently, or registered under her usage name.
    for variant in (
        {"birth_name": "LEFEVRE", "first_name": "helene"},
        {"birth_name": "Martin", "used_name": "Lefevre", "first_name": "Hélène"},
    ):
        again = client.post("/api/patients", json={**payload, **variant})
        assert again.status_code == 409
        assert "semble déjà enregistré" in again.json()["detail"]
        assert f"n° {first.json()['id']}" in again.json()["detail"]
    # A different first name or birth date is no duplicate.
    assert client.post("/api/patients", json={**payload, "first_name": "Paul"}).status_code == 201
    twin = client.post("/api/patients", params={"confirm_not_duplicate": "true"}, json=payload)
    assert twin.status_code == 201


def test_form_offers_to_confirm_a_look_alike(logged_in) -> None:
    client = logged_in("secretaire")
    token = client.headers["x-csrf-token"]
    form = {
        "csrf_token": token,
        "birth_name": "Roux",
        "first_name": "Léa",
        "sex": "F",
        "birth_date": "2001-07-14",
    }
    assert client.post("/patients", data=form, follow_redirects=False).status_code == 303
    again = client.post("/patients", data=form, headers={"accept": "text/html"})
    assert again.status_code == 409 and 'name="confirm_not_duplicate"' in again.text
    confirmed = client.post(
        "/patients", data={**form, "confirm_not_duplicate": "1"}, follow_redirects=False
    )
    assert confirmed.status_code == 303

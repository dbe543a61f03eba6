"""LIKE wildcards typed in a search are plain characters: "%" and "_" match nobody."""

from datetime import date

import pytest
from sqlmodel import Session

from app.services.core import audit
from app.services.patients.records import create_patient, search_patients
from models.patients import PatientCreate, Sex
from tests.support.practice import ACTOR


@pytest.fixture
def two_patients(db: Session) -> None:
    for name, first in (("Martin", "Paul"), ("Durand", "Marie")):
        create_patient(
            db,
            ACTOR,
            PatientCreate(
                birth_name=name,
                first_name=first,
                birth_date=date(1990, 1, 1),
                sex=Sex.male,
                phone="0612345678" if name == "Martin" else None,
            ),
        )


@pytest.mark.parametrize("text", ["%", "_", "%%", "m%n", "mart_n", "/", "//", "/%", "%/", "\\"])
def test_wildcards_match_nobody(db: Session, two_patients: None, text: str) -> None:
    assert search_patients(db, ACTOR, text=text) == []


def test_plain_searches_still_find(db: Session, two_patients: None) -> None:
    assert [p.birth_name for p in search_patients(db, ACTOR, text="mart")] == ["Martin"]
    assert [p.birth_name for p in search_patients(db, ACTOR, phone="0612")] == ["Martin"]


def test_the_patients_api_escapes_wildcards(logged_in, db: Session, two_patients: None) -> None:
    db.commit()
    client = logged_in("secretaire")
    for q in ("%", "_"):
        found = client.get("/api/patients", params={"q": q})
        assert found.status_code == 200 and found.json() == [], q
    assert len(client.get("/api/patients", params={"q": "mar"}).json()) == 2


def test_the_audit_filters_escape_wildcards(db: Session, two_patients: None) -> None:
    db.commit()
    events, total = audit.list_events(db, audit.AuditFilter(actor="%"))
    assert total == 0 and events == []
    events, total = audit.list_events(db, audit.AuditFilter(action="patient_"))
    assert total == 0
    _, total = audit.list_events(db, audit.AuditFilter(action="patient."))
    assert total == 2

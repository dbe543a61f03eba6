"""RGPD tools: the export holds everything about one patient and nothing of another; erasing
removes identifiers and texts, keeps the appointments countable and the audit trail whole;
only admins reach either."""

import io
import json
from datetime import date, timedelta

import pypdf
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from app.services.patients.records import create_patient
from app.services.preconsultation import links as pc
from models.appointments import Appointment, WaitingListEntry
from models.audit import AuditEvent
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument
from models.notifications import Channel, NotificationConsent
from models.patients import Patient, PatientCreate, Sex
from models.questionnaires import PreConsultation
from tests.support.practice import ACTOR
from tests.support.preconsultation import book, send

HTML = {"accept": "text/html"}
ANSWER_A = "Toux sèche depuis trois jours chez Mme Durand"
ANSWER_B = "Douleur au genou gauche après le ski"
LETTER_A = "Compte rendu confidentiel pour Marie Durand"
LETTER_B = "Certificat de sport pour Gaspard Bonnefoy"


def _document(db: Session, patient_id: int, appointment_id: int, text: str) -> None:
    document = GeneratedDocument(
        kind=DocumentKind.letter,
        patient_id=patient_id,
        appointment_id=appointment_id,
        text=text,
        content={"body": text},
        model="scripted",
        prompt_id="letter",
        prompt_version="1",
        prompt_hash="0" * 64,
    )
    db.add(document)
    db.flush()
    db.add(DocumentVersion(document_id=document.id or 0, number=1, text=text, content={}))


@pytest.fixture
def two_patients(db: Session, staff) -> tuple[int, int]:
    """Patient A (Durand Marie, full record) and patient B (Bonnefoy Gaspard)."""
    booked = book(db)
    a = db.get(Patient, booked.patient_id)
    assert a is not None
    a.phone, a.email, a.nir = "+33612345678", "marie.durand@example.org", "280012A01234567"
    a.address_line, a.postal_code, a.city = "12 rue des Lilas", "69003", "Lyon"
    db.add(a)
    sent = send(db, booked.appointment_id)
    p = db.get(PreConsultation, sent.preconsultation.id)
    assert p is not None
    pc.save_answers(db, ACTOR, p, {"motif": ANSWER_A, "temperature": 38.4})
    pc.submit(db, ACTOR, p)
    _document(db, booked.patient_id, booked.appointment_id, LETTER_A)
    db.add(
        WaitingListEntry(
            patient_id=booked.patient_id,
            earliest=date.today(),
            latest=date.today() + timedelta(days=10),
            reason="Plus tôt si possible",
        )
    )
    db.add(NotificationConsent(patient_id=booked.patient_id, channel=Channel.sms, opted_out=True))

    b = create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name="Bonnefoy",
            first_name="Gaspard",
            birth_date=date(1975, 6, 15),
            sex=Sex.male,
            phone="0698765432",
            email="gaspard@example.net",
        ),
    )
    appointment = db.get(Appointment, booked.appointment_id)
    assert appointment is not None
    other = Appointment(
        practitioner_id=appointment.practitioner_id,
        patient_id=b.id or 0,
        starts_at=appointment.starts_at + timedelta(hours=2),
        ends_at=appointment.ends_at + timedelta(hours=2),
        reason="Genou",
    )
    db.add(other)
    db.flush()
    sent_b = send(db, other.id or 0)
    p_b = db.get(PreConsultation, sent_b.preconsultation.id)
    assert p_b is not None
    pc.save_answers(db, ACTOR, p_b, {"motif": ANSWER_B})
    _document(db, b.id or 0, other.id or 0, LETTER_B)
    db.commit()
    return booked.patient_id, b.id or 0


def test_the_export_holds_the_patient_and_nothing_of_another(
    two_patients, logged_in, staff, db: Session
) -> None:
    a, _ = two_patients
    client = logged_in(staff.admin)
    page = client.get("/admin/rgpd?q=durand", headers=HTML)
    assert page.status_code == 200 and f"/admin/rgpd/{a}" in page.text
    page = client.get(f"/admin/rgpd/{a}", headers=HTML)
    assert page.status_code == 200 and "Exporter (JSON)" in page.text

    response = client.get(f"/admin/rgpd/{a}/export.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    raw = response.text
    assert data["patient"]["birth_name"] == "Durand" and data["patient"]["nir"]
    assert [x["patient_id"] for x in data["appointments"]] == [a]
    assert data["preconsultations"][0]["answers"]["motif"] == ANSWER_A
    assert data["preconsultations"][0]["response"]["resourceType"] == "QuestionnaireResponse"
    # The structured summary stored at submit, then the letter.
    [letter] = [d for d in data["documents"] if d["kind"] == "letter"]
    assert letter["text"] == LETTER_A and letter["versions"][0]["text"] == LETTER_A
    assert any(ANSWER_A in d["text"] for d in data["documents"] if d["kind"] == "summary")
    assert data["waiting_list"][0]["reason"] == "Plus tôt si possible"
    assert data["notification_consents"][0]["channel"] == "sms"
    actions = {e["action"] for e in data["audit_events"]}
    assert "patient.create" in actions
    assert all(e["patient_id"] == a for e in data["audit_events"])
    assert "token_hash" not in raw and "search_key" not in raw
    for other in ("Bonnefoy", "Gaspard", ANSWER_B, LETTER_B, "gaspard@example.net", "698765432"):
        assert other not in raw

    pdf = client.get(f"/admin/rgpd/{a}/export.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Durand" in text and "Bonnefoy" not in text
    assert "trois jours" in " ".join(text.split())

    exports = db.exec(
        select(AuditEvent).where(AuditEvent.action == "patient.export", AuditEvent.patient_id == a)
    ).all()
    assert [e.details["format"] for e in exports] == ["json", "pdf"]


def _audit_rows(db: Session) -> list[tuple]:
    return [
        (e.id, e.action, e.patient_id, e.record_id, json.dumps(e.details, sort_keys=True))
        for e in db.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    ]


def test_erasing_removes_identifiers_and_keeps_statistics_and_audit(
    two_patients, logged_in, staff, db: Session
) -> None:
    a, b = two_patients
    client = logged_in(staff.admin)
    assert client.get(f"/admin/rgpd/{a}", headers=HTML).status_code == 200
    appointments_before = db.exec(select(func.count()).select_from(Appointment)).one()

    wrong = client.post(
        f"/admin/rgpd/{a}/erase",
        data={"confirm_name": "Bonnefoy", "reason": "patient_request"},
        headers=HTML,
    )
    assert wrong.status_code == 422 and "saisissez le nom du patient" in wrong.text
    db.expire_all()
    assert db.get(Patient, a).birth_name == "Durand"  # type: ignore[union-attr]

    before = _audit_rows(db)
    done = client.post(
        f"/admin/rgpd/{a}/erase",
        data={"confirm_name": "durand", "reason": "patient_request"},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    db.expire_all()
    after = _audit_rows(db)
    assert after[: len(before)] == before  # the trail is untouched…
    assert len(after) == len(before) + 1  # …and gains one event
    assert after[-1][1:3] == ("patient.erase", a)
    assert "Durand" not in after[-1][4] and "patient_request" in after[-1][4]

    patient = db.get(Patient, a)
    assert patient is not None
    assert patient.birth_name == "ANONYMISÉ" and patient.first_name == f"Patient {a}"
    assert patient.birth_date == date(1980, 1, 1)
    assert (patient.phone, patient.email, patient.nir, patient.used_name) == (None,) * 4
    assert (patient.address_line, patient.postal_code, patient.city) == (None, None, None)
    # Counted in statistics still, detached from identity.
    assert db.exec(select(func.count()).select_from(Appointment)).one() == appointments_before
    appointment = db.exec(select(Appointment).where(Appointment.patient_id == a)).one()
    assert appointment.reason == "" and appointment.status == "cancelled"  # it was upcoming
    pre = db.exec(
        select(PreConsultation).where(PreConsultation.appointment_id == appointment.id)
    ).one()
    assert pre.answers == {} and pre.response is None and pre.red_flags == []
    erased = db.exec(select(GeneratedDocument).where(GeneratedDocument.patient_id == a)).all()
    assert len(erased) == 2  # the structured summary stored at submit, and the letter
    for document in erased:
        assert document.text == "" and document.content == {}
        versions = db.exec(
            select(DocumentVersion).where(DocumentVersion.document_id == document.id)
        ).all()
        assert [v.text for v in versions] == [""]
    entry = db.exec(select(WaitingListEntry).where(WaitingListEntry.patient_id == a)).one()
    assert entry.reason == "" and entry.status == "withdrawn"
    assert not db.exec(select(NotificationConsent).where(NotificationConsent.patient_id == a)).all()
    # Nothing of the patient remains anywhere in the database's texts.
    dump = json.dumps(client.get(f"/admin/rgpd/{a}/export.json").json(), ensure_ascii=False)
    for identifier in ("Durand", "Marie", "1980-01-02", "612345678", "marie.durand", "Lilas"):
        assert identifier not in dump
    assert ANSWER_A not in dump and LETTER_A not in dump
    # The other patient is untouched; a second erasure is refused.
    other = db.get(Patient, b)
    assert other is not None and other.birth_name == "Bonnefoy" and other.phone
    again = client.post(
        f"/admin/rgpd/{a}/erase",
        data={"confirm_name": "ANONYMISÉ", "reason": "other"},
        headers=HTML,
    )
    assert again.status_code == 409
    page = client.get(f"/admin/rgpd/{a}", headers=HTML)
    assert "Ce patient est anonymisé" in page.text
    assert client.get("/admin/rgpd?q=durand", headers=HTML).text.count("/admin/rgpd/") == 0


@pytest.mark.parametrize("role", ["secretary", "physician"])
def test_only_admins_reach_the_rgpd_tools(two_patients, logged_in, staff, role: str, db) -> None:
    a, _ = two_patients
    client = logged_in(getattr(staff, role))
    for path in ("/admin/rgpd", f"/admin/rgpd/{a}", f"/admin/rgpd/{a}/export.json",
                 f"/admin/rgpd/{a}/export.pdf"):  # fmt: skip
        assert client.get(path).status_code == 403, path
    refused = client.post(
        f"/admin/rgpd/{a}/erase", data={"confirm_name": "durand", "reason": "other"}
    )
    assert refused.status_code == 403
    db.expire_all()
    assert db.get(Patient, a).birth_name == "Durand"  # type: ignore[union-attr]
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "patient.erase")).all()
    client.cookies.clear()
    client.headers.pop("x-csrf-token", None)
    assert client.get(f"/admin/rgpd/{a}/export.json").status_code == 401

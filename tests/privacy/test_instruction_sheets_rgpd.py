"""RGPD and patient instruction sheets (issue 17): the export holds the patient's sheets (and
no other patient's), in JSON and in the PDF; the erasure clears their text, keeps the rows for
statistics, leaves other patients' sheets alone, and a sheet queued for sending never leaves."""

import io
from datetime import date

import pypdf
from sqlmodel import Session, select

from app.services.flows.notification_delivery import obsolete_reason
from app.services.notifications import planning
from app.services.patients.records import create_patient
from app.services.privacy import rgpd
from app.services.privacy.rgpd_pdf import export_pdf
from models.audit import AuditEvent
from models.instruction_sheets import InstructionSheet
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import PatientCreate, Sex
from models.types import utcnow
from tests.support.notification_helpers import enable
from tests.support.practice import ACTOR


def patient(db: Session, name: str, first: str) -> int:
    created = create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name=name,
            first_name=first,
            birth_date=date(1975, 5, 6),
            sex=Sex.female,
            email=f"{first.lower()}@exemple.fr",
        ),
    )
    db.flush()
    return created.id or 0


def sheet(db: Session, patient_id: int, text: str) -> InstructionSheet:
    row = InstructionSheet(
        patient_id=patient_id,
        topic="Prise de sang",
        title="Prise de sang",
        paragraphs=[{"text": text, "edited": True, "source": {"document_id": 1}}],
        status="approved",
        approved_text=f"Prise de sang\n\n{text}",
        reviewed_at=utcnow(),
    )
    db.add(row)
    db.flush()
    return row


def test_export_holds_the_patients_sheets_only(db: Session, settings, staff) -> None:
    a = patient(db, "Durand", "Marie")
    b = patient(db, "Bonnefoy", "Lucie")
    sheet(db, a, "Marie : venez à jeun, votre traitement du matin après la prise de sang.")
    sheet(db, b, "Lucie : texte d'une autre patiente.")
    db.commit()
    data = rgpd.export_patient(db, ACTOR, a, "json", settings)
    [exported] = data["instruction_sheets"]
    assert exported["patient_id"] == a and "votre traitement du matin" in exported["approved_text"]
    assert "Lucie" not in str(data["instruction_sheets"])
    pdf = export_pdf(data, practice="Cabinet des Tilleuls")
    text = " ".join(
        " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split()
    )
    assert "Fiches de consignes" in text and "votre traitement du matin" in text


def test_erasure_clears_the_text_keeps_the_rows_and_stops_a_queued_sending(
    db: Session, settings, staff, job_queue
) -> None:
    enable(db)
    a = patient(db, "Durand", "Marie")
    b = patient(db, "Bonnefoy", "Lucie")
    mine = sheet(db, a, "Marie : arrêtez l'aspirine 5 jours avant.")
    other = sheet(db, b, "Lucie : venez à jeun.")
    message = planning.plan_message(
        db,
        key=planning.message_key(MessageKind.instructions, Channel.email, mine.id, "v1"),
        kind=MessageKind.instructions,
        channel=Channel.email,
        planned_at=utcnow(),
        patient_id=a,
    )
    message.instruction_sheet_id = mine.id
    db.add(message)
    db.commit()
    assert obsolete_reason(db, message, utcnow()) is None  # it would go out

    outcome = rgpd.erase_patient(
        db,
        ACTOR,
        a,
        confirmation="Durand",
        reason=rgpd.EraseReason.patient_request,
        settings=settings,
    )
    db.commit()
    assert outcome.instruction_sheets_cleared == 1
    db.expire_all()
    erased = db.get(InstructionSheet, mine.id)
    assert erased is not None and erased.paragraphs == [] and erased.approved_text == ""
    assert erased.status == "approved"  # kept for statistics, without its text
    kept = db.get(InstructionSheet, other.id)
    assert kept is not None and "Lucie" in kept.approved_text
    queued = db.get(OutboxMessage, message.id)
    assert queued is not None and queued.status == MessageStatus.cancelled
    assert obsolete_reason(db, queued, utcnow()) is not None  # even if it were retried
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "patient.erase")).one()
    assert event.details["instruction_sheets_cleared"] == 1
    assert "aspirine" not in str(event.details)

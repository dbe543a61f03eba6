"""Sending an approved instruction sheet to its patient (issue 17): never before a physician
approved it, only by email and as the patient's contact choices allow, through the
notifications outbox (one message that names the sheet and the patient), delivered over a real
SMTP server on loopback with the approved text in the body and the PDF attached."""

import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlmodel import Session, col, select

from app.services.core.audit import Actor
from app.services.documents import instruction_sheets as sheets
from app.services.knowledge import library as knowledge
from app.services.notifications import consent as notification_consent
from models.audit import AuditEvent
from models.instruction_sheets import InstructionSheet
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.users import User
from tests.support.jobs_helpers import run_jobs
from tests.support.notification_helpers import (
    add_reachable_patient,
    attachment,
    body,
    enable,
    mail_settings,
    smtp_server,  # noqa: F401 (fixture)
)

ACTOR = Actor.system("test")
HANDBOOK = """# Consignes du cabinet

## Prise de sang
Pour une prise de sang, il faut être à jeun depuis 12 heures ; l'eau est permise.

## Tarifs
La consultation de médecine générale est facturée 30 euros.
""".encode()
EDITED = "Venez à jeun depuis 12 heures ; l'eau est permise, le café non."


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server):  # noqa: F811
    return mail_settings(database_url, tmp_path / "data", smtp_server.port)


def user(db: Session, username: str) -> User:
    return db.exec(select(User).where(User.username == username)).one()


def drafted(db: Session, settings, patient_id: int) -> InstructionSheet:
    try:
        knowledge.ingest(db, ACTOR, settings, "consignes.md", HANDBOOK)
        db.commit()
    except knowledge.DuplicateDocument:
        db.rollback()  # already in the knowledge base
    sheet = sheets.draft_sheet(
        db, ACTOR, settings, user(db, "secretaire"), patient_id=patient_id, topic="Prise de sang"
    )
    db.commit()
    return sheet


def approved(db: Session, settings, patient_id: int) -> InstructionSheet:
    sheet = drafted(db, settings, patient_id)
    physician = user(db, "medecin")
    sheets.edit_paragraph(db, ACTOR, physician, sheet.id or 0, 0, EDITED)
    sheets.approve(db, ACTOR, physician, sheet.id or 0)
    db.commit()
    return sheet


def outbox(db: Session) -> list[OutboxMessage]:
    db.expire_all()
    return list(db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def test_refused_before_approval_then_one_message_delivered_with_text_and_pdf(
    db,
    settings,
    staff,
    job_queue,
    smtp_server,  # noqa: F811
) -> None:
    enable(db)
    other = add_reachable_patient(db, "Martin", "Jeanne", "jeanne.martin@exemple.fr")
    patient_id = add_reachable_patient(db, "Durand", "Marie", "marie.durand@exemple.fr")
    db.commit()
    sheet = drafted(db, settings, patient_id)
    secretary = user(db, "secretaire")

    with pytest.raises(sheets.SheetNotApproved):
        sheets.send_to_patient(db, ACTOR, settings, secretary, sheet.id or 0)
    db.rollback()
    assert outbox(db) == []

    sheets.edit_paragraph(db, ACTOR, user(db, "medecin"), sheet.id or 0, 0, EDITED)
    sheets.approve(db, ACTOR, user(db, "medecin"), sheet.id or 0)
    message = sheets.send_to_patient(db, ACTOR, settings, secretary, sheet.id or 0)
    again = sheets.send_to_patient(db, ACTOR, settings, secretary, sheet.id or 0)
    db.commit()
    assert again.id == message.id  # the same version is sent once
    [queued] = outbox(db)
    assert queued.kind == MessageKind.instructions and queued.channel == Channel.email
    assert queued.patient_id == patient_id and queued.instruction_sheet_id == sheet.id

    run_jobs(job_queue)
    [mail] = smtp_server.mailbox.to("marie.durand@exemple.fr")
    assert smtp_server.mailbox.to("jeanne.martin@exemple.fr") == [] and other != patient_id
    text = body(mail)
    assert EDITED in text and "Pour une prise de sang" not in text
    assert "Vos consignes : Prise de sang" in str(mail["Subject"])
    pdf = attachment(mail, f"consignes-{sheet.id}.pdf")
    assert pdf is not None and pdf.startswith(b"%PDF")
    pdf_text = " ".join(
        " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split()
    )
    assert "Marie Durand" in pdf_text and "le café non" in pdf_text
    [sent] = outbox(db)
    assert sent.status == MessageStatus.sent
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "instruction_sheet.send")).all()
    assert len(events) == 2 and all(e.patient_id == patient_id for e in events)
    assert all(EDITED not in str(e.details) for e in events)  # the audit holds no text


def test_contact_choices_are_respected(db, settings, staff, job_queue) -> None:
    secretary = user(db, "secretaire")
    no_email = add_reachable_patient(db, "Petit", "Louis", None)
    opted_out = add_reachable_patient(db, "Roux", "Anne", "anne.roux@exemple.fr")
    reachable = add_reachable_patient(db, "Blanc", "Léa", "lea.blanc@exemple.fr")
    db.commit()
    notification_consent.record_choice(db, ACTOR, opted_out, Channel.email, opted_out=True)
    db.commit()
    sheets_by_patient = {p: approved(db, settings, p) for p in (no_email, opted_out, reachable)}

    with pytest.raises(sheets.CannotEmail, match="désactivé"):  # email off in the settings
        sheets.send_to_patient(db, ACTOR, settings, secretary, sheets_by_patient[reachable].id or 0)
    enable(db)
    with pytest.raises(sheets.CannotEmail, match="pas d'adresse"):
        sheets.send_to_patient(db, ACTOR, settings, secretary, sheets_by_patient[no_email].id or 0)
    with pytest.raises(sheets.CannotEmail, match="refusé"):
        sheets.send_to_patient(db, ACTOR, settings, secretary, sheets_by_patient[opted_out].id or 0)
    db.rollback()
    assert outbox(db) == []

    # An opt-out recorded after the sheet was queued still stops it.
    sheets.send_to_patient(db, ACTOR, settings, secretary, sheets_by_patient[reachable].id or 0)
    db.commit()
    notification_consent.record_choice(db, ACTOR, reachable, Channel.email, opted_out=True)
    db.commit()
    run_jobs(job_queue)
    [message] = outbox(db)
    assert message.status == MessageStatus.cancelled


def test_pages_send_button_after_approval_and_the_sheet_shows_it_was_sent(
    db,
    settings,
    staff,
    logged_in,
    job_queue,
    smtp_server,  # noqa: F811
) -> None:
    enable(db)
    patient_id = add_reachable_patient(db, "Lemoine", "Paul", "paul.lemoine@exemple.fr")
    db.commit()
    sheet = drafted(db, settings, patient_id)
    html = {"accept": "text/html"}
    url = f"/consignes/{sheet.id}"

    client = logged_in("secretaire")
    page = client.get(url, headers=html)
    assert "Envoyer au patient" not in page.text
    refused = client.post(f"{url}/envoyer", headers=html)
    assert refused.status_code == 409 and "pas approuvée" in refused.text
    assert outbox(db) == []

    client = logged_in("medecin")
    assert client.post(f"{url}/approuver", headers=html, follow_redirects=False).status_code == 303
    client = logged_in("secretaire")
    page = client.get(url, headers=html)
    assert "Envoyer au patient" in page.text and f'action="{url}/envoyer"' in page.text
    client.headers.pop("x-csrf-token")
    forged = client.post(f"{url}/envoyer", headers=html, follow_redirects=False)
    assert forged.status_code == 403 and outbox(db) == []
    client = logged_in("secretaire")
    sent = client.post(f"{url}/envoyer", headers=html, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith("?fait=sent")
    page = client.get(sent.headers["location"], headers=html)
    assert "Envois au patient" in page.text and 'data-status="planned"' in page.text
    run_jobs(job_queue)
    page = client.get(url, headers=html)
    assert 'data-status="sent"' in page.text
    assert len(smtp_server.mailbox.to("paul.lemoine@exemple.fr")) == 1

"""Sending one outbox message as a durable job (email or SMS), exactly once per message, and
passing an unanswered waiting-list offer on when it expires. Registered job handlers."""

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from app.config.settings import Settings
from app.jobs import store as jobs
from app.jobs.store import JobContext, PermanentJobError
from app.services.core import audit
from app.services.documents import instruction_sheets
from app.services.notifications import calendar as notification_calendar
from app.services.notifications import consent as notification_consent
from app.services.notifications import mail, practice_settings
from app.services.notifications import rendering as templates
from app.services.notifications.planning import (
    OFFER_EXPIRY_JOB,
    OPTED_OUT_NOTE,
    SEND_ATTEMPTS,
    SEND_JOB,
    start_stamp,
)
from app.services.notifications.sms_gateway import SmsRejected, gateway_from_settings
from app.services.scheduling import offer_links, self_service, waiting_list
from models.appointments import Appointment, AppointmentStatus, OfferStatus, WaitingOffer
from models.documents import ReviewStatus
from models.instruction_sheets import InstructionSheet
from models.jobs import Job, JobStatus
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient, PatientInputError, normalize_email, normalize_phone
from models.practice import Practitioner
from models.types import utcnow

SYSTEM = audit.Actor.system("notifications")
APPOINTMENT_KINDS = (MessageKind.confirmation, MessageKind.reminder, MessageKind.moved)
ICS_SUMMARY = {"fr": "Rendez-vous", "en": "Appointment"}
EXPIRY_TOLERANCE = timedelta(seconds=2)


class Undeliverable(PermanentJobError):
    """The message cannot go out as it stands (no or a malformed address, nothing set up)."""


@dataclass(frozen=True)
class Outgoing:
    """A rendered message and where it goes."""

    channel: Channel
    to: str
    rendered: templates.RenderedMessage
    attachments: tuple[mail.Attachment, ...] = ()


def obsolete_reason(session: Session, message: OutboxMessage, now: datetime) -> str | None:
    """Why a planned message must not go out any more, or ``None``."""
    if message.kind == MessageKind.test:
        return None
    chosen = practice_settings.current(session)
    enabled = chosen.email_enabled if message.channel == Channel.email else chosen.sms_enabled
    if not enabled:
        return "Canal désactivé dans les réglages."
    if message.patient_id is not None and not notification_consent.allowed(
        session, message.patient_id, Channel(message.channel)
    ):
        return OPTED_OUT_NOTE
    if message.kind in APPOINTMENT_KINDS:
        appointment = session.get(Appointment, message.appointment_id or 0)
        if appointment is None or appointment.status not in (
            AppointmentStatus.booked,
            AppointmentStatus.confirmed,
        ):
            return "Rendez-vous annulé."
        if appointment.starts_at <= now:
            return "Rendez-vous passé."
        if message.kind != MessageKind.confirmation and (
            start_stamp(appointment.starts_at) not in message.idempotency_key
        ):
            return "Rendez-vous déplacé."
    if message.kind == MessageKind.waiting_offer:
        offer = session.get(WaitingOffer, message.offer_id or 0)
        if offer is None or offer.status != OfferStatus.pending or offer.expires_at <= now:
            return "Proposition close."
    if message.kind == MessageKind.instructions:
        sheet = session.get(InstructionSheet, message.instruction_sheet_id or 0)
        if sheet is None or not instruction_sheets.can_be_sent(sheet):
            return "Fiche de consignes non approuvée ou effacée."
    return None


def _address(channel: Channel, value: str | None) -> str:
    """The patient's address for the channel, checked; a bad one fails for good."""
    if channel == Channel.email:
        if not value:
            raise Undeliverable("Pas d'adresse e-mail pour ce patient.")
        try:
            return normalize_email(value) or ""
        except PatientInputError as exc:
            raise Undeliverable("Adresse e-mail invalide : corrigez-la sur la fiche.") from exc
    if not value:
        raise Undeliverable("Pas de numéro de téléphone pour ce patient.")
    try:
        return normalize_phone(value) or ""
    except PatientInputError as exc:
        raise Undeliverable("Numéro de téléphone invalide : corrigez-le sur la fiche.") from exc


def _appointment_context(
    session: Session,
    settings: Settings,
    appointment: Appointment,
    language: str,
    now: datetime,
    *,
    with_link: bool,
) -> dict[str, object]:
    tz = settings.tz
    practitioner = session.get(Practitioner, appointment.practitioner_id)
    context: dict[str, object] = {
        "practitioner": practitioner.display_name if practitioner else "",
        "date": templates.long_date(appointment.starts_at, tz, language),
        "date_short": templates.short_date(appointment.starts_at, tz),
        "time": templates.clock(appointment.starts_at, tz),
        "manage_url": "",
        "can_cancel": False,
        "cutoff_date": "",
        "cutoff_time": "",
        "questionnaire": False,
        "questionnaire_url": "",
    }
    if with_link:
        token = self_service.link_token(session, settings.resolved_secret_key(), appointment)
        url = f"{settings.public_url.rstrip('/')}/rdv/{token}"
        last, _ = self_service.cutoff(session, appointment)
        context.update(
            manage_url=url,
            can_cancel=now < last,
            cutoff_date=templates.long_date(last, tz, language),
            cutoff_time=templates.clock(last, tz),
            questionnaire=self_service.has_open_questionnaire(session, appointment.id or 0, now),
            questionnaire_url=f"{url}#questionnaire",
        )
    return context


def _instructions(
    session: Session,
    settings: Settings,
    message: OutboxMessage,
    channel: Channel,
    to: str,
    language: str,
    context: dict[str, object],
) -> Outgoing:
    """An approved instruction sheet: its approved text in the body, its PDF attached."""
    if channel != Channel.email:
        raise Undeliverable("Une fiche de consignes ne part que par e-mail.")
    sheet = session.get(InstructionSheet, message.instruction_sheet_id or 0)
    if sheet is None or sheet.patient_id != message.patient_id:
        raise Undeliverable("Fiche de consignes introuvable.")
    if sheet.status != ReviewStatus.approved or not sheet.approved_text:
        raise Undeliverable("Fiche de consignes non approuvée.")
    context.update(title=sheet.title, sheet_text=sheet.approved_text)
    rendered = templates.render(str(message.kind), language, context)
    pdf = instruction_sheets.sheet_pdf(session, SYSTEM, settings, sheet.id or 0)
    attachment = mail.Attachment(f"consignes-{sheet.id}.pdf", pdf, "application", "pdf")
    return Outgoing(channel, to, rendered, (attachment,))


def compose(
    session: Session, settings: Settings, message: OutboxMessage, now: datetime
) -> Outgoing:
    """Render the message in the patient's language with its links and attachment."""
    channel = Channel(message.channel)
    tz = settings.tz
    context: dict[str, object] = {
        "practice_name": settings.practice_name,
        "practice_address": settings.practice_address,
    }
    attachments: tuple[mail.Attachment, ...] = ()
    if message.kind == MessageKind.test:
        language = "fr"
        to = _address(channel, message.recipient)
        context.update(date=templates.long_date(now, tz, language), time=templates.clock(now, tz))
        rendered = templates.render(str(message.kind), language, context)
        return Outgoing(channel, to, rendered)
    patient = session.get(Patient, message.patient_id or 0)
    if patient is None:
        raise Undeliverable("Patient introuvable.")
    language = templates.language_of(patient.language)
    to = _address(channel, patient.email if channel == Channel.email else patient.phone)
    if message.kind == MessageKind.waiting_offer:
        offer = session.get(WaitingOffer, message.offer_id or 0)
        if offer is None:
            raise Undeliverable("Proposition introuvable.")
        practitioner = offer_links.practitioner(session, offer)
        token = offer_links.offer_token(session, settings.resolved_secret_key(), offer)
        url = f"{settings.public_url.rstrip('/')}/offre/{token}"
        context.update(
            practitioner=practitioner.display_name if practitioner else "",
            date=templates.long_date(offer.starts_at, tz, language),
            date_short=templates.short_date(offer.starts_at, tz),
            time=templates.clock(offer.starts_at, tz),
            expires_date=templates.long_date(offer.expires_at, tz, language),
            expires_time=templates.clock(offer.expires_at, tz),
            offer_url=url,
            accept_url=f"{url}?reponse=accepter",
            decline_url=f"{url}?reponse=refuser",
        )
        return Outgoing(channel, to, templates.render(str(message.kind), language, context))
    if message.kind == MessageKind.instructions:
        return _instructions(session, settings, message, channel, to, language, context)
    appointment = session.get(Appointment, message.appointment_id or 0)
    if appointment is None:
        raise Undeliverable("Rendez-vous introuvable.")
    context.update(
        _appointment_context(
            session,
            settings,
            appointment,
            language,
            now,
            with_link=message.kind in APPOINTMENT_KINDS,
        )
    )
    rendered = templates.render(str(message.kind), language, context)
    if channel == Channel.email and message.kind != MessageKind.reminder:
        practitioner = session.get(Practitioner, appointment.practitioner_id)
        if practitioner is not None:
            ics = notification_calendar.appointment_ics(
                appointment,
                practitioner,
                practice_name=settings.practice_name,
                address=settings.practice_address,
                summary=ICS_SUMMARY[language],
                cancelled=message.kind == MessageKind.cancelled,
                now=now,
            )
            method = "CANCEL" if message.kind == MessageKind.cancelled else "PUBLISH"
            attachments = (
                mail.Attachment("rendez-vous.ics", ics, "text", "calendar", {"method": method}),
            )
    return Outgoing(channel, to, rendered, attachments)


def deliver(session: Session, settings: Settings, message: OutboxMessage, out: Outgoing) -> None:
    """Hand the message to the SMTP server or the SMS gateway."""
    chosen = practice_settings.current(session)
    if out.channel == Channel.email:
        sender_email = chosen.sender_email or settings.smtp_sender
        if not sender_email:
            raise Undeliverable("Adresse d'expédition non configurée (réglages ou SMTP).")
        try:
            sender = mail.sender_for(settings)
        except mail.MailNotConfigured as exc:
            raise Undeliverable("Serveur d'envoi (SMTP) non configuré.") from exc
        email = mail.build_message(
            sender_name=chosen.sender_name or settings.practice_name,
            sender_email=sender_email,
            to=out.to,
            subject=out.rendered.subject,
            text=out.rendered.text,
            html=out.rendered.html,
            reply_to=chosen.reply_to or None,
            message_id_key=f"accueil-notification-{message.id}",
            attachments=out.attachments,
        )
        try:
            sender.send(email)
        except mail.MailRejected as exc:
            raise Undeliverable("Adresse refusée par le serveur d'envoi.") from exc
        return
    gateway = gateway_from_settings(settings)
    if gateway is None:
        raise Undeliverable("Passerelle SMS non configurée.")
    try:
        gateway.send(out.to, out.rendered.sms, chosen.sms_sender or settings.practice_name[:11])
    except SmsRejected as exc:
        raise Undeliverable("Message refusé par la passerelle SMS.") from exc


def failure_text(exc: BaseException) -> str:
    """What the outbox shows about a failed attempt (never an address or a message body)."""
    if isinstance(exc, PermanentJobError):
        return str(exc)[:300]
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return f"Serveur d'envoi injoignable ou en erreur ({type(exc).__name__})."
    return jobs.short_error(exc)[:300]


def _record_failure(session: Session, message_id: int, exc: Exception, final: bool) -> None:
    session.rollback()
    message = session.get(OutboxMessage, message_id)
    if message is None:
        return
    message.attempts += 1
    message.last_error = failure_text(exc)
    message.updated_at = utcnow()
    if final:
        message.status = MessageStatus.failed
    session.add(message)
    audit.record(
        session,
        SYSTEM,
        "notification.send",
        record_type="notification",
        record_id=message.id,
        patient_id=message.patient_id,
        outcome="failed" if final else "retry",
        details={"kind": str(message.kind), "channel": str(message.channel)},
    )
    session.commit()


def _gave_up(session: Session, settings: Settings, job: Job) -> None:
    """The job failed for good or was cancelled: so is its message, if still planned."""
    message = session.get(OutboxMessage, int(job.payload.get("message_id") or 0))
    if message is None or message.status != MessageStatus.planned:
        return
    if job.status == JobStatus.cancelled:
        message.status = MessageStatus.cancelled
        message.note = "Envoi annulé par un administrateur."
    else:
        message.status = MessageStatus.failed
        message.last_error = message.last_error or job.last_error[:300]
    message.updated_at = utcnow()
    session.add(message)


@jobs.handler(SEND_JOB, max_attempts=SEND_ATTEMPTS, on_give_up=_gave_up)
def send_message(ctx: JobContext) -> None:
    """Send one outbox message once: a message already sent or cancelled is left alone."""
    session = ctx.session
    message_id = int(ctx.payload.get("message_id") or 0)
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise PermanentJobError("Message introuvable.")
    if message.status in (MessageStatus.sent, MessageStatus.cancelled):
        return
    now = utcnow()
    reason = obsolete_reason(session, message, now)
    if reason is not None:
        message.status = MessageStatus.cancelled
        message.note = reason
        message.updated_at = now
        session.add(message)
        return
    try:
        outgoing = compose(session, ctx.settings, message, now)
        session.commit()  # link rows and token hashes: kept even if the network fails
        deliver(session, ctx.settings, message, outgoing)
    except Exception as exc:
        final = isinstance(exc, PermanentJobError) or ctx.attempt >= ctx.max_attempts
        _record_failure(session, message_id, exc, final)
        raise
    message.status = MessageStatus.sent
    message.sent_at = utcnow()
    message.attempts += 1
    message.last_error = ""
    message.updated_at = message.sent_at
    session.add(message)
    audit.record(
        session,
        SYSTEM,
        "notification.send",
        record_type="notification",
        record_id=message.id,
        patient_id=message.patient_id,
        details={
            "kind": str(message.kind),
            "channel": str(message.channel),
            "appointment_id": message.appointment_id,
            "offer_id": message.offer_id,
        },
    )


@jobs.handler(OFFER_EXPIRY_JOB, max_attempts=5)
def expire_offer(ctx: JobContext) -> None:
    """An offer left unanswered past its time expires; the slot goes to the next patient."""
    offer = ctx.session.get(WaitingOffer, int(ctx.payload.get("offer_id") or 0))
    if offer is None or offer.status != OfferStatus.pending:
        return
    now = utcnow()
    if offer.expires_at > now + EXPIRY_TOLERANCE:
        raise RuntimeError("offer not yet expired")  # comes back after the retry delay
    waiting_list.decline_offer(
        ctx.session,
        SYSTEM,
        ctx.settings.tz,
        offer.id or 0,
        status=OfferStatus.expired,
        now=max(now, offer.expires_at),
    )

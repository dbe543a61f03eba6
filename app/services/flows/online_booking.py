"""Online booking by a patient, from the held slot to the appointment, and its refusal by
the secretary.

1. ``send_code``: the identity typed is kept on the hold and a one-time code goes to the
   email typed (and by SMS when the gateway is on). No patient lookup happens here, so the
   answer and the work are the same whether the person is known or not.
2. ``confirm``: the code proven, the identity is matched to a record (look-alike rules plus
   the proven email) or registered as pending; the slot is booked through the scheduling
   service with the hold, which plans the confirmation and reminders (with the cancel/move
   link); a pre-consultation questionnaire of the visit type is sent with it.
3. ``refuse``: a secretary refuses an online booking; the patient is told by the usual
   cancellation message and the slot goes to the waiting list.
4. ``release_expired_holds``: the periodic sweep (every minute) that releases the holds
   whose time ran out and forgets what their holders typed.
"""

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.booking import codes, holds, throttle
from app.services.booking import rules as booking_rules
from app.services.booking.holds import HoldExpired
from app.services.booking.identity import IdentityInput, match_patient
from app.services.booking.public_slots import SlotGone, public_slots
from app.services.core import audit
from app.services.core.errors import Conflict, DomainError, InvalidInput, NotFound
from app.services.flows import agenda_changes
from app.services.notifications import mail, planning
from app.services.notifications import practice_settings as notification_settings
from app.services.notifications.sms_gateway import SmsRejected, gateway_from_settings
from app.services.patients.records import create_patient
from app.services.preconsultation import links as preconsultation_links
from app.services.scheduling.agenda import SlotTaken, book_appointment
from models.appointments import Appointment, AppointmentSource, AppointmentStatus
from models.notifications import Channel, MessageKind
from models.online_booking import SlotHold
from models.patients import Patient, RegistrationStatus
from models.questionnaires import Questionnaire

log = logging.getLogger(__name__)
RELEASE_HOLDS = "release_expired_holds"

CODE_TEXT = {
    "fr": (
        "Votre code de confirmation",
        "Bonjour,\n\nVoici votre code pour confirmer votre rendez-vous au {practice} : {code}\n\n"
        "Il est valable quelques minutes. Si vous n'avez rien demandé, ignorez ce message.\n",
        "{practice} : votre code de confirmation est {code}.",
    ),
    "en": (
        "Your confirmation code",
        "Hello,\n\nHere is your code to confirm your appointment at {practice}: {code}\n\n"
        "It is valid for a few minutes. If you did not ask for it, ignore this message.\n",
        "{practice}: your confirmation code is {code}.",
    ),
}


class CodeNotSent(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Le code n'a pas pu être envoyé : vérifiez l'adresse e-mail ou appelez le cabinet.",
            "The code could not be sent: check the email address or call the practice.",
        )


class WrongCode(InvalidInput):
    def __init__(self, left: int) -> None:
        super().__init__(
            f"Code incorrect. Essais restants : {left}.",
            f"Wrong code. Tries left: {left}.",
            attempts_left=left,
        )
        self.attempts_left = left


@dataclass(frozen=True)
class Booked:
    appointment: Appointment
    questionnaire_sent: bool


def sms_on(session: Session, settings: Settings) -> bool:
    return bool(
        notification_settings.current(session).sms_enabled and gateway_from_settings(settings)
    )


def _send(
    session: Session, settings: Settings, identity: IdentityInput, code: str, lang: str
) -> None:
    subject, text, sms = CODE_TEXT["en" if lang == "en" else "fr"]
    chosen = notification_settings.current(session)
    sender_email = chosen.sender_email or settings.smtp_sender
    if not sender_email or not identity.email:
        raise CodeNotSent()
    try:
        sender = mail.sender_for(settings)
        sender.send(
            mail.build_message(
                sender_name=chosen.sender_name or settings.practice_name,
                sender_email=sender_email,
                to=identity.email,
                subject=f"{subject} — {settings.practice_name}",
                text=text.format(practice=settings.practice_name, code=code),
                reply_to=chosen.reply_to or None,
            )
        )
    except (mail.MailNotConfigured, mail.MailRejected, OSError) as exc:
        raise CodeNotSent() from exc
    if identity.phone and sms_on(session, settings):
        gateway = gateway_from_settings(settings)
        if gateway is not None:
            with suppress(SmsRejected, OSError):  # the email carries the same code
                gateway.send(
                    identity.phone,
                    sms.format(practice=settings.practice_name, code=code),
                    chosen.sms_sender or settings.practice_name[:11],
                )


def send_code(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    token: str,
    identity: IdentityInput,
    *,
    limits: throttle.Limits,
    now: datetime,
) -> SlotHold:
    """Keep the identity on the hold and send a one-time code to the email typed."""
    secret = settings.resolved_secret_key()
    hold = holds.live_hold(session, token, now, for_update=True)
    keys = [codes.contact_key(secret, identity.email or "")]
    if identity.phone:
        keys.append(codes.contact_key(secret, identity.phone))
    throttle.check_code(session, limits, keys, now)
    code = codes.new_code()
    _send(session, settings, identity, code, hold.language)
    rules = booking_rules.current(session)
    hold.birth_name, hold.first_name = identity.birth_name, identity.first_name
    hold.birth_date, hold.sex = identity.birth_date, str(identity.sex)
    hold.phone, hold.email = identity.phone, identity.email
    hold.contact_hash = keys[0]
    hold.code_hash = codes.code_hash(secret, hold.id or 0, code)
    hold.code_sent_at, hold.code_attempts, hold.verified_at = now, 0, None
    holds.extend(hold, rules, now)
    session.add(hold)
    audit.record(
        session, actor, "online_booking.identity", record_type=holds.RECORD_TYPE, record_id=hold.id
    )
    for key in keys:
        audit.record(
            session, actor, throttle.CODE_ACTION, record_type=throttle.CONTACT_RECORD, record_id=key
        )
    return hold


def _future_online(session: Session, patient_id: int, now: datetime) -> int:
    count = session.exec(
        select(func.count())
        .select_from(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.source == AppointmentSource.online,
            col(Appointment.status).in_([AppointmentStatus.booked, AppointmentStatus.confirmed]),
            Appointment.starts_at > now,
        )
    ).one()
    return int(count or 0)


def _patient_for(
    session: Session, actor: audit.Actor, hold: SlotHold, allow_new: bool
) -> tuple[Patient, bool]:
    identity = IdentityInput.model_validate(
        {
            "birth_name": hold.birth_name,
            "first_name": hold.first_name,
            "birth_date": hold.birth_date,
            "sex": hold.sex,
            "phone": hold.phone,
            "email": hold.email,
        }
    )
    data = identity.as_patient(hold.language)
    known = match_patient(session, data)
    if known is not None:
        return known, False
    if not allow_new:
        raise Conflict(
            "La prise de rendez-vous en ligne est réservée aux patients déjà suivis au cabinet, "
            "avec l'adresse e-mail connue du cabinet. Appelez le cabinet pour un premier "
            "rendez-vous.",
            "Online booking is for the practice's patients, with the email address the "
            "practice has on file. Please call the practice for a first appointment.",
        )
    patient = create_patient(session, actor, data, confirm_not_duplicate=True)
    patient.registration_status = RegistrationStatus.pending
    session.add(patient)
    session.flush()
    return patient, True


def _send_questionnaire(
    session: Session, actor: audit.Actor, settings: Settings, appointment: Appointment
) -> bool:
    """Send the visit type's own questionnaire, when it has one."""
    own = session.exec(
        select(Questionnaire.id).where(
            col(Questionnaire.is_active).is_(True),
            Questionnaire.visit_type == appointment.visit_type,
        )
    ).first()
    if own is None:
        return False
    try:
        preconsultation_links.send_preconsultation(
            session, actor, appointment.id or 0, secret=settings.resolved_secret_key()
        )
    except DomainError:
        return False
    return True


def confirm(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    token: str,
    code: str,
    *,
    now: datetime,
) -> Booked:
    """Check the code, find or register the patient and book the held slot."""
    secret = settings.resolved_secret_key()
    tz = settings.tz
    hold = holds.live_hold(session, token, now, for_update=True)
    if hold.code_hash is None:
        raise InvalidInput("Indiquez d'abord votre identité.", "Give your identity first.")
    if not codes.matches(secret, hold.id or 0, code, hold.code_hash):
        hold.code_attempts += 1
        left = codes.MAX_ATTEMPTS - hold.code_attempts
        session.add(hold)
        audit.record(
            session,
            actor,
            "online_booking.code_wrong",
            record_type=holds.RECORD_TYPE,
            record_id=hold.id,
            outcome="refused",
        )
        if left <= 0:
            holds.release(session, actor, hold, now, "too_many_codes")
            raise HoldExpired()
        raise WrongCode(left)
    hold.verified_at = now
    rules = booking_rules.current(session)
    patient, is_new = _patient_for(session, actor, hold, rules.allow_new_patients)
    if _future_online(session, patient.id or 0, now) >= rules.max_future_bookings:
        raise Conflict(
            f"Vous avez déjà {rules.max_future_bookings} rendez-vous à venir pris en ligne : "
            "appelez le cabinet pour en prendre un autre.",
            f"You already have {rules.max_future_bookings} upcoming appointments booked "
            "online: please call the practice for another one.",
        )
    try:
        appointment = book_appointment(
            session,
            actor,
            tz,
            patient_id=patient.id or 0,
            practitioner_id=hold.practitioner_id,
            starts_at=hold.starts_at,
            visit_type=hold.visit_type,
            reason="Réservé en ligne",
            source=AppointmentSource.online,
            now=now,
            hold_id=hold.id,
        )
    except SlotTaken as exc:
        # Taken at the desk meanwhile: the hold is given back, the next slots are offered.
        session.rollback()
        gone = session.get(SlotHold, hold.id)
        if gone is not None:
            holds.release(session, actor, gone, now, "taken")
        raise SlotGone(
            public_slots(
                session,
                tz,
                rules,
                practitioner_id=None,
                visit_type=hold.visit_type,
                now=now,
                start=hold.starts_at,
                limit=3,
            ),
            tz,
        ) from exc
    hold.appointment_id = appointment.id
    hold.released_at, hold.release_reason = now, "booked"
    holds.forget_identity(hold)  # the record has it now
    session.add(hold)
    sent = _send_questionnaire(session, actor, settings, appointment)
    audit.record(
        session,
        actor,
        "online_booking.confirm",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=patient.id,
        details={"hold_id": hold.id, "new_patient": is_new, "questionnaire": sent},
    )
    return Booked(appointment, sent)


def _tell_refused(session: Session, settings: Settings, appointment: Appointment) -> None:
    """The patient saw "booked" on the page: the cancellation message goes out even when
    the confirmation had not left yet (the usual rule would then stay silent)."""
    patient = session.get(Patient, appointment.patient_id)
    if patient is None:
        return
    chosen = notification_settings.current(session)
    now = datetime.now(UTC)
    channels = []
    if chosen.email_enabled and patient.email:
        channels.append((Channel.email, now))
    if chosen.sms_enabled and patient.phone:
        opening = planning.next_window_start(
            now, settings.tz, chosen.window_start, chosen.window_end
        )
        channels.append((Channel.sms, opening))
    for channel, at in channels:
        planning.plan_message(  # keyed as the usual cancellation: never sent twice
            session,
            key=planning.message_key(MessageKind.cancelled, channel, appointment.id),
            kind=MessageKind.cancelled,
            channel=channel,
            planned_at=at,
            patient_id=patient.id,
            appointment_id=appointment.id,
        )


def refuse(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    appointment_id: int,
    *,
    reason: str = "",
) -> Appointment:
    """A secretary refuses an appointment booked online: cancelled, the patient told by the
    cancellation message, the slot offered to the waiting list."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    if appointment.source != AppointmentSource.online:
        raise InvalidInput(
            "Ce rendez-vous n'a pas été pris en ligne.", "This appointment was not booked online."
        )
    text = reason.strip()[:150] or "Refusé par le cabinet"
    cancelled, _ = agenda_changes.cancel(
        session, actor, settings.tz, appointment_id, reason=f"Réservation en ligne refusée : {text}"
    )
    _tell_refused(session, settings, cancelled)
    audit.record(
        session,
        actor,
        "online_booking.refuse",
        record_type="appointment",
        record_id=appointment_id,
        patient_id=appointment.patient_id,
        details={"reason": text},
    )
    return cancelled


def release_expired_holds(engine: Engine, settings: Settings) -> int:
    """The periodic sweep: every hold whose time ran out is released and what its holder
    typed is forgotten (RGPD: kept only while the hold lives). Its own transaction; never
    raises (the next minute tries again); returns how many were released."""
    try:
        with Session(engine) as session:
            released = holds.release_expired(session, datetime.now(UTC))
            session.commit()
    except Exception as exc:
        log.warning("expired slot holds not released: %s", type(exc).__name__)
        return 0
    if released:
        log.info("%d expired slot holds released", released)
    return released

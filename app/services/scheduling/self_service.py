"""The patient's self-service link of one appointment: signed, bound to the appointment,
stored hashed; the patient confirms presence or cancels up to the practice's cut-off."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from app.services.core import audit, link_tokens
from app.services.core.errors import Conflict
from app.services.notifications import practice_settings
from app.services.preconsultation import links as pc
from models.appointments import Appointment, AppointmentStatus
from models.notifications import AppointmentLink
from models.practice import Practitioner
from models.questionnaires import PreConsultation
from models.types import utcnow

PURPOSE = "appointment"
RECORD_TYPE = "appointment_link"


class LinkProblem:
    """Why a self-service link cannot be used; each has its own page."""

    invalid = "invalid"
    expired = "expired"
    used = "used"
    cancelled = "cancelled"


class TooLateToCancel(Conflict):
    def __init__(self, hours: int) -> None:
        super().__init__(
            f"Il est trop tard pour annuler en ligne (moins de {hours} h avant le rendez-vous) : "
            "appelez le cabinet.",
            f"It is too late to cancel online (less than {hours} h before the appointment): "
            "please call the practice.",
        )


class AlreadyCancelled(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Ce rendez-vous est déjà annulé.", "This appointment is already cancelled."
        )


class NoQuestionnaire(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Aucun questionnaire n'attend de réponse pour ce rendez-vous.",
            "No questionnaire is waiting for an answer for this appointment.",
        )


@dataclass
class LinkAccess:
    """The outcome of opening a link: the link and its appointment, or the problem."""

    link: AppointmentLink | None
    appointment: Appointment | None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None and self.link is not None and self.appointment is not None


@dataclass(frozen=True)
class LinkView:
    """What the self-service page shows."""

    appointment: Appointment
    practitioner: Practitioner
    cutoff_at: datetime
    can_cancel: bool
    confirmed: bool
    questionnaire_open: bool


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def link_token(session: Session, secret: str, appointment: Appointment) -> str:
    """The appointment's link token (its row is created on first use; only the hash and a
    nonce are stored, the token is derived again with the secret key)."""
    link = session.exec(
        select(AppointmentLink).where(AppointmentLink.appointment_id == appointment.id)
    ).first()
    if link is None:
        link = AppointmentLink(
            appointment_id=appointment.id or 0,
            nonce=link_tokens.new_nonce(),
            token_hash=f"pending-{link_tokens.new_nonce()}",
            expires_at=appointment.ends_at,
        )
        session.add(link)
        session.flush()
        link.token_hash = link_tokens.hash_token(
            link_tokens.make_token(secret, PURPOSE, link.id or 0, link.nonce)
        )
    link.expires_at = appointment.ends_at
    session.add(link)
    session.flush()
    return link_tokens.make_token(secret, PURPOSE, link.id or 0, link.nonce)


def csrf_for(secret: str, link: AppointmentLink) -> str:
    return link_tokens.link_csrf(secret, PURPOSE, link.token_hash)


def csrf_ok(secret: str, link: AppointmentLink, sent: str | None) -> bool:
    return link_tokens.csrf_ok(secret, PURPOSE, link.token_hash, sent)


def open_link(
    session: Session,
    actor: audit.Actor,
    token: str,
    *,
    secret: str,
    now: datetime | None = None,
    for_update: bool = False,
) -> LinkAccess:
    """Check a token and audit the access; never raises, so a denial is committed too."""
    moment = _now(now)
    link = None
    row = link_tokens.row_id(token)
    if row is not None:
        query = select(AppointmentLink).where(AppointmentLink.id == row)
        found = session.exec(query.with_for_update() if for_update else query).first()
        if found is not None and link_tokens.matches(
            secret, PURPOSE, token, row, found.nonce, found.token_hash
        ):
            link = found
    appointment = session.get(Appointment, link.appointment_id) if link else None
    problem = None
    if link is None or appointment is None:
        problem = LinkProblem.invalid
    elif link.used_at is not None:
        problem = LinkProblem.used
    elif appointment.status == AppointmentStatus.cancelled:
        problem = LinkProblem.cancelled
    elif appointment.ends_at <= moment or appointment.status not in (
        AppointmentStatus.booked,
        AppointmentStatus.confirmed,
    ):
        problem = LinkProblem.expired
    if link is not None and problem is None and link.opened_at is None:
        link.opened_at = moment
        session.add(link)
    audit.record(
        session,
        actor,
        "appointment_link.open" if problem is None else "appointment_link.denied",
        record_type=RECORD_TYPE,
        record_id=link.id if link else None,
        patient_id=appointment.patient_id if appointment else None,
        outcome="ok" if problem is None else "denied",
        details={"problem": problem} if problem else None,
    )
    return LinkAccess(link, appointment, problem)


def _open_preconsultation(
    session: Session, appointment_id: int, now: datetime
) -> PreConsultation | None:
    return session.exec(
        select(PreConsultation)
        .where(
            PreConsultation.appointment_id == appointment_id,
            col(PreConsultation.status).in_(pc.OPEN_STATUSES),
            PreConsultation.expires_at > now,
            PreConsultation.failed_identity_checks < pc.MAX_IDENTITY_ATTEMPTS,
        )
        .order_by(col(PreConsultation.id).desc())
    ).first()


def has_open_questionnaire(session: Session, appointment_id: int, now: datetime) -> bool:
    return _open_preconsultation(session, appointment_id, now) is not None


def cutoff(session: Session, appointment: Appointment) -> tuple[datetime, int]:
    """The last moment the patient may cancel online, and the cut-off in hours."""
    hours = practice_settings.current(session).cancel_cutoff_hours
    return appointment.starts_at - timedelta(hours=hours), hours


def view(session: Session, access: LinkAccess, *, now: datetime | None = None) -> LinkView:
    """The page's content for a usable link."""
    assert access.appointment is not None and access.link is not None
    appointment = access.appointment
    moment = _now(now)
    practitioner = session.get(Practitioner, appointment.practitioner_id)
    assert practitioner is not None
    last, _ = cutoff(session, appointment)
    return LinkView(
        appointment=appointment,
        practitioner=practitioner,
        cutoff_at=last,
        can_cancel=moment < last,
        confirmed=appointment.status == AppointmentStatus.confirmed,
        questionnaire_open=has_open_questionnaire(session, appointment.id or 0, moment),
    )


def confirm(
    session: Session, actor: audit.Actor, access: LinkAccess, *, now: datetime | None = None
) -> Appointment:
    """The patient confirms they will come (the agenda shows it)."""
    assert access.appointment is not None and access.link is not None
    appointment, link = access.appointment, access.link
    moment = _now(now)
    if appointment.status == AppointmentStatus.booked:
        appointment.status = AppointmentStatus.confirmed
        appointment.updated_at = utcnow()
        session.add(appointment)
    link.confirmed_at = moment
    session.add(link)
    audit.record(
        session,
        actor,
        "appointment.confirm",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=appointment.patient_id,
        details={"via": RECORD_TYPE},
    )
    return appointment


def check_cancellable(
    session: Session, access: LinkAccess, *, now: datetime | None = None
) -> datetime:
    """Refuse a cancellation through the link once cancelled or past the practice's cut-off;
    returns the moment the check was made (the cancellation itself is a flow: it frees the
    slot for the waiting list, see ``app.services.flows.agenda_changes``)."""
    assert access.appointment is not None and access.link is not None
    appointment = access.appointment
    moment = _now(now)
    if appointment.status == AppointmentStatus.cancelled:
        raise AlreadyCancelled()
    last, hours = cutoff(session, appointment)
    if moment >= last:
        raise TooLateToCancel(hours)
    return moment


def mark_used(session: Session, link: AppointmentLink, moment: datetime) -> None:
    """A link that cancelled its appointment cannot be used again."""
    link.used_at = moment
    session.add(link)
    session.flush()


def questionnaire_path(
    session: Session,
    actor: audit.Actor,
    access: LinkAccess,
    *,
    secret: str,
    now: datetime | None = None,
) -> str:
    """A fresh address for the appointment's pending pre-consultation (its answers kept):
    only the hash of a link is stored, so a new token replaces the earlier one."""
    assert access.appointment is not None
    p = _open_preconsultation(session, access.appointment.id or 0, _now(now))
    if p is None:
        raise NoQuestionnaire()
    token = pc.new_token(secret)
    p.token_hash = pc.hash_token(token)
    p.updated_at = utcnow()
    session.add(p)
    audit.record(
        session,
        actor,
        "preconsultation.link_reissue",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=access.appointment.patient_id,
        details={"via": RECORD_TYPE},
    )
    return f"/p/{token}"

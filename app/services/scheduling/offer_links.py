"""Waiting-list offers answered by the patient from a signed link: accept (booked through the
scheduling service, so a slot taken meanwhile is refused clearly) or decline."""

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.core import audit, link_tokens
from app.services.core.errors import Conflict, DomainError
from app.services.scheduling import waiting_list
from models.appointments import (
    Appointment,
    AppointmentSource,
    OfferStatus,
    WaitingListEntry,
    WaitingOffer,
)
from models.practice import Practitioner

PURPOSE = "waiting-offer"
RECORD_TYPE = "waiting_offer"


class OfferProblem:
    """Why an offer link cannot be answered; each has its own page."""

    invalid = "invalid"
    expired = "expired"
    accepted = "accepted"
    declined = "declined"
    taken = "taken"


class SlotGone(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Désolé, ce créneau vient d'être attribué à un autre patient. Vous restez sur la liste "
            "d'attente : le cabinet vous proposera un autre créneau.",
            "Sorry, this slot has just been given to another patient. You stay on the waiting "
            "list: the practice will offer you another slot.",
        )


class OfferExpired(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Cette proposition a expiré et le créneau a été proposé à un autre patient. Vous "
            "restez sur la liste d'attente.",
            "This offer has expired and the slot went to another patient. You stay on the "
            "waiting list.",
        )


@dataclass
class OfferAccess:
    """The offer a link names, and why it cannot be answered (if so)."""

    offer: WaitingOffer | None
    entry: WaitingListEntry | None
    problem: str | None = None


def _nonce(offer: WaitingOffer) -> str:
    return f"{offer.entry_id}-{offer.starts_at.astimezone(UTC):%Y%m%dT%H%M}"


def offer_token(session: Session, secret: str, offer: WaitingOffer) -> str:
    """The offer's link token; only its hash is stored on the offer."""
    token = link_tokens.make_token(secret, PURPOSE, offer.id or 0, _nonce(offer))
    hashed = link_tokens.hash_token(token)
    if offer.token_hash != hashed:
        offer.token_hash = hashed
        session.add(offer)
        session.flush()
    return token


def csrf_for(secret: str, offer: WaitingOffer) -> str:
    return link_tokens.link_csrf(secret, PURPOSE, offer.token_hash or "")


def csrf_ok(secret: str, offer: WaitingOffer, sent: str | None) -> bool:
    return link_tokens.csrf_ok(secret, PURPOSE, offer.token_hash or "", sent)


def _problem(offer: WaitingOffer, now: datetime) -> str | None:
    if offer.status == OfferStatus.accepted:
        return OfferProblem.accepted
    if offer.status == OfferStatus.declined:
        return OfferProblem.declined
    if offer.status == OfferStatus.superseded:
        return OfferProblem.taken
    if offer.status == OfferStatus.expired or offer.expires_at <= now:
        return OfferProblem.expired
    return None


def open_offer(
    session: Session,
    actor: audit.Actor,
    token: str,
    *,
    secret: str,
    now: datetime | None = None,
) -> OfferAccess:
    """Check a token and audit the access; never raises."""
    moment = now or datetime.now(UTC)
    offer = None
    row = link_tokens.row_id(token)
    if row is not None:
        found = session.get(WaitingOffer, row)
        if (
            found is not None
            and found.token_hash
            and link_tokens.matches(secret, PURPOSE, token, row, _nonce(found), found.token_hash)
        ):
            offer = found
    entry = session.get(WaitingListEntry, offer.entry_id) if offer else None
    problem = OfferProblem.invalid if offer is None or entry is None else _problem(offer, moment)
    audit.record(
        session,
        actor,
        "waiting_offer.link_open" if problem is None else "waiting_offer.link_denied",
        record_type=RECORD_TYPE,
        record_id=offer.id if offer else None,
        patient_id=entry.patient_id if entry else None,
        outcome="ok" if problem is None else "denied",
        details={"problem": problem} if problem else None,
    )
    return OfferAccess(offer, entry, problem)


def practitioner(session: Session, offer: WaitingOffer) -> Practitioner | None:
    return session.get(Practitioner, offer.practitioner_id)


def _pass_on_if_expired(
    session: Session, actor: audit.Actor, tz: ZoneInfo, offer: WaitingOffer, now: datetime
) -> None:
    if offer.status == OfferStatus.pending and offer.expires_at <= now:
        waiting_list.decline_offer(
            session, actor, tz, offer.id or 0, status=OfferStatus.expired, now=now
        )
        raise OfferExpired()


def accept(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    access: OfferAccess,
    *,
    now: datetime | None = None,
) -> Appointment:
    """Book the offered slot for the patient. Taken meanwhile (another patient, the
    secretary): ``SlotGone``, and the patient stays on the waiting list."""
    assert access.offer is not None
    moment = now or datetime.now(UTC)
    offer = access.offer
    _pass_on_if_expired(session, actor, tz, offer, moment)
    if offer.status == OfferStatus.superseded:
        raise SlotGone()
    if offer.status == OfferStatus.expired:
        raise OfferExpired()
    try:
        return waiting_list.accept_offer(
            session, actor, tz, offer.id or 0, source=AppointmentSource.patient, now=moment
        )
    except DomainError as exc:
        if _stored_status(session, offer) == OfferStatus.superseded:
            raise SlotGone() from exc
        raise


def _stored_status(session: Session, offer: WaitingOffer) -> OfferStatus:
    """The offer's status as stored now: the failed booking may have superseded it."""
    session.refresh(offer)
    return offer.status


def decline(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    access: OfferAccess,
    *,
    now: datetime | None = None,
) -> WaitingOffer | None:
    """The patient declines: the slot goes to the next waiting patient at once."""
    assert access.offer is not None
    moment = now or datetime.now(UTC)
    _pass_on_if_expired(session, actor, tz, access.offer, moment)
    return waiting_list.decline_offer(session, actor, tz, access.offer.id or 0, now=moment)

"""The waiting list: patients waiting for a slot, and freed slots offered to them in turn."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.notifications import planning as notifications
from app.services.scheduling.agenda import SlotTaken, book_appointment
from app.services.scheduling.slots import NOON, Slot, active_practitioners, appointment_intervals
from models.appointments import (
    Appointment,
    AppointmentSource,
    OfferStatus,
    PartOfDay,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.patients import Patient
from models.types import utcnow

OFFER_LIFETIME = timedelta(hours=2)


@dataclass(frozen=True)
class WaitingView:
    """A waiting entry with its patient and its current offer, if any."""

    entry: WaitingListEntry
    patient: Patient
    offer: WaitingOffer | None
    # The offered slot was booked again meanwhile (or has begun): shown, never bookable.
    stale: bool = False


def add_to_waiting_list(
    session: Session,
    actor: audit.Actor,
    *,
    patient_id: int,
    earliest: date,
    latest: date,
    practitioner_id: int | None = None,
    part_of_day: PartOfDay = PartOfDay.any,
    duration_minutes: int | None = None,
    reason: str = "",
    created_by_id: int | None = None,
    today: date | None = None,
) -> WaitingListEntry:
    """Put a patient on the waiting list for a period (and a practitioner, a part of day)."""
    if session.get(Patient, patient_id) is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    if latest < earliest:
        raise InvalidInput("La période est à l'envers.", "The period ends before it starts.")
    if latest < (today or date.today()):
        raise InvalidInput("La période est déjà passée.", "The period is already over.")
    minutes = duration_minutes
    if minutes is None:
        minutes = (
            active_practitioners(session, practitioner_id)[0].default_duration_minutes
            if practitioner_id
            else 20
        )
    elif practitioner_id is not None:
        active_practitioners(session, practitioner_id)
    if not 5 <= minutes <= 240:
        raise InvalidInput("Durée entre 5 et 240 minutes.", "Duration between 5 and 240 minutes.")
    entry = WaitingListEntry(
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        earliest=earliest,
        latest=latest,
        part_of_day=part_of_day,
        duration_minutes=minutes,
        reason=reason.strip()[:200],
        created_by_id=created_by_id,
    )
    session.add(entry)
    session.flush()
    audit.record(
        session,
        actor,
        "waiting_list.add",
        record_type="waiting_list_entry",
        record_id=entry.id,
        patient_id=patient_id,
    )
    return entry


def _matches(entry: WaitingListEntry, slot: Slot, tz: ZoneInfo) -> bool:
    local = slot.starts_at.astimezone(tz)
    if entry.practitioner_id is not None and entry.practitioner_id != slot.practitioner_id:
        return False
    if not entry.earliest <= local.date() <= entry.latest:
        return False
    if entry.part_of_day == PartOfDay.morning and local.time() >= NOON:
        return False
    if entry.part_of_day == PartOfDay.afternoon and local.time() < NOON:
        return False
    return slot.ends_at - slot.starts_at >= timedelta(minutes=entry.duration_minutes)


def offer_freed_slot(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    slot: Slot,
    *,
    freed_by_appointment_id: int | None = None,
    now: datetime | None = None,
) -> WaitingOffer | None:
    """Offer a freed slot to the first matching waiting patient who has no offer yet."""
    now = now or datetime.now(UTC)
    if slot.starts_at <= now:
        return None
    waiting = session.exec(
        select(WaitingListEntry)
        .where(WaitingListEntry.status == WaitingStatus.waiting)
        .order_by(col(WaitingListEntry.created_at), col(WaitingListEntry.id))
    ).all()
    already = set(
        session.exec(
            select(WaitingOffer.entry_id).where(
                WaitingOffer.practitioner_id == slot.practitioner_id,
                WaitingOffer.starts_at == slot.starts_at,
            )
        ).all()
    )
    for entry in waiting:
        if entry.id in already or not _matches(entry, slot, tz):
            continue
        offer = WaitingOffer(
            entry_id=entry.id or 0,
            practitioner_id=slot.practitioner_id,
            starts_at=slot.starts_at,
            ends_at=slot.starts_at + timedelta(minutes=entry.duration_minutes),
            freed_by_appointment_id=freed_by_appointment_id,
            rank=len(already) + 1,
            expires_at=min(now + OFFER_LIFETIME, slot.starts_at),
        )
        entry.status = WaitingStatus.offered
        entry.updated_at = utcnow()
        session.add_all([offer, entry])
        session.flush()
        audit.record(
            session,
            actor,
            "waiting_list.offer",
            record_type="waiting_offer",
            record_id=offer.id,
            patient_id=entry.patient_id,
            details={
                "starts_at": slot.starts_at.isoformat(),
                "practitioner_id": slot.practitioner_id,
            },
        )
        notifications.offer_made(session, offer, tz, now=now)  # the offer by email / SMS
        return offer
    return None


def _pending_offer(session: Session, offer_id: int) -> tuple[WaitingOffer, WaitingListEntry]:
    offer = session.get(WaitingOffer, offer_id)
    if offer is None:
        raise NotFound("Proposition introuvable.", "Offer not found.")
    entry = session.get(WaitingListEntry, offer.entry_id)
    if entry is None:
        raise NotFound("Proposition introuvable.", "Offer not found.")
    if offer.status != OfferStatus.pending:
        raise Conflict("Cette proposition n'est plus ouverte.", "This offer is no longer open.")
    return offer, entry


def accept_offer(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    offer_id: int,
    *,
    source: AppointmentSource = AppointmentSource.secretary,
    created_by_id: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book the offered slot; if it was taken meanwhile, the patient stays on the list."""
    now = now or datetime.now(UTC)
    offer, entry = _pending_offer(session, offer_id)
    if offer.expires_at <= now:
        raise Conflict("Cette proposition a expiré.", "This offer has expired.")
    try:
        appointment = book_appointment(
            session,
            actor,
            tz,
            patient_id=entry.patient_id,
            practitioner_id=offer.practitioner_id,
            starts_at=offer.starts_at,
            duration_minutes=entry.duration_minutes,
            reason=entry.reason,
            source=source,
            created_by_id=created_by_id,
            now=now,
        )
    except SlotTaken as exc:
        # Someone else got the slot first: the offer lapses, the patient keeps waiting.
        session.rollback()
        offer, entry = _pending_offer(session, offer_id)
        offer.status = OfferStatus.superseded
        entry.status = WaitingStatus.waiting
        offer.updated_at = entry.updated_at = utcnow()
        session.add_all([offer, entry])
        session.commit()
        raise Conflict(
            "Ce créneau vient d'être pris ; le patient reste sur la liste d'attente.",
            "This slot was just taken; the patient stays on the waiting list.",
        ) from exc
    offer.status = OfferStatus.accepted
    offer.booked_appointment_id = appointment.id
    offer.updated_at = utcnow()
    entry.status = WaitingStatus.booked
    entry.updated_at = utcnow()
    session.add_all([offer, entry])
    audit.record(
        session,
        actor,
        "waiting_list.accept",
        record_type="waiting_offer",
        record_id=offer.id,
        patient_id=entry.patient_id,
        details={"appointment_id": appointment.id},
    )
    return appointment


def decline_offer(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    offer_id: int,
    *,
    status: OfferStatus = OfferStatus.declined,
    now: datetime | None = None,
) -> WaitingOffer | None:
    """Close an offer (declined or expired); the slot then goes to the next waiting patient."""
    offer, entry = _pending_offer(session, offer_id)
    offer.status = status
    offer.updated_at = utcnow()
    entry.status = WaitingStatus.waiting
    entry.updated_at = utcnow()
    session.add_all([offer, entry])
    session.flush()
    audit.record(
        session,
        actor,
        f"waiting_list.{status}",
        record_type="waiting_offer",
        record_id=offer.id,
        patient_id=entry.patient_id,
    )
    return offer_freed_slot(
        session,
        actor,
        tz,
        Slot(offer.practitioner_id, offer.starts_at, offer.ends_at),
        freed_by_appointment_id=offer.freed_by_appointment_id,
        now=now,
    )


def expire_offers(
    session: Session, actor: audit.Actor, tz: ZoneInfo, *, now: datetime | None = None
) -> int:
    """Expire pending offers past their time and pass each slot on; returns how many expired."""
    now = now or datetime.now(UTC)
    due = session.exec(
        select(WaitingOffer).where(
            WaitingOffer.status == OfferStatus.pending, WaitingOffer.expires_at <= now
        )
    ).all()
    for offer in due:
        decline_offer(session, actor, tz, offer.id or 0, status=OfferStatus.expired, now=now)
    return len(due)


def withdraw(session: Session, actor: audit.Actor, entry_id: int) -> WaitingListEntry:
    entry = session.get(WaitingListEntry, entry_id)
    if entry is None:
        raise NotFound("Inscription introuvable.", "Waiting-list entry not found.")
    entry.status = WaitingStatus.withdrawn
    entry.updated_at = utcnow()
    for offer in session.exec(
        select(WaitingOffer).where(
            WaitingOffer.entry_id == entry_id, WaitingOffer.status == OfferStatus.pending
        )
    ).all():
        offer.status = OfferStatus.declined
        session.add(offer)
    session.add(entry)
    audit.record(
        session,
        actor,
        "waiting_list.withdraw",
        record_type="waiting_list_entry",
        record_id=entry_id,
        patient_id=entry.patient_id,
    )
    return entry


def _offer_is_stale(session: Session, offer: WaitingOffer) -> bool:
    """Whether a pending offer's slot can no longer be booked: taken again, or begun."""
    if offer.starts_at <= datetime.now(UTC):
        return True
    pid = offer.practitioner_id
    return bool(appointment_intervals(session, [pid], offer.starts_at, offer.ends_at)[pid])


def list_waiting(
    session: Session, actor: audit.Actor, *, include_closed: bool = False
) -> list[WaitingView]:
    """Open entries (waiting or offered) oldest first, each with its pending offer."""
    query = (
        select(WaitingListEntry, Patient)
        .join(Patient, col(Patient.id) == WaitingListEntry.patient_id)
        .order_by(col(WaitingListEntry.created_at), col(WaitingListEntry.id))
    )
    if not include_closed:
        query = query.where(
            col(WaitingListEntry.status).in_([WaitingStatus.waiting, WaitingStatus.offered])
        )
    rows = session.exec(query).all()
    offers = {
        o.entry_id: o
        for o in session.exec(
            select(WaitingOffer).where(WaitingOffer.status == OfferStatus.pending)
        ).all()
    }
    views = [
        WaitingView(entry, patient, offer, offer is not None and _offer_is_stale(session, offer))
        for entry, patient in rows
        for offer in [offers.get(entry.id or 0)]
    ]
    if views:
        audit.record(
            session,
            actor,
            "waiting_list.list",
            record_type="waiting_list_entry",
            details={"entry_ids": [v.entry.id for v in views]},
        )
    return views


def offered_patient(session: Session, actor: audit.Actor, offer_id: int) -> Patient | None:
    """The patient a still-pending offer was made to (the agenda and the waiting list both
    show "slot offered to …" after an offer); None once the offer is answered or expired."""
    for row in list_waiting(session, actor):
        if row.offer is not None and row.offer.id == offer_id:
            return row.patient
    return None

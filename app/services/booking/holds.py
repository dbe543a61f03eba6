"""Slot holds: a patient who picks a slot on the public page keeps it for a few minutes.

The scheduling core treats a live hold as taken (slot search does not offer it, staff booking
refuses it) except for its holder; the database refuses two live holds that overlap (an
exclusion constraint on PostgreSQL, triggers on SQLite), so of many patients racing for one
slot exactly one holds it. Expired holds are released lazily, before a new hold is taken over
them, and by ``release_expired`` (run by a job)."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.services.booking import rules as booking_rules
from app.services.booking.public_slots import SlotGone, public_slots
from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.scheduling.slots import (
    appointment_intervals,
    fits_working_hours,
    hold_intervals,
    resolve_duration,
    to_utc,
    unavailable_intervals,
)
from models.online_booking import OnlineBookingRules, SlotHold
from models.practice import Practitioner

RECORD_TYPE = "slot_hold"
TOKEN_BYTES = 32


class HoldExpired(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Le créneau n'est plus réservé pour vous (délai dépassé) : choisissez-en un autre.",
            "The slot is no longer held for you (time ran out): please choose another one.",
        )


@dataclass(frozen=True)
class TakenHold:
    """A new hold and the token its holder keeps (only its hash is stored)."""

    hold: SlotHold
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _overlap_error(exc: Exception) -> bool:
    return "slot_hold_overlap" in str(getattr(exc, "orig", exc))


# What the patient typed is kept only while the hold lives (RGPD: minimal retention).
FORGET = {
    "birth_name": None,
    "first_name": None,
    "birth_date": None,
    "sex": None,
    "phone": None,
    "email": None,
    "code_hash": None,
}


def forget_identity(hold: SlotHold) -> None:
    for name, value in FORGET.items():
        setattr(hold, name, value)


def _release_expired_over(
    session: Session, practitioner_id: int, start: datetime, end: datetime, now: datetime
) -> None:
    session.execute(
        update(SlotHold)
        .where(
            col(SlotHold.practitioner_id) == practitioner_id,
            col(SlotHold.released_at).is_(None),
            col(SlotHold.expires_at) <= now,
            col(SlotHold.starts_at) < end,
            col(SlotHold.ends_at) > start,
        )
        .values(released_at=now, release_reason="expired", **FORGET)
    )


def release_expired(session: Session, now: datetime) -> int:
    """Release every expired hold (the job's sweep); returns how many."""
    result = session.execute(
        update(SlotHold)
        .where(col(SlotHold.released_at).is_(None), col(SlotHold.expires_at) <= now)
        .values(released_at=now, release_reason="expired", **FORGET)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _slot_gone(
    session: Session,
    tz: ZoneInfo,
    rules: OnlineBookingRules,
    practitioner_id: int | None,
    visit_type: str,
    after: datetime,
    now: datetime,
) -> SlotGone:
    return SlotGone(
        public_slots(
            session,
            tz,
            rules,
            practitioner_id=practitioner_id,
            visit_type=visit_type,
            now=now,
            start=after,
            limit=3,
        ),
        tz,
    )


def check_bookable(
    session: Session,
    tz: ZoneInfo,
    rules: OnlineBookingRules,
    *,
    practitioner_id: int,
    visit_type: str,
    starts_at: datetime,
    now: datetime,
) -> tuple[Practitioner, datetime]:
    """The practitioner and the end of the slot, if the rules allow booking it online."""
    if not rules.enabled:
        raise Conflict(
            "La prise de rendez-vous en ligne est fermée : appelez le cabinet.",
            "Online booking is closed: please call the practice.",
        )
    practitioner = session.get(Practitioner, practitioner_id)
    if (
        practitioner is None
        or not practitioner.is_active
        or practitioner_id not in rules.practitioner_ids
    ):
        raise NotFound("Praticien introuvable.", "Practitioner not found.")
    if visit_type not in rules.visit_types:
        raise InvalidInput(
            "Ce type de rendez-vous ne se prend pas en ligne.",
            "This kind of appointment cannot be booked online.",
        )
    start = to_utc(starts_at)
    end = start + timedelta(minutes=resolve_duration(session, practitioner, visit_type))
    earliest, latest = booking_rules.window(rules, now)
    if start < earliest or end > latest:
        raise InvalidInput(
            "Ce créneau n'est pas ouvert à la réservation en ligne.",
            "This slot is not open to online booking.",
        )
    if booking_rules.phone_only(rules, start, end, tz) or not fits_working_hours(
        session, practitioner_id, start, end, tz
    ):
        raise InvalidInput(
            "Ce créneau n'est pas ouvert à la réservation en ligne.",
            "This slot is not open to online booking.",
        )
    return practitioner, end


def take_hold(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    rules: OnlineBookingRules,
    *,
    practitioner_id: int,
    visit_type: str,
    starts_at: datetime,
    language: str,
    now: datetime,
    asked_practitioner_id: int | None = None,
) -> TakenHold:
    """Hold a free slot for ``rules.hold_minutes``; a slot taken or held meanwhile raises
    ``SlotGone`` with the next free slots. The caller commits."""
    _, end = check_bookable(
        session,
        tz,
        rules,
        practitioner_id=practitioner_id,
        visit_type=visit_type,
        starts_at=starts_at,
        now=now,
    )
    start = to_utc(starts_at)
    pid = practitioner_id
    if (
        unavailable_intervals(session, tz, [pid], start, end)[pid]
        or appointment_intervals(session, [pid], start, end)[pid]
        or hold_intervals(session, [pid], start, end, now=now)[pid]
    ):
        raise _slot_gone(session, tz, rules, asked_practitioner_id, visit_type, start, now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    hold = SlotHold(
        token_hash=hash_token(token),
        practitioner_id=pid,
        starts_at=start,
        ends_at=end,
        visit_type=visit_type,
        expires_at=now + timedelta(minutes=rules.hold_minutes),
        language=language if language in ("fr", "en") else "fr",
        client_address=(actor.address or "")[:64] or None,
        created_at=now,
    )
    try:
        _release_expired_over(session, pid, start, end, now)
        session.add(hold)
        session.flush()
    except IntegrityError as exc:
        if not _overlap_error(exc):
            raise
        session.rollback()
        raise _slot_gone(session, tz, rules, asked_practitioner_id, visit_type, start, now) from exc
    except OperationalError as exc:  # SQLite gave up waiting for the write lock
        session.rollback()
        if hold_intervals(session, [pid], start, end, now=now)[pid]:
            raise _slot_gone(
                session, tz, rules, asked_practitioner_id, visit_type, start, now
            ) from exc
        raise Conflict(
            "Le cabinet est très sollicité : réessayez dans un instant.",
            "The system is busy: try again in a moment.",
        ) from exc
    audit.record(
        session,
        actor,
        "online_booking.hold",
        record_type=RECORD_TYPE,
        record_id=hold.id,
        details={
            "practitioner_id": pid,
            "starts_at": start.isoformat(),
            "visit_type": visit_type,
        },
    )
    return TakenHold(hold, token)


def find_hold(session: Session, token: str, *, for_update: bool = False) -> SlotHold | None:
    """The hold a token stands for (whatever its state), or None."""
    if not token or len(token) > 128:
        return None
    query = select(SlotHold).where(SlotHold.token_hash == hash_token(token))
    if for_update:
        query = query.with_for_update()
    return session.exec(query).first()


def live_hold(session: Session, token: str, now: datetime, *, for_update: bool = False) -> SlotHold:
    """The holder's live hold, or ``HoldExpired``."""
    hold = find_hold(session, token, for_update=for_update)
    if hold is None or hold.released_at is not None or hold.expires_at <= now:
        raise HoldExpired()
    return hold


def extend(hold: SlotHold, rules: OnlineBookingRules, now: datetime) -> None:
    """Give the holder the hold's time again (once the identity is typed, for the code step),
    at most twice the hold time in all."""
    cap = hold.created_at + timedelta(minutes=2 * rules.hold_minutes)
    hold.expires_at = max(hold.expires_at, min(now + timedelta(minutes=rules.hold_minutes), cap))


def release(
    session: Session, actor: audit.Actor, hold: SlotHold, now: datetime, reason: str
) -> None:
    """Give the slot back (the patient went back, or too many wrong codes)."""
    if hold.released_at is not None:
        return
    hold.released_at = now
    hold.release_reason = reason[:32]
    forget_identity(hold)
    session.add(hold)
    session.flush()
    audit.record(
        session,
        actor,
        "online_booking.release",
        record_type=RECORD_TYPE,
        record_id=hold.id,
        details={"reason": reason},
    )

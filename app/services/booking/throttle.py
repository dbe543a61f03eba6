"""Abuse control for the public booking page.

- Page views (slots by day) go through a token bucket per address, in memory: an abusive
  client is answered 429 with ``Retry-After`` at once, no thread sleeps, and other clients'
  buckets are untouched, so they are not slowed.
- Holds and codes are counted from the audit log (every process sees the same counts): per
  address for holds, per contact (email or phone, keyed by an HMAC) for codes.
- Past a few holds from one address, or when the whole page is busy, a hold needs the
  proof-of-work of ``challenge``.
"""

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.services.core.errors import TooManyAttempts
from models.audit import AuditEvent

HOLD_ACTION = "online_booking.hold"
CODE_ACTION = "online_booking.code_sent"
CONTACT_RECORD = "booking_contact"


@dataclass(frozen=True)
class Limits:
    """How much one address or contact may do."""

    holds_per_address: int = 20  # per window
    hold_window: timedelta = timedelta(minutes=10)
    codes_per_contact: int = 5  # per window
    code_window: timedelta = timedelta(hours=1)
    pow_after_holds: int = 3  # holds from one address in the window before a challenge
    busy_holds_per_minute: int = 30  # practice-wide: above it, every hold needs a challenge


class SlowDown(TooManyAttempts):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        if self.retry_after < 120:
            fr_wait, en_wait = f"{self.retry_after} secondes", f"{self.retry_after} seconds"
        else:
            minutes = math.ceil(self.retry_after / 60)
            fr_wait, en_wait = f"{minutes} minutes", f"{minutes} minutes"
        super().__init__(
            f"Trop de demandes : réessayez dans {fr_wait}.",
            f"Too many requests: try again in {en_wait}.",
            retry_after=self.retry_after,
        )


class PageLimiter:
    """A token bucket per address: ``burst`` requests at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, max_addresses: int = 50_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_for(self, address: str | None, now: float | None = None) -> float:
        """0 when the request may go on, else the seconds before it may."""
        if self.rate <= 0:
            return 0.0
        moment = time.monotonic() if now is None else now
        key = address or "-"
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, moment)
                waited = 0.0
            else:
                self._buckets[key] = (tokens, moment)
                waited = (1 - tokens) / self.rate
            if len(self._buckets) > self.max_addresses:
                full = [k for k, (t, at) in self._buckets.items() if moment - at > 60]
                for stale in full:
                    del self._buckets[stale]
        return waited


def _count(
    session: Session,
    action: str,
    since: datetime,
    *,
    address: str | None = None,
    record_id: str | None = None,
) -> tuple[int, datetime | None]:
    query = select(func.count(), func.min(AuditEvent.occurred_at)).where(
        AuditEvent.action == action, AuditEvent.occurred_at >= since
    )
    if address is not None:
        query = query.where(AuditEvent.client_address == address)
    if record_id is not None:
        query = query.where(
            AuditEvent.record_type == CONTACT_RECORD, col(AuditEvent.record_id) == record_id
        )
    count, first = session.exec(query).one()
    return int(count or 0), first


def check_hold(session: Session, limits: Limits, address: str | None, now: datetime) -> None:
    """Refuse a hold beyond the address's allowance (429 until the oldest one ages out)."""
    since = now - limits.hold_window
    count, first = _count(session, HOLD_ACTION, since, address=address)
    if count >= limits.holds_per_address and first is not None:
        raise SlowDown(math.ceil((first + limits.hold_window - now).total_seconds()))


def needs_challenge(session: Session, limits: Limits, address: str | None, now: datetime) -> bool:
    """Whether the next hold from this address must carry a proof-of-work."""
    mine, _ = _count(session, HOLD_ACTION, now - limits.hold_window, address=address)
    if mine >= limits.pow_after_holds:
        return True
    everyone, _ = _count(session, HOLD_ACTION, now - timedelta(minutes=1))
    return everyone >= limits.busy_holds_per_minute


def check_code(session: Session, limits: Limits, contact_keys: list[str], now: datetime) -> None:
    """Refuse another code to a contact that has had its allowance."""
    since = now - limits.code_window
    for key in contact_keys:
        count, first = _count(session, CODE_ACTION, since, record_id=key)
        if count >= limits.codes_per_contact and first is not None:
            raise SlowDown(math.ceil((first + limits.code_window - now).total_seconds()))

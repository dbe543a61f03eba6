"""Login throttling without a practice-wide lockout (OWASP's advice).

Why not a lock: a hard lock per address let one person behind the practice's reverse proxy
(where every browser shares one address) lock everybody out with twenty wrong usernames. So:

- failures slow an account down with a growing delay rather than locking it, and the delay is
  enforced by refusing attempts until it has passed (429 with ``Retry-After``): no request
  thread ever sleeps, so an attacker cannot hold them;
- the limits are per (account, address) pair, plus a higher one per account over every
  address (a spread-out guess at one password); failures with unknown usernames slow nobody;
- a browser where the account logged in before carries a signed *trusted-device* cookie bound
  to the account: its attempts are only slowed by its own failures, so someone else's
  guesses never lock a staff member out of their usual browser.

The counts come from the audit log, so every process of the practice sees the same limits.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.services.core.errors import TooManyAttempts
from models.audit import AuditEvent

FAILED = "auth.login_failed"
# The audit record type of a failure made from a trusted device; its record id is the device.
DEVICE_RECORD = "login_device"
# An account's failures over every address may reach this many times the per-pair allowance.
ACCOUNT_FACTOR = 4


@dataclass(frozen=True)
class Policy:
    """How many failures are free, and how the delay grows after them."""

    free_failures: int
    window: timedelta
    first_delay: timedelta
    max_delay: timedelta

    def delay_after(self, failures: int, free: int | None = None) -> timedelta:
        """The wait imposed after ``failures`` recent failures: none while they are within the
        allowance, then the first delay, doubling with each further failure, up to the cap."""
        allowance = self.free_failures if free is None else free
        if failures < allowance:
            return timedelta(0)
        doubled: timedelta = self.first_delay * 2 ** min(failures - allowance, 30)
        return min(doubled, self.max_delay)


class LoginSlowedDown(TooManyAttempts):
    """Refused until a delay has passed; ``retry_after`` is the wait in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        if self.retry_after < 120:
            fr_wait, en_wait = f"{self.retry_after} secondes", f"{self.retry_after} seconds"
        else:
            minutes = math.ceil(self.retry_after / 60)
            fr_wait, en_wait = f"{minutes} minutes", f"{minutes} minutes"
        super().__init__(
            "Trop de tentatives pour ce compte : connexion ralentie. "
            f"Réessayez dans {fr_wait}. Votre navigateur habituel n'est pas concerné.",
            f"Too many attempts for this account: logins are slowed down. "
            f"Try again in {en_wait}. Your usual browser is not affected.",
            retry_after=self.retry_after,
        )


def _failures(
    session: Session,
    since: datetime,
    *,
    username: str,
    address: str | None = None,
    device: str | None = None,
    any_address: bool = False,
) -> tuple[int, datetime | None]:
    """How many failures match, and when the last one was. Without ``device``, only the
    failures of untrusted browsers count (a trusted device's failures slow that device)."""
    query = select(func.count(), func.max(AuditEvent.occurred_at)).where(
        AuditEvent.action == FAILED,
        AuditEvent.occurred_at >= since,
        AuditEvent.actor_name == username,
    )
    if device is not None:
        query = query.where(AuditEvent.record_type == DEVICE_RECORD, AuditEvent.record_id == device)
    else:
        query = query.where(col(AuditEvent.record_id).is_(None))
        if not any_address:
            if address is None:
                query = query.where(col(AuditEvent.client_address).is_(None))
            else:
                query = query.where(AuditEvent.client_address == address)
    count, last = session.exec(query).one()
    return int(count or 0), last


def check(
    session: Session,
    policy: Policy,
    now: datetime,
    *,
    username: str,
    address: str | None,
    device: str | None,
) -> None:
    """Raise ``LoginSlowedDown`` if this attempt comes before its delay has passed.

    ``device`` is the trusted-device id when the browser holds a valid cookie for this
    account; such a browser is judged on its own failures only."""
    since = now - policy.window
    if device is not None:
        limits: list[tuple[tuple[int, datetime | None], int | None]] = [
            (_failures(session, since, username=username, device=device), None)
        ]
    else:
        pair = _failures(session, since, username=username, address=address)
        account = _failures(session, since, username=username, any_address=True)
        limits = [(pair, None), (account, policy.free_failures * ACCOUNT_FACTOR)]
    wait = timedelta(0)
    for (count, last), free in limits:
        if last is None:
            continue
        remaining = last + policy.delay_after(count, free) - now
        wait = max(wait, remaining)
    if wait > timedelta(0):
        raise LoginSlowedDown(math.ceil(wait.total_seconds()))

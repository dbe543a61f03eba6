"""The growing delay: refused until it has passed, then one more guess, then a longer wait."""

from datetime import timedelta

import pytest
from sqlmodel import Session

from app.services.core import audit
from app.services.identity import login_throttle
from app.services.identity.login_throttle import LoginSlowedDown, Policy
from models.audit import ActorKind
from models.types import utcnow

POLICY = Policy(
    free_failures=3,
    window=timedelta(minutes=15),
    first_delay=timedelta(seconds=30),
    max_delay=timedelta(minutes=4),
)


def test_the_delay_doubles_after_the_allowance_up_to_the_cap() -> None:
    delays = [POLICY.delay_after(n).total_seconds() for n in range(10)]
    assert delays == [0, 0, 0, 30, 60, 120, 240, 240, 240, 240]


def _fail(db: Session, username: str, address: str, device: str | None = None) -> None:
    audit.record(
        db,
        audit.Actor(kind=ActorKind.anonymous, name=username, address=address),
        login_throttle.FAILED,
        record_type=login_throttle.DEVICE_RECORD if device else None,
        record_id=device,
        outcome="denied",
    )
    db.commit()


def _check(db: Session, now, address: str = "10.0.0.1", device: str | None = None) -> None:
    login_throttle.check(db, POLICY, now, username="medecin", address=address, device=device)


def test_attempts_are_refused_until_the_delay_has_passed(db: Session) -> None:
    for _ in range(3):
        _fail(db, "medecin", "10.0.0.1")
    now = utcnow()
    with pytest.raises(LoginSlowedDown) as refused:
        _check(db, now)
    assert 28 <= refused.value.retry_after <= 30
    _check(db, now + timedelta(seconds=31))  # the wait is over: one more guess
    _fail(db, "medecin", "10.0.0.1")
    with pytest.raises(LoginSlowedDown) as longer:
        _check(db, utcnow() + timedelta(seconds=31))
    assert 25 <= longer.value.retry_after <= 30  # 60 s after the last failure
    _check(db, utcnow() + POLICY.window + timedelta(seconds=1))  # old failures are forgotten


def test_other_addresses_and_trusted_devices_are_not_slowed_by_a_pair(db: Session) -> None:
    for _ in range(3):
        _fail(db, "medecin", "10.0.0.1")
    now = utcnow()
    _check(db, now, address="10.0.0.2")
    _check(db, now, device="usual-browser")
    _fail(db, "medecin", "10.0.0.1", device="stolen-cookie")
    _check(db, now, device="usual-browser")

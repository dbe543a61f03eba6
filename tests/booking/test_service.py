"""Holds, rules, one-time codes and identity matching, at the service level."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from sqlmodel import Session, select

from app.config.settings import Settings
from app.services.booking import challenge, holds, throttle
from app.services.booking import rules as booking_rules
from app.services.booking.identity import IdentityInput
from app.services.booking.public_slots import SlotGone, public_slots
from app.services.core.audit import Actor
from app.services.core.errors import Conflict
from app.services.flows import online_booking as flow
from app.services.scheduling.agenda import SlotTaken, book_appointment
from app.services.scheduling.slots import SlotQuery, find_slots
from models.appointments import Appointment, AppointmentSource
from models.audit import ActorKind, AuditEvent
from models.notifications import OutboxMessage
from models.online_booking import SlotHold
from models.patients import Patient, RegistrationStatus, Sex
from tests.booking.conftest import Practice, code_from, first_slot, open_booking
from tests.support.notification_helpers import add_reachable_patient
from tests.support.practice import ACTOR, PARIS, add_patient

PUBLIC = Actor(kind=ActorKind.patient_link, name="réservation en ligne", address="203.0.113.7")


def _hold(db: Session, slot, now: datetime | None = None) -> holds.TakenHold:  # type: ignore[no-untyped-def]
    taken = holds.take_hold(
        db,
        PUBLIC,
        PARIS,
        booking_rules.current(db),
        practitioner_id=slot.practitioner_id,
        visit_type="consultation",
        starts_at=slot.starts_at,
        language="fr",
        now=now or datetime.now(UTC),
    )
    db.commit()
    return taken


def _free(db: Session, slot) -> bool:  # type: ignore[no-untyped-def]
    found = find_slots(
        db,
        PARIS,
        SlotQuery(
            start=slot.starts_at,
            end=slot.ends_at,
            practitioner_id=slot.practitioner_id,
            duration_minutes=20,
        ),
    )
    return any(s.starts_at == slot.starts_at for s in found)


def test_a_held_slot_is_taken_for_everyone_but_its_holder(db: Session, practice: Practice) -> None:
    slot = first_slot(db, practice.practitioner_ids[0])
    assert _free(db, slot)
    taken = _hold(db, slot)
    assert not _free(db, slot)  # slot search does not offer it
    assert slot.starts_at not in {
        s.starts_at
        for s in public_slots(
            db,
            PARIS,
            booking_rules.current(db),
            practitioner_id=slot.practitioner_id,
            visit_type="consultation",
            now=datetime.now(UTC),
        )
    }
    patient = add_patient(db)
    db.commit()
    with pytest.raises(SlotTaken, match="Créneau déjà pris"):  # the desk cannot book it
        book_appointment(
            db,
            ACTOR,
            PARIS,
            patient_id=patient,
            practitioner_id=slot.practitioner_id,
            starts_at=slot.starts_at,
        )
    db.rollback()
    with pytest.raises(SlotGone, match="Prochains créneaux libres"):
        _hold(db, slot)  # nor another patient
    db.rollback()
    booked = book_appointment(  # its holder can
        db,
        ACTOR,
        PARIS,
        patient_id=patient,
        practitioner_id=slot.practitioner_id,
        starts_at=slot.starts_at,
        hold_id=taken.hold.id,
    )
    assert booked.id is not None


def test_the_database_refuses_two_live_holds_that_overlap(db: Session, practice: Practice) -> None:
    slot = first_slot(db, practice.practitioner_ids[0])
    _hold(db, slot)
    db.add(
        SlotHold(
            token_hash="x" * 64,
            practitioner_id=slot.practitioner_id,
            starts_at=slot.starts_at + timedelta(minutes=10),
            ends_at=slot.ends_at + timedelta(minutes=10),
            visit_type="consultation",
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        )
    )
    with pytest.raises(Exception, match="slot_hold_overlap"):
        db.flush()
    db.rollback()


def test_an_expired_hold_frees_the_slot(db: Session, practice: Practice) -> None:
    slot = first_slot(db, practice.practitioner_ids[0])
    start = datetime.now(UTC)
    first = _hold(db, slot, start)
    assert not _free(db, slot)
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        assert _free(db, slot)  # read lazily: an expired hold no longer counts
        second = _hold(db, slot, datetime.now(UTC))  # the expired one is released first
        db.expire_all()
        assert db.get(SlotHold, first.hold.id).release_reason == "expired"
        assert second.hold.released_at is None
        with pytest.raises(holds.HoldExpired):
            holds.live_hold(db, first.token, datetime.now(UTC))
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        assert holds.release_expired(db, datetime.now(UTC)) == 1  # the job's sweep
        db.commit()
        assert _free(db, slot)


def test_rules_bound_what_is_offered(db: Session) -> None:
    practice = open_booking(
        db,
        min_notice_hours=48,
        horizon_days=7,
        phone_ranges=[booking_rules.PhoneRange(d, time(8, 0), time(10, 0)) for d in range(7)],
    )
    now = datetime.now(UTC)
    offered = public_slots(
        db,
        PARIS,
        booking_rules.current(db),
        practitioner_id=None,
        visit_type="consultation",
        now=now,
    )
    assert offered
    assert all(s.starts_at >= now + timedelta(hours=48) for s in offered)
    assert all(s.starts_at <= now + timedelta(days=7) for s in offered)
    assert all(s.starts_at.astimezone(PARIS).time() >= time(10, 0) for s in offered)
    assert len({s.starts_at for s in offered}) == len(offered)  # "premier disponible": one each
    assert {s.practitioner_id for s in offered} <= set(practice.practitioner_ids)
    assert (
        public_slots(
            db,
            PARIS,
            booking_rules.current(db),
            practitioner_id=None,
            visit_type="bilan",
            now=now,
        )
        == []
    )


def test_rules_are_checked_and_audited(db: Session, practice: Practice) -> None:
    with pytest.raises(booking_rules.InvalidBookingRules, match="Type de visite inconnu"):
        booking_rules.save(
            db, ACTOR, booking_rules.RulesInput(True, True, 0, 30, 2, visit_types=["nope"])
        )
    with pytest.raises(booking_rules.InvalidBookingRules, match="Site invalide"):
        booking_rules.save(
            db,
            ACTOR,
            booking_rules.RulesInput(False, True, 0, 30, 2, frame_ancestors="javascript:alert(1)"),
        )
    booking_rules.save(
        db,
        ACTOR,
        booking_rules.RulesInput(False, True, 0, 30, 2, frame_ancestors="https://cabinet.fr"),
    )
    events = db.exec(
        select(AuditEvent).where(AuditEvent.action == "online_booking.rules_update")
    ).all()
    assert events and "enabled" in events[-1].details["changed"]


def _identity(email: str, name: str = "Durand", first: str = "Marie") -> IdentityInput:
    return IdentityInput(
        birth_name=name,
        first_name=first,
        birth_date=date(1980, 1, 2),
        sex=Sex.female,
        phone="06 12 34 56 78",
        email=email,
    )


def _book(db: Session, settings: Settings, smtp_server, identity: IdentityInput, slot):  # type: ignore[no-untyped-def]
    taken = _hold(db, slot)
    flow.send_code(
        db,
        PUBLIC,
        settings,
        taken.token,
        identity,
        limits=throttle.Limits(),
        now=datetime.now(UTC),
    )
    db.commit()
    code = code_from(smtp_server.mailbox, identity.email or "")
    booked = flow.confirm(db, PUBLIC, settings, taken.token, code, now=datetime.now(UTC))
    db.commit()
    return booked


def test_a_known_patient_is_matched_by_the_proven_email(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    known = add_reachable_patient(db, "Durand", "Marie", "marie@example.org")
    db.commit()
    booked = _book(db, settings, smtp_server, _identity("Marie@Example.org"), first_slot(db))
    assert booked.appointment.patient_id == known
    assert booked.appointment.source == AppointmentSource.online
    assert db.get(Patient, known).registration_status == RegistrationStatus.active


def test_the_same_name_with_another_email_is_a_new_pending_patient(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    known = add_reachable_patient(db, "Durand", "Marie", "marie@example.org")
    db.commit()
    booked = _book(db, settings, smtp_server, _identity("someone@else.example.org"), first_slot(db))
    assert booked.appointment.patient_id != known
    patient = db.get(Patient, booked.appointment.patient_id)
    assert patient.registration_status == RegistrationStatus.pending
    assert patient.email == "someone@else.example.org"


def test_known_patients_only_refuses_an_unknown_identity(
    db: Session, settings: Settings, smtp_server
) -> None:
    open_booking(db, allow_new_patients=False)
    db.commit()
    with pytest.raises(Conflict, match="réservée aux patients"):
        _book(db, settings, smtp_server, _identity("new@example.org"), first_slot(db))


def test_wrong_codes_are_counted_then_the_hold_is_released(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    taken = _hold(db, first_slot(db))
    flow.send_code(
        db,
        PUBLIC,
        settings,
        taken.token,
        _identity("a@example.org"),
        limits=throttle.Limits(),
        now=datetime.now(UTC),
    )
    db.commit()
    for left in (4, 3, 2, 1):
        with pytest.raises(flow.WrongCode) as caught:
            flow.confirm(db, PUBLIC, settings, taken.token, "000000x", now=datetime.now(UTC))
        db.commit()
        assert caught.value.attempts_left == left
    with pytest.raises(holds.HoldExpired):
        flow.confirm(db, PUBLIC, settings, taken.token, "000000x", now=datetime.now(UTC))
    db.commit()
    assert db.get(SlotHold, taken.hold.id).release_reason == "too_many_codes"


def test_future_online_bookings_are_capped(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    add_reachable_patient(db, "Durand", "Marie", "marie@example.org")
    db.commit()
    slots = public_slots(
        db,
        PARIS,
        booking_rules.current(db),
        practitioner_id=practice.practitioner_ids[0],
        visit_type="consultation",
        now=datetime.now(UTC),
    )
    for slot in slots[5:7]:
        _book(db, settings, smtp_server, _identity("marie@example.org"), slot)
    with pytest.raises(Conflict, match="déjà 2 rendez-vous"):
        _book(db, settings, smtp_server, _identity("marie@example.org"), slots[8])


def test_codes_per_contact_are_limited(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    limits = throttle.Limits(codes_per_contact=2)
    taken = _hold(db, first_slot(db))
    for _ in range(2):
        flow.send_code(
            db,
            PUBLIC,
            settings,
            taken.token,
            _identity("c@example.org"),
            limits=limits,
            now=datetime.now(UTC),
        )
        db.commit()
    with pytest.raises(throttle.SlowDown) as caught:
        flow.send_code(
            db,
            PUBLIC,
            settings,
            taken.token,
            _identity("C@example.org"),
            limits=limits,
            now=datetime.now(UTC),
        )
    assert caught.value.status_code == 429 and caught.value.retry_after > 0


def test_the_refused_booking_is_cancelled_and_the_patient_told(
    db: Session, practice: Practice, settings: Settings, smtp_server
) -> None:
    booked = _book(db, settings, smtp_server, _identity("r@example.org"), first_slot(db))
    refused = flow.refuse(db, ACTOR, settings, booked.appointment.id, reason="Doublon")
    db.commit()
    assert refused.status == "cancelled" and "Doublon" in refused.cancel_reason
    kinds = {m.kind for m in db.exec(select(OutboxMessage)).all()}
    assert "cancelled" in kinds
    with pytest.raises(Exception, match="pas été pris en ligne"):
        other = db.exec(select(Appointment)).all()
        desk = book_appointment(
            db,
            ACTOR,
            PARIS,
            patient_id=other[0].patient_id,
            practitioner_id=practice.practitioner_ids[1],
            starts_at=first_slot(db, practice.practitioner_ids[1]).starts_at,
        )
        flow.refuse(db, ACTOR, settings, desk.id or 0)


def test_proof_of_work_is_checked_once() -> None:
    issued = challenge.issue("secret", 8)
    counter = str(challenge.solve(issued.text, issued.bits))
    assert not challenge.verify("secret", issued.text, counter, 12)  # too easy for the ask
    assert not challenge.verify("other", issued.text, counter, 8)  # not ours
    assert challenge.verify("secret", issued.text, counter, 8)
    assert not challenge.verify("secret", issued.text, counter, 8)  # spent
    old = challenge.issue("secret", 4, now=1_000.0)
    assert not challenge.verify(
        "secret", old.text, str(challenge.solve(old.text, 4)), 4, now=1_000.0 + 3600
    )


def test_page_limiter_slows_one_address_only() -> None:
    limiter = throttle.PageLimiter(rate=2, burst=5)
    assert all(limiter.wait_for("198.51.100.1", now=0.0) == 0 for _ in range(5))
    assert limiter.wait_for("198.51.100.1", now=0.0) > 0
    assert limiter.wait_for("198.51.100.2", now=0.0) == 0
    assert limiter.wait_for("198.51.100.1", now=1.0) == 0  # refilled

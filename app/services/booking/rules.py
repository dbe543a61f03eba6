"""The practice's rules for online booking: read with defaults, checked and saved by an admin."""

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import InvalidInput
from models.online_booking import OnlineBookingRules
from models.practice import Practitioner, VisitType
from models.types import utcnow

# A CSP source: a scheme+host (with optional port and wildcard sub-domain), nothing else.
_SOURCE = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$")
MAX_PHONE_RANGES = 30


class InvalidBookingRules(InvalidInput):
    """A rule is out of range; the message says which."""


@dataclass(frozen=True)
class PhoneRange:
    """A weekly range kept for the phone (never offered online)."""

    weekday: int
    start: time
    end: time

    def as_json(self) -> dict[str, object]:
        return {
            "weekday": self.weekday,
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }


@dataclass(frozen=True)
class RulesInput:
    """What the admin page sends."""

    enabled: bool
    allow_new_patients: bool
    min_notice_hours: int
    horizon_days: int
    max_future_bookings: int
    hold_minutes: int = 5
    visit_types: list[str] = field(default_factory=list)
    practitioner_ids: list[int] = field(default_factory=list)
    phone_ranges: list[PhoneRange] = field(default_factory=list)
    frame_ancestors: str = ""


def current(session: Session) -> OnlineBookingRules:
    """The saved rules, or the defaults (online booking off until an admin turns it on)."""
    row = session.exec(select(OnlineBookingRules).order_by(col(OnlineBookingRules.id))).first()
    return row if row is not None else OnlineBookingRules()


def phone_ranges(rules: OnlineBookingRules) -> list[PhoneRange]:
    out: list[PhoneRange] = []
    for item in rules.phone_ranges:
        try:
            out.append(
                PhoneRange(
                    int(item["weekday"]),
                    time.fromisoformat(str(item["start"])),
                    time.fromisoformat(str(item["end"])),
                )
            )
        except (KeyError, ValueError, TypeError):
            continue
    return out


def _range(value: int, low: int, high: int, fr: str, en: str) -> int:
    if not low <= value <= high:
        raise InvalidBookingRules(
            f"{fr} : entre {low} et {high}.", f"{en}: between {low} and {high}."
        )
    return value


def check_frame_ancestors(text: str) -> str:
    """Space-separated origins (``https://cabinet.fr``) allowed to embed the page."""
    sources = text.split()
    if len(sources) > 10:
        raise InvalidBookingRules("Dix sites au plus.", "Ten sites at most.")
    for source in sources:
        if not _SOURCE.match(source):
            raise InvalidBookingRules(
                f"Site invalide : {source[:80]} (forme attendue : https://www.cabinet.fr).",
                f"Invalid site: {source[:80]} (expected: https://www.cabinet.fr).",
            )
    return " ".join(sources)


def check(session: Session, data: RulesInput) -> RulesInput:
    """Validate every field against the practice's visit types and practitioners."""
    _range(data.min_notice_hours, 0, 720, "Délai minimum (heures)", "Minimum notice (hours)")
    _range(data.horizon_days, 1, 365, "Horizon (jours)", "Horizon (days)")
    _range(data.max_future_bookings, 1, 20, "Rendez-vous futurs par patient", "Future bookings")
    _range(data.hold_minutes, 1, 30, "Durée de réservation (minutes)", "Hold (minutes)")
    if data.min_notice_hours >= data.horizon_days * 24:
        raise InvalidBookingRules(
            "Le délai minimum doit être plus court que l'horizon.",
            "The minimum notice must be shorter than the horizon.",
        )
    known_types = set(
        session.exec(select(VisitType.code).where(col(VisitType.is_active).is_(True))).all()
    )
    unknown = sorted(set(data.visit_types) - known_types)
    if unknown:
        raise InvalidBookingRules(
            f"Type de visite inconnu : {', '.join(unknown)}.",
            f"Unknown visit type: {', '.join(unknown)}.",
        )
    known_ids = set(
        session.exec(select(Practitioner.id).where(col(Practitioner.is_active).is_(True))).all()
    )
    if set(data.practitioner_ids) - known_ids:
        raise InvalidBookingRules("Praticien inconnu.", "Unknown practitioner.")
    if data.enabled and (not data.visit_types or not data.practitioner_ids):
        raise InvalidBookingRules(
            "Choisissez au moins un type de visite et un praticien pour ouvrir la prise de "
            "rendez-vous en ligne.",
            "Choose at least one visit type and one practitioner to open online booking.",
        )
    if len(data.phone_ranges) > MAX_PHONE_RANGES:
        raise InvalidBookingRules("Trente plages au plus.", "Thirty ranges at most.")
    for item in data.phone_ranges:
        if not 0 <= item.weekday <= 6 or item.start >= item.end:
            raise InvalidBookingRules(
                "Plage réservée au téléphone invalide (le début doit précéder la fin).",
                "Invalid phone-only range (the start must come before the end).",
            )
    return RulesInput(
        enabled=data.enabled,
        allow_new_patients=data.allow_new_patients,
        min_notice_hours=data.min_notice_hours,
        horizon_days=data.horizon_days,
        max_future_bookings=data.max_future_bookings,
        hold_minutes=data.hold_minutes,
        visit_types=sorted(set(data.visit_types)),
        practitioner_ids=sorted(set(data.practitioner_ids)),
        phone_ranges=sorted(data.phone_ranges, key=lambda r: (r.weekday, r.start)),
        frame_ancestors=check_frame_ancestors(data.frame_ancestors),
    )


def save(session: Session, actor: audit.Actor, data: RulesInput) -> OnlineBookingRules:
    """Check and store the rules (audited with what changed)."""
    clean = check(session, data)
    row = session.exec(select(OnlineBookingRules).order_by(col(OnlineBookingRules.id))).first()
    if row is None:
        row = OnlineBookingRules()
    before = {
        "enabled": row.enabled,
        "allow_new_patients": row.allow_new_patients,
        "min_notice_hours": row.min_notice_hours,
        "horizon_days": row.horizon_days,
        "max_future_bookings": row.max_future_bookings,
        "hold_minutes": row.hold_minutes,
        "visit_types": list(row.visit_types),
        "practitioner_ids": list(row.practitioner_ids),
        "phone_ranges": list(row.phone_ranges),
        "frame_ancestors": row.frame_ancestors,
    }
    after = {
        "enabled": clean.enabled,
        "allow_new_patients": clean.allow_new_patients,
        "min_notice_hours": clean.min_notice_hours,
        "horizon_days": clean.horizon_days,
        "max_future_bookings": clean.max_future_bookings,
        "hold_minutes": clean.hold_minutes,
        "visit_types": clean.visit_types,
        "practitioner_ids": clean.practitioner_ids,
        "phone_ranges": [r.as_json() for r in clean.phone_ranges],
        "frame_ancestors": clean.frame_ancestors,
    }
    for name, value in after.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "online_booking.rules_update",
        record_type="online_booking_rules",
        record_id=row.id,
        details={"changed": sorted(k for k in after if before[k] != after[k])},
    )
    return row


def bookable_practitioners(session: Session, rules: OnlineBookingRules) -> list[Practitioner]:
    if not rules.practitioner_ids:
        return []
    return list(
        session.exec(
            select(Practitioner)
            .where(
                col(Practitioner.id).in_(rules.practitioner_ids),
                col(Practitioner.is_active).is_(True),
            )
            .order_by(col(Practitioner.last_name), col(Practitioner.id))
        ).all()
    )


def bookable_visit_types(session: Session, rules: OnlineBookingRules) -> list[VisitType]:
    if not rules.visit_types:
        return []
    return list(
        session.exec(
            select(VisitType)
            .where(col(VisitType.code).in_(rules.visit_types), col(VisitType.is_active).is_(True))
            .order_by(col(VisitType.label))
        ).all()
    )


def window(rules: OnlineBookingRules, now: datetime) -> tuple[datetime, datetime]:
    """The instants between which a slot may be booked online."""
    return (
        now + timedelta(hours=rules.min_notice_hours),
        now + timedelta(days=rules.horizon_days),
    )


def phone_only(
    rules: OnlineBookingRules, starts_at: datetime, ends_at: datetime, tz: ZoneInfo
) -> bool:
    """Whether a slot overlaps a range the practice keeps for the phone."""
    local_start, local_end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    day = local_start.weekday()
    for item in phone_ranges(rules):
        if item.weekday != day:
            continue
        if local_start.time() < item.end and item.start < local_end.time():
            return True
    return False

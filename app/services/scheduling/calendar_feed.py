"""Token-protected iCalendar feeds of a practitioner's agenda, for phones and calendar apps."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import STATUS, Calendar, Event
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import InvalidInput, NotFound
from app.services.scheduling.vtimezone import vtimezone
from models.appointments import Appointment, AppointmentStatus
from models.audit import ActorKind
from models.patients import Patient
from models.practice import CalendarFeed, Practitioner
from models.types import utcnow

PRODID = "-//Accueil//Agenda du cabinet//FR"
WINDOW_PAST = timedelta(days=30)
WINDOW_AHEAD = timedelta(days=180)
MAX_TOKEN_LENGTH = 128
SUMMARY = "Rendez-vous"
MAX_ID = 2**63 - 1  # beyond this, the database cannot even look a row up


@dataclass(frozen=True)
class PractitionerFeeds:
    """A practitioner with the feeds of their agenda that still work."""

    practitioner: Practitioner
    feeds: list[CalendarFeed]


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a feed token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_feed(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    *,
    include_patient_names: bool,
    created_by_id: int | None,
    names_allowed: bool = True,
) -> tuple[CalendarFeed, str]:
    """Create a feed; the token is returned this once and only its hash is kept.

    ``names_allowed`` is the practice's setting: a feed cannot ask for patient names
    while the practice has not enabled them.
    """
    practitioner = (
        session.get(Practitioner, practitioner_id) if 0 < practitioner_id <= MAX_ID else None
    )
    if practitioner is None or not practitioner.is_active:
        raise NotFound("Praticien introuvable.", "Practitioner not found.")
    if include_patient_names and not names_allowed:
        raise InvalidInput(
            "Le cabinet n'autorise pas les noms des patients dans les agendas partagés.",
            "The practice does not allow patient names in shared calendars.",
        )
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed(
        practitioner_id=practitioner_id,
        token_hash=hash_token(token),
        include_patient_names=include_patient_names,
        created_by_id=created_by_id,
    )
    session.add(feed)
    session.flush()
    audit.record(
        session,
        actor,
        "calendar_feed.create",
        record_type="calendar_feed",
        record_id=feed.id,
        details={
            "practitioner_id": practitioner_id,
            "include_patient_names": include_patient_names,
        },
    )
    return feed, token


def revoke_feed(session: Session, actor: audit.Actor, feed_id: int) -> CalendarFeed:
    """Stop a feed for good; revoking a revoked feed changes nothing."""
    feed = session.get(CalendarFeed, feed_id) if 0 < feed_id <= MAX_ID else None
    if feed is None:
        raise NotFound("Agenda partagé introuvable.", "Calendar feed not found.")
    if feed.revoked_at is not None:
        return feed
    feed.revoked_at = utcnow()
    session.add(feed)
    session.flush()
    audit.record(
        session,
        actor,
        "calendar_feed.revoke",
        record_type="calendar_feed",
        record_id=feed.id,
        details={"practitioner_id": feed.practitioner_id},
    )
    return feed


def list_feeds(session: Session, *, include_revoked: bool = False) -> list[CalendarFeed]:
    """Feeds, newest first; only the working ones unless asked otherwise."""
    query = select(CalendarFeed)
    if not include_revoked:
        query = query.where(col(CalendarFeed.revoked_at).is_(None))
    return list(session.exec(query.order_by(col(CalendarFeed.id).desc())).all())


def feeds_by_practitioner(session: Session) -> list[PractitionerFeeds]:
    """Every practitioner (active, or with a working feed) and their working feeds."""
    feeds = list_feeds(session)
    by_practitioner: dict[int, list[CalendarFeed]] = {}
    for feed in feeds:
        by_practitioner.setdefault(feed.practitioner_id, []).append(feed)
    practitioners = session.exec(
        select(Practitioner).order_by(col(Practitioner.last_name), col(Practitioner.id))
    ).all()
    return [
        PractitionerFeeds(p, by_practitioner.get(p.id or 0, []))
        for p in practitioners
        if p.is_active or p.id in by_practitioner
    ]


def names_shown(feed: CalendarFeed, settings: Settings) -> bool:
    """Patient names appear only when the feed asks for them and the practice allows them."""
    return feed.include_patient_names and settings.ical_patient_names


def _feed_for_token(session: Session, token: str) -> CalendarFeed:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotFound("Agenda introuvable.", "Calendar not found.")
    feed = session.exec(
        select(CalendarFeed).where(
            CalendarFeed.token_hash == hash_token(token),
            col(CalendarFeed.revoked_at).is_(None),
        )
    ).first()
    if feed is None:
        raise NotFound("Agenda introuvable.", "Calendar not found.")
    return feed


def _event(appointment: Appointment, summary: str, stamp: datetime) -> Event:
    status = (
        STATUS.TENTATIVE if appointment.status == AppointmentStatus.booked else STATUS.CONFIRMED
    )
    # Only times and a neutral title: never the reason, notes or visit type.
    return Event.new(
        uid=f"appointment-{appointment.id}@accueil",
        stamp=stamp.astimezone(UTC),
        start=appointment.starts_at.astimezone(UTC),
        end=appointment.ends_at.astimezone(UTC),
        summary=summary,
        status=status,
        last_modified=appointment.updated_at.astimezone(UTC),
    )


def render_feed(
    session: Session,
    token: str,
    settings: Settings,
    *,
    now: datetime | None = None,
    address: str | None = None,
) -> bytes:
    """The iCalendar body of the feed holding this token (RFC 5545), and one audit event.

    Unknown and revoked tokens raise ``NotFound``. Events are the practitioner's
    appointments that are not cancelled, from 30 days ago to 180 days ahead, in UTC.
    """
    feed = _feed_for_token(session, token)
    practitioner = session.get(Practitioner, feed.practitioner_id)
    if practitioner is None:
        raise NotFound("Agenda introuvable.", "Calendar not found.")
    now = now or utcnow()
    with_names = names_shown(feed, settings)
    rows = session.exec(
        select(Appointment, Patient)
        .join(Patient, col(Patient.id) == col(Appointment.patient_id))
        .where(
            Appointment.practitioner_id == practitioner.id,
            Appointment.status != AppointmentStatus.cancelled,
            col(Appointment.starts_at) >= now - WINDOW_PAST,
            col(Appointment.starts_at) < now + WINDOW_AHEAD,
        )
        .order_by(col(Appointment.starts_at), col(Appointment.id))
    ).all()

    calendar = Calendar.new(
        prodid=PRODID,
        name=f"{practitioner.display_name} — {settings.practice_name}",
        method="PUBLISH",
        calscale="GREGORIAN",
        uid=f"calendar-feed-{feed.id}@accueil",
    )
    calendar.add("X-WR-TIMEZONE", settings.timezone)
    # A VTIMEZONE keeps the calendar valid (RFC 5545 wants one component) when it has no event.
    # Built from zoneinfo's transitions: icalendar's from_tzid dates the spring change wrong.
    calendar.add_component(
        vtimezone(
            settings.timezone,
            first_date=(now - WINDOW_PAST - timedelta(days=1)).date(),
            last_date=(now + WINDOW_AHEAD + timedelta(days=1)).date(),
        )
    )
    for appointment, patient in rows:
        summary = f"{SUMMARY} — {patient.display_name}" if with_names else SUMMARY
        calendar.add_component(_event(appointment, summary, now))

    feed.last_used_at = now
    session.add(feed)
    audit.record(
        session,
        audit.Actor(kind=ActorKind.system, name=f"calendar_feed:{feed.id}", address=address),
        "calendar_feed.read",
        record_type="calendar_feed",
        record_id=feed.id,
        details={
            "practitioner_id": practitioner.id,
            "events": len(rows),
            "patient_names": with_names,
        },
    )
    ical: bytes = calendar.to_ical()  # icalendar leaves to_ical() unannotated
    return ical

"""No-show statistics: the share of missed appointments by month and by the reminders that
were actually sent, the figure that tells a practice whether reminders work."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models.appointments import Appointment, AppointmentStatus
from models.notifications import MessageKind, MessageStatus, OutboxMessage

DONE_STATUSES = (AppointmentStatus.honoured, AppointmentStatus.missed)


@dataclass(frozen=True)
class Rate:
    """Honoured and missed appointments of one group, and the no-show rate (percent)."""

    label: str
    honoured: int
    missed: int

    @property
    def total(self) -> int:
        return self.honoured + self.missed

    @property
    def rate(self) -> float:
        return round(100 * self.missed / self.total, 1) if self.total else 0.0


@dataclass(frozen=True)
class NoShowReport:
    since: date
    by_month: list[Rate]
    by_reminders: list[Rate]
    overall: Rate


def reminder_label(hours: set[int]) -> str:
    """``48 h + 24 h`` (longest first), or ``none`` when no reminder was sent."""
    return " + ".join(f"{h} h" for h in sorted(hours, reverse=True)) if hours else "none"


def report(
    session: Session, tz: ZoneInfo, *, months: int = 12, now: datetime | None = None
) -> NoShowReport:
    """Appointments marked honoured or missed over the last ``months`` months (counts only)."""
    moment = (now or datetime.now(UTC)).astimezone(tz)
    first = moment.date().replace(day=1)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    rows = session.exec(
        select(Appointment.id, Appointment.starts_at, Appointment.status).where(
            col(Appointment.status).in_(DONE_STATUSES), Appointment.starts_at >= since
        )
    ).all()
    sent: dict[int, set[int]] = defaultdict(set)
    for appointment_id, hours in session.exec(
        select(OutboxMessage.appointment_id, OutboxMessage.reminder_hours)
        .join(Appointment, col(Appointment.id) == OutboxMessage.appointment_id)
        .where(
            OutboxMessage.kind == MessageKind.reminder,
            OutboxMessage.status == MessageStatus.sent,
            col(Appointment.status).in_(DONE_STATUSES),
            Appointment.starts_at >= since,
        )
    ).all():
        if appointment_id is not None and hours is not None:
            sent[appointment_id].add(hours)
    months_seen: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    settings_seen: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    totals = [0, 0]
    for appointment_id, starts_at, status in rows:
        index = 1 if status == AppointmentStatus.missed else 0
        months_seen[starts_at.astimezone(tz).strftime("%Y-%m")][index] += 1
        settings_seen[reminder_label(sent.get(appointment_id or 0, set()))][index] += 1
        totals[index] += 1
    return NoShowReport(
        since=first,
        by_month=[Rate(k, *v) for k, v in sorted(months_seen.items())],
        by_reminders=[Rate(k, *v) for k, v in sorted(settings_seen.items())],
        overall=Rate("total", *totals),
    )

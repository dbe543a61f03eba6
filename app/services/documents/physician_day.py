"""The physician's dashboard: the day's appointments with their pre-consultation and red
flags (flagged first), the next working day's too (so that an evening or a weekend does not
show an empty page while Monday's flagged pre-consultations wait), drafts waiting for review,
and recent approvals."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.documents import generated as documents
from app.services.documents import letter_templates, letters
from app.services.preconsultation import summaries
from app.services.scheduling import agenda
from models.appointments import Appointment, AppointmentStatus
from models.documents import DocumentKind, GeneratedDocument, ReviewStatus
from models.patients import Patient
from models.questionnaires import PreConsultation
from models.users import User


@dataclass
class DayRow:
    """One appointment of the day with what the physician should know before it."""

    view: agenda.AppointmentView
    preconsultation: PreConsultation | None
    urgent: list[str]
    checks: list[str]
    summary: summaries.SummaryState | None

    @property
    def priority(self) -> int:
        return 0 if self.urgent else 1 if self.checks else 2


def _flag_texts(p: PreConsultation | None, severity: str, language: str) -> list[str]:
    if p is None:
        return []
    return [
        str(f.get("staff", {}).get(language) or f.get("staff", {}).get("fr", ""))
        for f in p.red_flags or []
        if (f.get("severity") == "urgence") == (severity == "urgence")
    ]


def day_rows(
    session: Session,
    actor: audit.Actor,
    user: User,
    day: date,
    tz: ZoneInfo,
    *,
    language: str = "fr",
) -> list[DayRow]:
    """The day of the physician's own agenda (every agenda if the account has none), urgent
    flags first, then flags to check, then the rest, each group in time order."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    views = agenda.list_appointments(
        session,
        actor,
        start=start,
        end=start + timedelta(days=1),
        practitioner_id=user.practitioner_id,
    )
    ids = [v.appointment.id for v in views]
    latest: dict[int, PreConsultation] = {}
    if ids:
        for p in session.exec(
            select(PreConsultation)
            .where(col(PreConsultation.appointment_id).in_(ids))
            .order_by(col(PreConsultation.id))
        ).all():
            latest[p.appointment_id] = p
    rows = []
    for v in views:
        pre = latest.get(v.appointment.id or 0)
        rows.append(
            DayRow(
                v,
                pre,
                _flag_texts(pre, "urgence", language),
                _flag_texts(pre, "check", language),
                summaries.summary_state(session, pre) if pre is not None else None,
            )
        )
    rows.sort(key=lambda r: (r.priority, r.view.appointment.starts_at))
    return rows


NEXT_DAY_HORIZON_DAYS = 31  # how far the dashboard looks for the next day with appointments
LIVE = (AppointmentStatus.booked, AppointmentStatus.confirmed)


@dataclass
class Dashboard:
    """Today, and the next working day (the next day with appointments in the agenda)."""

    today: date
    today_rows: list[DayRow]
    today_left: int  # today's appointments still to come
    next_day: date | None
    next_rows: list[DayRow]

    @property
    def next_first(self) -> bool:
        """Nothing is left today: the next working day leads the page."""
        return self.today_left == 0 and bool(self.next_rows)


def next_working_day(
    session: Session,
    user: User,
    after: date,
    tz: ZoneInfo,
    *,
    horizon_days: int = NEXT_DAY_HORIZON_DAYS,
) -> date | None:
    """The first day after ``after`` with a booked or confirmed appointment in the physician's
    agenda (every agenda if the account has none), within the horizon."""
    start = datetime.combine(after + timedelta(days=1), time.min, tzinfo=tz)
    query = select(Appointment.starts_at).where(
        Appointment.starts_at >= start,
        Appointment.starts_at < start + timedelta(days=horizon_days),
        col(Appointment.status).in_(LIVE),
    )
    if user.practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == user.practitioner_id)
    first = session.exec(query.order_by(col(Appointment.starts_at)).limit(1)).first()
    return first.astimezone(tz).date() if first is not None else None


def dashboard(
    session: Session,
    actor: audit.Actor,
    user: User,
    now: datetime,
    tz: ZoneInfo,
    *,
    language: str = "fr",
) -> Dashboard:
    """Today's rows and the next working day's, each flagged first."""
    today = now.astimezone(tz).date()
    today_rows = day_rows(session, actor, user, today, tz, language=language)
    left = sum(
        1
        for r in today_rows
        if r.view.appointment.starts_at > now and r.view.appointment.status in LIVE
    )
    following = next_working_day(session, user, today, tz)
    next_rows = (
        day_rows(session, actor, user, following, tz, language=language) if following else []
    )
    return Dashboard(today, today_rows, left, following, next_rows)


def _rows(
    session: Session, actor: audit.Actor, docs: list[GeneratedDocument], language: str
) -> list[documents.DocumentRow]:
    if not docs:
        return []
    patient_ids = {d.patient_id for d in docs}
    patients = {
        p.id: p for p in session.exec(select(Patient).where(col(Patient.id).in_(patient_ids)))
    }
    audit.record(
        session,
        actor,
        "document.list",
        record_type=documents.RECORD_TYPE,
        details={"document_ids": [d.id for d in docs]},
    )
    out = []
    for d in docs:
        patient = patients.get(d.patient_id)
        if d.kind == DocumentKind.letter:
            title = letter_templates.get_template(d.template or "").title_in(language)
        else:
            title = "Résumé de pré-consultation" if language == "fr" else "Pre-consultation summary"
        out.append(documents.DocumentRow(d, patient.display_name if patient else "?", title))
    return out


def waiting_drafts(
    session: Session, actor: audit.Actor, *, language: str = "fr", limit: int = 30
) -> list[documents.DocumentRow]:
    """Drafts not yet reviewed (letters still being written included), oldest first."""
    docs = session.exec(
        select(GeneratedDocument)
        .where(GeneratedDocument.status == ReviewStatus.draft)
        .order_by(col(GeneratedDocument.created_at))
        .limit(limit)
    ).all()
    return _rows(session, actor, list(docs), language)


def recent_approvals(
    session: Session, actor: audit.Actor, *, language: str = "fr", limit: int = 10
) -> list[documents.DocumentRow]:
    docs = session.exec(
        select(GeneratedDocument)
        .where(GeneratedDocument.status == ReviewStatus.approved)
        .order_by(col(GeneratedDocument.reviewed_at).desc())
        .limit(limit)
    ).all()
    return _rows(session, actor, list(docs), language)


def letter_states(
    session: Session, rows: list[documents.DocumentRow]
) -> dict[int, letters.LetterState]:
    """The drafting state of each letter in a list."""
    return {
        r.document.id or 0: letters.letter_state(session, r.document)
        for r in rows
        if r.document.kind == DocumentKind.letter
    }

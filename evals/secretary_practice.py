"""A scenario's practice in a fresh database (through the domain services), and the lookups
that turn the names used in a scenario into the ids the tools use."""

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.core.errors import DomainError
from app.services.knowledge import library as knowledge
from app.services.patients import records as patients
from app.services.scheduling import agenda, practice_setup, waiting_list
from evals.secretary_names import patient_matches, practitioner_matches, split_practitioner_name
from evals.secretary_scenarios import WEEKDAYS, AppointmentSpec, Practice, ScenarioError
from models.appointments import Appointment, PartOfDay, WaitingListEntry
from models.patients import Patient, PatientCreate, Sex
from models.practice import Practitioner
from models.users import Role, User

SETUP = Actor.system("eval")
NO_LOGIN = "!eval-account"  # not an argon2 hash: nobody can log in with this account
LIVE = tuple(agenda.LIVE_STATUSES)


class UnknownReference(LookupError):
    """A name in a scenario matches no one (or several) in the database."""


@dataclass(frozen=True)
class SeededAppointment:
    """An appointment that existed when the scenario started (its id is stable)."""

    id: int
    patient_id: int
    practitioner_id: int
    starts_at: datetime


@dataclass(frozen=True)
class Snapshot:
    """What ``unchanged`` compares: live appointments, patients and the waiting list."""

    appointments: frozenset[tuple[int, int, datetime, datetime]]
    patients: frozenset[int]
    waiting: frozenset[int]


def _practitioners(session: Session, practice: Practice) -> None:
    for spec in practice.practitioners:
        title, first, last = split_practitioner_name(spec.name)
        details = practice_setup.PractitionerDetails(
            first_name=first,
            last_name=last,
            title=title,
            specialty=spec.specialty,
            default_duration_minutes=spec.minutes,
        )
        row = practice_setup.create_practitioner(session, SETUP, details)
        week = {
            WEEKDAYS.index(day): [
                (time.fromisoformat(r[:5]), time.fromisoformat(r[6:])) for r in ranges
            ]
            for day, ranges in spec.hours.items()
        }
        practice_setup.set_week_hours(session, SETUP, row.id or 0, week)


def _patients(session: Session, practice: Practice) -> None:
    for spec in practice.patients:
        data = PatientCreate(
            birth_name=spec.nom,
            first_name=spec.prenom,
            used_name=spec.nom_usage,
            birth_date=spec.naissance,
            sex=Sex(spec.sexe),
            phone=spec.telephone,
            email=spec.email,
        )
        patients.create_patient(session, SETUP, data, confirm_not_duplicate=True)


def book(session: Session, tz: ZoneInfo, spec: AppointmentSpec) -> Appointment:
    """Book a scenario appointment (past ones too: the check of "now" is moved before it)."""
    return agenda.book_appointment(
        session,
        SETUP,
        tz,
        patient_id=patient_id(session, spec.patient),
        practitioner_id=practitioner_id(session, spec.practitioner),
        starts_at=spec.start,
        duration_minutes=spec.minutes,
        reason=spec.reason,
        now=spec.start,
    )


def seed_practice(session: Session, settings: Settings, practice: Practice) -> User:
    """Create the practice, its patients, appointments, absences and documents, and the
    secretary on whose behalf the assistant acts. Raises ``ScenarioError`` when the
    scenario's practice cannot exist (overlapping appointments, hours out of range...)."""
    try:
        _practitioners(session, practice)
        _patients(session, practice)
        for spec in practice.appointments:
            book(session, settings.tz, spec)
        for absence in practice.absences:
            practice_setup.add_absence(
                session,
                SETUP,
                practitioner_id(session, absence.practitioner),
                absence.start,
                absence.end,
                absence.reason,
            )
        for entry in practice.waiting_list:
            waiting_list.add_to_waiting_list(
                session,
                SETUP,
                patient_id=patient_id(session, entry.patient),
                practitioner_id=practitioner_id(session, entry.practitioner)
                if entry.practitioner
                else None,
                earliest=entry.earliest,
                latest=entry.latest,
                part_of_day=PartOfDay(entry.part_of_day),
                reason=entry.reason,
                today=entry.earliest,
            )
        for document in practice.documents:
            knowledge.ingest(session, SETUP, settings, document.name, document.text.encode())
    except (DomainError, UnknownReference, ValueError) as exc:
        message = exc.fr if isinstance(exc, DomainError) else str(exc)
        raise ScenarioError(f"cabinet du scénario impossible à créer : {message}") from exc
    user = User(
        username="secretaire",
        full_name="Secrétaire",
        role=Role.secretary,
        password_hash=NO_LOGIN,
    )
    session.add(user)
    session.flush()
    return user


def patient_id(session: Session, ref: str) -> int:
    """The id of the one patient that ``ref`` names."""
    rows = session.exec(select(Patient)).all()
    found = [
        p
        for p in rows
        if patient_matches(ref, (p.birth_name, p.first_name, p.birth_date, p.used_name))
    ]
    if len(found) != 1:
        problem = "aucun patient" if not found else f"{len(found)} patients"
        raise UnknownReference(f"« {ref} » : {problem} de ce nom dans la base")
    return found[0].id or 0


def practitioner_id(session: Session, ref: str) -> int:
    """The id of the one practitioner that ``ref`` names."""
    rows = session.exec(select(Practitioner)).all()
    found = [p for p in rows if practitioner_matches(ref, p.display_name)]
    if len(found) != 1:
        raise UnknownReference(f"« {ref} » : praticien introuvable ou ambigu")
    return found[0].id or 0


def appointment_id(
    session: Session,
    seeded: list[SeededAppointment],
    ref: str | dict[str, str],
    tz: ZoneInfo,
) -> int:
    """The appointment named by a patient (and a start, when the patient has several): one of
    the scenario's own appointments first, else a live one booked during the run."""
    patient, start = (ref, None) if isinstance(ref, str) else (ref.get("patient", ""), None)
    if isinstance(ref, dict) and ref.get("start"):
        start = datetime.fromisoformat(str(ref["start"]))
        start = start.replace(tzinfo=tz) if start.tzinfo is None else start
    pid = patient_id(session, patient)
    found = [
        s.id for s in seeded if s.patient_id == pid and (start is None or s.starts_at == start)
    ]
    if not found:
        query = select(Appointment).where(
            Appointment.patient_id == pid, col(Appointment.status).in_(LIVE)
        )
        found = [
            a.id or 0 for a in session.exec(query).all() if start is None or a.starts_at == start
        ]
    if len(found) != 1:
        problem = "aucun rendez-vous" if not found else "plusieurs rendez-vous (donnez start)"
        raise UnknownReference(f"rendez-vous de « {patient} » : {problem}")
    return found[0]


def seeded_appointments(session: Session) -> list[SeededAppointment]:
    return [
        SeededAppointment(a.id or 0, a.patient_id, a.practitioner_id, a.starts_at)
        for a in session.exec(select(Appointment)).all()
    ]


def snapshot(session: Session) -> Snapshot:
    live = session.exec(select(Appointment).where(col(Appointment.status).in_(LIVE))).all()
    return Snapshot(
        appointments=frozenset(
            (a.patient_id, a.practitioner_id, a.starts_at, a.ends_at) for a in live
        ),
        patients=frozenset(p for p in session.exec(select(Patient.id)).all() if p is not None),
        waiting=frozenset(
            w for w in session.exec(select(WaitingListEntry.id)).all() if w is not None
        ),
    )


class References:
    """Resolves a scenario's names (``patient``, ``practitioner``, ``appointment``) to the
    ids the tools take, reading the database at that moment (a patient registered during
    the run can be named too)."""

    def __init__(self, engine: Engine, seeded: list[SeededAppointment], tz: ZoneInfo) -> None:
        self.engine = engine
        self.seeded = seeded
        self.tz = tz
        self.errors: list[str] = []  # names that could not be resolved, for the report

    def resolve(self, key: str, value: Any) -> tuple[str, Any]:
        """``(tool argument, value)`` for one scenario argument."""
        try:
            return self._resolve(key, value)
        except UnknownReference as exc:
            self.errors.append(str(exc))
            raise

    def _resolve(self, key: str, value: Any) -> tuple[str, Any]:
        if value is None and key in ("patient", "practitioner", "appointment"):
            return f"{key}_id", None  # "practitioner: null": no practitioner at all
        with Session(self.engine) as session:
            if key == "patient":
                return "patient_id", patient_id(session, str(value))
            if key == "practitioner":
                return "practitioner_id", practitioner_id(session, str(value))
            if key == "appointment":
                return "appointment_id", appointment_id(session, self.seeded, value, self.tz)
        return key, value

    def tool_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Scenario arguments as a tool receives them (ids, ISO dates)."""
        resolved = dict(self.resolve(k, v) for k, v in args.items())
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in resolved.items()}

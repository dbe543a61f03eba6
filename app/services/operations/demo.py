"""A realistic demo practice: practitioners, working hours, patients, two weeks of agenda, and
the day each role sees (pre-consultations, summaries, letters, a waiting-list offer, the
outbox: ``demo_showcase``)."""

import hashlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from faker import Faker
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.documents import instruction_sheets
from app.services.identity.users import create_user
from app.services.knowledge import library as knowledge
from app.services.operations.demo_showcase import seed_showcase
from app.services.patients.records import create_patient
from models.appointments import Appointment, AppointmentSource, AppointmentStatus
from models.instruction_sheets import InstructionSheet
from models.knowledge import KnowledgeDocument
from models.patients import PatientCreate, Sex
from models.practice import Practitioner, WorkingHours
from models.questionnaires import PreConsultation
from models.users import Role, User

# The demo practice's handbooks ship inside the package, so that a fresh clone (or an
# installed wheel) seeds the same knowledge base; evals/knowledge.py measures the search on them.
HANDBOOKS_DIR = Path(__file__).resolve().parent / "demo_data"
HANDBOOKS = (HANDBOOKS_DIR / "livret-cabinet.md", HANDBOOKS_DIR / "consignes-patients.md")
DEMO_USERS = {"secretaire": Role.secretary, "medecin": Role.physician, "admin": Role.admin}

# (title, first name, last name, specialty, default minutes, {weekday: [(start, end), ...]})
PRACTITIONERS = [
    (
        "Dr",
        "Claire",
        "Martin",
        "Médecine générale",
        20,
        {
            0: [("08:30", "12:30"), ("14:00", "19:00")],
            1: [("08:30", "12:30"), ("14:00", "19:00")],
            2: [("08:30", "12:30")],
            3: [("08:30", "12:30"), ("14:00", "19:00")],
            4: [("08:30", "12:30"), ("14:00", "18:00")],
        },
    ),
    (
        "Dr",
        "Thomas",
        "Lefèvre",
        "Médecine générale",
        15,
        {
            0: [("09:00", "12:00"), ("13:30", "18:30")],
            2: [("09:00", "12:00"), ("13:30", "18:30")],
            3: [("09:00", "12:00")],
            4: [("09:00", "12:00"), ("13:30", "18:30")],
            5: [("09:00", "12:00")],
        },
    ),
    (
        "Dr",
        "Amina",
        "Benali",
        "Pédiatrie",
        30,
        {
            1: [("09:00", "12:30"), ("14:00", "18:00")],
            2: [("14:00", "18:00")],
            3: [("09:00", "12:30"), ("14:00", "18:00")],
            4: [("09:00", "12:30")],
        },
    ),
]

REASONS = [
    "Renouvellement d'ordonnance",
    "Fièvre",
    "Toux persistante",
    "Douleurs lombaires",
    "Certificat de sport",
    "Suivi tension artérielle",
    "Vaccination",
    "Suivi diabète",
    "Mal de gorge",
    "Bilan annuel",
    "Douleur abdominale",
    "Contrôle après traitement",
    "Maux de tête",
    "Éruption cutanée",
    "Suivi grossesse",
    "Résultats de prise de sang",
]


@dataclass
class SeedResult:
    """What the demo seed created, with the demo passwords (shown once)."""

    already_seeded: bool = False
    practitioners: int = 0
    patients: int = 0
    appointments: int = 0
    preconsultations: int = 0
    letters: int = 0
    offers: int = 0
    messages: int = 0
    credentials: dict[str, str] = field(default_factory=dict)


def nir_for(rng: random.Random, sex: Sex, birth: date) -> str:
    """A syntactically valid NIR (with its key) matching the sex and the birth date."""
    department = rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20])
    body = (
        f"{'1' if sex == Sex.male else '2'}{birth.year % 100:02d}{birth.month:02d}"
        f"{department}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    )
    return f"{body}{97 - int(body) % 97:02d}"


def _patient_data(fake: Faker, rng: random.Random) -> PatientCreate:
    sex = Sex.female if rng.random() < 0.52 else Sex.male
    first = fake.first_name_female() if sex == Sex.female else fake.first_name_male()
    birth_name = fake.last_name()
    today = date.today()
    birth = fake.date_between(today - timedelta(days=95 * 365), today - timedelta(days=60))
    used_name = (
        fake.last_name() if sex == Sex.female and birth.year < 1995 and rng.random() < 0.4 else None
    )
    slug = f"{first}.{used_name or birth_name}".lower().replace(" ", "-").replace("'", "")
    return PatientCreate(
        birth_name=birth_name.upper(),
        used_name=used_name.upper() if used_name else None,
        first_name=first,
        birth_date=birth,
        sex=sex,
        phone=f"06{rng.randint(12, 38)}{rng.randint(0, 999_999):06d}",
        email=f"{slug}@example.org" if rng.random() < 0.8 else None,
        address_line=fake.street_address(),
        postal_code=fake.postcode(),
        city=fake.city(),
        nir=nir_for(rng, sex, birth) if rng.random() < 0.6 else None,
        language="en" if rng.random() < 0.05 else "fr",
    )


def _flushed_id(row_id: int | None) -> int:
    """The primary key of a row already flushed, which the database has assigned."""
    if row_id is None:
        raise RuntimeError("the row was not flushed: it has no id yet")
    return row_id


def _practitioners(session: Session) -> list[Practitioner]:
    created = []
    for title, first, last, specialty, minutes, hours in PRACTITIONERS:
        practitioner = Practitioner(
            title=title,
            first_name=first,
            last_name=last,
            specialty=specialty,
            default_duration_minutes=minutes,
        )
        session.add(practitioner)
        session.flush()
        for weekday, ranges in hours.items():
            for start, end in ranges:
                session.add(
                    WorkingHours(
                        practitioner_id=_flushed_id(practitioner.id),
                        weekday=weekday,
                        start_time=time.fromisoformat(start),
                        end_time=time.fromisoformat(end),
                    )
                )
        created.append(practitioner)
    session.flush()
    return created


def _agenda(
    session: Session,
    settings: Settings,
    rng: random.Random,
    practitioners: list[Practitioner],
    patient_ids: list[int],
) -> int:
    """Fill about two thirds of the slots from three days ago to eleven days ahead."""
    tz = settings.tz
    now = datetime.now(tz)
    today = now.date()
    count = 0
    for practitioner in practitioners:
        hours = session.exec(
            select(WorkingHours).where(WorkingHours.practitioner_id == practitioner.id)
        ).all()
        step = timedelta(minutes=practitioner.default_duration_minutes)
        for offset in range(-3, 12):
            day = today + timedelta(days=offset)
            for rng_hours in (h for h in hours if h.weekday == day.weekday()):
                start = datetime.combine(day, rng_hours.start_time, tzinfo=tz)
                end_of_range = datetime.combine(day, rng_hours.end_time, tzinfo=tz)
                while start + step <= end_of_range:
                    if rng.random() < 0.65:
                        if start < now:
                            status = rng.choices(
                                [
                                    AppointmentStatus.honoured,
                                    AppointmentStatus.missed,
                                    AppointmentStatus.cancelled,
                                ],
                                [90, 5, 5],
                            )[0]
                        else:
                            status = rng.choices(
                                [AppointmentStatus.booked, AppointmentStatus.confirmed], [60, 40]
                            )[0]
                        session.add(
                            Appointment(
                                practitioner_id=_flushed_id(practitioner.id),
                                patient_id=rng.choice(patient_ids),
                                starts_at=start,
                                ends_at=start + step,
                                status=status,
                                reason=rng.choice(REASONS),
                                source=rng.choice(list(AppointmentSource)[:4]),
                            )
                        )
                        count += 1
                    start += step
    session.flush()
    return count


def seed_demo(
    session: Session, settings: Settings, *, patients: int = 200, seed: int = 2026
) -> SeedResult:
    """Create the demo practice once; a second call changes nothing."""
    if session.exec(select(User).where(User.username == "secretaire")).first():
        return SeedResult(already_seeded=True)
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    actor = audit.Actor.system("demo")
    practitioners = _practitioners(session)
    patient_ids: list[int] = []
    seen_nir: set[str] = set()
    while len(patient_ids) < patients:
        data = _patient_data(fake, rng)
        if data.nir in seen_nir:
            continue
        if data.nir:
            seen_nir.add(data.nir)
        patient = create_patient(session, actor, data, confirm_not_duplicate=True)
        patient_ids.append(_flushed_id(patient.id))
    appointments = _agenda(session, settings, rng, practitioners, patient_ids)
    result = SeedResult(
        practitioners=len(practitioners), patients=len(patient_ids), appointments=appointments
    )
    names = {
        "secretaire": "Sophie Bernard",
        "medecin": "Dr Claire Martin",
        "admin": "Administrateur",
    }
    users: dict[str, User] = {}
    for username, role in DEMO_USERS.items():
        password = secrets.token_urlsafe(9)
        users[username] = create_user(
            session,
            username=username,
            full_name=names[username],
            role=role,
            password=password,
            practitioner_id=practitioners[0].id if role == Role.physician else None,
            actor=actor,
        )
        result.credentials[username] = password
    showcase = seed_showcase(session, settings, practitioners, users["medecin"], patient_ids)
    result.preconsultations = showcase.preconsultations
    result.letters = showcase.letters
    result.offers = showcase.offers
    result.messages = showcase.messages
    audit.record(
        session,
        actor,
        "demo.seed",
        details={
            "practitioners": result.practitioners,
            "patients": result.patients,
            "appointments": appointments,
            "preconsultations": result.preconsultations,
            "letters": result.letters,
        },
    )
    return result


def seed_knowledge(
    session: Session, settings: Settings, handbooks: Sequence[Path] = HANDBOOKS
) -> str:
    """Import the demo handbooks into the knowledge base once; says what it did, one line per
    handbook. Each imported handbook is committed on its own, so that one that fails to index
    does not undo the others."""
    notes = [_seed_handbook(session, settings, path) for path in handbooks]
    sheet_note = seed_instruction_sheet(session, settings)
    return "\n".join([*notes, *([sheet_note] if sheet_note else [])])


DEMO_SHEET_TOPIC = "Prise de sang à jeun"
DEMO_SHEET_REASON = "Renouvellement d'ordonnance"  # the showcase's diabetic patient


def seed_instruction_sheet(session: Session, settings: Settings) -> str:
    """Once the handbooks are indexed, the secretary's draft instruction sheet (a fasting
    blood test, for the patient renewing a diabetes treatment) waits for the physician's
    review. Only on the demo practice, and only once; says what it did ("" when nothing)."""
    secretary = session.exec(select(User).where(User.username == "secretaire")).first()
    if secretary is None or session.exec(select(InstructionSheet)).first() is not None:
        return ""
    appointment = session.exec(
        select(Appointment)
        .join(PreConsultation, col(PreConsultation.appointment_id) == Appointment.id)
        .where(Appointment.reason == DEMO_SHEET_REASON)
        .order_by(col(Appointment.starts_at))
    ).first()
    if appointment is None:
        return ""
    try:
        sheet = instruction_sheets.draft_sheet(
            session,
            audit.Actor.system("demo"),
            settings,
            secretary,
            patient_id=appointment.patient_id,
            topic=DEMO_SHEET_TOPIC,
            appointment_id=appointment.id,
        )
    except DomainError as exc:
        session.rollback()
        return f"Fiche de consignes d'exemple non préparée : {exc.fr}"
    session.commit()
    return (
        f"Fiche de consignes « {sheet.title} » préparée ({len(sheet.paragraphs)} paragraphes "
        "cités), à relire par le médecin."
    )


def _seed_handbook(session: Session, settings: Settings, path: Path) -> str:
    if not path.is_file():
        return f"Livret d'exemple introuvable ({path}) : non importé."
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if session.exec(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest)).first():
        return f"Livret d'exemple « {path.name} » déjà dans la base de connaissances."
    try:
        outcome = knowledge.ingest(
            session, audit.Actor.system("demo"), settings, path.name, content
        )
    except DomainError as exc:
        session.rollback()  # the document and its job, indexed inline, are not kept
        return f"Livret d'exemple « {path.name} » non importé : {exc.fr}"
    document = outcome.document
    note = (
        f"Base de connaissances : « {document.title} » importé ({document.chunk_count} passages)."
    )
    session.commit()
    return note

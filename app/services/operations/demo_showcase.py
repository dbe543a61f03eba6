"""The demo's day for every role: pre-consultations submitted for the physician's next
appointments (urgent and `à vérifier` flags, free text), their structured summaries (one
approved), a letter draft waiting for review and an approved letter, a waiting list with an
offer, and reminders in the outbox.

Why through the services: the demo then shows exactly what the practice would see (the flags
the rules raise, the summary the builder writes, the letter the prefill writes), and each step
is audited like real work. It runs inside ``seed_demo``, once (the seed is idempotent)."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core import audit
from app.services.documents import generated as documents
from app.services.documents import letters, review
from app.services.notifications import planning
from app.services.preconsultation import links, questionnaires, summaries
from app.services.scheduling import waiting_list
from app.services.scheduling.slots import Slot
from models.appointments import Appointment, AppointmentStatus
from models.notifications import Channel, MessageKind
from models.patients import Patient, Sex
from models.practice import Practitioner
from models.users import User


@dataclass(frozen=True)
class Case:
    """One demo patient's pre-consultation: the appointment's reason, who fits it (sex, ages)
    and what they wrote."""

    reason: str
    questionnaire: str
    answers: dict[str, Any]
    sex: Sex | None = None
    ages: tuple[int, int] = (18, 90)


# What the demo patients wrote, in the order the physician will see them: an urgent sign in
# free text, points to check, then ordinary visits.
CASES: tuple[Case, ...] = (
    Case(
        "Douleur thoracique",
        "consultation-generale",
        {
            "motif": "Douleur dans la poitrine depuis ce matin",
            "debut": "aujourdhui",
            "intensite": 7,
            "symptomes": ["douleur-thoracique", "essoufflement"],
            "douleur-thoracique-signes": ["sueurs", "irradiation"],
            "symptomes-details": "Ça serre dans la poitrine et ça part dans le bras gauche.",
            "traitements-en-cours": True,
            "traitements-liste": "Amlodipine 5 mg le matin",
            "anticoagulant": False,
            "allergies": False,
            "antecedents": ["hypertension"],
            "tabac": "actuel",
            "tabac-quantite": 15,
            "alcool": "occasionnel",
        },
        ages=(50, 80),
    ),
    Case(
        "Fièvre",
        "consultation-generale",
        {
            "motif": "Fièvre et mal de gorge",
            "debut": "moins-3j",
            "intensite": 9,
            "symptomes": ["fievre", "mal-de-tete"],
            "temperature": 40.1,
            "traitements-en-cours": False,
            "anticoagulant": False,
            "allergies": True,
            "allergies-liste": "Pénicilline : plaques rouges",
            "grossesse": "possible",
            "autres-informations": "Je préfère un rendez-vous en fin de journée si possible.",
        },
        sex=Sex.female,
        ages=(18, 42),
    ),
    Case(
        "Renouvellement d'ordonnance",
        "renouvellement-ordonnance",
        {
            "medicaments": "Metformine 1000 mg matin et soir",
            "observance": "oublis",
            "effets-indesirables": True,
            "effets-detail": "Des maux de ventre après le repas du soir.",
            "tension-mesuree": True,
            "tension-systolique": 142,
            "tension-diastolique": 88,
            "changement-sante": False,
            "symptomes-alerte": ["aucun"],
            "grossesse": "non-concerne",
        },
        ages=(45, 85),
    ),
    Case(
        "Toux persistante",
        "consultation-generale",
        {
            "motif": "Toux depuis une semaine",
            "debut": "moins-1sem",
            "intensite": 4,
            "symptomes": ["toux"],
            "symptomes-details": "Toux sèche surtout la nuit, sans fièvre.",
            "traitements-en-cours": False,
            "anticoagulant": False,
            "allergies": False,
            "antecedents": ["asthme"],
            "tabac": "jamais",
            "alcool": "jamais",
            "autres-informations": "J'ai aussi une question sur mon inhalateur.",
        },
        ages=(20, 60),
    ),
)
REFERRAL_INSTRUCTION = "Avis pneumologique pour une toux persistante chez un asthmatique."


@dataclass
class Showcase:
    """What the showcase made (the seed's summary line reads it)."""

    preconsultations: int = 0
    letters: int = 0
    offers: int = 0
    messages: int = 0
    summary_ids: list[int] = field(default_factory=list)


def _upcoming(
    session: Session, practitioner_id: int, now: datetime, days: int
) -> list[Appointment]:
    """The practitioner's next live appointments on the first ``days`` days that have some
    (today and tomorrow on a working day)."""
    rows = session.exec(
        select(Appointment)
        .where(
            Appointment.practitioner_id == practitioner_id,
            Appointment.starts_at > now,
            col(Appointment.status).in_([AppointmentStatus.booked, AppointmentStatus.confirmed]),
        )
        .order_by(col(Appointment.starts_at))
    ).all()
    kept: list[Appointment] = []
    seen_days: list[Any] = []
    for row in rows:
        day = row.starts_at.date()
        if day not in seen_days:
            if len(seen_days) == days:
                break
            seen_days.append(day)
        kept.append(row)
    return kept


def _spread(appointments: list[Appointment], count: int) -> list[Appointment]:
    """``count`` appointments spread over the days found (alternating), in time order."""
    by_day: dict[Any, list[Appointment]] = {}
    for row in appointments:
        by_day.setdefault(row.starts_at.date(), []).append(row)
    picked: list[Appointment] = []
    queues = list(by_day.values())
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return sorted(picked, key=lambda a: a.starts_at)


def _fitting_patient(session: Session, case: Case, today: date, used: set[int]) -> int | None:
    """The first demo patient the case fits (sex, age), so the summary reads true."""
    for patient in session.exec(select(Patient).order_by(col(Patient.id))).all():
        age = letters.age_on(patient.birth_date, today)
        if patient.id in used or not case.ages[0] <= age <= case.ages[1]:
            continue
        if case.sex is None or patient.sex == case.sex:
            return patient.id
    return None


def _submit(
    session: Session, settings: Settings, appointment: Appointment, case: Case, used: set[int]
) -> int:
    """Give the appointment to a patient the case fits, then send, answer and submit."""
    actor = audit.Actor.system("demo")
    today = datetime.now(settings.tz).date()
    patient_id = _fitting_patient(session, case, today, used)
    if patient_id is not None:
        appointment.patient_id = patient_id
        used.add(patient_id)
    appointment.reason = case.reason
    session.add(appointment)
    session.flush()
    sent = links.send_preconsultation(
        session,
        actor,
        appointment.id or 0,
        secret=settings.resolved_secret_key(),
        questionnaire_slug=case.questionnaire,
        lifetime=timedelta(days=7),
    )
    p = sent.preconsultation
    links.save_answers(session, actor, p, case.answers)
    links.submit(session, actor, p)  # stores the structured summary at once
    document = summaries.summary_document(session, p.id or 0)
    return document.id or 0 if document is not None else 0


def _letters(
    session: Session, settings: Settings, physician: User, summary_id: int, result: Showcase
) -> None:
    """A referral drafted from the approved summary (waiting for review) and an approved
    consultation report, both prefilled from the record (no model needed)."""
    actor = audit.Actor.system("demo")
    summary = documents.load(session, summary_id)
    review.approve(session, actor, physician, settings, summary_id)
    draft = letters.request_letter(
        session,
        actor,
        patient_id=summary.patient_id,
        template_id="adressage",
        instruction=REFERRAL_INSTRUCTION,
        requested_by=physician,
        appointment_id=summary.appointment_id,
        summary_id=summary_id,
    )
    letters.store_prefilled(session, draft, settings)
    report = letters.request_letter(
        session,
        actor,
        patient_id=summary.patient_id,
        template_id="compte_rendu",
        instruction="",
        requested_by=physician,
        appointment_id=summary.appointment_id,
        summary_id=summary_id,
    )
    letters.store_prefilled(session, report, settings)
    filled = report.content
    letters.edit_letter(
        session,
        actor,
        physician,
        settings,
        report.id or 0,
        fields={
            "destinataire": "Dossier médical",
            "conclusion": "Toux post-virale probable ; asthme à réévaluer dans un mois.",
        },
        body=str(filled.get("body", ""))
        + "\n\nExamen : auscultation sans sibilant, saturation à 98 %.",
    )
    review.approve(session, actor, physician, settings, report.id or 0)
    result.letters = 2


def _waiting_offer(
    session: Session,
    settings: Settings,
    practitioner: Practitioner,
    patient_id: int,
    skip: set[int],
    now: datetime,
) -> int:
    """A patient waiting for an earlier slot, and the slot a cancellation freed offered."""
    actor = audit.Actor.system("demo")
    later = [a for a in _upcoming(session, practitioner.id or 0, now, 3) if a.id not in skip]
    if not later:
        return 0
    freed = later[-1]
    today = now.astimezone(settings.tz).date()
    waiting_list.add_to_waiting_list(
        session,
        actor,
        patient_id=patient_id,
        earliest=today,
        latest=today + timedelta(days=10),
        practitioner_id=practitioner.id,
        duration_minutes=practitioner.default_duration_minutes,
        reason="Souhaite un rendez-vous plus tôt (douleurs d'épaule)",
        today=today,
    )
    freed.status = AppointmentStatus.cancelled
    freed.cancelled_at = now
    freed.cancel_reason = "Annulé par le patient"
    session.add(freed)
    slot = Slot(practitioner.id or 0, freed.starts_at, freed.ends_at)
    offer = waiting_list.offer_freed_slot(
        session, actor, settings.tz, slot, freed_by_appointment_id=freed.id, now=now
    )
    return 1 if offer is not None else 0


def _reminders(session: Session, appointments: list[Appointment], now: datetime) -> int:
    """Reminders planned for the coming appointments (they wait in the outbox until due)."""
    count = 0
    for appointment in appointments:
        patient = session.get(Patient, appointment.patient_id)
        if patient is None:
            continue
        channel, recipient = (
            (Channel.email, patient.email) if patient.email else (Channel.sms, patient.phone)
        )
        planned = appointment.starts_at - timedelta(hours=24)
        planning.plan_message(
            session,
            key=planning.message_key(MessageKind.reminder, channel, appointment.id, 24),
            kind=MessageKind.reminder,
            channel=channel,
            planned_at=max(planned, now + timedelta(hours=1)),
            patient_id=patient.id,
            appointment_id=appointment.id,
            reminder_hours=24,
            recipient=recipient,
        )
        count += 1
    return count


def seed_showcase(
    session: Session,
    settings: Settings,
    practitioners: list[Practitioner],
    physician: User,
    patient_ids: list[int],
) -> Showcase:
    """Fill the physician's, the secretary's and the outbox's day (see the module)."""
    result = Showcase()
    questionnaires.import_bundled(session)
    now = datetime.now(settings.tz)
    practitioner = practitioners[0]
    chosen = _spread(_upcoming(session, practitioner.id or 0, now, 2), len(CASES))
    used: set[int] = set()
    for appointment, case in zip(chosen, CASES, strict=False):
        result.summary_ids.append(_submit(session, settings, appointment, case, used))
        result.preconsultations += 1
    if len(result.summary_ids) == len(CASES):
        _letters(session, settings, physician, result.summary_ids[-1], result)
    skip = {a.id or 0 for a in chosen}
    result.offers = _waiting_offer(session, settings, practitioner, patient_ids[-1], skip, now)
    later = [a for a in _upcoming(session, practitioner.id or 0, now, 4) if a.id not in skip]
    result.messages = _reminders(session, later[-3:], now)
    session.flush()
    return result

"""Pre-consultation links: signed tokens bound to one appointment, identity check, autosaved
answers, red flags, submission as a FHIR QuestionnaireResponse, and the staff's view."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import segno
from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.preconsultation import questionnaires, red_flags, summaries
from models.appointments import Appointment, AppointmentStatus
from models.audit import ActorKind
from models.patients import Patient
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire
from models.users import User

DEFAULT_LIFETIME = timedelta(days=7)
MAX_IDENTITY_ATTEMPTS = 5
LEAN_QUESTIONNAIRE = defer(Questionnaire.resource)  # type: ignore[arg-type]  # SQLModel field, a column
OPEN_STATUSES = (
    PreConsultationStatus.sent,
    PreConsultationStatus.opened,
    PreConsultationStatus.in_progress,
)


class LinkProblem:
    """Why a link cannot be used; each has its own patient page."""

    invalid = "invalid"
    expired = "expired"
    revoked = "revoked"
    submitted = "submitted"
    locked = "locked"


@dataclass
class SentLink:
    preconsultation: PreConsultation
    questionnaire: Questionnaire
    token: str
    expires_at: datetime

    @property
    def path(self) -> str:
        return f"/p/{self.token}"


@dataclass
class LinkAccess:
    """The outcome of opening a link: the pre-consultation found (if any) and, when the link
    cannot be used, the problem to show."""

    preconsultation: PreConsultation | None
    problem: str | None = None

    @property
    def usable(self) -> PreConsultation | None:
        return self.preconsultation if self.problem is None else None


@dataclass(frozen=True)
class AutosaveLink:
    """What an autosave reads of its link, in one statement and without ORM objects: the
    link's state and answers, its patient (the rules' ages) and its questionnaire version."""

    id: int
    token_hash: str
    status: str
    answers: dict[str, Any]
    patient_id: int | None
    birth_date: date | None
    questionnaire: questionnaires.Version


@dataclass(frozen=True)
class AutosaveAccess:
    """An autosave's link, or the problem (already audited) that refuses it."""

    link: AutosaveLink | None
    problem: str | None = None


@dataclass
class SaveResult:
    flags: list[red_flags.Flag]
    enabled: list[str]


@dataclass
class StaffView:
    preconsultation: PreConsultation
    questionnaire: Questionnaire
    flags: list[dict[str, Any]]
    answers: list[tuple[str, str]] = field(default_factory=list)  # (question, answer) shown
    locked: bool = False
    questions: dict[str, str] = field(default_factory=dict)  # linkId → question, for citations
    summary: summaries.SummaryState | None = None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bytes(text: str) -> bytes:
    """Text as bytes for a constant-time comparison (which refuses non-ASCII ``str``)."""
    return text.encode("utf-8", "surrogatepass")


def _signature(secret: str, nonce: str) -> str:
    message = f"preconsultation:{nonce}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode(), message, hashlib.sha256)
    return _b64(digest.digest()[:12])


def new_token(secret: str) -> str:
    """A random nonce and its HMAC: a tampered token is refused before any lookup."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(secret, nonce)}"


def signature_ok(secret: str, token: str) -> bool:
    nonce, _, signature = token.partition(".")
    return bool(nonce and signature) and hmac.compare_digest(
        _bytes(signature), _bytes(_signature(secret, nonce))
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_csrf(secret: str, preconsultation: PreConsultation | AutosaveLink) -> str:
    """A per-link token the patient's forms and autosave requests must send back."""
    message = f"preconsultation-csrf:{preconsultation.token_hash}".encode()
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest()[:18])


def csrf_ok(secret: str, preconsultation: PreConsultation | AutosaveLink, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(
        _bytes(link_csrf(secret, preconsultation)), _bytes(sent or "")
    )


def qr_svg_data_uri(url: str) -> str:
    """The link as a QR code (SVG data URI, allowed by the page's CSP)."""
    return segno.make(url, error="m").svg_data_uri(scale=4, border=2)


def _staff_id(session: Session, actor: audit.Actor) -> int | None:
    if actor.kind != ActorKind.user or not (actor.id or "").isdigit():
        return None
    user = session.get(User, int(actor.id or 0))
    return user.id if user else None


def _patient(session: Session, appointment: Appointment) -> Patient:
    patient = session.get(Patient, appointment.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    return patient


# ---------------------------------------------------------------- staff side


def send_preconsultation(
    session: Session,
    actor: audit.Actor,
    appointment_id: int,
    *,
    secret: str,
    questionnaire_slug: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: datetime | None = None,
) -> SentLink:
    """Create a link for an appointment (revoking any earlier unsubmitted one)."""
    moment = _now(now)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    if appointment.status == AppointmentStatus.cancelled:
        raise Conflict("Ce rendez-vous est annulé.", "This appointment is cancelled.")
    if appointment.ends_at <= moment:
        raise Conflict("Ce rendez-vous est passé.", "This appointment is in the past.")
    if lifetime <= timedelta(0) or lifetime > timedelta(days=60):
        raise InvalidInput(
            "Durée de validité entre 1 minute et 60 jours.",
            "Lifetime must be between 1 minute and 60 days.",
        )
    patient = _patient(session, appointment)
    questionnaire = questionnaires.pick(
        session,
        visit_type=appointment.visit_type,
        language=patient.language,
        slug=questionnaire_slug,
    )
    earlier = session.exec(
        select(PreConsultation).where(PreConsultation.appointment_id == appointment_id)
    ).all()
    if any(p.status == PreConsultationStatus.submitted for p in earlier):
        raise Conflict(
            "Le patient a déjà rempli le questionnaire de ce rendez-vous.",
            "The patient has already filled in the questionnaire for this appointment.",
        )
    for old in earlier:
        if old.status in OPEN_STATUSES:
            old.status = PreConsultationStatus.revoked
            old.updated_at = moment
            session.add(old)
    token = new_token(secret)
    expires_at = min(moment + lifetime, appointment.ends_at)
    preconsultation = PreConsultation(
        appointment_id=appointment_id,
        questionnaire_id=questionnaire.id or 0,
        token_hash=hash_token(token),
        expires_at=expires_at,
        created_by_id=_staff_id(session, actor),
    )
    session.add(preconsultation)
    session.flush()
    audit.record(
        session,
        actor,
        "preconsultation.send",
        record_type="preconsultation",
        record_id=preconsultation.id,
        patient_id=patient.id,
        details={"appointment_id": appointment_id, "questionnaire": questionnaire.slug},
    )
    return SentLink(preconsultation, questionnaire, token, expires_at)


def revoke_preconsultation(
    session: Session, actor: audit.Actor, appointment_id: int, *, now: datetime | None = None
) -> int:
    """Revoke the appointment's open links; how many were revoked."""
    count = 0
    for p in session.exec(
        select(PreConsultation).where(
            PreConsultation.appointment_id == appointment_id,
            col(PreConsultation.status).in_(OPEN_STATUSES),
        )
    ):
        p.status = PreConsultationStatus.revoked
        p.updated_at = _now(now)
        session.add(p)
        count += 1
        audit.record(
            session,
            actor,
            "preconsultation.revoke",
            record_type="preconsultation",
            record_id=p.id,
            patient_id=_appointment_patient_id(session, p),
        )
    return count


def _hold(
    session: Session, p: PreConsultation, appointment: Appointment | None, patient: Patient | None
) -> None:
    """Keep the link's appointment and patient, loaded with the link, for the session's life:
    ``_appointment`` answers from here, and ``session.get(Patient, …)`` from the identity map."""
    if appointment is not None:
        session.info.setdefault("pc_appointments", {})[p.appointment_id] = appointment
    if patient is not None:
        session.info.setdefault("pc_patients", {})[patient.id] = patient


def _appointment(session: Session, p: PreConsultation) -> Appointment | None:
    """The link's appointment, held for the session's life: the identity map keeps objects
    only while something references them, and one autosave asks for it three times (one
    query instead of three)."""
    held: dict[int, Appointment] = session.info.setdefault("pc_appointments", {})
    appointment = held.get(p.appointment_id)
    if appointment is None or appointment not in session:
        appointment = session.get(Appointment, p.appointment_id)
        if appointment is not None:
            held[p.appointment_id] = appointment
    return appointment


def _appointment_patient_id(session: Session, p: PreConsultation) -> int | None:
    appointment = _appointment(session, p)
    return appointment.patient_id if appointment else None


def staff_view(
    session: Session, actor: audit.Actor, appointment_id: int, *, language: str = "fr"
) -> StaffView | None:
    """The appointment's latest pre-consultation, its flags and answers (audited read)."""
    p = session.exec(
        select(PreConsultation)
        .where(PreConsultation.appointment_id == appointment_id)
        .order_by(col(PreConsultation.id).desc())
    ).first()
    if p is None:
        return None
    row = session.get(Questionnaire, p.questionnaire_id)
    if row is None:
        raise NotFound("Questionnaire introuvable.", "Questionnaire not found.")
    shown = questionnaires.translation(session, row, language)
    form = questionnaires.form_of(shown)
    kept = questionnaires.enabled_answers(form, p.answers)
    answers = [
        (form.questions[k].text, questionnaires.display_answer(form.questions[k], v, language))
        for k, v in kept.items()
    ]
    audit.record(
        session,
        actor,
        "preconsultation.read",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=_appointment_patient_id(session, p),
    )
    return StaffView(
        p,
        shown,
        p.red_flags,
        answers,
        p.failed_identity_checks >= MAX_IDENTITY_ATTEMPTS,
        questions={k: q.text for k, q in form.questions.items()},
        summary=summaries.summary_state(session, p),
    )


# ---------------------------------------------------------------- patient side


def _problem(
    status: str,
    failed_identity_checks: int,
    appointment_status: str | None,
    expires_at: datetime,
    moment: datetime,
) -> str | None:
    """Why a found link cannot be used (``appointment_status`` None: no appointment)."""
    if status == PreConsultationStatus.submitted:
        return LinkProblem.submitted
    if status == PreConsultationStatus.revoked:
        return LinkProblem.revoked
    if failed_identity_checks >= MAX_IDENTITY_ATTEMPTS:
        return LinkProblem.locked
    if appointment_status is None or appointment_status == AppointmentStatus.cancelled:
        return LinkProblem.revoked
    if status == PreConsultationStatus.expired or expires_at <= moment:
        return LinkProblem.expired
    return None


def open_link(
    session: Session,
    actor: audit.Actor,
    token: str,
    *,
    secret: str,
    now: datetime | None = None,
    for_update: bool = False,
    audit_open: bool = True,
) -> LinkAccess:
    """Check a token and audit the access; never raises, so a denial is committed too.
    ``audit_open=False`` leaves a granted access to the caller's own event (an autosave is
    audited once, as ``preconsultation.answer``); denials are always audited here."""
    moment = _now(now)
    p: PreConsultation | None = None
    if len(token) <= 128 and signature_ok(secret, token):
        # One statement for the link, its appointment and its patient (an autosave needs all
        # three: the appointment's status, the patient's age for the rules), instead of three
        # round trips. Only the link's row is locked.
        query = (
            select(PreConsultation, Appointment, Patient)
            .outerjoin(Appointment, col(Appointment.id) == PreConsultation.appointment_id)
            .outerjoin(Patient, col(Patient.id) == Appointment.patient_id)
            .where(PreConsultation.token_hash == hash_token(token))
        )
        if for_update:
            query = query.with_for_update(of=PreConsultation)
        row = session.exec(query).first()
        if row is not None:
            p = row[0]
            _hold(session, p, row[1], row[2])  # None where the outer joins found nothing
    problem = None
    if p is None:
        problem = LinkProblem.invalid
    else:
        appointment = _appointment(session, p)
        problem = _problem(
            p.status,
            p.failed_identity_checks,
            appointment.status if appointment else None,
            p.expires_at,
            moment,
        )
        if problem == LinkProblem.expired and p.status != PreConsultationStatus.expired:
            p.status = PreConsultationStatus.expired
            p.updated_at = moment
            session.add(p)
    if problem is None and not audit_open:
        return LinkAccess(p, None)
    audit.record(
        session,
        actor,
        "preconsultation.link_open" if problem is None else "preconsultation.link_denied",
        record_type="preconsultation",
        record_id=p.id if p else None,
        patient_id=_appointment_patient_id(session, p) if p else None,
        outcome="ok" if problem is None else "denied",
        details={"problem": problem} if problem else None,
    )
    return LinkAccess(p, problem)


def record_refusal(session: Session, actor: audit.Actor, link: AutosaveLink, problem: str) -> None:
    """Audit an autosave the link itself allowed but the browser's state did not (identity
    not confirmed, expired form token)."""
    audit.record(
        session,
        actor,
        "preconsultation.link_denied",
        record_type="preconsultation",
        record_id=link.id,
        patient_id=link.patient_id,
        outcome="denied",
        details={"problem": problem},
    )


def _parse_birth_date(text: str) -> date | None:
    text = text.strip()
    for parse in (
        date.fromisoformat,
        lambda v: datetime.strptime(v, "%d/%m/%Y").date(),
    ):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def verify_identity(
    session: Session,
    actor: audit.Actor,
    p: PreConsultation,
    birth_date_text: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Compare the birth date typed by the patient; the fifth failure locks the link."""
    appointment = _appointment(session, p)
    if appointment is None:
        return False
    patient = _patient(session, appointment)
    ok = _parse_birth_date(birth_date_text) == patient.birth_date
    if ok:
        if p.status == PreConsultationStatus.sent:
            p.status = PreConsultationStatus.opened
    else:
        p.failed_identity_checks += 1
    p.updated_at = _now(now)
    session.add(p)
    audit.record(
        session,
        actor,
        "preconsultation.identity",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=patient.id,
        outcome="ok" if ok else "denied",
        details=None if ok else {"failures": p.failed_identity_checks},
    )
    return ok


def attempts_left(p: PreConsultation) -> int:
    return max(0, MAX_IDENTITY_ATTEMPTS - p.failed_identity_checks)


def questionnaire_for(session: Session, p: PreConsultation, language: str) -> Questionnaire:
    """The link's questionnaire version in ``language``. The FHIR resource is loaded only
    when read: the parsed form is cached per version (``questionnaires.form_of``), so an
    autosave does not decode the whole questionnaire again."""
    row = session.get(Questionnaire, p.questionnaire_id, options=[LEAN_QUESTIONNAIRE])
    if row is None:
        raise NotFound("Questionnaire introuvable.", "Questionnaire not found.")
    return questionnaires.translation(session, row, language)


def _flags(session: Session, p: PreConsultation, form: questionnaires.Form) -> list[red_flags.Flag]:
    """Ticks, numbers, age and every free-text answer (reason, details, treatments, voice
    transcriptions the patient kept) against the rules."""
    appointment = _appointment(session, p)
    patient = session.get(Patient, appointment.patient_id) if appointment else None
    ages = red_flags.age_answers(patient.birth_date if patient else None, datetime.now(UTC).date())
    return red_flags.assess(form, p.answers, ages)


def _merged(
    known: Mapping[str, questionnaires.Question], answers: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    """The stored answers with ``values`` applied (None clears one)."""
    merged = dict(answers)
    for link_id, raw in values.items():
        question = known.get(link_id)
        if question is None:
            raise InvalidInput(f"Question inconnue : {link_id}.", f"Unknown question: {link_id}.")
        value = questionnaires.coerce_answer(question, raw)
        if value is None:
            merged.pop(link_id, None)
        else:
            merged[link_id] = value
    return merged


def _in_progress(status: str) -> str:
    """A link's status once answers are saved."""
    if status in (PreConsultationStatus.sent, PreConsultationStatus.opened):
        return PreConsultationStatus.in_progress
    return status


def _enabled(form: questionnaires.Form, answers: dict[str, Any]) -> list[str]:
    return [k for k, q in form.questions.items() if questionnaires.is_enabled(form, q, answers)]


def save_answers(
    session: Session,
    actor: audit.Actor,
    p: PreConsultation,
    values: dict[str, Any],
    *,
    now: datetime | None = None,
) -> SaveResult:
    """Validate and store answers (None clears one), then re-evaluate the red flags."""
    row = questionnaire_for(session, p, "fr")
    form = questionnaires.form_of(row)
    answers = _merged(form.questions, p.answers, values)
    p.answers = answers
    p.status = PreConsultationStatus(_in_progress(p.status))
    flags = _flags(session, p, form)
    p.red_flags = [f.as_json() for f in flags]
    p.updated_at = _now(now)
    session.add(p)
    audit.record(
        session,
        actor,
        "preconsultation.answer",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=_appointment_patient_id(session, p),
        details={"questions": sorted(values)},
    )
    return SaveResult(flags, _enabled(form, answers))


def _valid(
    known: Mapping[str, questionnaires.Question], values: dict[str, Any], language: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that are answers to known questions, and a message for each other one."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for link_id, raw in values.items():
        question = known.get(link_id)
        if question is None:
            errors[str(link_id)[:64]] = (
                "Question inconnue." if language == "fr" else "Unknown question."
            )
            continue
        try:
            questionnaires.coerce_answer(question, raw)
        except InvalidInput as exc:
            errors[link_id] = exc.message(language)
            continue
        clean[link_id] = raw
    return clean, errors


# The link, its appointment's status, its patient's birth date and its questionnaire version,
# in one statement; only the link's row is locked (the answers are read, merged and written).
# The first columns are an ``AutosaveLink``'s fields, in order, then its ``Version``'s.
_AUTOSAVE_LINK = (
    core_select(
        col(PreConsultation.id),
        col(PreConsultation.token_hash),
        col(PreConsultation.status),
        col(PreConsultation.answers),
        col(Appointment.patient_id),
        col(Patient.birth_date),
        *questionnaires.VERSION_COLUMNS,
        col(PreConsultation.failed_identity_checks),
        col(PreConsultation.expires_at),
        col(Appointment.status).label("appointment_status"),
    )
    .join(Questionnaire, col(Questionnaire.id) == PreConsultation.questionnaire_id)
    .outerjoin(Appointment, col(Appointment.id) == PreConsultation.appointment_id)
    .outerjoin(Patient, col(Patient.id) == Appointment.patient_id)
    .where(col(PreConsultation.token_hash) == bindparam("token_hash"))
    .with_for_update(of=PreConsultation.__table__)  # type: ignore[attr-defined]
)
_SAVE = (
    update(PreConsultation.__table__)  # type: ignore[attr-defined]
    .where(PreConsultation.__table__.c.id == bindparam("link_id"))  # type: ignore[attr-defined]
    .values(
        answers=bindparam("answers"),
        red_flags=bindparam("red_flags"),
        status=bindparam("status"),
        updated_at=bindparam("updated_at"),
    )
)


def open_for_autosave(
    session: Session,
    actor: audit.Actor,
    token: str,
    *,
    secret: str,
    now: datetime | None = None,
) -> AutosaveAccess:
    """``open_link`` for an autosave, without loading ORM objects: one statement reads what
    the save needs. A granted access is audited by the save's own event; a refused one goes
    through ``open_link``, which audits it (and marks an expired link), as for every page."""
    moment = _now(now)
    row = None
    if len(token) <= 128 and signature_ok(secret, token):
        found = session.connection().execute(_AUTOSAVE_LINK, {"token_hash": hash_token(token)})
        row = found.first()
    if row is None or _problem(
        row.status, row.failed_identity_checks, row.appointment_status, row.expires_at, moment
    ):
        access = open_link(
            session, actor, token, secret=secret, now=moment, for_update=True, audit_open=False
        )
        return AutosaveAccess(None, access.problem or LinkProblem.invalid)
    link_id, token_hash, status, answers, patient_id, birth_date = row[:6]
    version = questionnaires.Version(*row[6:11])
    return AutosaveAccess(
        AutosaveLink(link_id, token_hash, status, answers or {}, patient_id, birth_date, version)
    )


def save_valid(
    session: Session,
    actor: audit.Actor,
    link: AutosaveLink,
    values: dict[str, Any],
    language: str,
    *,
    now: datetime | None = None,
) -> tuple[SaveResult, dict[str, str]]:
    """Autosave: keep every valid answer, report each invalid one (nothing valid is lost),
    then re-evaluate the red flags, as ``save_answers`` does; the link is written with one
    UPDATE of the columns it changes, and its audit event with one INSERT (the caller
    commits at once: SQLite's write lock is held from here to the commit only)."""
    shown = questionnaires.version_translation(session, link.questionnaire, language)
    clean, errors = _valid(questionnaires.version_form(session, shown).questions, values, language)
    french = questionnaires.version_translation(session, link.questionnaire, "fr")
    form = questionnaires.version_form(session, french)
    answers = _merged(form.questions, link.answers, clean)
    moment = _now(now)
    ages = red_flags.age_answers(link.birth_date, moment.date())
    flags = red_flags.assess(form, answers, ages)
    session.connection().execute(
        _SAVE,
        {
            "link_id": link.id,
            "answers": answers,
            "red_flags": [f.as_json() for f in flags],
            "status": _in_progress(link.status),
            "updated_at": moment,
        },
    )
    audit.record_now(
        session,
        actor,
        "preconsultation.answer",
        record_type="preconsultation",
        record_id=link.id,
        patient_id=link.patient_id,
        details={"questions": sorted(clean)},
    )
    return SaveResult(flags, _enabled(form, answers)), errors


def save_step(
    session: Session,
    actor: audit.Actor,
    p: PreConsultation,
    step: questionnaires.Step,
    raw: dict[str, Any],
    *,
    require: bool,
    language: str,
) -> tuple[SaveResult, dict[str, str]]:
    """Save one step posted as a form: valid answers are kept, each invalid one gets its
    message; with ``require`` the step's required questions must be answered."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for question in step.questions:
        try:
            questionnaires.coerce_answer(question, raw.get(question.link_id))
            clean[question.link_id] = raw.get(question.link_id)
        except InvalidInput as exc:
            errors[question.link_id] = exc.message(language)
    result = save_answers(session, actor, p, clean)
    if require:
        row = questionnaire_for(session, p, language)
        form = questionnaires.form_of(row)
        local = next((s for s in form.steps if s.link_id == step.link_id), step)
        for link_id in questionnaires.missing_required(form, p.answers, local):
            text = form.questions[link_id].text
            errors.setdefault(
                link_id,
                f"{text} : réponse obligatoire."
                if language == "fr"
                else f"{text}: answer required.",
            )
    return result, errors


class AnswersMissing(InvalidInput):
    """Required questions are still unanswered."""


def submit(
    session: Session, actor: audit.Actor, p: PreConsultation, *, now: datetime | None = None
) -> list[red_flags.Flag]:
    """Store the response as a validated FHIR QuestionnaireResponse; the link is then spent."""
    moment = _now(now)
    row = questionnaire_for(session, p, "fr")
    form = questionnaires.form_of(row)
    missing = questionnaires.missing_required(form, p.answers)
    if missing:
        raise AnswersMissing(
            "Merci de répondre aux questions obligatoires.",
            "Please answer the required questions.",
            missing=missing,
        )
    appointment = _appointment(session, p)
    patient_id = appointment.patient_id if appointment else None
    original = session.get(Questionnaire, p.questionnaire_id) or row
    p.response = questionnaires.build_response(
        original,
        p.answers,
        authored=moment.isoformat(timespec="seconds"),
        subject_reference=f"Patient/{patient_id}",
    )
    flags = _flags(session, p, form)
    p.red_flags = [f.as_json() for f in flags]
    p.status = PreConsultationStatus.submitted
    p.submitted_at = moment
    p.updated_at = moment
    session.add(p)
    audit.record(
        session,
        actor,
        "preconsultation.submit",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=patient_id,
        details={"flags": [f.rule for f in flags]},
    )
    session.flush()
    summaries.request_summary(session, p)
    return flags


def status_for_appointment(session: Session, appointment_id: int) -> PreConsultation | None:
    return session.exec(
        select(PreConsultation)
        .where(PreConsultation.appointment_id == appointment_id)
        .order_by(col(PreConsultation.id).desc())
    ).first()

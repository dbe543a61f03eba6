"""The ``questionnaires`` MCP server: questionnaires, pre-consultation links, their status and
the physician summary made from the answers."""

from datetime import timedelta
from typing import Annotated, Literal

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

from app.services.core.errors import NotFound
from app.services.documents import generated as documents
from app.services.patients import records as patients
from app.services.preconsultation import links as preconsultation
from app.services.preconsultation import questionnaires, summaries
from mcp_servers.annotations import READ_ONLY, write
from mcp_servers.runtime import ToolRuntime, new_server, slim_tools
from models.appointments import Appointment
from models.patients import Patient, PatientUpdate

INSTRUCTIONS = (
    "Questionnaires de pré-consultation. Le lien n'est montré qu'une fois : donnez-le au "
    "patient tel quel. Les alertes « urgence » demandent un rappel du patient."
)


class QuestionnaireOut(BaseModel):
    slug: str
    version: str
    language: str
    title: str
    visit_type: str | None = None


class LinkOut(BaseModel):
    preconsultation_id: int
    questionnaire: str
    language: str
    link: str  # the full address to give the patient, on ACCUEIL_PUBLIC_URL
    path: str
    expires_at: str


class FlagOut(BaseModel):
    severity: str
    message: str


class StatusOut(BaseModel):
    appointment_id: int
    status: str
    questionnaire: str
    expires_at: str
    submitted_at: str | None = None
    flags: list[FlagOut] = []


class SentenceOut(BaseModel):
    text: str
    sources: list[str]


class SummaryOut(BaseModel):
    appointment_id: int
    state: str  # none | pending | failed | ready
    id: int | None = None
    review: str | None = None  # draft | approved | rejected
    text: str = ""
    sentences: list[SentenceOut] = []
    model: str | None = None


def public_link(public_url: str, path: str, language: str) -> str:
    """The address the patient opens: the box's public URL, in the patient's language."""
    return f"{public_url.rstrip('/')}{path}" + ("?lang=en" if language == "en" else "")


def create_questionnaires_server(runtime: ToolRuntime) -> FastMCP:
    """Build the questionnaires server over the given database and settings."""
    mcp = new_server("questionnaires", INSTRUCTIONS, runtime)
    tz = runtime.settings.tz

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def list_questionnaires(ctx: Context | None = None) -> list[QuestionnaireOut]:
        """Liste les questionnaires actifs (un par langue) et leur type de visite."""

        def work(session, actor):
            return [
                QuestionnaireOut(
                    slug=q.slug,
                    version=q.version,
                    language=q.language,
                    title=q.title,
                    visit_type=q.visit_type,
                )
                for q in questionnaires.list_active(session)
            ]

        return runtime.call(ctx, "list_questionnaires", work)

    # Revokes the appointment's earlier unsubmitted link; each call issues a new one.
    @mcp.tool(structured_output=False, annotations=write(destructive=True, idempotent=False))
    def send_preconsultation(
        appointment_id: int,
        questionnaire_slug: Annotated[str | None, Field(max_length=64)] = None,
        days: Annotated[int, Field(ge=1, le=60, description="Validité en jours")] = 7,
        language: Literal["fr", "en"] | None = None,
        ctx: Context | None = None,
    ) -> LinkOut:
        """Crée le lien de pré-consultation d'un rendez-vous (questionnaire selon la visite)."""

        def work(session, actor):
            appointment = session.get(Appointment, appointment_id)
            patient = session.get(Patient, appointment.patient_id) if appointment else None
            if language is not None and patient is not None and patient.language != language:
                # Kept on the record: the patient's next links use it by default.
                patients.update_patient(
                    session, actor, patient.id or 0, PatientUpdate(language=language)
                )
            chosen = language or (patient.language if patient is not None else "fr")
            sent = preconsultation.send_preconsultation(
                session,
                actor,
                appointment_id,
                secret=runtime.settings.resolved_secret_key(),
                questionnaire_slug=questionnaire_slug,
                lifetime=timedelta(days=days),
            )
            return LinkOut(
                preconsultation_id=sent.preconsultation.id or 0,
                questionnaire=sent.questionnaire.slug,
                language=chosen,
                link=public_link(runtime.settings.public_url, sent.path, chosen),
                path=sent.path,
                expires_at=sent.expires_at.astimezone(tz).isoformat(timespec="minutes"),
            )

        return runtime.call(ctx, "send_preconsultation", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def preconsultation_status(appointment_id: int, ctx: Context | None = None) -> StatusOut:
        """État de la pré-consultation d'un rendez-vous et ses alertes."""

        def work(session, actor):
            view = preconsultation.staff_view(session, actor, appointment_id)
            if view is None:
                return StatusOut(
                    appointment_id=appointment_id, status="none", questionnaire="", expires_at=""
                )
            p = view.preconsultation
            return StatusOut(
                appointment_id=appointment_id,
                status=str(p.status),
                questionnaire=view.questionnaire.slug,
                expires_at=p.expires_at.astimezone(tz).isoformat(timespec="minutes"),
                submitted_at=(
                    p.submitted_at.astimezone(tz).isoformat(timespec="minutes")
                    if p.submitted_at
                    else None
                ),
                flags=[
                    FlagOut(severity=f["severity"], message=f["staff"]["fr"]) for f in view.flags
                ],
            )

        return runtime.call(ctx, "preconsultation_status", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def get_preconsultation_summary(appointment_id: int, ctx: Context | None = None) -> SummaryOut:
        """Résumé médical des réponses (brouillon tant qu'un médecin ne l'a pas approuvé)."""

        def work(session, actor):
            p = preconsultation.status_for_appointment(session, appointment_id)
            if p is None:
                raise NotFound("Aucune pré-consultation pour ce rendez-vous.")
            state = summaries.summary_state(session, p)
            if state.document is None:
                return SummaryOut(appointment_id=appointment_id, state=state.state)
            document = documents.read(session, actor, state.document.id or 0)  # audited
            return SummaryOut(
                appointment_id=appointment_id,
                state=state.state,
                id=document.id,
                review=str(document.status),
                text=document.text,
                sentences=[
                    SentenceOut(text=s["text"], sources=s["sources"])
                    for section in document.content.get("sections", [])
                    for s in section.get("sentences", [])
                ],
                model=document.model,
            )

        return runtime.call(ctx, "get_preconsultation_summary", work)

    return slim_tools(mcp)

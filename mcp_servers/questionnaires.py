"""The ``questionnaires`` MCP server: questionnaires, pre-consultation links and their status.

Summaries are not served yet: they will come from the summary job of the LLM runtime.
"""

from datetime import timedelta
from typing import Annotated

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

from app.services import preconsultation, questionnaires
from mcp_servers.runtime import ToolRuntime, new_server, slim_tools

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


def create_questionnaires_server(runtime: ToolRuntime) -> FastMCP:
    """Build the questionnaires server over the given database and settings."""
    mcp = new_server("questionnaires", INSTRUCTIONS)
    tz = runtime.settings.tz

    @mcp.tool(structured_output=False)
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

    @mcp.tool(structured_output=False)
    def send_preconsultation(
        appointment_id: int,
        questionnaire_slug: Annotated[str | None, Field(max_length=64)] = None,
        days: Annotated[int, Field(ge=1, le=60, description="Validité en jours")] = 7,
        ctx: Context | None = None,
    ) -> LinkOut:
        """Crée le lien de pré-consultation d'un rendez-vous (questionnaire selon la visite)."""

        def work(session, actor):
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
                path=sent.path,
                expires_at=sent.expires_at.astimezone(tz).isoformat(timespec="minutes"),
            )

        return runtime.call(ctx, "send_preconsultation", work)

    @mcp.tool(structured_output=False)
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

    return slim_tools(mcp)

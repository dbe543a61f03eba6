"""The ``letters`` MCP server: letter templates, asking for a draft (written in the background,
then reviewed by a physician) and reading a letter's state."""

from typing import Annotated, Literal

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

from app.services.documents import generated as documents
from app.services.documents import letter_templates, letters
from mcp_servers.annotations import READ_ONLY, write
from mcp_servers.runtime import ToolRuntime, new_server, slim_tools

INSTRUCTIONS = (
    "Courriers médicaux. Un brouillon est rédigé en arrière-plan puis relu par un médecin ; "
    "seul un courrier approuvé peut être remis ou envoyé."
)


class TemplateOut(BaseModel):
    id: str
    title: str
    fields: list[str]


class LetterOut(BaseModel):
    id: int
    patient_id: int
    template: str
    state: str  # pending | failed | ready
    review: str  # draft | approved | rejected
    text: str = ""
    pdf: str | None = None  # the download path, once approved


def create_letters_server(runtime: ToolRuntime) -> FastMCP:
    """Build the letters server over the given database and settings."""
    mcp = new_server("letters", INSTRUCTIONS, runtime)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def list_letter_templates(ctx: Context | None = None) -> list[TemplateOut]:
        """Modèles de courrier."""

        def work(session, actor):
            return [
                TemplateOut(id=t.id, title=t.title, fields=[f.name for f in t.fields])
                for t in letter_templates.all_templates().values()
            ]

        return runtime.call(ctx, "list_letter_templates", work)

    # Adds a draft (written in the background); a repeat adds another.
    @mcp.tool(structured_output=False, annotations=write(destructive=False, idempotent=False))
    def draft_letter(
        patient_id: int,
        template: Literal["adressage", "certificat", "compte_rendu", "consignes"],
        instruction: Annotated[str, Field(max_length=2000)] = "",
        ctx: Context | None = None,
    ) -> LetterOut:
        """Demande un brouillon de courrier, relu ensuite par le médecin."""

        def work(session, actor):
            document = letters.request_letter(
                session,
                actor,
                patient_id=patient_id,
                template_id=template,
                instruction=instruction,
            )
            return LetterOut(
                id=document.id or 0,
                patient_id=patient_id,
                template=document.template or "",
                state="pending",
                review=str(document.status),
            )

        return runtime.call(ctx, "draft_letter", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def get_letter(letter_id: int, ctx: Context | None = None) -> LetterOut:
        """État et texte d'un courrier."""

        def work(session, actor):
            letters.get_letter(session, letter_id)  # a letter, not another document
            document = documents.read(session, actor, letter_id)  # audited
            approved = document.status == "approved"
            return LetterOut(
                id=document.id or 0,
                patient_id=document.patient_id,
                template=document.template or "",
                state=letters.letter_state(session, document).state,
                review=str(document.status),
                text=document.text,
                pdf=f"/courriers/{document.id}.pdf" if approved else None,
            )

        return runtime.call(ctx, "get_letter", work)

    return slim_tools(mcp)

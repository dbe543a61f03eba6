"""The ``knowledge`` MCP server: search the practice's own documents, with their sources."""

from typing import Annotated

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

from app.services.core.errors import NotFound
from app.services.knowledge import library as knowledge
from mcp_servers.annotations import READ_ONLY
from mcp_servers.runtime import ToolRuntime, new_server, slim_tools

INSTRUCTIONS = (
    "Documents du cabinet (horaires, tarifs, consignes, accès). Répondez avec ces passages "
    "seulement et citez leur source. answer=none : dites exactement le message. "
    "answer=urgent : dites d'abord le message (appeler le 15). doubtful=true : les passages "
    "sont sur le sujet mais ne donnent peut-être pas ce qui est demandé ; vérifiez-le, sinon "
    "dites que les documents ne le donnent pas."
)


class PassageOut(BaseModel):
    title: str
    section: str
    text: str
    source: str
    citation: str
    score: float


class AnswerOut(BaseModel):
    """found: the passages answer, best first; none: the documents do not answer (no
    passage is given, the message says so); urgent: an alarm sign, the message tells to
    call the 15 and the practice's emergency passage comes first. ``doubtful`` (with found):
    the passages are on the topic but may not give what was asked; the message says to check."""

    answer: str
    message: str
    passages: list[PassageOut]
    doubtful: bool = False


def create_knowledge_server(runtime: ToolRuntime) -> FastMCP:
    """Build the knowledge server over the given database and settings."""
    mcp = new_server("knowledge", INSTRUCTIONS, runtime)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def search_practice_knowledge(
        query: Annotated[str, Field(min_length=2, max_length=300, description="Question")],
        k: Annotated[int, Field(ge=1, le=knowledge.MAX_K)] = 4,
        ctx: Context | None = None,
    ) -> AnswerOut:
        """Cherche dans les documents du cabinet ; chaque passage a sa source à citer."""

        def work(session, actor):
            found = knowledge.find(session, actor, runtime.settings, query, k)
            if not found.passages:
                raise NotFound(
                    "La base de connaissances est vide : aucun document du cabinet n'a été importé."
                )
            shown = [] if found.answer == "none" else found.passages
            return AnswerOut(
                answer=found.answer,
                message=found.message_fr,
                doubtful=found.doubtful,
                passages=[
                    PassageOut(
                        title=p.title,
                        section=p.section,
                        text=p.text,
                        source=p.link,
                        citation=p.citation,
                        score=p.score,
                    )
                    for p in shown
                ],
            )

        return runtime.call(ctx, "search_practice_knowledge", work)

    return slim_tools(mcp)

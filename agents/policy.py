"""Which MCP tools the assistant may use for which staff role, and which calls wait for the
user's confirmation. Enforced in code, never left to the prompt.

Whether a tool changes data is not listed here: each tool declares it in its MCP annotations
(``readOnlyHint``, set in ``mcp_servers``), which langchain-mcp-adapters copies into the
LangChain tool's ``metadata``. Only a tool that declares itself read-only runs without
confirmation; a tool with no annotations, or one that does not say it is read-only, waits for
the user (deny by default). The servers are our own, in-process: their annotations are
trusted, which the MCP specification leaves to the client to decide."""

from collections.abc import Mapping
from typing import Any

from langchain_core.tools import BaseTool

from models.users import Role

# Every tool the assistant may hold at all, reads and writes alike.
ASSISTANT_TOOLS = frozenset(
    {
        "find_patients",
        "register_patient",
        "list_practitioners",
        "find_slots",
        "book_appointment",
        "move_appointment",
        "cancel_appointment",
        "list_appointments",
        "add_to_waiting_list",
        "list_questionnaires",
        "send_preconsultation",
        "preconsultation_status",
        "get_preconsultation_summary",
        "search_practice_knowledge",
        "list_letter_templates",
        "draft_letter",
        "get_letter",
    }
)
# Summaries are medical content: only physicians read them through the assistant.
_PHYSICIAN_ONLY = frozenset({"get_preconsultation_summary"})
# draft_letter names its templates itself: the secretary's agent does without the listing
# tool, which keeps her prompt and tools within budget (tests/assistant/test_secretary_agent.py).
_OVER_SECRETARY_BUDGET = frozenset({"list_letter_templates"})

TOOLS_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.secretary: ASSISTANT_TOOLS - _PHYSICIAN_ONLY - _OVER_SECRETARY_BUDGET,
    Role.physician: ASSISTANT_TOOLS,
    Role.admin: frozenset(),
}


def allowed_tools(role: Role) -> frozenset[str]:
    """The tool names a user of this role may have the assistant call."""
    return TOOLS_BY_ROLE.get(role, frozenset())


def declares_read_only(metadata: Mapping[str, Any] | None) -> bool:
    """Whether a tool's metadata (its MCP annotations, as the adapters copy them) says the
    tool is read-only; missing or anything but ``True`` means it may write."""
    return metadata is not None and metadata.get("readOnlyHint") is True


def needs_confirmation(tool: BaseTool) -> bool:
    """Every tool that does not declare itself read-only waits for the user's confirmation."""
    return not declares_read_only(tool.metadata)

"""Which MCP tools the assistant may use for which staff role, and which ones change data
(those always wait for the user's confirmation). Enforced in code, never left to the prompt."""

from models.users import Role

READ_TOOLS = frozenset(
    {
        "find_patients",
        "list_practitioners",
        "find_slots",
        "list_appointments",
        "list_questionnaires",
        "preconsultation_status",
        "get_preconsultation_summary",
        "search_practice_knowledge",
        "list_letter_templates",
        "get_letter",
    }
)
WRITE_TOOLS = frozenset(
    {
        "register_patient",
        "book_appointment",
        "move_appointment",
        "cancel_appointment",
        "add_to_waiting_list",
        "send_preconsultation",
        "draft_letter",
    }
)
# Summaries are medical content: only physicians read them through the assistant.
_PHYSICIAN_ONLY = frozenset({"get_preconsultation_summary"})
# draft_letter names its templates itself: the secretary's agent does without the listing
# tool, which keeps her prompt and tools within budget (tests/assistant/test_secretary_agent.py).
_OVER_SECRETARY_BUDGET = frozenset({"list_letter_templates"})

TOOLS_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.secretary: (READ_TOOLS | WRITE_TOOLS) - _PHYSICIAN_ONLY - _OVER_SECRETARY_BUDGET,
    Role.physician: READ_TOOLS | WRITE_TOOLS,
    Role.admin: frozenset(),
}


def allowed_tools(role: Role) -> frozenset[str]:
    """The tool names a user of this role may have the assistant call."""
    return TOOLS_BY_ROLE.get(role, frozenset())


def needs_confirmation(tool: str) -> bool:
    """Every tool that is not a known read tool waits for confirmation (deny by default)."""
    return tool not in READ_TOOLS

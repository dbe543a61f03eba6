"""``RulesChatModel``: the rules assistant as a LangChain chat model. It reads the messages the
agent graph hands it (the secretary's words, tool results) and answers with a tool call or a
final answer, so it runs through the same graph, MCP tools, confirmation cards, audit and
memory as an LLM, in a few milliseconds and without a GPU."""

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agents.chat.instant_model import InstantChatModel
from agents.rules.frame import tasks
from agents.rules.planner import Step, decide
from agents.rules.reading import OPEN, clock, transcript

GREETING = "Bonjour ! Que puis-je faire pour vous ?"


def next_step(messages: Sequence[BaseMessage], default_tz: str = "Europe/Paris") -> Step:
    """The rules assistant's next step for this conversation."""
    found = tasks(transcript(list(messages)))
    if not found:
        return Step(text=GREETING)
    return decide(found[-1], clock(list(messages), default_tz))


def as_message(step: Step) -> AIMessage:
    return AIMessage(
        content=step.text,
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"}
            for name, args in step.calls
        ],
        additional_kwargs={OPEN: True} if step.open else {},
    )


class RulesChatModel(InstantChatModel):
    """Deterministic French front-desk understanding, as a chat model."""

    timezone: str = "Europe/Paris"  # when the system prompt does not say

    @property
    def _llm_type(self) -> str:
        return "rules"

    @property
    def model_name(self) -> str:
        return "rules"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "RulesChatModel":
        """The tools are the agenda's own; their names are known in advance."""
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        return as_message(next_step(messages, self.timezone))

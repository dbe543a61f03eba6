"""One secretary turn as a stream of small events for the page: answer tokens, tool activity,
a confirmation request when a write tool is proposed, and how the turn ended."""

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

TOOL_SUMMARY_CHARS = 240

Decision = dict[str, Any]


@dataclass
class TurnEvent:
    """What the page receives, one JSON line each."""

    type: Literal["token", "tool_call", "tool", "confirm", "answer", "done", "error"]
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps({"type": self.type, **self.data}, ensure_ascii=False, default=str)


def tool_summary(message: ToolMessage) -> str:
    text = message.text if hasattr(message, "text") else str(message.content)
    text = " ".join(str(text).split())
    return text if len(text) <= TOOL_SUMMARY_CHARS else text[: TOOL_SUMMARY_CHARS - 1] + "…"


def pending_actions(state: Any) -> list[dict[str, Any]]:
    """The write tool calls waiting for the user's decision in a thread's saved state."""
    actions: list[dict[str, Any]] = []
    for interrupt in getattr(state, "interrupts", ()) or ():
        value = interrupt.value
        if isinstance(value, dict):
            for request in value.get("action_requests", []):
                actions.append({"name": request["name"], "args": dict(request["args"])})
    return actions


def turn_input(message: str | None, decisions: Sequence[Decision] | None) -> Any:
    """What to send the graph: a new user message, the answer to a confirmation, or nothing
    (retry what failed from the last saved step)."""
    if decisions is not None:
        return Command(resume={"decisions": list(decisions)})
    if message is not None:
        return {"messages": [{"role": "user", "content": message}]}
    return None


async def stream_turn(
    agent: Any, config: RunnableConfig, graph_input: Any
) -> AsyncIterator[TurnEvent]:
    """Run the agent and translate LangGraph's stream into page events. Exceptions propagate
    (the caller turns them into an error event; the saved state lets a retry go on)."""
    started = time.perf_counter()
    tools_used: list[str] = []
    # Saved once when the run ends (answer, confirmation request or failure): fewer writes
    # per turn, and a failed run still keeps what was said for a retry.
    async for mode, chunk in agent.astream(
        graph_input, config, stream_mode=["messages", "updates"], durability="exit"
    ):
        if mode == "messages":
            message, meta = chunk
            if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "model":
                text = message.text if isinstance(message.text, str) else ""
                if text:
                    yield TurnEvent("token", {"text": text})
            continue
        for node, update in chunk.items():
            if node == "__interrupt__":
                continue
            for message in _messages(update):
                if isinstance(message, AIMessage) and message.tool_calls:
                    for call in message.tool_calls:
                        yield TurnEvent("tool_call", {"name": call["name"], "args": call["args"]})
                elif isinstance(message, ToolMessage):
                    tools_used.append(message.name or "")
                    yield TurnEvent(
                        "tool",
                        {
                            "name": message.name,
                            "status": message.status,
                            "summary": tool_summary(message),
                        },
                    )
    state = await agent.aget_state(config)
    actions = pending_actions(state)
    if actions:
        yield TurnEvent("confirm", {"actions": actions})
    else:
        final = _last_answer(state.values.get("messages", []))
        yield TurnEvent("answer", {"text": final, "sources": tools_used})
    yield TurnEvent("done", {"ms": round((time.perf_counter() - started) * 1000, 1)})


def _messages(update: Any) -> list[BaseMessage]:
    if isinstance(update, dict):
        messages = update.get("messages", [])
        return [m for m in messages if isinstance(m, BaseMessage)]
    return []


def _last_answer(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            return message.text if isinstance(message.text, str) else ""
        if not isinstance(message, AIMessage):
            break
    return ""

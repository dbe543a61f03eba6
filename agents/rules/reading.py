"""Reading the conversation the agent graph hands the model: the practice clock (from the
system prompt), what the secretary said, and what each tool call returned. The model keeps no
state of its own: everything it knows is in these messages."""

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agents.rules.names import fold
from app.services.core.calendar_names import MONTHS_FR

REJECTED = re.compile(
    r"^User rejected the tool call for `[^`]+`(?: with reason: (?P<reason>.*))?", re.S
)
TIME_ZONE = re.compile(r"fuseau ([A-Za-z_]+/[A-Za-z_]+)")
PROMPT_DATE = re.compile(
    r"Nous sommes le \w+ (\d{1,2})(?:er)? (\w+) (\d{4}), il est (\d{1,2}):(\d{2})"
)
MONTHS = tuple(fold(m) for m in MONTHS_FR)  # accent-free, as folded text reads
OPEN = "rules_open"  # additional_kwargs flag: the answer asked a question or proposed a choice

Status = Literal["ok", "error", "rejected"]


@dataclass
class ToolEvent:
    """One tool call of the conversation and its outcome."""

    name: str
    args: dict[str, Any]
    status: Status = "ok"
    items: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""  # an error's message or the secretary's reason for a refusal
    done: bool = True  # False: no result yet (a call waiting for its result)


@dataclass
class Entry:
    """A step of the conversation: the secretary's words, a tool event, or our answer."""

    kind: Literal["user", "tool", "answer"]
    text: str = ""
    event: ToolEvent | None = None
    open: bool = False  # an answer that waits for the secretary's choice


def _blocks(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            texts.append(block["text"])
    return texts


def parse_items(content: Any) -> list[dict[str, Any]]:
    """A tool result's JSON objects (one per list item)."""
    items: list[dict[str, Any]] = []
    for text in _blocks(content):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        values = value if isinstance(value, list) else [value]
        items += [v for v in values if isinstance(v, dict)]
    return items


def _event(call: dict[str, Any], result: ToolMessage | None) -> ToolEvent:
    event = ToolEvent(name=call["name"], args=dict(call.get("args") or {}))
    if result is None:
        event.done = False
        return event
    text = " ".join(_blocks(result.content)).strip()
    rejected = REJECTED.match(text)
    if rejected:
        event.status, event.text = "rejected", (rejected.group("reason") or "").strip()
    elif result.status == "error":
        event.status, event.text = "error", text
    else:
        event.items = parse_items(result.content)
        event.text = text
    return event


def transcript(messages: list[BaseMessage]) -> list[Entry]:
    """The conversation as entries, tool calls paired with their results."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    entries: list[Entry] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            entries.append(Entry("user", " ".join(_blocks(message.content))))
        elif isinstance(message, AIMessage):
            if message.tool_calls:
                for call in message.tool_calls:
                    found = results.get(call.get("id") or "")
                    entries.append(Entry("tool", event=_event(dict(call), found)))
            else:
                flag = bool(message.additional_kwargs.get(OPEN))
                entries.append(Entry("answer", " ".join(_blocks(message.content)), open=flag))
    return entries


def clock(messages: list[BaseMessage], default_tz: str = "Europe/Paris") -> datetime:
    """The practice's local time as the system prompt states it (evaluations set it), else the
    machine's clock in the practice's time zone."""
    for message in messages:
        if not isinstance(message, SystemMessage):
            continue
        text = " ".join(_blocks(message.content))
        zone = TIME_ZONE.search(text)
        tz = ZoneInfo(zone.group(1) if zone else default_tz)
        found = PROMPT_DATE.search(text)
        if found and fold(found.group(2)) in MONTHS:
            day = date(
                int(found.group(3)), MONTHS.index(fold(found.group(2))) + 1, int(found.group(1))
            )
            return datetime.combine(day, time(int(found.group(4)), int(found.group(5))), tz)
        return datetime.now(tz)
    return datetime.now(ZoneInfo(default_tz))

"""A scripted chat model for tests, evaluation plumbing and benchmarks: it plays back answers
and tool calls in order, so a test exercises our logic, not a model's judgement."""

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import ConfigDict, Field, PrivateAttr

from agents.chat.instant_model import InstantChatModel

Step = AIMessage | Exception | Callable[[list[BaseMessage]], AIMessage]


def say(text: str) -> AIMessage:
    """A plain answer."""
    return AIMessage(content=text)


def call(name: str, text: str = "", /, **args: Any) -> AIMessage:
    """One tool call (with an optional sentence before it)."""
    return AIMessage(
        content=text,
        tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"}],
    )


class ScriptExhausted(RuntimeError):
    """The model was asked for more answers than its script holds."""


class ScriptedChatModel(InstantChatModel):
    """Returns the script's steps one per model call; an exception step is raised (a model
    that is down), a callable step computes its answer from the conversation so far."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: list[Any]
    _position: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def remaining(self) -> int:
        return len(self.script) - self._position

    def extend(self, steps: Sequence[Step]) -> None:
        with self._lock:
            self.script.extend(steps)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            if self._position >= len(self.script):
                raise ScriptExhausted(f"script exhausted after {self._position} answers")
            step = self.script[self._position]
            self._position += 1
            self.calls.append(list(messages))
        if isinstance(step, Exception):
            raise step
        message = step if isinstance(step, AIMessage) else step(messages)
        return message.model_copy(deep=True)

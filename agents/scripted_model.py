"""A scripted chat model for tests, evaluation plumbing and benchmarks: it plays back answers
and tool calls in order, so a test exercises our logic, not a model's judgement."""

import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

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


class ScriptedChatModel(BaseChatModel):
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

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Native async: a zero-latency model adds no thread hop to what is measured."""
        for chunk in self._stream(messages, stop):
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        text = message.content if isinstance(message.content, str) else ""
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            if not piece:
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        if message.tool_calls:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(
                            name=tc["name"], args=json.dumps(tc["args"]), id=tc["id"], index=i
                        )
                        for i, tc in enumerate(message.tool_calls)
                    ],
                )
            )
        if message.usage_metadata:  # a scripted step may say what a real model would report
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", usage_metadata=message.usage_metadata)
            )

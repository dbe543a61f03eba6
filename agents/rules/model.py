"""``RulesChatModel``: the rules assistant as a LangChain chat model. It reads the messages the
agent graph hands it (the secretary's words, tool results) and answers with a tool call or a
final answer, so it runs through the same graph, MCP tools, confirmation cards, audit and
memory as an LLM, in a few milliseconds and without a GPU."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

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


class RulesChatModel(BaseChatModel):
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

    def _message(self, messages: list[BaseMessage]) -> AIMessage:
        return as_message(next_step(messages, self.timezone))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._message(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)

    def _chunks(self, message: AIMessage) -> Iterator[ChatGenerationChunk]:
        text = message.content if isinstance(message.content, str) else ""
        words = text.split(" ") if text else []
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            if piece:
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                additional_kwargs=dict(message.additional_kwargs),
                tool_call_chunks=[
                    tool_call_chunk(
                        name=tc["name"], args=json.dumps(tc["args"]), id=tc["id"], index=i
                    )
                    for i, tc in enumerate(message.tool_calls)
                ],
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._message(messages)):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Native async: no thread hop for a model that answers in a millisecond."""
        for chunk in self._chunks(self._message(messages)):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

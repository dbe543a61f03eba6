"""The hybrid assistant (``ACCUEIL_LLM_HYBRID=true``): the ``rules`` assistant answers first
when it is sure (a request it understands), else the configured LLM answers. One chat model to
the agent graph, so tools, confirmation cards, audit and memory are the same either way.

Who answers is decided at each model call, with one stickiness rule: once the LLM has answered
in a turn (since the secretary's last message), it keeps the turn, since the rules cannot take
over a plan they did not make. Each answer says who wrote it (``additional_kwargs["by"]``), which
the checkpointer keeps with the conversation."""

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field

from agents.chat.instant_model import reply_chunks
from agents.rules.model import RulesChatModel, as_message, next_step
from agents.rules.planner import Step

log = logging.getLogger(__name__)
BY = "by"  # additional_kwargs key: which model wrote an answer
# The inner LLM call runs without the graph's callbacks: its chunks reach the page and the
# token meter through this model's own callbacks, once.
ALONE: RunnableConfig = {"callbacks": []}


def llm_has_the_turn(messages: Sequence[BaseMessage]) -> bool:
    """Whether the LLM already answered since the secretary's last message."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return False
        if isinstance(message, AIMessage) and message.additional_kwargs.get(BY) == "llm":
            return True
    return False


class HybridChatModel(BaseChatModel):
    """The rules first, the LLM when the rules are not sure."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rules: RulesChatModel
    llm: BaseChatModel
    bound: Runnable[LanguageModelInput, BaseMessage] | None = None  # the LLM with the tools
    answered: dict[str, int] = Field(default_factory=lambda: {"rules": 0, "llm": 0})

    @property
    def _llm_type(self) -> str:
        return "hybrid"

    @property
    def model_name(self) -> str:
        name = getattr(self.llm, "model_name", None) or getattr(self.llm, "model", None)
        return f"rules+{name or self.llm._llm_type}"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "HybridChatModel":
        """The rules know the agenda's tools; the LLM gets them as its client sends them."""
        return self.model_copy(update={"bound": self.llm.bind_tools(tools, **kwargs)})

    # -- who answers -------------------------------------------------------------------------
    def _rules_answer(self, messages: list[BaseMessage]) -> tuple[AIMessage | None, Step | None]:
        """The rules' answer when they are sure; else none, with the rules' step to give if
        the LLM fails when the rules have one worth giving (``Step.fallback``)."""
        if llm_has_the_turn(messages):
            return None, None
        step = next_step(messages, self.rules.timezone)
        if not step.sure:
            return None, step if step.fallback else None
        return self._by_rules(step), None

    def _by_rules(self, step: Step) -> AIMessage:
        message = as_message(step)
        message.additional_kwargs[BY] = "rules"
        self.answered["rules"] += 1
        return message

    @staticmethod
    def _by_llm(found: BaseMessage) -> AIMessage:
        assert isinstance(found, AIMessage)
        found.additional_kwargs[BY] = "llm"
        return found

    def _fall_back(self, fallback: Step | None, error: Exception) -> AIMessage:
        """The LLM failed before its first word: the rules' own step when they have one,
        else the error goes on (the page offers to retry)."""
        if fallback is None:
            raise error
        log.warning("LLM unavailable (%s): the rules' answer is given", type(error).__name__)
        return self._by_rules(fallback)

    def _llm(self) -> Runnable[LanguageModelInput, BaseMessage]:
        self.answered["llm"] += 1
        return self.bound if self.bound is not None else self.llm

    def _llm_chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, fallback: Step | None
    ) -> Iterator[ChatGenerationChunk]:
        pieces = iter(self._llm().stream(messages, ALONE, stop=stop))
        try:
            first = next(pieces)
        except StopIteration:
            return
        except Exception as error:  # any client's failure: see _fall_back
            yield from reply_chunks(self._fall_back(fallback, error))
            return
        yield self._mark(first, True)
        for piece in pieces:
            yield self._mark(piece, False)

    @staticmethod
    def _mark(chunk: BaseMessage, first: bool) -> ChatGenerationChunk:
        """The LLM's chunk; the first says who wrote the answer (chunks merge their
        ``additional_kwargs`` by concatenating strings: one mark only)."""
        message = (
            chunk
            if isinstance(chunk, AIMessageChunk)
            else AIMessageChunk(content=chunk.content, additional_kwargs=chunk.additional_kwargs)
        )
        if first:
            message.additional_kwargs[BY] = "llm"
        return ChatGenerationChunk(message=message)

    # -- LangChain ---------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer, fallback = self._rules_answer(messages)
        if answer is None:
            try:
                answer = self._by_llm(self._llm().invoke(messages, ALONE, stop=stop))
            except Exception as error:  # any client's failure: see _fall_back
                answer = self._fall_back(fallback, error)
        return ChatResult(generations=[ChatGeneration(message=answer)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer, fallback = self._rules_answer(messages)
        if answer is None:
            try:
                answer = self._by_llm(await self._llm().ainvoke(messages, ALONE, stop=stop))
            except Exception as error:  # any client's failure: see _fall_back
                answer = self._fall_back(fallback, error)
        return ChatResult(generations=[ChatGeneration(message=answer)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer, fallback = self._rules_answer(messages)
        chunks = (
            reply_chunks(answer)
            if answer is not None
            else self._llm_chunks(messages, stop, fallback)
        )
        for chunk in chunks:
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
        """The LLM's chunks pass through this model's own callbacks only (the inner call has
        none), so the page and the token meter see each chunk once."""
        answer, fallback = self._rules_answer(messages)
        if answer is None:
            pieces = aiter(self._llm().astream(messages, ALONE, stop=stop))
            try:
                piece: BaseMessage | None = await anext(pieces)
            except StopAsyncIteration:
                return
            except Exception as error:  # any client's failure: see _fall_back
                answer = self._fall_back(fallback, error)
            else:
                first = True
                while piece is not None:
                    chunk, first = self._mark(piece, first), False
                    if run_manager and chunk.text:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                    piece = await anext(pieces, None)
                return
        for chunk in reply_chunks(answer):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

"""The LangChain plumbing shared by the chat models that answer at once, without a server
(the rules assistant, the scripted test model): one reply per call, streamed as word pieces
then one chunk that carries the tool calls, as a real model's stream arrives."""

import json
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


def reply_chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    """``message`` as a stream: its text word by word, then its tool calls (and its extra
    fields) in one chunk, then its usage when it says what a real model would report."""
    text = message.content if isinstance(message.content, str) else ""
    words = text.split(" ") if text else []
    for i, word in enumerate(words):
        piece = word if i == len(words) - 1 else word + " "
        if piece:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
    if message.tool_calls or message.additional_kwargs:
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
    if message.usage_metadata:
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=message.usage_metadata)
        )


class InstantChatModel(BaseChatModel):
    """A chat model whose whole reply is known at once (``_reply``); streaming and async
    calls are native, so such a model adds no thread hop to what a test or a turn measures."""

    @abstractmethod
    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        """The reply to this conversation."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in reply_chunks(self._reply(messages)):
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
        for chunk in reply_chunks(self._reply(messages)):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

"""Counting the tokens one assistant turn consumes: the model's own count (``usage_metadata``:
Ollama, the embedded model, OpenAI-compatible servers that report it) when it gives one, else
an estimate of one token per four characters of what the model read and wrote."""

import json
import math
import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

CHARS_PER_TOKEN = 4  # a rough average for French and JSON with common tokenizers


def estimate_tokens(chars: int) -> int:
    """The estimate used when a model reports no usage: characters / 4, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _message_chars(message: BaseMessage) -> int:
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    chars = len(text)
    for call in getattr(message, "tool_calls", None) or ():
        chars += len(call.get("name") or "") + len(json.dumps(call.get("args"), ensure_ascii=False))
    return chars


@dataclass
class TurnUsage:
    """What one turn consumed, over all its model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    estimated: bool = False  # at least one call reported no usage: part of it is estimated

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class TokenMeter(BaseCallbackHandler):
    """A callback handler given to one turn (``config["callbacks"]``): adds up the tokens of
    every chat model call the turn makes. A call that fails counts nothing (a model that is
    down consumed nothing; the retry is counted when it runs)."""

    run_inline = True  # cheap arithmetic: no thread hop on the event loop

    def __init__(self) -> None:
        super().__init__()
        self.usage = TurnUsage()
        self._inputs: dict[UUID, int] = {}  # estimated input tokens of the running calls
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        chars = sum(_message_chars(m) for batch in messages for m in batch)
        tools = (kwargs.get("invocation_params") or {}).get("tools")
        if tools:
            chars += len(json.dumps(tools, ensure_ascii=False, default=str))
        with self._lock:
            self._inputs[run_id] = estimate_tokens(chars)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            estimated_input = self._inputs.pop(run_id, 0)
        message = None
        if response.generations and response.generations[0]:
            message = getattr(response.generations[0][0], "message", None)
        reported = getattr(message, "usage_metadata", None) or {}
        input_tokens = int(reported.get("input_tokens") or 0)
        output_tokens = int(reported.get("output_tokens") or 0)
        estimated = not (input_tokens or output_tokens)
        if estimated:
            input_tokens = estimated_input
            output_tokens = estimate_tokens(_message_chars(message)) if message else 0
        with self._lock:
            self.usage.input_tokens += input_tokens
            self.usage.output_tokens += output_tokens
            self.usage.calls += 1
            self.usage.estimated = self.usage.estimated or estimated

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._inputs.pop(run_id, None)

"""What a protocol server answers: replies, failures, the request a "model" sees, and scripts
that play replies in order (or compute them from the request)."""

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

Protocol = Literal["ollama", "openai"]


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a reply. ``arguments`` as a dict is sent as the protocol does (a JSON
    object for Ollama, a JSON string for OpenAI); as a string it is sent verbatim (OpenAI) or
    leaks into the text (Ollama: its server parses tool calls and keeps what it cannot parse
    as content), which is how a malformed call reaches a client."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None  # OpenAI only; default: a fresh ``chatcmpl-tool-…`` id

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """One model answer, and how the server delivers it.

    - ``text``: the answer; streamed in ``pieces`` chunks (0: one chunk per word).
    - ``tool_calls``: the calls. OpenAI streams each call's arguments in ``argument_pieces``
      fragments (``id`` and ``name`` on the first one only, as vLLM does); Ollama sends each
      call whole in one chunk, as Ollama does.
    - ``thinking``: a reasoning model's thoughts (Ollama's ``message.thinking``; OpenAI's
      ``delta.reasoning_content`` as vLLM's reasoning parsers send it). Ollama only sends it
      when the request does not say ``"think": false``, unless ``force_thinking``.
    - ``first_token_delay`` / ``chunk_delay``: seconds before the first chunk / between chunks
      (the response headers go out at once, as both servers do).
    - ``die_after``: close the connection abruptly after this many chunks (a server that
      crashes mid-stream; 0: right after the headers).
    - ``done_reason``: Ollama's ``done_reason`` / OpenAI's ``finish_reason`` (default ``stop``,
      or ``tool_calls`` for OpenAI when there are calls).
    - ``prompt_tokens`` / ``completion_tokens``: the usage reported (default: estimated).
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    thinking: str = ""
    force_thinking: bool = False
    pieces: int = 0
    argument_pieces: int = 4
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    die_after: int | None = None
    done_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def text_pieces(self) -> list[str]:
        if not self.text:
            return []
        if self.pieces <= 0:
            words = self.text.split(" ")
            return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words) if w]
        return split(self.text, self.pieces)


@dataclass(frozen=True)
class Failure:
    """An error answer: an HTTP status with the protocol's error body, or (``in_stream``)
    a 200 stream that carries the error in one of its events after ``after`` chunks of
    ``text`` (Ollama writes ``{"error": …}`` lines; vLLM an ``error`` event)."""

    status: int = 500
    message: str = "model runner has unexpectedly stopped"
    in_stream: bool = False
    text: str = ""
    delay: float = 0.0


Answer = Reply | Failure


@dataclass
class ChatRequest:
    """A chat request as the server received it."""

    protocol: Protocol
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    body: dict[str, Any]

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return ""

    def langchain_messages(self) -> list[BaseMessage]:
        """The conversation back as LangChain messages (what the client converted from).
        Tool results are paired with their calls by id, else by order (old Ollama clients
        send no id); a tool result that reads as an error gets ``status="error"``."""
        result: list[BaseMessage] = []
        waiting: list[str] = []  # ids of calls with no result yet, in order
        for number, message in enumerate(self.messages):
            role = message.get("role")
            content = _text(message.get("content"))
            if role == "system":
                result.append(SystemMessage(content))
            elif role == "user":
                result.append(HumanMessage(content))
            elif role == "assistant":
                calls = []
                for index, raw in enumerate(message.get("tool_calls") or []):
                    function = raw.get("function", {})
                    args = function.get("arguments", {})
                    if isinstance(args, str):
                        args = json.loads(args or "{}")
                    call_id = str(raw.get("id") or f"call_{number}_{index}")
                    calls.append({"name": function.get("name", ""), "args": args, "id": call_id})
                    waiting.append(call_id)
                result.append(AIMessage(content=content, tool_calls=calls))
            elif role == "tool":
                call_id = str(message.get("tool_call_id") or (waiting[0] if waiting else ""))
                if call_id in waiting:
                    waiting.remove(call_id)
                status = "error" if looks_like_error(content) else "success"
                result.append(
                    ToolMessage(
                        content=_tool_blocks(message.get("content")),
                        tool_call_id=call_id,
                        name=message.get("tool_name") or message.get("name"),
                        status=status,
                    )
                )
        return result


def _tool_blocks(content: Any) -> str | list[str | dict[str, Any]]:
    """A tool result's content blocks as the agent had them: OpenAI clients send the blocks;
    Ollama's joins their texts with newlines (one JSON object a block, for our tools)."""
    if isinstance(content, list):
        return [b if isinstance(b, dict) else {"type": "text", "text": str(b)} for b in content]
    text = str(content or "")
    decoder, blocks, position = json.JSONDecoder(), [], 0
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        try:
            _, end = decoder.raw_decode(text, position)
        except ValueError:
            return text  # not a sequence of JSON values: one text
        blocks.append(text[position:end])
        position = end
    if len(blocks) <= 1:
        return text.strip() if blocks else text
    return [{"type": "text", "text": block} for block in blocks]


def looks_like_error(content: str) -> bool:
    """Whether a tool result, now text on the wire (no protocol carries a tool's status),
    was an error: our MCP tools answer JSON and refuse in a French sentence (``ToolError``);
    LangGraph's own tool errors start with "Error"."""
    text = content.strip()
    if not text or text.startswith("Error"):
        return bool(text)
    return not isinstance(_tool_blocks(text), list) and not _is_json(text)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def split(text: str, pieces: int) -> list[str]:
    """``text`` cut into ``pieces`` consecutive fragments (fewer if it is shorter)."""
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return [p for p in out if p]


Model = Callable[[ChatRequest], Answer]
Step = Answer | Model


class ScriptExhausted(RuntimeError):
    """More requests came than the script holds."""


class Script:
    """Answers requests in order: each step is a ``Reply``/``Failure`` or a callable that
    computes one from the request; ``then`` (a model) answers once the steps are spent.
    Thread-safe; every request is kept in ``requests``."""

    def __init__(self, steps: Iterable[Step] = (), *, then: Model | None = None) -> None:
        self._steps = list(steps)
        self._position = 0
        self._lock = threading.Lock()
        self.then = then
        self.requests: list[ChatRequest] = []

    @property
    def remaining(self) -> int:
        return len(self._steps) - self._position

    def extend(self, steps: Iterable[Step]) -> None:
        with self._lock:
            self._steps.extend(steps)

    def answer(self, request: ChatRequest) -> Answer:
        with self._lock:
            self.requests.append(request)
            if self._position < len(self._steps):
                step = self._steps[self._position]
                self._position += 1
            elif self.then is not None:
                step = self.then
            else:
                return Failure(500, f"script exhausted after {self._position} answers")
        return step if isinstance(step, Reply | Failure) else step(request)


def as_script(source: "Script | Model | Sequence[Step]") -> Script:
    if isinstance(source, Script):
        return source
    if callable(source):
        return Script(then=source)
    return Script(source)


def reply_from_message(message: AIMessage) -> Reply:
    """A LangChain answer as the server sends it."""
    text = message.content if isinstance(message.content, str) else message.text
    calls = [ToolCall(c["name"], dict(c["args"])) for c in message.tool_calls]
    return Reply(text=str(text), tool_calls=calls)


class ChatModelPlayer:
    """A LangChain chat model (the ``rules`` assistant, a ``ScriptedChatModel``…) playing the
    model behind a protocol server: each request's messages go back to LangChain messages,
    the model answers, the answer goes out on the wire. The rules assistant marks its open
    questions in ``additional_kwargs``, which no wire carries: the player remembers which of
    its answers were marked and marks them again when they come back."""

    def __init__(self, model: BaseChatModel) -> None:
        self.model = model
        self._marks: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Answer:
        messages = request.langchain_messages()
        with self._lock:
            for message in messages:
                if isinstance(message, AIMessage) and not message.tool_calls:
                    marks = self._marks.get(str(message.content))
                    if marks:
                        message.additional_kwargs.update(marks)
        answer = self.model.invoke(messages)
        assert isinstance(answer, AIMessage)
        if answer.additional_kwargs and not answer.tool_calls:
            with self._lock:
                self._marks[str(answer.content)] = dict(answer.additional_kwargs)
        return reply_from_message(answer)

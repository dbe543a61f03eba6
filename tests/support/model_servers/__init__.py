"""Protocol-faithful model servers for tests: a loopback Ollama and a loopback vLLM (OpenAI
chat completions), each on a real socket at ``127.0.0.1`` (a free port), replaying scripted
turns, so that the real ``ChatOllama`` and ``ChatOpenAI`` clients (as ``agents/models.py``
builds them) run over HTTP exactly as in production.

Servers (context managers, or ``start()`` / ``close()``)::

    with OllamaServer(script, models=("qwen3:8b",)) as ollama:      # ollama.url
        settings = settings.model_copy(update={
            "llm_provider": "ollama", "ollama_url": ollama.url, "llm_model": "qwen3:8b"})
    with OpenAIServer(script, models=("Qwen/Qwen3-8B",)) as vllm:   # vllm.base_url (…/v1)
        settings = settings.model_copy(update={
            "llm_provider": "openai", "openai_base_url": vllm.base_url,
            "llm_model": "Qwen/Qwen3-8B"})

``OllamaServer`` answers ``GET /api/tags`` (the models listed), ``POST /api/show``,
``GET /api/version`` and ``POST /api/chat`` (NDJSON stream, or one object with
``"stream": false``; ``message.tool_calls`` with JSON-object arguments, ``message.thinking``
unless the request says ``"think": false``, ``done_reason`` and the statistics on the last
line; ``{"error": …}`` bodies, 404 for a model not pulled). ``OpenAIServer`` answers
``GET /v1/models`` and ``POST /v1/chat/completions`` (SSE ``data:`` chunks, tool-call
arguments in fragments, ``finish_reason``, usage when ``stream_options.include_usage``,
``data: [DONE]``; vLLM's error bodies and in-stream error events).

Scripts: a server answers each chat request with its ``script``'s next step. A script is a
``Script``, a list of steps, or one callable (a "model") that answers every request::

    Reply(text="Bonjour")                                   # a plain answer
    Reply(tool_calls=[ToolCall("find_slots", {"when": "lundi matin"})], argument_pieces=12)
    Reply(tool_calls=[ToolCall("book_appointment", '{"patient_id": 3, "sta')])  # malformed
    Reply(text="…", thinking="Let me think", first_token_delay=2.0, chunk_delay=0.01)
    Reply(text="Je cherche …", die_after=3)                # the server dies mid-stream
    Failure(500, "model runner has unexpectedly stopped")  # an HTTP error
    Failure(500, "out of memory", in_stream=True)          # an error inside the stream
    lambda request: Reply(...)                             # computed from the request

``ChatRequest`` (what a model callable sees): ``protocol``, ``model``, ``messages`` (as sent),
``tools`` (their JSON schemas), ``tool_names``, ``stream``, ``body``, ``last_user_text`` and
``langchain_messages()`` (the conversation back as LangChain messages).
``Script(steps, then=model)`` plays the steps, then lets ``model`` answer; ``script.requests``
keeps every request, ``server.requests`` the current script's, ``server.play(script)``
switches scripts between tests. An exhausted script answers HTTP 500.

Models:

- ``ChatModelPlayer(chat_model)``: any LangChain chat model behind the wire, e.g.
  ``ChatModelPlayer(RulesChatModel())`` (the rules assistant plays the LLM, so the shared
  secretary scenarios run end to end through the HTTP clients) or a ``ScriptedChatModel``.
- Any ``Callable[[ChatRequest], Reply | Failure]``: a "good" model that replays the expected
  tool calls, a "bad" one that loops, invents arguments, answers prose instead of calls…

Delivery knobs on ``Reply``: ``pieces`` (text chunks; 0 = per word), ``argument_pieces``
(OpenAI arguments fragments), ``first_token_delay``, ``chunk_delay``, ``die_after`` (chunks
sent before the connection is cut), ``done_reason``, ``prompt_tokens``/``completion_tokens``.
"""

from tests.support.model_servers.ollama import OllamaServer
from tests.support.model_servers.openai import OpenAIServer
from tests.support.model_servers.script import (
    Answer,
    ChatModelPlayer,
    ChatRequest,
    Failure,
    Model,
    Reply,
    Script,
    ScriptExhausted,
    Step,
    ToolCall,
    reply_from_message,
)

__all__ = [
    "Answer",
    "ChatModelPlayer",
    "ChatRequest",
    "Failure",
    "Model",
    "OllamaServer",
    "OpenAIServer",
    "Reply",
    "Script",
    "ScriptExhausted",
    "Step",
    "ToolCall",
    "reply_from_message",
]

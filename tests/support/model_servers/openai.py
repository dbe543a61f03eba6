"""The OpenAI chat completions API as vLLM serves it (``vllm serve … --enable-auto-tool-choice``):
``GET /v1/models`` and ``POST /v1/chat/completions``. Streaming is server-sent events: one
``data: {chat.completion.chunk}`` per delta (the role first, then reasoning, text and tool-call
deltas: a call's ``index``, ``id``, ``type`` and ``name`` on its first delta only, its
``arguments`` in fragments), a last chunk with ``finish_reason``, a usage chunk when the
request asks ``stream_options.include_usage``, and ``data: [DONE]``. Errors are
``{"error": {"message", "type", "param", "code"}}`` with a status, or an ``error`` event."""

import json
import time
import uuid
from typing import Any

from tests.support.model_servers.base import Exchange, ModelServer
from tests.support.model_servers.script import ChatRequest, Failure, Reply, ToolCall, split

SSE = "text/event-stream; charset=utf-8"
ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}


def _error(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _event(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


class OpenAIServer(ModelServer):
    """A loopback vLLM: its base URL for clients is ``url + "/v1"`` (``base_url``)."""

    protocol = "openai"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("models", ("Qwen/Qwen3-8B",))
        super().__init__(*args, **kwargs)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def handle(self, exchange: Exchange) -> None:
        route = (exchange.method, exchange.path)
        if route == ("GET", "/v1/models"):
            created = int(time.time())
            data = [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "vllm",
                    "root": name,
                    "parent": None,
                    "max_model_len": 32768,
                }
                for name in self.models
            ]
            exchange.json(200, {"object": "list", "data": data})
        elif route == ("GET", "/health"):
            exchange.send(200, b"", "text/plain")
        elif route == ("POST", "/v1/chat/completions"):
            self._chat(exchange)
        else:
            exchange.json(404, {"detail": "Not Found"})

    def _chat(self, exchange: Exchange) -> None:
        self.chat_requests += 1
        try:
            body = exchange.body()
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            exchange.json(400, _error(400, "Expecting value: line 1 column 1 (char 0)"))
            return
        model = str(body.get("model") or "")
        if model not in self.models:
            exchange.json(404, _error(404, f"The model `{model}` does not exist."))
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            exchange.json(400, _error(400, "messages: Field required"))
            return
        stream = bool(body.get("stream"))
        request = ChatRequest(
            "openai", model, messages, list(body.get("tools") or []), stream, body
        )
        answer = self.script.answer(request)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if isinstance(answer, Failure):
            self._failure(exchange, model, completion_id, answer, stream)
        elif stream:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(exchange, model, completion_id, answer, request, usage)
        else:
            exchange.wait(answer.first_token_delay)
            exchange.json(200, self._whole(model, completion_id, answer, request))

    # -- pieces -----------------------------------------------------------------------------
    @staticmethod
    def _finish(reply: Reply) -> str:
        return reply.done_reason or ("tool_calls" if reply.tool_calls else "stop")

    @staticmethod
    def _usage(reply: Reply, request: ChatRequest) -> dict[str, int]:
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else len(json.dumps(request.messages)) // 4
        )
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else max(1, len(reply.text + reply.thinking) // 4) + 20 * len(reply.tool_calls)
        )
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
        }

    @staticmethod
    def _call_id(call: ToolCall) -> str:
        return call.id or f"chatcmpl-tool-{uuid.uuid4().hex}"

    def _chunk(
        self, model: str, completion_id: str, delta: dict[str, Any], finish: str | None = None
    ) -> bytes:
        return _event(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    def _whole(
        self, model: str, completion_id: str, reply: Reply, request: ChatRequest
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "reasoning_content": reply.thinking or None,
            "tool_calls": [
                {
                    "id": self._call_id(call),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for call in reply.tool_calls
            ],
        }
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish(reply),
                    "stop_reason": None,
                }
            ],
            "usage": self._usage(reply, request),
        }

    def _failure(
        self, exchange: Exchange, model: str, completion_id: str, failure: Failure, stream: bool
    ) -> None:
        exchange.wait(failure.delay)
        if not (failure.in_stream and stream):
            exchange.json(failure.status, _error(failure.status, failure.message))
            return
        exchange.start_stream(SSE)
        exchange.chunk(self._chunk(model, completion_id, {"role": "assistant", "content": ""}))
        if failure.text:
            exchange.chunk(self._chunk(model, completion_id, {"content": failure.text}))
        exchange.chunk(_event(_error(failure.status, failure.message)))
        exchange.chunk(_event("[DONE]"))
        exchange.end()

    def _stream(
        self,
        exchange: Exchange,
        model: str,
        completion_id: str,
        reply: Reply,
        request: ChatRequest,
        usage: bool,
    ) -> None:
        chunks = [self._chunk(model, completion_id, {"role": "assistant", "content": ""})]
        if reply.thinking:
            chunks += [
                self._chunk(model, completion_id, {"reasoning_content": piece})
                for piece in Reply(text=reply.thinking, pieces=reply.pieces).text_pieces()
            ]
        chunks += [
            self._chunk(model, completion_id, {"content": piece}) for piece in reply.text_pieces()
        ]
        for index, call in enumerate(reply.tool_calls):
            first = {
                "index": index,
                "id": self._call_id(call),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            chunks.append(self._chunk(model, completion_id, {"tool_calls": [first]}))
            for fragment in split(call.arguments_json(), reply.argument_pieces):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                chunks.append(self._chunk(model, completion_id, delta))
        chunks.append(self._chunk(model, completion_id, {"content": ""}, self._finish(reply)))
        if usage:
            chunks.append(
                _event(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [],
                        "usage": self._usage(reply, request),
                    }
                )
            )
        chunks.append(_event("[DONE]"))

        exchange.start_stream(SSE)  # vLLM's headers go out before the first token
        exchange.wait(reply.first_token_delay)
        for number, chunk in enumerate(chunks):
            if reply.die_after is not None and number >= reply.die_after:
                exchange.drop()
            if number:
                exchange.wait(reply.chunk_delay)
            exchange.chunk(chunk)
        exchange.end()

"""Ollama's HTTP API as ``ChatOllama`` (through the ``ollama`` client) and our model probe use
it: ``GET /api/tags``, ``POST /api/show``, ``GET /api/version`` and ``POST /api/chat``, which
streams NDJSON (one JSON object a line, ``"done": true`` and the statistics on the last) or
answers one object with ``"stream": false``. Errors are ``{"error": "…"}`` with a status, or an
``{"error": "…"}`` line inside a stream."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.model_servers.base import Exchange, ModelServer
from tests.support.model_servers.script import ChatRequest, Failure, Reply, ToolCall

NDJSON = "application/x-ndjson"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OllamaServer(ModelServer):
    """A loopback Ollama: the models in ``models`` are "pulled"; chat answers come from the
    script."""

    protocol = "ollama"
    version = "0.12.6"

    def handle(self, exchange: Exchange) -> None:
        route = (exchange.method, exchange.path)
        if route in (("GET", "/"), ("HEAD", "/")):
            exchange.send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif route == ("GET", "/api/version"):
            exchange.json(200, {"version": self.version})
        elif route == ("GET", "/api/tags"):
            exchange.json(200, {"models": [self._model_entry(name) for name in self.models]})
        elif route == ("POST", "/api/show"):
            self._show(exchange)
        elif route == ("POST", "/api/chat"):
            self._chat(exchange)
        else:
            exchange.send(404, b"404 page not found", "text/plain; charset=utf-8")

    # -- models -----------------------------------------------------------------------------
    def _served(self, name: str) -> bool:
        return name in self.models or f"{name}:latest" in self.models

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2026-11-02T09:12:44.51Z",
            "size": 5225388164,
            "digest": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex * 2,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "qwen3",
                "families": ["qwen3"],
                "parameter_size": "8.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _show(self, exchange: Exchange) -> None:
        try:
            name = str(exchange.body().get("model") or exchange.body().get("name") or "")
        except (ValueError, AttributeError):
            exchange.json(400, {"error": "invalid request body"})
            return
        if not self._served(name):
            exchange.json(404, {"error": f"model '{name}' not found"})
            return
        entry = self._model_entry(name)
        exchange.json(
            200,
            {
                "modelfile": f"FROM {name}\n",
                "parameters": "temperature 0.6\ntop_k 20",
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                "capabilities": ["completion", "tools", "thinking"],
                "modified_at": entry["modified_at"],
            },
        )

    # -- chat -------------------------------------------------------------------------------
    def _chat(self, exchange: Exchange) -> None:
        self.chat_requests += 1
        try:
            body = exchange.body()
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            exchange.json(400, {"error": "invalid character 'x' looking for beginning of value"})
            return
        model = str(body.get("model") or "")
        if not model:
            exchange.json(400, {"error": "model is required"})
            return
        if not self._served(model):
            exchange.json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        messages = body.get("messages")
        if not isinstance(messages, list):
            exchange.json(400, {"error": "messages must be a list"})
            return
        stream = body.get("stream", True) is not False
        request = ChatRequest(
            "ollama", model, messages, list(body.get("tools") or []), stream, body
        )
        answer = self.script.answer(request)
        if isinstance(answer, Failure):
            self._failure(exchange, model, answer, stream)
            return
        think = body.get("think") is not False or answer.force_thinking
        if stream:
            self._stream(exchange, model, answer, think)
        else:
            exchange.wait(answer.first_token_delay)
            exchange.json(200, self._whole(model, answer, think, request))

    def _failure(self, exchange: Exchange, model: str, failure: Failure, stream: bool) -> None:
        exchange.wait(failure.delay)
        if not (failure.in_stream and stream):
            exchange.json(failure.status, {"error": failure.message})
            return
        exchange.start_stream(NDJSON)
        if failure.text:
            exchange.chunk(self._line(model, {"role": "assistant", "content": failure.text}))
        exchange.chunk((json.dumps({"error": failure.message}) + "\n").encode())
        exchange.end()

    def _line(self, model: str, message: dict[str, Any], **extra: Any) -> bytes:
        data = {"model": model, "created_at": _now(), "message": message, "done": False, **extra}
        return (json.dumps(data, ensure_ascii=False) + "\n").encode()

    @staticmethod
    def _wire_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or f"call_{uuid.uuid4().hex[:8]}",
                "function": {"index": index, "name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(calls)
        ]

    @staticmethod
    def _leaked(reply: Reply) -> tuple[list[ToolCall], str]:
        """Ollama parses tool calls itself: one it cannot parse stays in the content."""
        parsed = [c for c in reply.tool_calls if not isinstance(c.arguments, str)]
        raw = "".join(
            f'{{"name": "{c.name}", "arguments": {c.arguments}'
            for c in reply.tool_calls
            if isinstance(c.arguments, str)
        )
        return parsed, raw

    def _stats(self, reply: Reply, request_chars: int) -> dict[str, Any]:
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else request_chars // 4
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else _tokens(reply.text + reply.thinking) + 20 * len(reply.tool_calls)
        )
        return {
            "done_reason": reply.done_reason or "stop",
            "total_duration": 885095291,
            "load_duration": 3753500,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 328493000,
            "eval_count": completion,
            "eval_duration": 552222000,
        }

    def _whole(self, model: str, reply: Reply, think: bool, request: ChatRequest) -> dict[str, Any]:
        calls, leaked = self._leaked(reply)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text + leaked}
        if think and reply.thinking:
            message["thinking"] = reply.thinking
        if calls:
            message["tool_calls"] = self._wire_calls(calls)
        return {
            "model": model,
            "created_at": _now(),
            "message": message,
            "done": True,
            **self._stats(reply, len(json.dumps(request.messages))),
        }

    def _stream(self, exchange: Exchange, model: str, reply: Reply, think: bool) -> None:
        calls, leaked = self._leaked(reply)
        lines: list[bytes] = []
        if think and reply.thinking:
            lines += [
                self._line(model, {"role": "assistant", "content": "", "thinking": piece})
                for piece in Reply(text=reply.thinking, pieces=reply.pieces).text_pieces()
            ]
        text = Reply(text=reply.text + leaked, pieces=reply.pieces).text_pieces()
        lines += [self._line(model, {"role": "assistant", "content": piece}) for piece in text]
        if calls:
            message = {"role": "assistant", "content": "", "tool_calls": self._wire_calls(calls)}
            lines.append(self._line(model, message))
        request_chars = len(json.dumps(self.script.requests[-1].messages))
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            **self._stats(reply, request_chars),
        }
        lines.append((json.dumps(final) + "\n").encode())

        exchange.wait(reply.first_token_delay)  # Ollama's headers go out with the first line
        exchange.start_stream(NDJSON)
        for number, line in enumerate(lines):
            if reply.die_after is not None and number >= reply.die_after:
                exchange.drop()
            if number:
                exchange.wait(reply.chunk_delay)
            exchange.chunk(line)
        exchange.end()

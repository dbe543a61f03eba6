"""The HTTP machinery both protocol servers share: a threaded server on a real loopback
socket, JSON answers, chunked streams that can stall or break off, and the script."""

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.model_servers.script import ChatRequest, Model, Script, Step, as_script


class ConnectionDropped(Exception):
    """The client went away (or the script made the server drop the connection)."""


class Exchange:
    """One HTTP request and its answer, written on the handler's socket."""

    def __init__(self, handler: "_Handler", stopping: threading.Event) -> None:
        self.handler = handler
        self.stopping = stopping
        self.method = handler.command
        self.path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        self.raw = handler.rfile.read(length) if length else b""
        self.headers = handler.headers
        self._chunked = False

    def body(self) -> Any:
        """The request's JSON body; ``ValueError`` when it is not JSON."""
        return json.loads(self.raw or b"null")

    def json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send(status, data, "application/json; charset=utf-8")

    def send(self, status: int, data: bytes, content_type: str) -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def start_stream(self, content_type: str) -> None:
        h = self.handler
        h.send_response(HTTPStatus.OK)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache")
        h.end_headers()
        h.wfile.flush()
        self._chunked = True

    def chunk(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()
        except OSError as exc:
            raise ConnectionDropped() from exc

    def end(self) -> None:
        """The empty chunk that ends the body."""
        try:
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()
        except OSError as exc:
            raise ConnectionDropped() from exc

    def drop(self) -> None:
        """Close the connection now, mid-answer, as a crashing server does."""
        self.handler.close_connection = True
        try:
            self.handler.wfile.flush()
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise ConnectionDropped()

    def wait(self, seconds: float) -> None:
        """Sleep (a slow model), but not past the server's close."""
        if seconds > 0 and self.stopping.wait(seconds):
            self.drop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def _handle(self) -> None:
        owner = self.server.owner
        exchange = Exchange(self, owner.stopping)
        try:
            owner.handle(exchange)
        except ConnectionDropped:
            self.close_connection = True
        except Exception as exc:  # a model callable failed: a 500, kept for the test
            owner.errors.append(exc)
            self.close_connection = True
            with contextlib.suppress(OSError):
                exchange.json(500, {"error": f"{type(exc).__name__}: {exc}"})

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle
    do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: "ModelServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a timeout, a cancelled turn) is no server error; anything
        else is kept for the test to see (``ModelServer.errors``) and printed."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | ConnectionDropped):
            return
        self.owner.errors.append(error)
        super().handle_error(request, client_address)


class ModelServer:
    """A protocol server on 127.0.0.1 (a free port), answering chat requests from its
    ``script``. Use it as a context manager, or ``start()`` / ``close()``."""

    protocol = ""
    models: Sequence[str]

    def __init__(
        self,
        script: Script | Model | Sequence[Step] = (),
        *,
        models: Sequence[str] = ("qwen3:8b",),
    ) -> None:
        self.script = as_script(script)
        self.models = list(models)
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.chat_requests = 0  # chat requests received, answered or not
        self.errors: list[BaseException | None] = []  # the server's own failures

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "ModelServer":
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.protocol}-model-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL a client is configured with."""
        return f"http://127.0.0.1:{self.port}"

    # -- script ---------------------------------------------------------------------------
    def play(self, script: Script | Model | Sequence[Step]) -> Script:
        """Answer the next requests from a new script."""
        self.script = as_script(script)
        return self.script

    @property
    def requests(self) -> list[ChatRequest]:
        return self.script.requests

    def handle(self, exchange: Exchange) -> None:  # pragma: no cover - per protocol
        raise NotImplementedError

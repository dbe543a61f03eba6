"""No egress: during the whole test suite, sockets may reach loopback and local (Unix) sockets
only. Any other connection attempt fails at once and is recorded; the suite then fails."""

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

attempts: list[object] = []
_real: dict[str, Callable[..., Any]] = {}


def allowed(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX path
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: it would need a DNS lookup first


def _guarded(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: object) -> Any:
        if not allowed(address):
            attempts.append(address)
            raise OSError(f"network blocked in tests (no egress): {address}")
        return real(self, address)

    return connect


def install() -> list[object]:
    if not _real:
        _real["connect"] = socket.socket.connect
        _real["connect_ex"] = socket.socket.connect_ex
        socket.socket.connect = _guarded(_real["connect"])  # type: ignore[method-assign]
        socket.socket.connect_ex = _guarded(_real["connect_ex"])  # type: ignore[method-assign]
    return attempts


def uninstall() -> None:
    if _real:
        socket.socket.connect = _real.pop("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = _real.pop("connect_ex")  # type: ignore[method-assign]

"""The MCP servers as our own agents reach them: in-process, bound to the user on whose behalf
the assistant acts, so every tool call is audited under that user."""

import threading
from collections import OrderedDict

from mcp.server.fastmcp import FastMCP
from sqlalchemy.engine import Engine

from app.config.settings import Settings
from app.services.core.audit import Actor
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import ToolRuntime
from models.audit import ActorKind

CACHED_USERS = 32  # building the servers costs ~15 ms: keep them for recent users


def assistant_actor(user_id: int, user_name: str) -> Actor:
    """The audit identity of the assistant acting for a staff member."""
    return Actor(kind=ActorKind.agent, id=str(user_id), name=f"assistant ({user_name})"[:128])


class LocalServers:
    """Per-user sets of MCP servers for in-memory client sessions."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._lock = threading.Lock()
        self._by_user: OrderedDict[tuple[int, str], dict[str, FastMCP]] = OrderedDict()

    def for_user(self, user_id: int, user_name: str) -> dict[str, FastMCP]:
        key = (user_id, user_name)
        with self._lock:
            servers = self._by_user.get(key)
            if servers is not None:
                self._by_user.move_to_end(key)
                return servers
        runtime = ToolRuntime(self.engine, self.settings, assistant_actor(user_id, user_name))
        servers = {name: factory(runtime) for name, factory in SERVERS.items()}
        with self._lock:
            self._by_user[key] = servers
            while len(self._by_user) > CACHED_USERS:
                self._by_user.popitem(last=False)
        return servers

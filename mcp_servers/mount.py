"""Mounting the MCP servers in the web app, at ``/mcp/<area>``, behind bearer tokens."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from mcp.server.fastmcp import FastMCP

from app.services.core.audit import Actor
from mcp_servers.agenda import create_agenda_server
from mcp_servers.knowledge import create_knowledge_server
from mcp_servers.letters import create_letters_server
from mcp_servers.questionnaires import create_questionnaires_server
from mcp_servers.runtime import BearerTokenGuard, ToolRuntime
from models.audit import ActorKind
from models.mcp_clients import MCP_AREAS

SERVERS = {
    "agenda": create_agenda_server,
    "knowledge": create_knowledge_server,
    "letters": create_letters_server,
    "questionnaires": create_questionnaires_server,
}
# A client's areas are validated against MCP_AREAS, the names mounted here.
if tuple(SERVERS) != MCP_AREAS:
    raise RuntimeError("models.mcp_clients.MCP_AREAS must name the served areas, in order")


def mount_mcp_servers(app: FastAPI) -> dict[str, FastMCP]:
    """Build every server over the app's database and mount its streamable HTTP endpoint."""
    runtime = ToolRuntime(
        app.state.engine,
        app.state.settings,
        # Over HTTP the guard always names the client; this actor is never used there.
        Actor(kind=ActorKind.mcp_client, name="http"),
    )
    servers = {}
    for name, factory in SERVERS.items():
        server = factory(runtime)
        app.mount(
            f"/mcp/{name}",
            BearerTokenGuard(server.streamable_http_app(), app.state.engine, name),
        )
        servers[name] = server
    return servers


@asynccontextmanager
async def run_mcp_servers(servers: dict[str, FastMCP]) -> AsyncIterator[None]:
    """Run each server's HTTP session manager for the app's lifetime."""
    async with AsyncExitStack() as stack:
        for server in servers.values():
            await stack.enter_async_context(server.session_manager.run())
        yield

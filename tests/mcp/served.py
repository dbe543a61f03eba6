"""The tools our MCP servers list to a real MCP client, with their annotations: what the
tests hold the agent's confirmation policy and the read-only scopes against."""

from collections.abc import Iterable, Mapping

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import Tool
from sqlalchemy import create_engine

from app.config.settings import Settings
from app.services.core.audit import Actor
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import ToolRuntime


async def listed_tools(servers: Mapping[str, FastMCP]) -> dict[str, list[Tool]]:
    """Each server's tools as ``tools/list`` gives them over an in-memory MCP session."""
    out = {}
    for area, server in servers.items():
        async with create_connected_server_and_client_session(server._mcp_server) as client:
            out[area] = (await client.list_tools()).tools
    return out


def read_only_names(tools: Iterable[Tool]) -> frozenset[str]:
    """The tools that declare ``readOnlyHint=True`` (read straight from the MCP listing, not
    through the helpers under test)."""
    return frozenset(
        t.name for t in tools if t.annotations is not None and t.annotations.readOnlyHint is True
    )


def served_tools() -> list[Tool]:
    """Every tool of every server, as listed over MCP. The servers are built on a throwaway
    in-memory database: listing tools reads none."""
    runtime = ToolRuntime(
        create_engine("sqlite://"),
        Settings(_env_file=None, database_url="sqlite://", secret_key="x"),
        Actor.system("test"),
    )
    servers = {area: factory(runtime) for area, factory in SERVERS.items()}
    listed = anyio.run(listed_tools, servers)
    return [tool for tools in listed.values() for tool in tools]

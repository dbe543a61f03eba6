"""The secretary agent: a LangChain ``create_agent`` over our MCP tools, with human-in-the-loop
confirmation of every tool not annotated read-only, a tool-call budget and a role policy
enforced in code."""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    HumanInTheLoopMiddleware,
    InterruptOnConfig,
    ModelRequest,
    ToolCallLimitMiddleware,
    dynamic_prompt,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.tools import load_mcp_tools
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command
from mcp import ClientSession
from mcp.server.fastmcp import FastMCP
from mcp.shared.memory import create_connected_server_and_client_session

from agents.policy import needs_confirmation
from prompts import RenderedPrompt

REFUSED = "Outil non autorisé pour cet utilisateur : {name}. Utilise un autre outil ou explique."


_turn_sessions: ContextVar[dict[str, ClientSession]] = ContextVar("mcp_turn_sessions")


class RoutedSession:
    """Stands in for an MCP client session in tools that are built once: every request goes
    to the session the current turn opened for this server (see ``open_sessions``)."""

    def __init__(self, server: str) -> None:
        self.server = server

    def __getattr__(self, name: str) -> Any:
        try:
            sessions = _turn_sessions.get()
        except LookupError:
            raise RuntimeError("no MCP session is open for this turn") from None
        return getattr(sessions[self.server], name)


@asynccontextmanager
async def open_sessions(servers: Mapping[str, FastMCP]) -> AsyncIterator[dict[str, ClientSession]]:
    """Real in-memory MCP client sessions to our servers for the duration of the block; tools
    made by ``load_tools`` use them."""
    async with AsyncExitStack() as stack:
        sessions = {
            name: await stack.enter_async_context(
                create_connected_server_and_client_session(server._mcp_server)
            )
            for name, server in servers.items()
        }
        token = _turn_sessions.set(sessions)
        try:
            yield sessions
        finally:
            _turn_sessions.reset(token)


async def load_tools(servers: Mapping[str, FastMCP], allowed: frozenset[str]) -> list[BaseTool]:
    """The allowed tools of our MCP servers, converted by langchain-mcp-adapters from what the
    servers list over MCP (each tool's annotations land in its ``metadata``, which the
    confirmation policy reads); they call through whatever sessions the running turn opened."""
    tools: list[BaseTool] = []
    async with open_sessions(servers):
        for name in servers:
            loaded = await load_mcp_tools(RoutedSession(name), server_name=name)  # type: ignore[arg-type]  # duck-typed session
            tools += [t for t in loaded if t.name in allowed]
    return tools


@asynccontextmanager
async def mcp_tools(
    servers: Mapping[str, FastMCP], allowed: frozenset[str]
) -> AsyncIterator[list[BaseTool]]:
    """The allowed tools, with sessions open while the block runs."""
    tools = await load_tools(servers, allowed)
    async with open_sessions(servers):
        yield tools


class ToolPolicyMiddleware(AgentMiddleware):
    """Refuses, in code, any tool call outside the user's allowed set; the refusal goes back to
    the model as a tool error so the turn can recover."""

    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__()
        self.allowed = allowed

    def _refusal(self, request: ToolCallRequest) -> ToolMessage | None:
        name = request.tool_call["name"]
        if name in self.allowed:
            return None
        return ToolMessage(
            content=REFUSED.format(name=name),
            tool_call_id=request.tool_call["id"] or "",
            name=name,
            status="error",
        )

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        return self._refusal(request) or handler(request)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        return self._refusal(request) or await handler(request)


def build_secretary_agent(
    model: BaseChatModel,
    tools: list[BaseTool],
    *,
    prompt: Callable[[], RenderedPrompt],
    allowed: frozenset[str],
    checkpointer: BaseCheckpointSaver[Any] | None,
    max_tool_calls: int = 8,
) -> Any:
    """The compiled agent graph (compiling takes tens of milliseconds: build it once per user
    and model). The system prompt is rendered at each model call (it carries the time)."""
    gated: dict[str, bool | InterruptOnConfig] = {
        t.name: True for t in tools if needs_confirmation(t)
    }

    @dynamic_prompt
    def system_prompt(request: ModelRequest) -> str:
        return prompt().text

    middleware: list[AgentMiddleware[Any, Any, Any]] = [
        system_prompt,
        ToolPolicyMiddleware(allowed),
        ToolCallLimitMiddleware(run_limit=max_tool_calls, exit_behavior="continue"),
        HumanInTheLoopMiddleware(interrupt_on=gated, edit_notice=None),
    ]
    return create_agent(
        model,
        tools,
        middleware=middleware,
        checkpointer=checkpointer,
        name="secretary",
    )

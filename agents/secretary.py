"""The secretary agent: a LangChain ``create_agent`` over our MCP tools, with human-in-the-loop
confirmation of every tool not annotated read-only, a tool-call budget and a role policy
enforced in code."""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    HumanInTheLoopMiddleware,
    InterruptOnConfig,
    ModelRequest,
    ToolCallLimitMiddleware,
    dynamic_prompt,
)
from langchain.agents.middleware.human_in_the_loop import _EDITED_TOOL_CALLS_KEY
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.tools import load_mcp_tools
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command
from mcp import ClientSession
from mcp.server.fastmcp import FastMCP
from mcp.shared.memory import create_connected_server_and_client_session

from agents.malformed_calls import MalformedToolCallMiddleware
from agents.policy import needs_confirmation
from app.services.scheduling import time_expressions
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


class ConfirmationMiddleware(HumanInTheLoopMiddleware):
    """Human-in-the-loop confirmation whose edits are written into the conversation: when the
    secretary edits a proposed call before confirming, the model's message is rewritten to the
    call that really runs, so the model (on the next call and in later turns) and the saved
    conversation see her arguments, never the ones she replaced. LangChain keeps the model's
    own call in the message and only swaps it when the tool runs."""

    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        update = super().after_model(state, runtime)
        if not update:
            return update
        edited: dict[str, Any] = update.get(_EDITED_TOOL_CALLS_KEY) or {}
        messages = list(update.get("messages") or [])
        if not edited or not messages or not isinstance(messages[0], AIMessage):
            return update
        ai = messages[0]
        calls = []
        for call in ai.tool_calls:
            action = edited.get(call.get("id") or "")
            if action is not None:
                call = {**call, "name": action["name"], "args": dict(action["args"])}
            calls.append(call)
        messages[0] = ai.model_copy(update={"tool_calls": calls})
        return {**update, "messages": messages}

    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self.after_model(state, runtime)


# Write tools that take the secretary's words (``when``) for the start they book.
PINNED_START = {"book_appointment": "start", "move_appointment": "new_start"}


class PinTimeMiddleware(AgentMiddleware):
    """Resolves a proposed write's ``when`` ("demain 9h") into its concrete start before the
    confirmation card is raised, so the card shows one local time and confirming runs exactly
    that call, however long the secretary waits (even past midnight, when "demain" would name
    another day). Runs before the human-in-the-loop middleware (it is listed after it: the
    ``after_model`` hooks run last to first). Words that do not name one instant are left to
    the tool, which explains them."""

    def __init__(self, clock: Callable[[], datetime], tz: ZoneInfo) -> None:
        super().__init__()
        self.clock = clock
        self.tz = tz

    def _pinned(self, call: dict[str, Any]) -> dict[str, Any] | None:
        key = PINNED_START.get(call["name"])
        args = call.get("args") or {}
        words = args.get("when")
        if key is None or not isinstance(words, str) or not words.strip():
            return None
        if args.get(key):  # an explicit start wins; the words would only confuse the card
            return {k: v for k, v in args.items() if k != "when"}
        found = time_expressions.parse(words, self.clock(), self.tz)
        if found is None or found.instant is None:
            return None
        local = found.instant.astimezone(self.tz)
        pinned = {k: v for k, v in args.items() if k != "when"}
        pinned[key] = local.isoformat(timespec="minutes")
        return pinned

    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        messages = state.get("messages") or []
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return None
        calls = []
        changed = False
        for call in last.tool_calls:
            pinned = self._pinned(dict(call))
            if pinned is not None:
                call = {**call, "args": pinned}
                changed = True
            calls.append(call)
        if not changed:
            return None
        return {"messages": [last.model_copy(update={"tool_calls": calls})]}

    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self.after_model(state, runtime)


def build_secretary_agent(
    model: BaseChatModel,
    tools: list[BaseTool],
    *,
    prompt: Callable[[], RenderedPrompt],
    allowed: frozenset[str],
    checkpointer: BaseCheckpointSaver[Any] | None,
    max_tool_calls: int = 8,
    clock: Callable[[], datetime] | None = None,
    tz: ZoneInfo | None = None,
) -> Any:
    """The compiled agent graph (compiling takes tens of milliseconds: build it once per user
    and model). The system prompt is rendered at each model call (it carries the time).
    ``clock`` and ``tz`` (the practice's) pin a proposed action's time words to a start."""
    zone = tz or ZoneInfo("Europe/Paris")
    now = clock or (lambda: datetime.now(zone))
    gated: dict[str, bool | InterruptOnConfig] = {
        t.name: True for t in tools if needs_confirmation(t)
    }

    @dynamic_prompt
    def system_prompt(request: ModelRequest) -> str:
        return prompt().text

    middleware: list[AgentMiddleware[Any, Any, Any]] = [
        system_prompt,
        MalformedToolCallMiddleware(checked=gated),
        ToolPolicyMiddleware(allowed),
        ToolCallLimitMiddleware(run_limit=max_tool_calls, exit_behavior="continue"),
        ConfirmationMiddleware(interrupt_on=gated, edit_notice=None),
        PinTimeMiddleware(now, zone),  # after_model: runs before the confirmation
    ]
    return create_agent(
        model,
        tools,
        middleware=middleware,
        checkpointer=checkpointer,
        name="secretary",
    )

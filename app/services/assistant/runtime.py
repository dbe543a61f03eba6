"""The secretary assistant as the web app runs it: model choice, the persistent checkpointer,
per-user MCP tools, one turn at a time per conversation, and the history shown on the page."""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import anyio
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from mcp.server.fastmcp import FastMCP
from sqlalchemy.engine import Engine, make_url

from agents.models import (
    ModelChoice,
    ModelNotInstalled,
    ModelUnavailable,
    embedded_missing,
    make_chat_model,
)
from agents.policy import allowed_tools
from agents.scripted_model import ScriptedChatModel
from agents.turns import Decision, TurnEvent, stream_turn, tool_summary, turn_input
from app.config.settings import Settings
from app.services.assistant.action_preview import long_date
from app.services.assistant.feedback_signals import ProposalTracker
from app.services.assistant.model_gate import ModelGate
from app.services.core.errors import DomainError
from models.users import User
from prompts import RenderedPrompt, load_prompt

log = logging.getLogger("accueil.assistant")
CACHED_AGENTS = 64
INTERRUPT = "__interrupt__"  # the channel LangGraph saves interrupts on (a private constant)
BUSY_STALE_SECONDS = 600.0  # a turn abandoned without cleanup stops blocking after this
CLOSING_EVENTS = frozenset({"confirm", "answer", "done", "error"})
SETUP_SECONDS = 5.0  # creating the conversation tables at start (the database may be down)
SETUP_WAIT_SECONDS = 3.0  # a request waits this long for a set-up retried later

MODEL_DOWN = (
    "Le modèle de langage ne répond pas pour le moment. Votre message est conservé : "
    "réessayez dans un instant."
)
MODEL_DOWN_EN = "The language model is not answering right now. Your message is kept: retry soon."


def _not_installed(exc: BaseException) -> ModelNotInstalled | None:
    """The provider's missing part, when that is why the turn failed (said as is: retrying
    will not help)."""
    if isinstance(exc, ModelNotInstalled):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if found := _not_installed(inner):
                return found
    return None


def failure_name(exc: BaseException) -> str:
    """The innermost exception's type (MCP sessions wrap failures in exception groups); never
    its message, which could quote patient data."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__


class AssistantUnavailable(DomainError):
    """The conversation store cannot be reached (its database is down)."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "L'assistant est momentanément indisponible (base des conversations injoignable).",
            "The assistant is unavailable for now (conversation store unreachable).",
        )


class TurnInProgress(RuntimeError):
    """Another turn of this conversation is still running."""


class ConfirmationPending(RuntimeError):
    """The conversation waits for a decision on a proposed action."""


@dataclass
class HistoryItem:
    """One line of a conversation as the page shows it."""

    kind: str  # user | assistant | tool_call | tool
    text: str
    name: str = ""
    status: str = ""


class UserServers(Protocol):
    """The practice's MCP servers as one user's agent reaches them, audited in that user's
    name (``mcp_servers.local.LocalServers``). Handed in by whoever builds the assistant:
    the MCP servers call the domain, so the domain does not import them."""

    def for_user(self, user_id: int, user_name: str) -> Mapping[str, FastMCP]: ...


class Assistant:
    """Owns what the secretary agent needs across requests."""

    def __init__(self, settings: Settings, engine: Engine, servers: UserServers) -> None:
        self.settings = settings
        self.engine = engine
        self.servers = servers
        self.checkpointer: BaseCheckpointSaver[str] | None = None
        # Tests, evaluations and benchmarks put a scripted model here.
        self.model_override: BaseChatModel | None = None
        self.gate = ModelGate(engine)  # under ``auto``, only an accepted model serves
        self.proposals = ProposalTracker()  # turns and tool errors of each task under way
        self._models: dict[ModelChoice, BaseChatModel] = {}
        self._busy: dict[str, float] = {}  # conversations with a turn running
        self._agents: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._reader = ScriptedChatModel(script=[])  # state reads never call a model
        self.clock: Callable[[], datetime] | None = None
        self._set_up = False
        self._setup_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator["Assistant"]:
        """Open the checkpointer for the app's lifetime: PostgreSQL when the app uses it,
        else a SQLite file in the data directory. Conversations survive restarts."""
        if self.settings.llm_provider == "embedded" and (
            missing := await anyio.to_thread.run_sync(embedded_missing, self.settings)
        ):
            log.error("ACCUEIL_LLM_PROVIDER=embedded: %s", missing)
        async with AsyncExitStack() as stack:
            url = make_url(self.settings.resolved_database_url)
            if url.get_backend_name() == "postgresql":
                # A pool reconnects by itself: the app starts (and /health reports) even when
                # the database is down, and the assistant recovers when it is back.
                from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
                from psycopg.rows import dict_row
                from psycopg_pool import AsyncConnectionPool

                pool = AsyncConnectionPool(
                    url.set(drivername="postgresql").render_as_string(hide_password=False),
                    kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
                    min_size=1,
                    max_size=4,
                    open=False,
                )
                await pool.open(wait=False)
                stack.push_async_callback(pool.close)
                saver: BaseCheckpointSaver[str] = AsyncPostgresSaver(pool)  # type: ignore[arg-type]  # pool of dict rows
            else:
                from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                path = self.settings.data_dir / "conversations.sqlite"
                saver = await stack.enter_async_context(
                    AsyncSqliteSaver.from_conn_string(str(path))
                )
            self.checkpointer = saver
            self._set_up = False
            try:
                # Create the tables now, while no request holds a transaction (PostgreSQL's
                # CREATE INDEX CONCURRENTLY waits for every open transaction to end).
                await asyncio.wait_for(saver.setup(), SETUP_SECONDS)  # type: ignore[attr-defined]  # savers
                self._set_up = True
            except Exception as exc:  # the database is down: retried when it is used
                log.warning("conversation store not ready: %s", failure_name(exc))
            try:
                yield self
            finally:
                if self._setup_task is not None:
                    self._setup_task.cancel()
                self.checkpointer = None

    async def ready(self) -> BaseCheckpointSaver[str]:
        """The checkpointer, its tables created on first use; raises ``AssistantUnavailable``
        when its database cannot be reached."""
        if self.checkpointer is None:
            raise AssistantUnavailable()
        if not self._set_up:
            # Set up in a task of its own: the request calling us may hold a transaction
            # that the set-up has to wait for, so the request does not wait long.
            if self._setup_task is None or self._setup_task.done():
                self._setup_task = asyncio.create_task(self._setup(self.checkpointer))
            try:
                await asyncio.wait_for(asyncio.shield(self._setup_task), SETUP_WAIT_SECONDS)
            except Exception as exc:
                log.warning("conversation store unavailable: %s", failure_name(exc))
                raise AssistantUnavailable() from exc
        return self.checkpointer

    async def _setup(self, checkpointer: BaseCheckpointSaver[str]) -> None:
        # setup() is on the SQLite and PostgreSQL savers, not on the base class.
        await checkpointer.setup()  # type: ignore[attr-defined]
        self._set_up = True

    # -- model --------------------------------------------------------------------------
    def model_choice(self) -> ModelChoice:
        if self.model_override is not None:
            override = self.model_override
            name = getattr(override, "model_name", None) or getattr(override, "model", None)
            return ModelChoice("embedded", str(name or override._llm_type))
        return self.gate.choose(self.settings)

    async def amodel_choice(self) -> ModelChoice:
        """``model_choice`` off the event loop (it may probe the Ollama server)."""
        if self.model_override is not None:
            return self.model_choice()  # nothing to probe
        return await anyio.to_thread.run_sync(self.model_choice)

    def chat_model(self, choice: ModelChoice) -> BaseChatModel:
        if self.model_override is not None:
            return self.model_override
        model = self._models.get(choice)
        if model is None:
            model = self._models[choice] = make_chat_model(self.settings, choice)
        return model

    def now(self) -> datetime:
        """The practice clock (evaluations replace it with a scenario's clock)."""
        return self.clock() if self.clock else datetime.now(self.settings.tz)

    def prompt(self, user_name: str) -> RenderedPrompt:
        local = self.now().astimezone(self.settings.tz)
        return load_prompt("secretary").render(
            practice=self.settings.practice_name,
            user=user_name,
            today=long_date(local.date()),
            now=f"{local:%H:%M}",
            timezone=self.settings.timezone,
        )

    # -- turns --------------------------------------------------------------------------
    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 40}

    @asynccontextmanager
    async def _agent(self, user: User, *, read_only: bool = False) -> AsyncIterator[Any]:
        """The user's agent, its MCP client sessions open while the block runs. Agents are
        compiled once per user and model; reading a conversation's state loads no model."""
        # LangChain's agent factory (and the LangGraph graph it builds on) is imported with
        # the first turn, not when the server starts: over half a second of CPU.
        from agents.secretary import build_secretary_agent, load_tools, open_sessions

        servers = self.servers.for_user(user.id or 0, user.username)
        model = self._reader if read_only else self.chat_model(await self.amodel_choice())
        key = (user.id, user.username, user.full_name, user.role, id(model))
        agent = self._agents.get(key)
        if agent is None:
            allowed = allowed_tools(user.role)
            tools = await load_tools(servers, allowed)
            name = user.full_name or user.username
            agent = build_secretary_agent(
                model,
                tools,
                prompt=lambda: self.prompt(name),
                allowed=allowed,
                checkpointer=self.checkpointer,
                max_tool_calls=self.settings.assistant_max_tool_calls,
                clock=self.now,
                tz=self.settings.tz,
            )
            self._agents[key] = agent
            while len(self._agents) > CACHED_AGENTS:
                self._agents.popitem(last=False)
        if read_only:  # reading saved state runs no tool: no MCP session needed
            yield agent
            return
        async with open_sessions(servers):
            yield agent

    async def pending(self, user: User, thread_id: str) -> list[dict[str, Any]]:
        """The actions waiting for the user's decision in this conversation: the interrupts
        saved with the latest checkpoint (one read, no graph needed)."""
        checkpointer = await self.ready()
        saved = await checkpointer.aget_tuple(self._config(thread_id))
        if saved is None:
            return []
        return [
            {"name": request["name"], "args": dict(request["args"])}
            for _, channel, value in saved.pending_writes or []
            if channel == INTERRUPT
            for interrupt in (value if isinstance(value, list | tuple) else [value])
            if isinstance(getattr(interrupt, "value", None), dict)
            for request in interrupt.value.get("action_requests", [])
        ]

    async def begin(
        self, user: User, thread_id: str, *, decisions: Sequence[Decision] | None = None
    ) -> None:
        """Checks made before a turn's stream starts; the turn then owns the conversation
        until it ends. Raises ``TurnInProgress`` or ``ConfirmationPending``."""
        started = self._busy.get(thread_id)
        if started is not None and time.monotonic() - started < BUSY_STALE_SECONDS:
            raise TurnInProgress(thread_id)
        waiting = await self.pending(user, thread_id)
        if (waiting and decisions is None) or (
            decisions is not None and len(decisions) != len(waiting)
        ):
            raise ConfirmationPending(thread_id)
        self._busy[thread_id] = time.monotonic()

    def release(self, thread_id: str) -> None:
        """Give the conversation back when a turn that ``begin`` admitted will not run after
        all (its audit could not be saved, the model could not be chosen); ``turn`` releases
        it itself when it ends."""
        self._busy.pop(thread_id, None)

    async def turn(
        self,
        user: User,
        thread_id: str,
        *,
        message: str | None = None,
        decisions: Sequence[Decision] | None = None,
        callbacks: Sequence[BaseCallbackHandler] = (),
    ) -> AsyncIterator[TurnEvent]:
        """Run one turn (after ``begin``); yields page events, ending with ``done`` or
        ``error``. A failing model loses nothing: what was saved can be resumed.
        ``callbacks`` see the turn's model calls (e.g. ``agents.usage.TokenMeter``)."""
        config = self._config(thread_id)
        if callbacks:
            config["callbacks"] = list(callbacks)
        # The closing events (answer, confirmation, done, error) are held back until the
        # conversation is released: a page that acts on them at once (retry, confirm, next
        # message) must never find the turn still marked as running.
        closing: list[TurnEvent] = []
        try:
            async with self._agent(user) as agent:
                async for event in stream_turn(agent, config, turn_input(message, decisions)):
                    if event.type in CLOSING_EVENTS:
                        closing.append(event)
                    else:
                        yield event
        except Exception as exc:  # the model or its server failed: keep what was said
            log.warning("assistant turn failed: %s", failure_name(exc))
            unavailable = isinstance(exc, ModelUnavailable) or (
                isinstance(exc, ExceptionGroup) and exc.subgroup(ModelUnavailable) is not None
            )
            missing = _not_installed(exc)
            closing = [
                TurnEvent(
                    "error",
                    {
                        "message": missing.fr if missing else MODEL_DOWN,
                        "message_en": missing.en if missing else MODEL_DOWN_EN,
                        "retry": "resume" if await self._can_resume(config) else "resend",
                        "model_unavailable": unavailable,
                    },
                )
            ]
        finally:
            self.release(thread_id)
        for event in closing:
            yield event

    async def _can_resume(self, config: RunnableConfig) -> bool:
        if self.checkpointer is None:
            return False
        try:
            checkpoint = await self.checkpointer.aget_tuple(config)
        except Exception:
            return False
        return bool(checkpoint and checkpoint.checkpoint.get("channel_values", {}).get("messages"))

    async def history(self, thread_id: str) -> list[HistoryItem]:
        """The conversation as saved, for the page."""
        checkpointer = await self.ready()
        checkpoint = await checkpointer.aget_tuple(self._config(thread_id))
        if checkpoint is None:
            return []
        items: list[HistoryItem] = []
        for message in checkpoint.checkpoint.get("channel_values", {}).get("messages", []):
            if isinstance(message, HumanMessage):
                items.append(HistoryItem("user", str(message.content)))
            elif isinstance(message, AIMessage):
                if message.text:
                    items.append(HistoryItem("assistant", message.text))
                for call in message.tool_calls:
                    items.append(HistoryItem("tool_call", "", name=call["name"]))
            elif isinstance(message, ToolMessage):
                items.append(
                    HistoryItem("tool", tool_summary(message), message.name or "", message.status)
                )
        return items

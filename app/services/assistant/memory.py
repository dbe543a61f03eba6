"""What the assistant remembers of its conversations, and forgetting it.

A conversation's checkpoints (LangGraph) keep every message and tool result, so they hold
patient data: names, birth dates, appointments. Two things remove them:

- an RGPD erasure deletes every conversation that mentions the erased patient (by the
  patient's id in a tool call or result, by full name, phone, e-mail or NIR), before the
  record itself is anonymised;
- a retention period: conversations untouched for ``assistant_retention_days`` are deleted
  by a daily job.

The checkpoints live where the assistant runtime keeps them (``runtime.py`` beside this): the
PostgreSQL database, or ``conversations.sqlite`` in the data directory. This module opens its
own short synchronous connection, so it runs from a request thread or a job worker.
"""

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import delete
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.patients.records import fold
from models.assistant_usage import AssistantUsage
from models.audit import ActorKind
from models.conversations import Conversation
from models.patients import Patient
from models.types import utcnow

log = logging.getLogger("accueil.conversations")
USAGE_KEPT = timedelta(days=90)


class ConversationStoreUnavailable(DomainError):
    """The assistant's conversation store cannot be reached: nothing is changed."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "L'historique de l'assistant est inaccessible pour le moment ; rien n'a été "
            "modifié. Réessayez dans un instant.",
            "The assistant's conversation history cannot be reached right now; nothing was "
            "changed. Try again in a moment.",
        )


@dataclass(frozen=True)
class PatientMarks:
    """What identifies a patient in a conversation's text (folded, digits only)."""

    patient_id: int
    names: tuple[str, ...]
    digits: tuple[str, ...]
    emails: tuple[str, ...]

    @classmethod
    def of(cls, patient: Patient) -> "PatientMarks":
        first = fold(patient.first_name)
        names = []
        for last in {fold(patient.birth_name), fold(patient.used_name or "")} - {""}:
            names += [f"{first} {last}", f"{last} {first}"]
        digits = []
        if patient.nir:
            digits.append(re.sub(r"\D", "", patient.nir))
        if patient.phone:
            national = re.sub(r"\D", "", patient.phone)
            digits.append(national)
            if patient.phone.startswith("+33"):
                digits.append("0" + national[2:])
        emails = (patient.email.casefold(),) if patient.email else ()
        return cls(patient.id or 0, tuple(names), tuple(d for d in digits if d), emails)


def _walk_ids(value: Any, wanted: int) -> bool:
    """True when a ``patient_id`` key anywhere in the value equals ``wanted``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "patient_id" and str(item) == str(wanted):
                return True
            if _walk_ids(item, wanted):
                return True
    elif isinstance(value, list | tuple):
        return any(_walk_ids(item, wanted) for item in value)
    return False


def _message_text(message: BaseMessage) -> str:
    parts = [message.content if isinstance(message.content, str) else json.dumps(message.content)]
    if isinstance(message, AIMessage):
        parts += [
            json.dumps(call.get("args", {}), ensure_ascii=False) for call in message.tool_calls
        ]
    return "\n".join(parts)


def mentions(messages: Iterable[BaseMessage], extra: Iterable[Any], marks: PatientMarks) -> bool:
    """Whether a conversation's messages (and pending proposals) name the patient."""
    texts: list[str] = []
    for message in messages:
        if isinstance(message, AIMessage) and any(
            _walk_ids(call.get("args", {}), marks.patient_id) for call in message.tool_calls
        ):
            return True
        texts.append(_message_text(message))
    for value in extra:
        if _walk_ids(value, marks.patient_id):
            return True
        texts.append(json.dumps(value, ensure_ascii=False, default=str))
    blob = "\n".join(texts)
    if re.search(rf'"patient_id"\s*:\s*{marks.patient_id}\b', blob):
        return True
    folded = fold(blob)
    if any(re.search(rf"\b{re.escape(name)}\b", folded) for name in marks.names):
        return True
    lowered = blob.casefold()
    if any(email in lowered for email in marks.emails):
        return True
    squeezed = re.sub(r"[\s.\-]", "", blob)
    return any(d in squeezed for d in marks.digits)


@contextmanager
def open_store(settings: Settings) -> Iterator[BaseCheckpointSaver[str] | None]:
    """The conversation store, or None when it was never created (nothing to forget)."""
    url = make_url(settings.resolved_database_url)
    try:
        if url.get_backend_name() == "postgresql":
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg_pool import ConnectionPool

            conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
            with PostgresSaver.from_conn_string(conninfo) as saver:
                # from_conn_string opens one connection (a pool is only ever passed in).
                assert not isinstance(saver.conn, ConnectionPool)
                row = saver.conn.execute("SELECT to_regclass('checkpoints') AS t").fetchone()
                yield saver if row and row["t"] else None
            return
        path = settings.data_dir / "conversations.sqlite"
        if not path.exists():
            yield None
            return
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.setup()
            yield saver
    except DomainError:
        raise
    except Exception as exc:
        log.warning("conversation store unavailable: %s", type(exc).__name__)
        raise ConversationStoreUnavailable() from exc


def _thread_mentions(saver: BaseCheckpointSaver[str], thread_id: str, marks: PatientMarks) -> bool:
    saved = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if saved is None:
        return False
    messages = saved.checkpoint.get("channel_values", {}).get("messages", [])
    extra = [value for _task, _channel, value in saved.pending_writes or []]
    return mentions(messages, _plain(extra), marks)


def _plain(values: list[Any]) -> list[Any]:
    """Pending writes (interrupts hold the proposed calls) as JSON-like data."""
    out = []
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            out.append(getattr(item, "value", item))
    return out


def _transcript(messages: Iterable[BaseMessage]) -> list[dict[str, str]]:
    """A conversation's messages as plain role/text pairs (tool calls named, results kept)."""
    out = []
    for message in messages:
        if isinstance(message, HumanMessage):
            out.append({"role": "secretary", "text": str(message.content)})
        elif isinstance(message, AIMessage):
            if message.text:
                out.append({"role": "assistant", "text": message.text})
            for call in message.tool_calls:
                args = json.dumps(call["args"], ensure_ascii=False)
                out.append({"role": "tool_call", "text": f"{call['name']} {args}"})
        elif isinstance(message, ToolMessage):
            out.append({"role": "tool_result", "text": _message_text(message)})
    return out


def conversations_about(
    session: Session, settings: Settings, patient: Patient
) -> list[dict[str, Any]]:
    """The conversations that mention the patient, for an RGPD export."""
    marks = PatientMarks.of(patient)
    rows = session.exec(select(Conversation).order_by(col(Conversation.id))).all()
    if not rows:
        return []
    found = []
    with open_store(settings) as saver:
        if saver is None:
            return []
        for row in rows:
            config: RunnableConfig = {
                "configurable": {"thread_id": row.thread_id, "checkpoint_ns": ""}
            }
            saved = saver.get_tuple(config)
            if saved is None:
                continue
            messages = saved.checkpoint.get("channel_values", {}).get("messages", [])
            extra = _plain([value for _task, _channel, value in saved.pending_writes or []])
            if mentions(messages, extra, marks):
                found.append(
                    {
                        "id": row.id,
                        "title": row.title,
                        "created_at": row.created_at.isoformat(timespec="seconds"),
                        "updated_at": row.updated_at.isoformat(timespec="seconds"),
                        "messages": _transcript(messages),
                    }
                )
    return found


def forget_patient(session: Session, settings: Settings, patient: Patient) -> int:
    """Delete every conversation that mentions the patient; returns how many. Raises
    ``ConversationStoreUnavailable`` (nothing changed) when the store cannot be read."""
    marks = PatientMarks.of(patient)
    rows = session.exec(select(Conversation)).all()
    if not rows:
        return 0
    doomed: list[Conversation] = []
    with open_store(settings) as saver:
        if saver is None:
            return 0
        doomed = [row for row in rows if _thread_mentions(saver, row.thread_id, marks)]
        for row in doomed:
            saver.delete_thread(row.thread_id)
    for row in doomed:
        session.delete(row)
    return len(doomed)


def purge_stale(
    session: Session, settings: Settings, actor: audit.Actor, *, now: datetime | None = None
) -> int:
    """Delete conversations untouched for longer than the retention period."""
    moment = now or utcnow()
    limit = moment - timedelta(days=settings.assistant_retention_days)
    stale = session.exec(select(Conversation).where(col(Conversation.updated_at) < limit)).all()
    if not stale:
        return 0
    with open_store(settings) as saver:
        if saver is not None:
            for row in stale:
                saver.delete_thread(row.thread_id)
    session.exec(delete(Conversation).where(col(Conversation.id).in_([row.id for row in stale])))
    audit.record(
        session,
        actor,
        "assistant.purge",
        record_type="conversation",
        details={"deleted": len(stale), "retention_days": settings.assistant_retention_days},
    )
    return len(stale)


def purge_expired(engine: Engine, settings: Settings) -> int:
    """The daily retention job: its own transaction, a system actor; never raises."""
    actor = audit.Actor(kind=ActorKind.system, name="rétention des conversations")
    try:
        with Session(engine) as session:
            deleted = purge_stale(session, settings, actor)
            # Token counts (no patient data) only matter for the rolling daily budget.
            session.exec(
                delete(AssistantUsage).where(
                    col(AssistantUsage.occurred_at) < utcnow() - USAGE_KEPT
                )
            )
            session.commit()
    except Exception as exc:  # retried tomorrow; the failure is logged without content
        log.warning("conversation purge failed: %s", type(exc).__name__)
        return 0
    if deleted:
        log.info("%d expired assistant conversations deleted", deleted)
    return deleted

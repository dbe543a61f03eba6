"""Secretary conversations with the assistant: who owns which thread, titles and recency.
The messages themselves live in the agent's checkpointer."""

import uuid
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from app.services.core import audit
from app.services.core.errors import NotFound, TooManyAttempts
from models.audit import AuditEvent
from models.conversations import Conversation
from models.types import utcnow
from models.users import User

TITLE_CHARS = 80
DEFAULT_TITLE = "Nouvelle conversation"


def start(session: Session, actor: audit.Actor, user: User) -> Conversation:
    """A new, empty conversation for this user."""
    conversation = Conversation(thread_id=uuid.uuid4().hex, user_id=user.id or 0)
    session.add(conversation)
    session.flush()
    audit.record(
        session,
        actor,
        "assistant.conversation_start",
        record_type="conversation",
        record_id=conversation.id,
    )
    return conversation


def recent(session: Session, user: User, limit: int = 30) -> list[Conversation]:
    """The user's conversations, the most recently used first."""
    query = (
        select(Conversation)
        .where(Conversation.user_id == user.id)
        .order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))


def owned(session: Session, user: User, conversation_id: int) -> Conversation:
    """The conversation if it belongs to this user (others' threads are invisible)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user.id:
        raise NotFound("Conversation introuvable.", "Conversation not found.")
    return conversation


def touch(
    session: Session, conversation: Conversation, *, first_message: str | None, model: str
) -> None:
    """Record use: the model that answered, and a title from the first message."""
    if first_message and conversation.title == DEFAULT_TITLE:
        words = " ".join(first_message.split())
        conversation.title = words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1] + "…"
    conversation.model = model[:128]
    conversation.updated_at = utcnow()
    session.add(conversation)


def check_rate(
    session: Session, user: User, *, per_minute: int, per_day: int, now: datetime | None = None
) -> None:
    """Per-user limits on the messages sent to the assistant (read from the audit trail, so
    they hold across workers): a runaway script or a shared account cannot monopolise the
    model. Raises ``TooManyAttempts`` (429)."""
    moment = now or utcnow()
    minute_ago = moment - timedelta(minutes=1)
    query = select(
        func.count().filter(col(AuditEvent.occurred_at) >= minute_ago), func.count()
    ).where(
        AuditEvent.action == "assistant.message",
        AuditEvent.actor_name == user.username,
        col(AuditEvent.occurred_at) >= moment - timedelta(days=1),
    )
    last_minute, last_day = session.exec(query).one()
    if last_minute >= per_minute:
        raise TooManyAttempts(
            "Trop de messages envoyés à l'assistant : attendez une minute.",
            "Too many messages sent to the assistant: wait a minute.",
        )
    if last_day >= per_day:
        raise TooManyAttempts(
            "Limite quotidienne de messages à l'assistant atteinte ; elle se libère demain.",
            "Daily limit of messages to the assistant reached; it frees up tomorrow.",
        )

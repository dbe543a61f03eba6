"""The per-user token budget of the assistant: what each turn consumed is stored, and a user
whose turns used up ``assistant_tokens_per_day`` over the last 24 hours (a rolling window)
cannot start a new message until older turns leave the window."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, func, select

from app.services.core.errors import TooManyAttempts
from models.assistant_usage import AssistantUsage
from models.types import utcnow
from models.users import User

WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class Budget:
    """A user's token budget right now."""

    limit: int
    used: int
    frees_at: datetime | None  # when enough old turns leave the window (None: not spent)

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def as_dict(self) -> dict[str, object]:
        return {
            "tokens_per_day": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "frees_at": self.frees_at.isoformat() if self.frees_at else None,
        }


def record(
    session: Session,
    user: User,
    *,
    input_tokens: int,
    output_tokens: int,
    model_calls: int,
    estimated: bool,
    model: str,
    now: datetime | None = None,
) -> AssistantUsage | None:
    """Store what one turn consumed (nothing when it made no model call)."""
    if model_calls == 0 and input_tokens + output_tokens == 0:
        return None
    row = AssistantUsage(
        user_id=user.id or 0,
        occurred_at=now or utcnow(),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model_calls=model_calls,
        estimated=estimated,
        model=model[:128],
    )
    session.add(row)
    return row


def used(session: Session, user: User, *, now: datetime | None = None) -> int:
    """Tokens the user's turns consumed over the last 24 hours."""
    since = (now or utcnow()) - WINDOW
    query = select(
        func.coalesce(func.sum(AssistantUsage.input_tokens + AssistantUsage.output_tokens), 0)
    ).where(AssistantUsage.user_id == user.id, col(AssistantUsage.occurred_at) > since)
    return int(session.exec(query).one())


def budget(session: Session, user: User, *, per_day: int, now: datetime | None = None) -> Budget:
    """The user's budget; when it is spent, also the moment it frees up again."""
    moment = now or utcnow()
    total = used(session, user, now=moment)
    if total < per_day:
        return Budget(per_day, total, None)
    rows = session.exec(
        select(
            AssistantUsage.occurred_at, AssistantUsage.input_tokens + AssistantUsage.output_tokens
        )
        .where(AssistantUsage.user_id == user.id, col(AssistantUsage.occurred_at) > moment - WINDOW)
        .order_by(col(AssistantUsage.occurred_at))
    ).all()
    left = total
    frees_at = None
    for occurred_at, tokens in rows:  # the oldest turns leave the window first
        left -= tokens
        if left < per_day:
            frees_at = occurred_at + WINDOW
            break
    return Budget(per_day, total, frees_at)


def check(
    session: Session,
    user: User,
    *,
    per_day: int,
    tz: ZoneInfo | None = None,
    now: datetime | None = None,
) -> Budget:
    """Raise ``TooManyAttempts`` (429) when the user's daily token budget is spent (a turn
    already begun always finishes: the budget may be overshot by one turn)."""
    moment = now or utcnow()
    current = budget(session, user, per_day=per_day, now=moment)
    if not current.spent:
        return current
    when_fr = when_en = ""
    if current.frees_at is not None and tz is not None:
        local = current.frees_at.astimezone(tz)
        tomorrow = local.date() > moment.astimezone(tz).date()
        when_fr = f" Il se libère {'demain ' if tomorrow else ''}vers {local:%H:%M}."
        when_en = f" It frees up {'tomorrow ' if tomorrow else ''}around {local:%H:%M}."
    raise TooManyAttempts(
        "Budget quotidien de l'assistant épuisé pour votre compte "
        f"({per_day} jetons sur 24 heures glissantes) ; votre message est conservé.{when_fr}",
        "The assistant's daily budget for your account is spent "
        f"({per_day} tokens over a rolling 24 hours); your message is kept.{when_en}",
    )

"""The audit trail: one append-only event per read or write of patient data."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from models.audit import ActorKind, AuditEvent
from models.types import utcnow


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where."""

    kind: ActorKind
    id: str | None = None
    name: str = ""
    address: str | None = None

    @classmethod
    def system(cls, name: str = "accueil") -> "Actor":
        return cls(kind=ActorKind.system, name=name)


def _columns(
    actor: Actor,
    action: str,
    record_type: str | None,
    record_id: int | str | None,
    patient_id: int | None,
    outcome: str,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "action": action,
        "record_type": record_type,
        "record_id": None if record_id is None else str(record_id),
        "patient_id": patient_id,
        "client_address": actor.address,
        "outcome": outcome,
        "details": details or {},
    }


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    record_type: str | None = None,
    record_id: int | str | None = None,
    patient_id: int | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event; it is committed with the caller's transaction."""
    event = AuditEvent(
        **_columns(actor, action, record_type, record_id, patient_id, outcome, details)
    )
    session.add(event)  # written with the caller's next flush or commit: no early write lock
    return event


_INSERT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]  # SQLModel's table


def record_now(
    session: Session,
    actor: Actor,
    action: str,
    *,
    record_type: str | None = None,
    record_id: int | str | None = None,
    patient_id: int | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    """``record``, written at once by one INSERT without an ORM object, for a hot path that
    writes right before its commit anyway (an autosave): the same event, committed or
    rolled back with the caller's transaction."""
    columns = _columns(actor, action, record_type, record_id, patient_id, outcome, details)
    session.connection().execute(_INSERT, {**columns, "occurred_at": utcnow()})


@dataclass(frozen=True)
class AuditFilter:
    """What the admin audit page filters on."""

    actor: str | None = None
    action: str | None = None
    patient_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(
    session: Session, filters: AuditFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[AuditEvent], int]:
    """Events newest first, with the total count matching the filters."""
    query = select(AuditEvent)
    if filters.actor:
        query = query.where(col(AuditEvent.actor_name).contains(filters.actor, autoescape=True))
    if filters.action:
        query = query.where(col(AuditEvent.action).startswith(filters.action, autoescape=True))
    if filters.patient_id is not None:
        query = query.where(AuditEvent.patient_id == filters.patient_id)
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def count_recent(
    session: Session,
    action: str,
    since: datetime,
    *,
    actor_name: str | None = None,
    address: str | None = None,
) -> int:
    """How many events of one action since a time, for one actor name or address."""
    query = (
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.occurred_at >= since)
    )
    if actor_name is not None:
        query = query.where(AuditEvent.actor_name == actor_name)
    if address is not None:
        query = query.where(AuditEvent.client_address == address)
    return session.exec(query).one()

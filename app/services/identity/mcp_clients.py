"""MCP clients: bearer tokens created by an admin, stored hashed, checked on every HTTP call,
each scoped to some areas (MCP servers) and to read-only or read-write tools."""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from models.mcp_clients import MCP_AREAS, McpClient
from models.types import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "acc_"  # noqa: S105 - a prefix, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_areas(areas: Iterable[str] | None) -> list[str]:
    """The chosen areas in the served order; every area when none was given at all."""
    if areas is None:
        return list(MCP_AREAS)
    chosen = {area.strip() for area in areas}
    unknown = sorted(chosen - set(MCP_AREAS))
    if unknown:
        listed = ", ".join(unknown)
        raise InvalidInput(f"Domaine MCP inconnu : {listed}.", f"Unknown MCP area: {listed}.")
    if not chosen:
        raise InvalidInput(
            "Choisissez au moins un domaine pour ce client MCP.",
            "Choose at least one area for this MCP client.",
        )
    return [area for area in MCP_AREAS if area in chosen]


def create_client(
    session: Session,
    actor: audit.Actor,
    name: str,
    *,
    areas: Iterable[str] | None = None,
    can_write: bool = True,
    created_by_id: int | None = None,
) -> tuple[McpClient, str]:
    """Create a client (every area and write access unless told otherwise); the returned
    token is shown once and never stored in clear."""
    chosen = valid_areas(areas)
    name = " ".join(name.split())
    if not name or len(name) > 64:
        raise InvalidInput("Nom de client invalide (1 à 64 caractères).", "Invalid client name.")
    if session.exec(select(McpClient).where(McpClient.name == name)).first():
        raise Conflict(f"Le client « {name} » existe déjà.", f"Client '{name}' already exists.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = McpClient(
        name=name,
        token_hash=hash_token(token),
        created_by_id=created_by_id,
        areas=chosen,
        can_write=can_write,
    )
    session.add(client)
    session.flush()
    audit.record(
        session,
        actor,
        "mcp_client.create",
        record_type="mcp_client",
        record_id=client.id,
        details={"areas": chosen, "can_write": can_write},
    )
    return client, token


def update_client_scope(
    session: Session,
    actor: audit.Actor,
    client_id: int,
    *,
    areas: Iterable[str] | None,
    can_write: bool,
) -> McpClient:
    """Change the areas and access of a client; nothing changes when the input is invalid.
    Callers clear the HTTP layer's verified-token cache once this is committed."""
    chosen = valid_areas(areas)
    client = session.get(McpClient, client_id)
    if client is None:
        raise NotFound("Client MCP introuvable.", "MCP client not found.")
    before = {"areas": list(client.areas), "can_write": client.can_write}
    after = {"areas": chosen, "can_write": can_write}
    if before != after:
        client.areas = chosen
        client.can_write = can_write
        session.add(client)
        audit.record(
            session,
            actor,
            "mcp.client_updated",
            record_type="mcp_client",
            record_id=client.id,
            details={"before": before, "after": after},
        )
    return client


def revoke_client(session: Session, actor: audit.Actor, client_id: int) -> McpClient:
    """Revoke a client's token. Callers clear the HTTP layer's verified-token cache once this is
    committed; other processes notice within ``mcp_servers.runtime.VERIFIED_FOR`` seconds."""
    client = session.get(McpClient, client_id)
    if client is None:
        raise NotFound("Client MCP introuvable.", "MCP client not found.")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        session.add(client)
        audit.record(
            session, actor, "mcp_client.revoke", record_type="mcp_client", record_id=client.id
        )
    return client


def list_clients(session: Session) -> list[McpClient]:
    return list(session.exec(select(McpClient).order_by(col(McpClient.name))).all())


def authenticate_token(session: Session, token: str) -> McpClient | None:
    """The active client holding this token, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    client = session.exec(
        select(McpClient).where(McpClient.token_hash == hash_token(token))
    ).first()
    if client is None or client.revoked_at is not None:
        return None
    now = utcnow()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        client.last_used_at = now  # written at most once a minute, not on every call
        session.add(client)
    return client

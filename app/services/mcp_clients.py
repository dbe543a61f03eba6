"""MCP clients: bearer tokens created by an admin, stored hashed, checked on every HTTP call."""

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, col, select

from app.services import audit
from app.services.errors import Conflict, InvalidInput, NotFound
from models.mcp_clients import McpClient
from models.types import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "acc_"  # noqa: S105 - a prefix, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_client(
    session: Session, actor: audit.Actor, name: str, *, created_by_id: int | None = None
) -> tuple[McpClient, str]:
    """Create a client; the returned token is shown once and never stored in clear."""
    name = " ".join(name.split())
    if not name or len(name) > 64:
        raise InvalidInput("Nom de client invalide (1 à 64 caractères).", "Invalid client name.")
    if session.exec(select(McpClient).where(McpClient.name == name)).first():
        raise Conflict(f"Le client « {name} » existe déjà.", f"Client '{name}' already exists.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = McpClient(name=name, token_hash=hash_token(token), created_by_id=created_by_id)
    session.add(client)
    session.flush()
    audit.record(session, actor, "mcp_client.create", record_type="mcp_client", record_id=client.id)
    return client, token


def revoke_client(session: Session, actor: audit.Actor, client_id: int) -> McpClient:
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

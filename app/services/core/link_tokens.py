"""Signed patient-link tokens that the server can derive again (``<id>.<hmac>``), stored only
as a SHA-256 hash: the database alone never yields a usable link."""

import base64
import hashlib
import hmac
import secrets

MAX_TOKEN_LENGTH = 64
MAX_ROW_ID = 2**31 - 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bytes(text: str) -> bytes:
    """Text as bytes for a constant-time comparison (which refuses non-ASCII ``str``)."""
    return text.encode("utf-8", "surrogatepass")


def new_nonce() -> str:
    """A random value kept with the row, so a re-created row never gets an old token."""
    return secrets.token_urlsafe(16)


def make_token(secret: str, purpose: str, row_id: int, nonce: str) -> str:
    """The link token of one row for one purpose (e.g. ``appointment``, ``waiting-offer``)."""
    digest = hmac.new(secret.encode(), f"{purpose}:{row_id}:{nonce}".encode(), hashlib.sha256)
    return f"{row_id}.{_b64(digest.digest()[:18])}"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def row_id(token: str) -> int | None:
    """The row a well-formed token names (not yet checked), or ``None``."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    head, dot, signature = token.partition(".")
    if not dot or not signature or not (head.isascii() and head.isdigit()) or len(head) > 10:
        return None
    value = int(head)
    return value if 0 < value <= MAX_ROW_ID else None


def matches(secret: str, purpose: str, token: str, row: int, nonce: str, stored: str) -> bool:
    """Whether ``token`` is this row's token and its stored hash (constant-time)."""
    expected = make_token(secret, purpose, row, nonce)
    return hmac.compare_digest(_bytes(expected), _bytes(token)) and hmac.compare_digest(
        hash_token(token), stored
    )


def link_csrf(secret: str, purpose: str, token_hash: str) -> str:
    """A per-link value the link's forms must send back (no session is needed)."""
    message = f"{purpose}-csrf:{token_hash}".encode()
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest()[:18])


def csrf_ok(secret: str, purpose: str, token_hash: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(
        _bytes(link_csrf(secret, purpose, token_hash)), _bytes(sent or "")
    )

"""One-time codes that prove the patient reads the email (or phone) they typed.

Six digits, stored as an HMAC bound to the hold; a few tries, then the hold is released."""

import hashlib
import hmac
import secrets

DIGITS = 6
MAX_ATTEMPTS = 5


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def code_hash(secret: str, hold_id: int, code: str) -> str:
    message = f"booking-code:{hold_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def matches(secret: str, hold_id: int, code: str, stored: str | None) -> bool:
    """Constant-time comparison of a typed code with the stored hash."""
    typed = "".join(ch for ch in code if ch.isdigit())[:DIGITS]
    expected = code_hash(secret, hold_id, typed if len(typed) == DIGITS else "x")
    return stored is not None and hmac.compare_digest(expected, stored)


def contact_key(secret: str, value: str) -> str:
    """A stable key for one email address or phone number (rate limits per contact), so the
    audit log never holds the contact in clear."""
    key = f"booking-contact:{value.strip().casefold()}".encode()
    return hmac.new(secret.encode(), key, hashlib.sha256).hexdigest()

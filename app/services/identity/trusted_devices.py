"""Trusted-device cookies: the browsers where an account has logged in before.

OWASP's "device cookie" defence against lockouts: after a successful login the browser gets a
signed cookie naming a random device id and the accounts that logged in on it. Its later
attempts for those accounts are judged on their own failures only (see ``login_throttle``),
so a stranger's guesses cannot lock a staff member out of their usual browser. A reception
computer shared by several people keeps one cookie listing each of them. The cookie proves
nothing by itself: the password is still required.
"""

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "accueil_device"
_SALT = "accueil-trusted-device"
MAX_ACCOUNTS = 20  # a shared reception computer: the most recent accounts are kept


@dataclass(frozen=True)
class TrustedDevice:
    """One browser: its random id and the accounts (user ids) that logged in on it."""

    device_id: str
    user_ids: tuple[int, ...]

    def id_for(self, user_id: int | None) -> str | None:
        """The device id if this browser is trusted for that account, else None."""
        return self.device_id if user_id is not None and user_id in self.user_ids else None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def read(secret: str, value: str | None, max_age_seconds: int) -> TrustedDevice | None:
    """The device a cookie names, or None if it is missing, forged, malformed or too old."""
    if not value:
        return None
    try:
        data = _serializer(secret).loads(value, max_age=max_age_seconds)
    except BadSignature:  # also covers an expired signature
        return None
    if not isinstance(data, dict):
        return None
    device_id, user_ids = data.get("d"), data.get("u")
    if not isinstance(device_id, str) or not isinstance(user_ids, list):
        return None
    if not all(isinstance(uid, int) for uid in user_ids):
        return None
    return TrustedDevice(device_id=device_id, user_ids=tuple(user_ids))


def issue(secret: str, previous: TrustedDevice | None, user_id: int) -> str:
    """A fresh cookie value adding ``user_id`` to the browser's accounts (same device id)."""
    device_id = previous.device_id if previous else secrets.token_urlsafe(16)
    others = [uid for uid in (previous.user_ids if previous else ()) if uid != user_id]
    user_ids = [user_id, *others][:MAX_ACCOUNTS]
    return _serializer(secret).dumps({"d": device_id, "u": user_ids})

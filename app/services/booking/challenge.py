"""A cheap proof-of-work asked of the browser when the booking page is under load.

No third party and nothing leaves the box: the server signs a challenge (a random nonce, the
time and a difficulty), the page's own script (``booking-pow.js``) finds a counter such that
SHA-256(challenge ":" counter) starts with ``bits`` zero bits, and the server checks it with
one hash. A solution is accepted once, within a few minutes of the challenge. A person's
browser spends a fraction of a second; a script asking for thousands of holds spends that
much per hold."""

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

LIFETIME_SECONDS = 300
MAX_BITS = 24


@dataclass(frozen=True)
class Challenge:
    text: str
    bits: int


def _sign(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), f"booking-pow:{body}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def issue(secret: str, bits: int, now: float | None = None) -> Challenge:
    """A signed challenge: ``nonce.time.bits.signature``."""
    bits = max(1, min(bits, MAX_BITS))
    body = f"{secrets.token_hex(12)}.{int(now if now is not None else time.time())}.{bits}"
    return Challenge(f"{body}.{_sign(secret, body)}", bits)


def leading_zero_bits(digest: bytes) -> int:
    count = 0
    for byte in digest:
        if byte == 0:
            count += 8
            continue
        count += 8 - byte.bit_length()
        break
    return count


def solve(text: str, bits: int) -> int:
    """The first counter that solves a challenge (used by tests and the benchmark client)."""
    counter = 0
    while leading_zero_bits(hashlib.sha256(f"{text}:{counter}".encode()).digest()) < bits:
        counter += 1
    return counter


class _Spent:
    """Solutions already used, forgotten once their challenge has expired."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, nonce: str, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + LIFETIME_SECONDS
            return True


_spent = _Spent()


def verify(secret: str, text: str, counter: str, min_bits: int, now: float | None = None) -> bool:
    """Whether ``counter`` solves a challenge this server issued, recently, at the difficulty
    asked at least, for the first time."""
    moment = now if now is not None else time.time()
    parts = text.split(".")
    if len(parts) != 4 or not counter.isdigit() or len(counter) > 12:
        return False
    nonce, issued, bits_text, signature = parts
    body = f"{nonce}.{issued}.{bits_text}"
    if not hmac.compare_digest(_sign(secret, body), signature):
        return False
    if not issued.isdigit() or not bits_text.isdigit():
        return False
    if int(bits_text) < min_bits or not 0 <= moment - int(issued) <= LIFETIME_SECONDS:
        return False
    digest = hashlib.sha256(f"{text}:{counter}".encode()).digest()
    if leading_zero_bits(digest) < int(bits_text):
        return False
    return _spent.first_use(nonce, moment)

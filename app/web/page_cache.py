"""Pages rendered once and served to many visitors: a rush on a public page loads the same few
pages, so they are kept rendered (in a ``SlotCache``: fresh for a few seconds, dropped at once
by a change made in this process) and each answer only swaps the visitor's own CSRF token in.

A value due for a refresh is served while a worker thread computes the next one; a missing
one is computed in a worker thread and waited for. The event loop itself never reads the
database nor waits on another request's computation.
"""

import asyncio
import logging
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.requests import Request

from app.services.booking.public_slots import SlotCache
from app.web.deps import csrf_token

log = logging.getLogger(__name__)
V = TypeVar("V")
# Stands for the visitor's CSRF token in a cached page; replaced at each answer.
CSRF_MARK = f"csrf-mark-{secrets.token_hex(16)}"
_REFRESHING: set[asyncio.Task[object]] = set()


@dataclass(frozen=True)
class CachedPage:
    """A rendered page, its CSRF token left as ``CSRF_MARK``."""

    status: int
    body: bytes
    has_csrf: bool


def freeze(response: Response) -> CachedPage:
    """The page as cached: rendered with ``CSRF_MARK`` in place of the visitor's token."""
    body = bytes(response.body)
    return CachedPage(response.status_code, body, CSRF_MARK.encode() in body)


def body_for(request: Request, page: CachedPage) -> bytes:
    """The cached page as this visitor gets it: with their own CSRF token."""
    if page.has_csrf and "session" in request.scope:
        return page.body.replace(CSRF_MARK.encode(), csrf_token(request).encode())
    return page.body


async def fresh(cache: SlotCache[V], key: Hashable, compute: Callable[[], V]) -> V:
    """The cached value for ``key``: served at once while fresh (a refresh due is started
    beside it), else computed in a worker thread."""
    value, refresh = cache.peek(key)
    if value is None:
        return await run_in_threadpool(cache.get, key, compute)
    if refresh:
        task: asyncio.Task[object] = asyncio.create_task(
            run_in_threadpool(cache.refresh, key, compute)
        )
        _REFRESHING.add(task)  # kept until done (the loop holds tasks weakly)
        task.add_done_callback(_refreshed)
    return value


def _refreshed(task: asyncio.Task[object]) -> None:
    _REFRESHING.discard(task)
    if not task.cancelled() and task.exception() is not None:  # the next view tries again
        log.warning("page refresh failed: %s", type(task.exception()).__name__)

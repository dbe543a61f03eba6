"""The scenario's clock for the scheduling services while a scenario runs.

The assistant's prompt reads ``Assistant.clock``, but the agenda tools ask the services for
"now" themselves (``datetime.now(UTC)``, ``date.today()``): no slot before the scenario's
time, no booking in its past, and scenarios that keep working after their date has passed.
Until the tools take a clock, the runner swaps the ``datetime`` and ``date`` names of these
modules for subclasses whose ``now``/``today`` answer the scenario's time.
"""

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, tzinfo
from typing import Any

# The modules whose notion of "now" the agenda tools depend on.
PATCHED = (
    "app.services.scheduling.slots",
    "app.services.scheduling.agenda",
    "app.services.scheduling.waiting_list",
)


def frozen_datetime(now: datetime) -> type[datetime]:
    """A ``datetime`` whose ``now()`` is ``now`` (other constructors return plain values)."""

    class PracticeDatetime(datetime):
        # These return plain datetimes, not instances of this subclass as typeshed's ``Self``
        # would have it.
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]  # see above
            return now.astimezone(tz) if tz else now.astimezone().replace(tzinfo=None)

        @classmethod
        def combine(cls, *args: Any, **kwargs: Any) -> datetime:  # type: ignore[override]  # idem
            return datetime.combine(*args, **kwargs)

    return PracticeDatetime


def frozen_date(today: date) -> type[date]:
    """A ``date`` whose ``today()`` is ``today``."""

    class PracticeDate(date):
        @classmethod
        def today(cls) -> date:  # type: ignore[override]  # a plain date, not Self (typeshed)
            return today

    return PracticeDate


@contextmanager
def practice_clock(now: datetime) -> Iterator[None]:
    """Inside the block, the scheduling services believe it is ``now``."""
    fake_datetime, fake_date = frozen_datetime(now), frozen_date(now.date())
    saved: list[tuple[Any, str, Any]] = []
    try:
        for name in PATCHED:
            module = importlib.import_module(name)
            for attribute, fake in (("datetime", fake_datetime), ("date", fake_date)):
                if getattr(module, attribute, None) in (datetime, date):
                    saved.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, fake)
        yield
    finally:
        for module, attribute, original in reversed(saved):
            setattr(module, attribute, original)

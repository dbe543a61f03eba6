"""Reading typed HTML form fields for the agenda and waiting-list pages, and choosing a patient."""

from collections.abc import Iterable
from contextlib import suppress
from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.datastructures import FormData

from app.services.core.audit import Actor
from app.services.core.errors import DomainError, NotFound
from app.services.patients import records as patient_service
from app.web.i18n import request_language, translate
from models.patients import Patient

MAX_FIELD = 200
MAX_ID = 2**31 - 1


def page_language(request: Request) -> str:
    return request_language(request, request.app.state.settings.default_language)


async def posted_form(request: Request) -> FormData:
    """The request's form, read on the event loop so that the route itself can be a plain
    function, run in a worker thread: its database work never blocks the loop."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


def values_of(form: FormData, names: Iterable[str]) -> dict[str, str]:
    """The named fields as stripped text (blank fields left out), each cut to a sane length."""
    values: dict[str, str] = {}
    for name in names:
        raw = form.get(name)
        if isinstance(raw, str) and raw.strip():
            values[name] = raw.strip()[:MAX_FIELD]
    return values


def local_iso(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as the practice's wall-clock time, ``YYYY-MM-DDTHH:MM`` (for links and forms)."""
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def parse_local(text: str, tz: ZoneInfo) -> datetime | None:
    """An ISO date-time; one without an offset is the practice's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


class FormCheck:
    """Turns form text into typed values, collecting ``{field, message}`` errors."""

    def __init__(self, language: str, values: dict[str, str]) -> None:
        self.language = language
        self.values = values
        self.errors: list[dict[str, str]] = []

    def fail(self, name: str, key: str, **params: Any) -> None:
        self.errors.append({"field": name, "message": translate(self.language, key, **params)})

    def domain_error(self, exc: DomainError) -> list[dict[str, str]]:
        return [{"field": "", "message": exc.message(self.language)}]

    def integer(
        self, name: str, *, required: bool = False, missing: str = "validation.missing"
    ) -> int | None:
        raw = self.values.get(name, "")
        if not raw:
            if required:
                self.fail(name, missing)
            return None
        try:
            number = int(raw)
        except ValueError:
            self.fail(name, "validation.int")
            return None
        if not 0 < number <= MAX_ID:
            self.fail(name, "validation.range")
            return None
        return number

    def day(self, name: str) -> date | None:
        raw = self.values.get(name, "")
        if not raw:
            self.fail(name, "validation.missing")
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.fail(name, "validation.date")
            return None

    def clock(self, name: str) -> time | None:
        raw = self.values.get(name, "")
        if not raw:
            self.fail(name, "validation.missing")
            return None
        try:
            return time.fromisoformat(raw)
        except ValueError:
            self.fail(name, "agenda.error.time")
            return None

    def choice(self, name: str, allowed: Iterable[str], default: str) -> str:
        options = list(allowed)
        raw = self.values.get(name, default)
        if raw not in options:
            self.fail(name, "validation.choice", choices=", ".join(options))
            return default
        return raw

    def local_start(self, tz: ZoneInfo) -> datetime | None:
        """A one-click ``start`` if sent (copied back into date and time), else date + time."""
        if "start" in self.values:
            moment = parse_local(self.values.pop("start"), tz)
            if moment is None:
                self.fail("date", "validation.datetime")
                return None
            self.values["date"], self.values["time"] = local_iso(moment, tz).split("T")
            return moment
        day, at = self.day("date"), self.clock("time")
        if day is None or at is None:
            return None
        return datetime.combine(day, at, tzinfo=tz)


def patient_choices(
    session: Session, actor: Actor, query: str, chosen_id: int | None
) -> list[Patient]:
    """Patients matching the search words, with the one already chosen kept first."""
    found = (
        patient_service.search_patients(session, actor, text=query, limit=20)
        if query.strip()
        else []
    )
    if chosen_id is not None and all(p.id != chosen_id for p in found):
        with suppress(NotFound):
            found.insert(0, patient_service.get_patient(session, actor, chosen_id))
    return found

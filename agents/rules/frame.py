"""The task the secretary is on: her messages since she asked it (her answers to our questions
are merged in), and the tool events since then. A new request starts a new task and carries the
patient and practitioner over ("mets-la sur liste d'attente")."""

from dataclasses import dataclass, field, replace
from datetime import datetime

from agents.rules.reading import Entry, ToolEvent
from agents.rules.understanding import PatientRef, Request, understand
from agents.rules.when import When, read

PATIENT_DETAILS = frozenset({"birth_date", "birth_year", "phone", "sex"})
DOCTOR_DETAILS = frozenset({"doctor", "specialty", "any_doctor"})


@dataclass
class Task:
    """One request and everything that followed it."""

    requests: list[Request] = field(default_factory=list)
    events: list[ToolEvent] = field(default_factory=list)
    carried: "Task | None" = None  # the task before (its patient and practitioner)
    last_open: bool = False  # our last answer waits for the secretary's choice
    answered: bool = False  # we gave an answer since the last message

    @property
    def intent(self) -> str | None:
        for request in self.requests:
            if request.intent:
                return request.intent
        return self.carried.intent if self.carried else None

    @property
    def latest(self) -> Request:
        return self.requests[-1]

    def last(self, attribute: str) -> object:
        """The latest value a message gave; who the patient is (birth date, phone) carries
        over from the task before when this one names nobody."""
        for request in reversed(self.requests):
            value = getattr(request, attribute)
            if value:
                return value
        named = any(r.patients for r in self.requests)
        if attribute in PATIENT_DETAILS and not named and self.carried is not None:
            return self.carried.last(attribute)
        doctor = any(r.doctor or r.specialty or r.any_doctor for r in self.requests)
        if attribute in DOCTOR_DETAILS and not doctor and self.carried is not None:
            return self.carried.last(attribute)
        return None

    def chain(self) -> list["Task"]:
        """This task and the ones before it, most recent first."""
        found: list[Task] = []
        task: Task | None = self
        while task is not None:
            found.append(task)
            task = task.carried
        return found

    @property
    def patients(self) -> list[PatientRef]:
        found = self.last("patients")
        if isinstance(found, list):
            return found
        return self.carried.patients if self.carried else []

    @property
    def text(self) -> str:
        return " ".join(r.text for r in self.requests)

    def done(self, name: str) -> list[ToolEvent]:
        return [e for e in self.events if e.name == name and e.done]

    def when(self, now: datetime) -> When:
        """The time words of the task, later messages refining earlier ones."""
        merged = When()
        for request in self.requests:
            merged = merge(merged, read(request.timeless, now))
        return merged


def merge(old: When, new: When) -> When:
    """``new`` overrides what it says; a time alone keeps the day already given."""
    result = old
    if new.first is not None and not (new.time_only and old.first is not None):
        result = replace(result, first=new.first, last=new.last, weekday=new.weekday)
    if new.part != "any":
        result = replace(result, part=new.part)
    for name in ("at", "near", "after", "before"):
        value = getattr(new, name)
        if value is not None:
            result = replace(result, **{name: value})
            if name == "at":
                result = replace(result, near=None, after=None, before=None)
    if new.same_time:
        result = replace(result, same_time=True)
    if new.earliest:
        result = replace(result, earliest=True)
    return result


def tasks(entries: list[Entry]) -> list[Task]:
    """The conversation cut into tasks."""
    found: list[Task] = []
    current: Task | None = None
    for entry in entries:
        if entry.kind == "user":
            request = understand(entry.text)
            follows = (
                current is not None
                and current.last_open
                and (request.intent is None or request.intent == current.intent)
            )
            if current is not None and follows:
                current.requests.append(request)
            else:  # a message without a verb of its own inherits the intent (``carried``)
                current = Task(requests=[request], carried=current)
                found.append(current)
            current.answered = False
        elif current is not None and entry.kind == "tool" and entry.event is not None:
            current.events.append(entry.event)
        elif current is not None and entry.kind == "answer":
            current.last_open, current.answered = entry.open, True
    return found

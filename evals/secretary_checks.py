"""The expectations of a scenario, checked: tool calls per turn, answers, final database state.
Each check returns failure reasons (empty: it holds)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.patients.records import fold
from app.services.scheduling.slots import NOON
from evals.secretary_names import patient_matches
from evals.secretary_practice import LIVE, References, Snapshot, UnknownReference, snapshot
from evals.secretary_scenarios import (
    AppointmentExpect,
    ExpectedCall,
    ExpectState,
    Keywords,
    PatientExpect,
    WaitingExpect,
)
from models.appointments import Appointment, WaitingListEntry, WaitingStatus
from models.patients import Patient, normalize_phone

FREE_TEXT = frozenset({"query", "reason", "message", "text"})  # matched by containment
OPEN_WAITING = (WaitingStatus.waiting, WaitingStatus.offered)


@dataclass
class CallRecord:
    """One tool call the assistant made, as it was executed."""

    name: str
    args: dict[str, Any]  # the executed arguments (the secretary's edit applied)
    proposed: dict[str, Any] | None = None  # the model's own arguments, when edited
    decision: str = ""  # approve | edit | reject, for the calls that waited for one
    status: str = ""  # success | error | rejected | not run
    result: str = ""

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        outcome = f" [{self.decision or self.status}]" if self.decision or self.status else ""
        return f"{self.name}({args}){outcome}"


def _moment(value: Any, tz: ZoneInfo) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and ("T" in value or " " in value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _day(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def value_matches(key: str, expected: Any, actual: Any, tz: ZoneInfo) -> bool:
    """Tolerant equality: instants for times (with or without offset), days for dates,
    numbers whatever their type, strings without case or accents (containment for text)."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, int | float):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    expected_moment = _moment(expected, tz)
    if expected_moment is not None:
        return _moment(actual, tz) == expected_moment
    if isinstance(expected, date) or (isinstance(expected, str) and _day(expected)):
        return _day(actual) == _day(expected)
    if isinstance(expected, str):
        if not isinstance(actual, str | int):
            return False
        wanted, got = fold(expected), fold(str(actual))
        return wanted in got if key in FREE_TEXT else wanted == got
    return expected == actual


def call_matches(expected: dict[str, Any], name: str, call: CallRecord, tz: ZoneInfo) -> bool:
    return call.name == name and all(
        key in call.args and value_matches(key, value, call.args[key], tz)
        if value is not None
        else call.args.get(key) is None
        for key, value in expected.items()
    )


def check_calls(
    turn: int, expected: list[ExpectedCall], calls: list[CallRecord], refs: References
) -> list[str]:
    """The expected calls appear in this order (other read calls may come between); every
    write call the assistant proposed was expected."""
    if not expected:
        return [f"turn {turn}: expected no tool call, got {_listed(calls)}"] if calls else []
    failures: list[str] = []
    position, matched = 0, set()
    for item in expected:
        try:
            args = dict(refs.resolve(k, v) for k, v in item.args.items())
        except UnknownReference as exc:
            failures.append(f"turn {turn}: expected {item.name}: {exc}")
            continue
        found = next(
            (
                i
                for i in range(position, len(calls))
                if call_matches(args, item.name, calls[i], refs.tz)
            ),
            None,
        )
        if found is None:
            wanted = ", ".join(f"{k}={v!r}" for k, v in args.items())
            failures.append(
                f"turn {turn}: expected call {item.name}({wanted}) not made in order; "
                f"calls: {_listed(calls)}"
            )
            continue
        matched.add(found)
        position = found + 1
    # A call that stopped for a decision is a write: the agent's policy gates every tool
    # that its MCP annotations do not declare read-only.
    extra = [c for i, c in enumerate(calls) if i not in matched and c.decision]
    if extra and not failures:
        failures.append(f"turn {turn}: unexpected write call(s): {_listed(extra)}")
    return failures


def _listed(calls: list[CallRecord]) -> str:
    return "; ".join(c.describe() for c in calls) or "none"


def check_reply(where: str, keywords: Keywords, text: str) -> list[str]:
    """Every keyword (or one of each list of alternatives) appears in the answer."""
    folded = fold(text)
    missing = [
        " | ".join(k) if isinstance(k, list) else k
        for k in keywords
        if not any(fold(option) in folded for option in (k if isinstance(k, list) else [k]))
    ]
    if not missing:
        return []
    lacking = ", ".join(f"« {m} »" for m in missing)
    return [f"{where}: the answer lacks {lacking}: {text!r}"]


def _appointment_fits(spec: AppointmentExpect, a: Appointment, refs: References) -> bool:
    local = a.starts_at.astimezone(refs.tz)
    minutes = int((a.ends_at - a.starts_at).total_seconds() // 60)
    morning = local.time() < NOON
    return (
        (
            spec.practitioner is None
            or a.practitioner_id == refs.resolve("practitioner", spec.practitioner)[1]
        )
        and (spec.start is None or a.starts_at == spec.start)
        and (spec.date is None or local.date() == spec.date)
        and (spec.time is None or f"{local:%H:%M}" == spec.time)
        and (spec.part_of_day is None or morning == (spec.part_of_day == "morning"))
        and (spec.minutes is None or minutes == spec.minutes)
        and (spec.reason is None or fold(spec.reason) in fold(a.reason))
    )


def _live_appointments(session: Session, patient: str, refs: References) -> list[Appointment]:
    try:
        pid = refs.resolve("patient", patient)[1]
    except UnknownReference:
        return []
    query = select(Appointment).where(
        Appointment.patient_id == pid, col(Appointment.status).in_(LIVE)
    )
    return list(session.exec(query).all())


def _shown(spec: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.model_dump(exclude_none=True).items())


def _agenda(rows: list[Appointment], tz: ZoneInfo) -> str:
    return (
        "; ".join(
            f"{a.starts_at.astimezone(tz):%Y-%m-%d %H:%M} (praticien {a.practitioner_id})"
            for a in rows
        )
        or "none"
    )


def _waiting_fits(spec: WaitingExpect, w: WaitingListEntry, refs: References) -> bool:
    return (
        (
            spec.practitioner is None
            or w.practitioner_id == refs.resolve("practitioner", spec.practitioner)[1]
        )
        and (spec.date is None or w.earliest <= spec.date <= w.latest)
        and (spec.earliest is None or w.earliest == spec.earliest)
        and (spec.latest is None or w.latest == spec.latest)
        and (spec.part_of_day is None or str(w.part_of_day) == spec.part_of_day)
    )


def _patient_fits(spec: PatientExpect, p: Patient) -> bool:
    key = (p.birth_name, p.first_name, p.birth_date, p.used_name)
    ref = f"{spec.nom} {spec.prenom}" + (f" {spec.naissance.isoformat()}" if spec.naissance else "")
    phone = normalize_phone(spec.telephone) if spec.telephone else None
    return patient_matches(ref, key) and (phone is None or p.phone == phone)


def check_state(
    session: Session, expected: ExpectState, refs: References, before: Snapshot
) -> list[str]:
    """The database at the end of the scenario."""
    failures: list[str] = []
    for spec in expected.appointments:
        rows = _live_appointments(session, spec.patient, refs)
        if not any(_appointment_fits(spec, a, refs) for a in rows):
            agenda = _agenda(rows, refs.tz)
            failures.append(
                f"state: missing appointment ({_shown(spec)}); {spec.patient} has: {agenda}"
            )
    for spec in expected.absent:
        rows = [
            a
            for a in _live_appointments(session, spec.patient, refs)
            if _appointment_fits(spec, a, refs)
        ]
        if rows:
            failures.append(
                f"state: appointment should not exist ({_shown(spec)}): {_agenda(rows, refs.tz)}"
            )
    for waiting in expected.waiting_list:
        entries = _waiting(session, waiting.patient, refs)
        if not any(_waiting_fits(waiting, w, refs) for w in entries):
            shown = "; ".join(
                f"{w.earliest}..{w.latest} {w.part_of_day} (praticien {w.practitioner_id})"
                for w in entries
            )
            failures.append(
                f"state: missing waiting-list entry ({_shown(waiting)}); found: {shown or 'none'}"
            )
    people = session.exec(select(Patient)).all()
    for person in expected.patients:
        if not any(_patient_fits(person, p) for p in people):
            failures.append(f"state: missing patient ({_shown(person)})")
    for person in expected.absent_patients:
        if any(_patient_fits(person, p) for p in people):
            failures.append(f"state: patient should not exist ({_shown(person)})")
    if expected.unchanged:
        failures += _changes(before, snapshot(session))
    return failures


def _waiting(session: Session, patient: str, refs: References) -> list[WaitingListEntry]:
    try:
        pid = refs.resolve("patient", patient)[1]
    except UnknownReference:
        return []
    query = select(WaitingListEntry).where(
        WaitingListEntry.patient_id == pid, col(WaitingListEntry.status).in_(OPEN_WAITING)
    )
    return list(session.exec(query).all())


def _changes(before: Snapshot, after: Snapshot) -> list[str]:
    changed: list[tuple[str, Callable[[Snapshot], frozenset[Any]]]] = [
        ("appointments", lambda s: s.appointments),
        ("patients", lambda s: s.patients),
        ("waiting list", lambda s: s.waiting),
    ]
    return [
        f"state: the {what} changed ({len(pick(before))} before, {len(pick(after))} after)"
        for what, pick in changed
        if pick(before) != pick(after)
    ]

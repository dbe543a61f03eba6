"""The ``agenda`` MCP server: patients, practitioners, free slots, appointments, waiting list.

Times are the practice's local time (ISO 8601; without an offset they are read as local).
"""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field
from sqlmodel import Session

from app.services.core.audit import Actor
from app.services.core.calendar_names import WEEKDAYS_FR
from app.services.core.errors import InvalidInput
from app.services.flows import agenda_changes
from app.services.patients import records as patients
from app.services.scheduling import (
    agenda,
    slot_answers,
    slots,
    time_expressions,
    visit_type_names,
    waiting_list,
)
from mcp_servers.annotations import READ_ONLY, write
from mcp_servers.runtime import ToolRuntime, new_server, slim_tools
from models.appointments import AppointmentSource, PartOfDay
from models.patients import PatientCreate, Sex

INSTRUCTIONS = (
    "Agenda du cabinet. Les heures sont locales (fuseau du cabinet). Cherchez le patient et un "
    "créneau libre avant de réserver ; ne devinez jamais un identifiant."
)


class PatientOut(BaseModel):
    id: int
    name: str
    birth_date: date
    phone: str | None = None


class PractitionerOut(BaseModel):
    id: int
    name: str
    specialty: str
    minutes: int


class SlotOut(BaseModel):
    practitioner_id: int
    start: str
    label: str


class NoSlotOut(BaseModel):
    """An empty search: why, and the next free slot after the range."""

    reason: str
    message: str
    next_free: SlotOut | None = None


class AppointmentOut(BaseModel):
    id: int
    patient_id: int
    patient: str
    practitioner_id: int
    start: str
    end: str
    label: str
    status: str
    reason: str = ""
    note: str = ""


class WaitingOut(BaseModel):
    id: int
    patient_id: int
    earliest: date
    latest: date
    part_of_day: str


def _label(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{WEEKDAYS_FR[local.weekday()]} {local:%d/%m/%Y %H:%M}"


def _local_iso(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).isoformat(timespec="minutes")


def _as_local(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _when_windows(when: str, tz: ZoneInfo) -> tuple[tuple[datetime, datetime], ...]:
    """The secretary's words ("mardi matin") as UTC windows for a slot's start."""
    query = time_expressions.parse(when, datetime.now(UTC), tz)
    if query is None:
        raise InvalidInput(
            f"Je ne comprends pas « {when} » : dites par exemple « mardi matin » ou « le 23 ».",
            f"Cannot read '{when}' as a time: say for example 'mardi matin' or 'le 23'.",
        )
    return query.intervals[:62]


def _start_from(start: datetime | None, when: str | None, tz: ZoneInfo) -> datetime:
    """An explicit start, or the one instant the secretary's words name ("jeudi 14h30")."""
    if start is not None:
        return _as_local(start, tz)
    if when is None:
        raise InvalidInput("Donnez l'heure de début (start ou when).", "Give the start or when.")
    query = time_expressions.parse(when, datetime.now(UTC), tz)
    if query is None or query.instant is None:
        raise InvalidInput(
            f"« {when} » ne désigne pas un jour et une heure précis : "
            "dites par exemple « jeudi 18 à 14h30 ».",
            f"'{when}' is not one day and time: say for example 'jeudi 18 à 14h30'.",
        )
    return query.instant


def _slot_out(slot: slots.Slot, tz: ZoneInfo) -> SlotOut:
    return SlotOut(
        practitioner_id=slot.practitioner_id,
        start=_local_iso(slot.starts_at, tz),
        label=_label(slot.starts_at, tz),
    )


def _visit_code(session, visit_type: str | None) -> str | None:
    return (
        None if visit_type is None else visit_type_names.find_visit_type(session, visit_type).code
    )


def _appointment_out(view: agenda.AppointmentView, tz: ZoneInfo, note: str = "") -> AppointmentOut:
    a = view.appointment
    return AppointmentOut(
        id=a.id or 0,
        patient_id=a.patient_id,
        patient=view.patient.display_name,
        practitioner_id=a.practitioner_id,
        start=_local_iso(a.starts_at, tz),
        end=_local_iso(a.ends_at, tz),
        label=_label(a.starts_at, tz),
        status=str(a.status),
        reason=a.reason,
        note=note,
    )


def _offer_note(offer) -> str:
    return "Créneau libéré proposé à la liste d'attente." if offer is not None else ""


def create_agenda_server(runtime: ToolRuntime) -> FastMCP:
    """Build the agenda server over the given database and settings."""
    mcp = new_server("agenda", INSTRUCTIONS, runtime)
    tz = runtime.settings.tz

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def find_patients(
        query: Annotated[str, Field(max_length=100, description="Nom et/ou prénom")] = "",
        birth_date: date | None = None,
        phone: Annotated[str | None, Field(max_length=30)] = None,
        ctx: Context | None = None,
    ) -> list[PatientOut]:
        """Cherche des patients par nom, date de naissance ou téléphone (10 au plus)."""
        if not (query.strip() or birth_date or phone):
            raise InvalidInput("Donnez un nom, une date de naissance ou un téléphone.")

        def work(session, actor):
            found = patients.search_patients(
                session, actor, text=query, birth_date=birth_date, phone=phone, limit=10
            )
            return [
                PatientOut(
                    id=p.id or 0, name=p.display_name, birth_date=p.birth_date, phone=p.phone
                )
                for p in found
            ]

        return runtime.call(ctx, "find_patients", work)

    # Adds a record; with confirm_not_duplicate a repeat adds a second one.
    @mcp.tool(structured_output=False, annotations=write(destructive=False, idempotent=False))
    def register_patient(
        birth_name: Annotated[str, Field(max_length=100)],
        first_name: Annotated[str, Field(max_length=100)],
        birth_date: date,
        sex: Literal["F", "M", "X"],
        phone: Annotated[str | None, Field(max_length=30)] = None,
        email: Annotated[str | None, Field(max_length=254)] = None,
        used_name: Annotated[str | None, Field(max_length=100)] = None,
        confirm_not_duplicate: bool = False,
        ctx: Context | None = None,
    ) -> PatientOut:
        """Enregistre un nouveau patient (refuse un doublon probable sauf confirmation)."""

        def work(session, actor):
            data = PatientCreate(
                birth_name=birth_name,
                first_name=first_name,
                birth_date=birth_date,
                sex=Sex(sex),
                phone=phone,
                email=email,
                used_name=used_name,
            )
            p = patients.create_patient(
                session, actor, data, confirm_not_duplicate=confirm_not_duplicate
            )
            return PatientOut(
                id=p.id or 0, name=p.display_name, birth_date=p.birth_date, phone=p.phone
            )

        return runtime.call(ctx, "register_patient", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def list_practitioners(ctx: Context | None = None) -> list[PractitionerOut]:
        """Liste les praticiens du cabinet."""

        def work(session, actor):
            return [
                PractitionerOut(
                    id=p.id or 0,
                    name=p.display_name,
                    specialty=p.specialty,
                    minutes=p.default_duration_minutes,
                )
                for p in slots.active_practitioners(session)
            ]

        return runtime.call(ctx, "list_practitioners", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def find_slots(
        start_date: date | None = None,
        end_date: date | None = None,
        when: Annotated[str | None, Field(max_length=120)] = None,
        practitioner_id: int | None = None,
        part_of_day: Literal["any", "morning", "afternoon"] = "any",
        weekday: Annotated[int | None, Field(ge=0, le=6, description="0 = lundi")] = None,
        duration_minutes: Annotated[int | None, Field(ge=5, le=240)] = None,
        visit_type: Annotated[str | None, Field(max_length=128)] = None,
        limit: Annotated[int, Field(ge=1, le=20)] = 5,
        ctx: Context | None = None,
    ) -> list[SlotOut] | NoSlotOut:
        """Créneaux libres (dates incluses ou when), les plus proches d'abord ; sinon, pourquoi."""
        if when is not None:
            windows = _when_windows(when, tz)
        elif start_date is not None:
            last = end_date or start_date + timedelta(days=13)
            windows = (
                (
                    datetime.combine(start_date, datetime.min.time(), tzinfo=tz),
                    datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz),
                ),
            )
        else:
            raise InvalidInput("Donnez start_date ou when.", "Give start_date or when.")

        def work(session: Session, actor: Actor) -> list[SlotOut] | NoSlotOut:
            code = _visit_code(session, visit_type)
            found: list[slots.Slot] = []
            queries: list[slots.SlotQuery] = []
            for start, end in windows:
                query = slots.SlotQuery(
                    start=start,
                    end=end if when is None else end + slots.MAX_APPOINTMENT,
                    practitioner_id=practitioner_id,
                    duration_minutes=duration_minutes,
                    visit_type=code,
                    part_of_day=PartOfDay(part_of_day),
                    weekdays=frozenset({weekday}) if weekday is not None else None,
                    limit=limit - len(found),
                )
                queries.append(query)
                # `when` bounds a slot's start, not its end ("avant 10h": starts before 10:00).
                found += [s for s in slots.find_slots(session, tz, query) if s.starts_at < end]
                if len(found) >= limit:
                    break
            if found or not queries:
                return [_slot_out(s, tz) for s in found]
            answer = slot_answers.search_slots(session, tz, queries[-1])
            if answer.slots:  # only slots past a `when` bound: say it is fully booked then
                answer = slot_answers.SlotAnswer(
                    [], slot_answers.EmptyReason.fully_booked, answer.slots[0]
                )
            return NoSlotOut(
                reason=answer.reason.code if answer.reason is not None else "",
                message=answer.message(tz),
                next_free=_slot_out(answer.next_free, tz) if answer.next_free else None,
            )

        return runtime.call(ctx, "find_slots", work)

    # Adds an appointment in a free slot; a repeat finds the slot taken and changes nothing.
    @mcp.tool(structured_output=False, annotations=write(destructive=False, idempotent=True))
    def book_appointment(
        patient_id: int,
        practitioner_id: int,
        start: datetime | None = None,
        reason: Annotated[str, Field(max_length=200)] = "",
        duration_minutes: Annotated[int | None, Field(ge=5, le=240)] = None,
        when: Annotated[str | None, Field(max_length=120)] = None,
        visit_type: Annotated[str | None, Field(max_length=128)] = None,
        ctx: Context | None = None,
    ) -> AppointmentOut:
        """Réserve un créneau libre pour un patient."""
        starts_at = _start_from(start, when, tz)

        def work(session, actor):
            source = (
                AppointmentSource.assistant if actor.kind != "user" else AppointmentSource.secretary
            )
            a = agenda.book_appointment(
                session,
                actor,
                tz,
                patient_id=patient_id,
                practitioner_id=practitioner_id,
                starts_at=starts_at,
                duration_minutes=duration_minutes,
                visit_type=_visit_code(session, visit_type),
                reason=reason,
                source=source,
            )
            return _appointment_out(agenda.get_appointment(session, actor, a.id or 0), tz)

        return runtime.call(ctx, "book_appointment", work)

    # Gives up the booked time (offered to the waiting list); each move notifies the patient.
    @mcp.tool(structured_output=False, annotations=write(destructive=True, idempotent=False))
    def move_appointment(
        appointment_id: int,
        new_start: datetime | None = None,
        practitioner_id: int | None = None,
        when: Annotated[str | None, Field(max_length=120)] = None,
        ctx: Context | None = None,
    ) -> AppointmentOut:
        """Déplace un rendez-vous vers un créneau libre."""
        starts_at = _start_from(new_start, when, tz)

        def work(session, actor):
            a, offer = agenda_changes.move(
                session,
                actor,
                tz,
                appointment_id,
                starts_at=starts_at,
                practitioner_id=practitioner_id,
            )
            view = agenda.get_appointment(session, actor, a.id or 0)
            return _appointment_out(view, tz, _offer_note(offer))

        return runtime.call(ctx, "move_appointment", work)

    # Ends an appointment; a repeat is refused (already cancelled) and changes nothing.
    @mcp.tool(structured_output=False, annotations=write(destructive=True, idempotent=True))
    def cancel_appointment(
        appointment_id: int,
        reason: Annotated[str, Field(max_length=200)] = "",
        ctx: Context | None = None,
    ) -> AppointmentOut:
        """Annule un rendez-vous ; le créneau est proposé à la liste d'attente."""

        def work(session, actor):
            a, offer = agenda_changes.cancel(session, actor, tz, appointment_id, reason=reason)
            view = agenda.get_appointment(session, actor, a.id or 0)
            return _appointment_out(view, tz, _offer_note(offer))

        return runtime.call(ctx, "cancel_appointment", work)

    @mcp.tool(structured_output=False, annotations=READ_ONLY)
    def list_appointments(
        start_date: date,
        end_date: date | None = None,
        practitioner_id: int | None = None,
        patient_id: int | None = None,
        ctx: Context | None = None,
    ) -> list[AppointmentOut]:
        """Rendez-vous (non annulés) entre deux dates incluses."""
        last = end_date or start_date

        def work(session, actor):
            if (last - start_date).days > 62:
                raise InvalidInput("Deux mois au plus.")
            rows = agenda.list_appointments(
                session,
                actor,
                start=datetime.combine(start_date, datetime.min.time(), tzinfo=tz),
                end=datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz),
                practitioner_id=practitioner_id,
                patient_id=patient_id,
                limit=200,
            )
            return [_appointment_out(v, tz) for v in rows]

        return runtime.call(ctx, "list_appointments", work)

    # Adds an entry; a repeat adds another.
    @mcp.tool(structured_output=False, annotations=write(destructive=False, idempotent=False))
    def add_to_waiting_list(
        patient_id: int,
        earliest: date,
        latest: date,
        practitioner_id: int | None = None,
        part_of_day: Literal["any", "morning", "afternoon"] = "any",
        reason: Annotated[str, Field(max_length=200)] = "",
        ctx: Context | None = None,
    ) -> WaitingOut:
        """Inscrit un patient sur la liste d'attente pour une période."""

        def work(session, actor):
            e = waiting_list.add_to_waiting_list(
                session,
                actor,
                patient_id=patient_id,
                earliest=earliest,
                latest=latest,
                practitioner_id=practitioner_id,
                part_of_day=PartOfDay(part_of_day),
                reason=reason,
            )
            return WaitingOut(
                id=e.id or 0,
                patient_id=e.patient_id,
                earliest=e.earliest,
                latest=e.latest,
                part_of_day=str(e.part_of_day),
            )

        return runtime.call(ctx, "add_to_waiting_list", work)

    return slim_tools(mcp)

"""Staff pages of patient notifications: the outbox (filters, retry), a patient's consent per
channel, and for admins the settings (with a test message) and the no-show statistics."""

from enum import Enum
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.errors import DomainError, NotFound
from app.services.notifications import consent as notification_consent
from app.services.notifications import outbox as notification_outbox
from app.services.notifications import practice_settings
from app.services.patients import records as patient_service
from app.services.scheduling import no_show_stats
from app.web.deps import AdminUser, PatientStaffUser, SessionDep, SettingsDep, user_actor
from app.web.forms import FormCheck, PostedForm, page_language, values_of
from app.web.templating import render
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient
from models.users import User

outbox = APIRouter(prefix="/notifications", tags=["pages"])
patient_messages = APIRouter(prefix="/patients", tags=["pages"])
admin = APIRouter(prefix="/admin", tags=["admin"])
PAGE_SIZE = 50
SETTINGS_FIELDS = (
    "email_enabled",
    "sms_enabled",
    "reminder_hours",
    "window_start",
    "window_end",
    "cancel_cutoff_hours",
    "sender_name",
    "sender_email",
    "reply_to",
    "sms_sender",
)
SETTINGS_DONE = frozenset({"saved", "test"})


E = TypeVar("E", bound=Enum)


def _enum(value: str, kind: type[E]) -> E | None:
    return kind(value) if value in {item.value for item in kind} else None


@outbox.get("", response_class=HTMLResponse, summary="Outbox of patient messages")
def outbox_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
    channel: Annotated[str, Query(max_length=8)] = "",
    patient: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    filters = notification_outbox.OutboxFilter(
        status=_enum(status, MessageStatus),
        kind=_enum(kind, MessageKind),
        channel=_enum(channel, Channel),
        patient_id=patient,
    )
    rows, total = notification_outbox.list_messages(
        session,
        user_actor(request, user),
        filters,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    query = {
        "status": filters.status.value if filters.status else "",
        "kind": filters.kind.value if filters.kind else "",
        "channel": filters.channel.value if filters.channel else "",
        "patient": str(patient or ""),
    }
    return render(
        request,
        "outbox/index.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "has_next": page * PAGE_SIZE < total,
            "query": query,
            "next_query": urlencode({**query, "page": page + 1}),
            "previous_query": urlencode({**query, "page": page - 1}),
            "counts": notification_outbox.counts(session),
            "statuses": list(MessageStatus),
            "kinds": list(MessageKind),
            "channels": list(Channel),
            "done": done if done == "retried" else "",
        },
    )


@outbox.post("/{message_id}/retry", summary="Send a failed message again")
def retry(
    request: Request, user: PatientStaffUser, session: SessionDep, message_id: int
) -> Response:
    notification_outbox.retry(session, user_actor(request, user), message_id)
    return RedirectResponse("/notifications?done=retried", status_code=303)


# -- a patient's consent -----------------------------------------------------------------------


def _patient(request: Request, session: Session, user: User, patient_id: int) -> Patient:
    """The patient (an audited read), or not found."""
    if not 0 < patient_id <= 2**31 - 1:
        raise NotFound("Patient introuvable.", "Patient not found.")
    return patient_service.get_patient(session, user_actor(request, user), patient_id)


@patient_messages.get(
    "/{patient_id}/messages", response_class=HTMLResponse, summary="A patient's messages"
)
def patient_messages_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    patient_id: int,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    patient = _patient(request, session, user, patient_id)
    rows, _ = notification_outbox.list_messages(
        session,
        user_actor(request, user),
        notification_outbox.OutboxFilter(patient_id=patient_id),
        limit=20,
    )
    return render(
        request,
        "outbox/patient.html",
        {
            "patient": patient,
            "choices": notification_consent.choices(session, patient_id),
            "rows": rows,
            "done": done if done == "saved" else "",
        },
    )


@patient_messages.post("/{patient_id}/messages", summary="Record consent or opt-out")
def record_consent(
    request: Request, user: PatientStaffUser, session: SessionDep, patient_id: int, form: PostedForm
) -> Response:
    _patient(request, session, user, patient_id)
    values = values_of(form, ("channel", "choice"))
    channel = _enum(values.get("channel", ""), Channel)
    choice = values.get("choice", "")
    if channel is None or choice not in ("consent", "opt_out"):
        return RedirectResponse(f"/patients/{patient_id}/messages", status_code=303)
    notification_consent.record_choice(
        session,
        user_actor(request, user),
        patient_id,
        channel,
        opted_out=choice == "opt_out",
        user_id=user.id,
    )
    return RedirectResponse(f"/patients/{patient_id}/messages?done=saved", status_code=303)


# -- admin: settings and statistics --------------------------------------------------------------


def _settings_values(row) -> dict[str, str]:
    return {
        "email_enabled": "1" if row.email_enabled else "",
        "sms_enabled": "1" if row.sms_enabled else "",
        "reminder_hours": ", ".join(str(h) for h in row.reminder_hours),
        "window_start": row.window_start.strftime("%H:%M"),
        "window_end": row.window_end.strftime("%H:%M"),
        "cancel_cutoff_hours": str(row.cancel_cutoff_hours),
        "sender_name": row.sender_name,
        "sender_email": row.sender_email,
        "reply_to": row.reply_to,
        "sms_sender": row.sms_sender,
    }


def _settings_page(
    request: Request,
    session: Session,
    settings: Settings,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    done: str = "",
    test_id: int | None = None,
    status: int = 200,
) -> Response:
    test = session.get(OutboxMessage, test_id) if test_id is not None else None
    if test is not None and test.kind != MessageKind.test:
        test = None
    return render(
        request,
        "admin/notifications.html",
        {
            "values": values or _settings_values(practice_settings.current(session)),
            "errors": errors or [],
            "done": done if done in SETTINGS_DONE else "",
            "smtp_configured": bool(settings.smtp_host),
            "sms_configured": bool(settings.sms_gateway_url),
            "test": test,
        },
        status,
    )


@admin.get("/notifications", response_class=HTMLResponse, summary="Notification settings")
def settings_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    done: Annotated[str, Query(max_length=16)] = "",
    test: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return _settings_page(request, session, settings, user, done=done, test_id=test)


@admin.post("/notifications", summary="Save the notification settings")
def save_settings(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, SETTINGS_FIELDS))
    start, end = check.clock("window_start"), check.clock("window_end")
    cutoff = check.integer("cancel_cutoff_hours", required=True)
    hours: list[int] = []
    for part in check.values.get("reminder_hours", "").replace(";", ",").split(","):
        if part.strip():
            if not (part.strip().isascii() and part.strip().isdigit()) or len(part.strip()) > 4:
                check.fail("reminder_hours", "validation.int")
                break
            hours.append(int(part.strip()))
    if check.errors or start is None or end is None or cutoff is None:
        return _settings_page(
            request, session, settings, user, values=check.values, errors=check.errors, status=422
        )
    try:
        practice_settings.save(
            session,
            user_actor(request, user),
            practice_settings.SettingsInput(
                email_enabled=check.values.get("email_enabled") == "1",
                sms_enabled=check.values.get("sms_enabled") == "1",
                reminder_hours=hours,
                window_start=start,
                window_end=end,
                cancel_cutoff_hours=cutoff,
                sender_name=check.values.get("sender_name", ""),
                sender_email=check.values.get("sender_email", ""),
                reply_to=check.values.get("reply_to", ""),
                sms_sender=check.values.get("sms_sender", ""),
            ),
            user_id=user.id,
        )
    except DomainError as exc:
        return _settings_page(
            request,
            session,
            settings,
            user,
            values=check.values,
            errors=check.domain_error(exc),
            status=exc.status_code,
        )
    return RedirectResponse("/admin/notifications?done=saved", status_code=303)


@admin.post("/notifications/essai", summary="Send a test message to the admin")
def send_test(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, form: PostedForm
) -> Response:
    values = values_of(form, ("test_channel", "test_address"))
    channel = _enum(values.get("test_channel", "email"), Channel) or Channel.email
    try:
        message = notification_outbox.send_test(
            session,
            user_actor(request, user),
            channel,
            values.get("test_address", ""),
        )
    except DomainError as exc:
        errors = [{"field": "test_address", "message": exc.message(page_language(request))}]
        return _settings_page(
            request, session, settings, user, errors=errors, status=exc.status_code
        )
    return RedirectResponse(
        f"/admin/notifications?done=test&test={message.id}#test", status_code=303
    )


@admin.get("/rendez-vous-manques", response_class=HTMLResponse, summary="No-show rate by month")
def no_shows_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    months: Annotated[int, Query(ge=1, le=36)] = 12,
) -> Response:
    report = no_show_stats.report(session, settings.tz, months=months)
    return render(request, "admin/no_shows.html", {"report": report, "months": months})

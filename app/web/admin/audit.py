"""Administration pages: the audit log."""

from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.services.core.audit import AuditFilter, list_events
from app.web.deps import AdminUser, SessionDep, SettingsDep
from app.web.templating import render

router = APIRouter(prefix="/admin", tags=["admin"])
PAGE_SIZE = 50


def _is_id(text: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is true), short enough for a table id."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _day_start(value: str, settings_tz, plus_days: int = 0) -> datetime | None:
    try:
        day = date.fromisoformat(value) + timedelta(days=plus_days)
    except ValueError:
        return None
    return datetime.combine(day, time.min, tzinfo=settings_tz)


@router.get("/audit", response_class=HTMLResponse, summary="Audit log page")
def audit_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    actor: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    patient_id: Annotated[str, Query(max_length=12)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    filters = AuditFilter(
        actor=actor.strip() or None,
        action=action.strip() or None,
        patient_id=int(patient_id) if _is_id(patient_id.strip()) else None,
        since=_day_start(since, settings.tz) if since else None,
        until=_day_start(until, settings.tz, plus_days=1) if until else None,
    )
    events, total = list_events(session, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    query = {
        "actor": actor,
        "action": action,
        "patient_id": patient_id,
        "since": since,
        "until": until,
    }
    return render(
        request,
        "admin/audit.html",
        {
            "events": events,
            "total": total,
            "page": page,
            "query": query,
            "has_next": page * PAGE_SIZE < total,
        },
    )

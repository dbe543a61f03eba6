"""The staff home page: today's appointments."""

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import SessionDep, SettingsDep, StaffUser, user_actor
from app.services import audit
from app.services.agenda_view import appointments_of_day
from app.templating import render
from models.users import Role

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, summary="Home page")
def home(request: Request, user: StaffUser, session: SessionDep, settings: SettingsDep):
    today = datetime.now(settings.tz).date()
    rows = []
    if user.role in (Role.secretary, Role.physician):
        rows = appointments_of_day(
            session,
            today,
            settings.tz,
            practitioner_id=user.practitioner_id if user.role == Role.physician else None,
        )
        if rows:
            audit.record(
                session,
                user_actor(request, user),
                "agenda.read_day",
                record_type="appointment",
                details={
                    "day": today.isoformat(),
                    "appointment_ids": [r.appointment.id for r in rows],
                },
            )
    return render(request, "home.html", {"rows": rows, "today": today})

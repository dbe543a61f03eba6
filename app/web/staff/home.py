"""The staff home page: today's appointments."""

from datetime import datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.services.scheduling import agenda
from app.web.deps import SessionDep, SettingsDep, StaffUser, user_actor
from app.web.templating import render
from models.users import Role

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, summary="Home page")
def home(request: Request, user: StaffUser, session: SessionDep, settings: SettingsDep):
    today = datetime.now(settings.tz).date()
    rows = []
    if user.role in (Role.secretary, Role.physician):
        start = datetime.combine(today, time.min, tzinfo=settings.tz)
        rows = agenda.list_appointments(
            session,
            user_actor(request, user),
            start=start,
            end=datetime.combine(today + timedelta(days=1), time.min, tzinfo=settings.tz),
            practitioner_id=user.practitioner_id if user.role == Role.physician else None,
        )
    return render(request, "home.html", {"rows": rows, "today": today})

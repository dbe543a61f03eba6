"""Every router of the web app, by audience, in the order the app matches them.

Here rather than in ``app/web``: the routers live in ``app/web``'s audience folders and
import ``app/web``'s shared modules (dependencies, templating), so a list of them inside
``app/web`` itself would make the two packages import each other. Like ``app.main``, this
module is part of the composition root: nothing below ``app/`` imports it."""

from fastapi import APIRouter, FastAPI

from app.web import auth
from app.web.admin import audit as admin_audit
from app.web.admin import feedback as admin_feedback
from app.web.admin import jobs as admin_jobs
from app.web.admin import knowledge as admin_knowledge
from app.web.admin import mcp as admin_mcp
from app.web.admin import model_quality as admin_model_quality
from app.web.admin import online_booking as admin_online_booking
from app.web.admin import practice_settings as admin_practice_settings
from app.web.admin import practitioners as admin_practitioners
from app.web.admin import rgpd as admin_rgpd
from app.web.api import speech, system
from app.web.links import calendar_feed, online_booking, patient_form, self_service
from app.web.staff import (
    agenda,
    home,
    instruction_sheets,
    knowledge,
    letter_files,
    notifications,
    patients,
    physician,
    preconsultation,
    secretariat,
    waiting_list,
)

# Routes are matched first to last: a new router goes where its paths cannot shadow others.
# The patients' form comes first: its autosave is the busiest route, and FastAPI tries every
# route before the one that matches (about a millisecond of CPU per request when it came
# 24th of 31, measured by benchmarks/autosave.py). Nothing else lives under /p/. The public
# booking page comes next, for the same reason (about 190 µs per request when it came 32nd of
# 38, measured by benchmarks/booking_page.py); nothing else lives under /rendez-vous/.
ROUTERS: tuple[APIRouter, ...] = (
    patient_form.router,
    online_booking.router,
    system.router,
    auth.router,
    home.router,
    patients.api,
    patients.pages,
    admin_audit.router,
    admin_mcp.router,
    admin_rgpd.router,
    admin_knowledge.router,
    admin_jobs.router,
    admin_model_quality.router,
    admin_feedback.router,
    knowledge.router,
    agenda.router,
    waiting_list.router,
    calendar_feed.router,
    admin_practitioners.router,
    admin_practice_settings.closures,
    admin_practice_settings.visit_types,
    preconsultation.router,
    physician.router,
    letter_files.router,
    instruction_sheets.router,
    self_service.router,
    admin_online_booking.router,
    notifications.outbox,
    notifications.patient_messages,
    notifications.admin,
    secretariat.router,
    speech.router,
)


def include_routers(app: FastAPI) -> None:
    """Serve every router's routes from the app."""
    for router in ROUTERS:
        app.include_router(router)

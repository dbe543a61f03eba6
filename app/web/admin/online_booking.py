"""Online booking: the admin's rules page (``/admin/rendez-vous-en-ligne``), with the iframe
snippet for the practice's website, and the secretary's refusal of an online booking."""

from datetime import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.booking import rules as booking_rules
from app.services.core.errors import DomainError
from app.services.flows import online_booking as booking_flow
from app.web.deps import AdminUser, PatientStaffUser, SessionDep, SettingsDep, user_actor
from app.web.forms import PostedForm, page_language
from app.web.templating import render
from models.online_booking import OnlineBookingRules
from models.practice import Practitioner, VisitType

router = APIRouter(tags=["admin"])
DONE = frozenset({"saved"})
NUMBERS = ("min_notice_hours", "horizon_days", "max_future_bookings", "hold_minutes")


def _values(row: OnlineBookingRules) -> dict[str, object]:
    return {
        "enabled": row.enabled,
        "allow_new_patients": row.allow_new_patients,
        "min_notice_hours": str(row.min_notice_hours),
        "horizon_days": str(row.horizon_days),
        "max_future_bookings": str(row.max_future_bookings),
        "hold_minutes": str(row.hold_minutes),
        "visit_types": list(row.visit_types),
        "practitioner_ids": [str(p) for p in row.practitioner_ids],
        "phone_ranges": "\n".join(
            f"{r.weekday} {r.start:%H:%M}-{r.end:%H:%M}" for r in booking_rules.phone_ranges(row)
        ),
        "frame_ancestors": row.frame_ancestors,
    }


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    values: dict[str, object] | None = None,
    errors: list[dict[str, str]] | None = None,
    done: str = "",
    status: int = 200,
) -> Response:
    public = settings.public_url.rstrip("/")
    return render(
        request,
        "booking-admin.html",
        {
            "values": values or _values(booking_rules.current(session)),
            "errors": errors or [],
            "done": done if done in DONE else "",
            "practitioners": session.exec(
                select(Practitioner)
                .where(col(Practitioner.is_active).is_(True))
                .order_by(col(Practitioner.last_name))
            ).all(),
            "visit_types": session.exec(
                select(VisitType)
                .where(col(VisitType.is_active).is_(True))
                .order_by(col(VisitType.label))
            ).all(),
            "page_url": f"{public}/rendez-vous",
            "snippet": (
                f'<iframe src="{public}/rendez-vous?embed=1" title="Prendre rendez-vous" '
                'style="width:100%;min-height:640px;border:0" loading="lazy"></iframe>'
            ),
            "smtp_configured": bool(settings.smtp_host),
        },
        status,
    )


@router.get(
    "/admin/rendez-vous-en-ligne", response_class=HTMLResponse, summary="Online booking rules"
)
def rules_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    return _page(request, session, settings, done=done)


def _ranges(text: str) -> list[booking_rules.PhoneRange] | None:
    """``0 08:30-10:00`` per line (weekday 0 = Monday); None when a line is unreadable."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            day, span = line.split()
            start, end = span.split("-")
            out.append(
                booking_rules.PhoneRange(
                    int(day), time.fromisoformat(start), time.fromisoformat(end)
                )
            )
        except ValueError:
            return None
    return out


@router.post("/admin/rendez-vous-en-ligne", summary="Save the online booking rules")
def save_rules(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, form: PostedForm
) -> Response:
    language = page_language(request)
    values: dict[str, object] = {
        name: str(form.get(name) or "")[:600]
        for name in (*NUMBERS, "phone_ranges", "frame_ancestors")
    }
    values["enabled"] = form.get("enabled") == "1"
    values["allow_new_patients"] = form.get("allow_new_patients") == "1"
    chosen_types = [str(v)[:64] for v in form.getlist("visit_types")][:50]
    values["visit_types"] = chosen_types
    chosen_ids = [str(v)[:12] for v in form.getlist("practitioner_ids")][:50]
    values["practitioner_ids"] = chosen_ids
    errors: list[dict[str, str]] = []
    numbers: dict[str, int] = {}
    for name in NUMBERS:
        text = str(values[name]).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 5:
            errors.append(
                {
                    "field": name,
                    "message": "Nombre entier attendu."
                    if language == "fr"
                    else "A whole number is expected.",
                }
            )
        else:
            numbers[name] = int(text)
    ranges = _ranges(str(values["phone_ranges"]))
    if ranges is None:
        errors.append(
            {
                "field": "phone_ranges",
                "message": "Une plage par ligne : jour (0 = lundi) puis 08:30-10:00."
                if language == "fr"
                else "One range per line: weekday (0 = Monday) then 08:30-10:00.",
            }
        )
    ids = [int(v) for v in chosen_ids if v.isascii() and v.isdigit()]
    if errors or ranges is None:
        return _page(request, session, settings, values=values, errors=errors, status=422)
    try:
        booking_rules.save(
            session,
            user_actor(request, user),
            booking_rules.RulesInput(
                enabled=bool(values["enabled"]),
                allow_new_patients=bool(values["allow_new_patients"]),
                min_notice_hours=numbers["min_notice_hours"],
                horizon_days=numbers["horizon_days"],
                max_future_bookings=numbers["max_future_bookings"],
                hold_minutes=numbers["hold_minutes"],
                visit_types=chosen_types,
                practitioner_ids=ids,
                phone_ranges=ranges,
                frame_ancestors=str(values["frame_ancestors"]),
            ),
        )
    except DomainError as exc:
        session.rollback()
        errors = [{"field": "", "message": exc.message(language)}]
        return _page(
            request, session, settings, values=values, errors=errors, status=exc.status_code
        )
    return RedirectResponse("/admin/rendez-vous-en-ligne?done=saved", status_code=303)


@router.post(
    "/agenda/rendez-vous/{appointment_id}/refuser-en-ligne",
    summary="Refuse an appointment booked online (the patient is told)",
)
def refuse(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    appointment_id: Annotated[int, Path(ge=1)],
    form: PostedForm,
) -> Response:
    reason = str(form.get("reason") or "")[:150]
    try:
        booking_flow.refuse(
            session, user_actor(request, user), settings, appointment_id, reason=reason
        )
    except DomainError as exc:
        session.rollback()
        return render(
            request,
            "error.html",
            {"message": exc.message(page_language(request))},
            exc.status_code,
        )
    return RedirectResponse("/agenda", status_code=303)

"""The practice's public booking page at ``/rendez-vous`` (and its embeddable variant,
``?embed=1``): practitioner or "premier disponible" → visit type → free slots by day → the
slot held → identity → one-time code → booked.

Public routes. After the pick, the hold's token in the path is the credential, and every
form carries a token bound to the hold (so the pages also work in an iframe, where the
session cookie is not sent). Page views are rate-limited per address; holds and codes by the
audit log; a proof-of-work is asked under load. Every step is audited."""

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from app.config.settings import Settings
from app.services.booking import challenge, holds, throttle
from app.services.booking import rules as booking_rules
from app.services.booking.identity import IdentityInput
from app.services.booking.public_slots import SlotCache, SlotGone, by_day, public_slots
from app.services.core.audit import Actor
from app.services.core.errors import DomainError
from app.services.flows import online_booking as booking_flow
from app.web.deps import SessionDep, client_address, public
from app.web.errors import field_errors
from app.web.forms import PostedForm, page_language
from app.web.middleware import csp_framed_by
from app.web.templating import render
from models.audit import ActorKind
from models.online_booking import OnlineBookingRules, SlotHold
from models.patients import Sex
from models.practice import Practitioner

router = APIRouter(tags=["patient"], dependencies=[Depends(public)])
Token = Annotated[str, Path(max_length=128)]
FIRST_FREE = "premier"
IDENTITY_FIELDS = ("birth_name", "first_name", "birth_date", "sex", "phone", "email")
LIMITS = throttle.Limits()


def _actor(request: Request, hold_id: int | None = None) -> Actor:
    return Actor(
        kind=ActorKind.patient_link,
        id=str(hold_id) if hold_id else None,
        name="réservation en ligne",
        address=client_address(request),
    )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _now() -> datetime:
    return datetime.now(UTC)


def _limiter(request: Request) -> throttle.PageLimiter:
    state = request.app.state
    limiter = getattr(state, "booking_page_limiter", None)
    if limiter is None:
        settings = _settings(request)
        limiter = throttle.PageLimiter(settings.booking_page_rate, settings.booking_page_burst)
        state.booking_page_limiter = limiter
    return limiter


def _slot_cache(request: Request) -> SlotCache:
    cache = getattr(request.app.state, "booking_slot_cache", None)
    if not isinstance(cache, SlotCache):
        cache = SlotCache()
        request.app.state.booking_slot_cache = cache
    return cache


def _limits(request: Request) -> throttle.Limits:
    limits = getattr(request.app.state, "booking_limits", None)
    return limits if isinstance(limits, throttle.Limits) else LIMITS


def _embed(request: Request, form_value: object = None) -> bool:
    value = form_value if form_value is not None else request.query_params.get("embed")
    return value in ("1", "true", "oui")


def _form_token(request: Request, hold: SlotHold) -> str:
    key = _settings(request).resolved_secret_key().encode()
    return hmac.new(key, f"booking-form:{hold.token_hash}".encode(), hashlib.sha256).hexdigest()


def _query(request: Request, embed: bool, **extra: str) -> str:
    params = {k: v for k, v in extra.items() if v}
    if embed:
        params["embed"] = "1"
    lang = request.query_params.get("lang")
    if lang in ("fr", "en"):
        params["lang"] = lang
    return f"?{urlencode(params)}" if params else ""


def _page(
    request: Request,
    rules: OnlineBookingRules,
    template: str,
    context: dict[str, object],
    status: int = 200,
    *,
    embed: bool,
) -> Response:
    ctx: dict[str, object] = {"embed": embed, "embed_query": "embed=1" if embed else ""}
    ctx.update(context)
    response = render(request, template, ctx, status)
    if embed:
        response.headers["content-security-policy"] = csp_framed_by(rules.frame_ancestors)
    return response


def _slow_down(request: Request, rules: OnlineBookingRules, wait: float, embed: bool) -> Response:
    seconds = max(1, int(wait + 0.999))
    response = _page(request, rules, "booking-busy.html", {"seconds": seconds}, 429, embed=embed)
    response.headers["retry-after"] = str(seconds)
    return response


def _closed(request: Request, rules: OnlineBookingRules, embed: bool) -> Response:
    return _page(request, rules, "booking-closed.html", {}, 200, embed=embed)


# -- steps 1 and 2: practitioner and visit type ------------------------------------------------


@router.get("/rendez-vous", summary="Public booking page: choose a practitioner and a visit type")
def start(request: Request, session: SessionDep) -> Response:
    rules = booking_rules.current(session)
    embed = _embed(request)
    wait = _limiter(request).wait_for(client_address(request))
    if wait:
        return _slow_down(request, rules, wait, embed)
    if not rules.enabled:
        return _closed(request, rules, embed)
    return _page(
        request,
        rules,
        "booking-start.html",
        {
            "practitioners": booking_rules.bookable_practitioners(session, rules),
            "visit_types": booking_rules.bookable_visit_types(session, rules),
            "first_free": FIRST_FREE,
        },
        embed=embed,
    )


def _choice(
    session: Session, rules: OnlineBookingRules, who: str, what: str
) -> tuple[int | None, Practitioner | None, str] | None:
    """The practitioner asked (None for the first free one) and the visit type, if open."""
    if what not in rules.visit_types:
        return None
    if who == FIRST_FREE:
        return None, None, what
    if not (who.isascii() and who.isdigit()) or int(who) not in rules.practitioner_ids:
        return None
    practitioner = session.get(Practitioner, int(who))
    if practitioner is None or not practitioner.is_active:
        return None
    return practitioner.id, practitioner, what


def _slots_page(
    request: Request,
    session: Session,
    rules: OnlineBookingRules,
    who: str,
    what: str,
    after: date | None,
    *,
    embed: bool,
    error: str = "",
    status: int = 200,
) -> Response:
    settings = _settings(request)
    tz = settings.tz
    chosen = _choice(session, rules, who, what)
    if chosen is None:
        return _page(
            request,
            rules,
            "booking-start.html",
            {
                "practitioners": booking_rules.bookable_practitioners(session, rules),
                "visit_types": booking_rules.bookable_visit_types(session, rules),
                "first_free": FIRST_FREE,
                "error": "choice",
            },
            422,
            embed=embed,
        )
    practitioner_id, practitioner, visit_type = chosen
    now = _now()
    if after is not None and not (
        now.date() - timedelta(days=1) <= after <= now.date() + timedelta(days=400)
    ):
        after = None  # outside any horizon: from the first bookable day
    start_at = (
        datetime.combine(after, datetime.min.time(), tzinfo=tz).astimezone(UTC) if after else None
    )
    slots = _slot_cache(request).get(
        (rules.updated_at, practitioner_id, visit_type, after),
        lambda: public_slots(
            session,
            tz,
            rules,
            practitioner_id=practitioner_id,
            visit_type=visit_type,
            now=now,
            start=start_at,
            limit=60,
        ),
    )
    days = by_day(slots, tz)
    if len(days) > 1 and len(slots) >= 60:
        days = days[:-1]  # the last day may be cut short: it starts the next page
    names = {p.id: p.display_name for p in booking_rules.bookable_practitioners(session, rules)}
    kinds = {v.code: v.label for v in booking_rules.bookable_visit_types(session, rules)}
    next_day = days[-1].day + timedelta(days=1) if days else None
    return _page(
        request,
        rules,
        "booking-slots.html",
        {
            "days": days,
            "who": who,
            "what": visit_type,
            "practitioner": practitioner,
            "visit_label": kinds.get(visit_type, visit_type),
            "names": names,
            "next_query": _query(
                request, embed, praticien=who, motif=what, apres=next_day.isoformat()
            )
            if next_day
            else "",
            "error": error,
        },
        status,
        embed=embed,
    )


@router.get("/rendez-vous/creneaux", summary="Public booking page: free slots by day")
def slots(
    request: Request,
    session: SessionDep,
    praticien: Annotated[str, Query(max_length=12)] = FIRST_FREE,
    motif: Annotated[str, Query(max_length=64)] = "",
    apres: Annotated[date | None, Query()] = None,
) -> Response:
    rules = booking_rules.current(session)
    embed = _embed(request)
    wait = _limiter(request).wait_for(client_address(request))
    if wait:
        return _slow_down(request, rules, wait, embed)
    if not rules.enabled:
        return _closed(request, rules, embed)
    return _slots_page(request, session, rules, praticien, motif, apres, embed=embed)


# -- step 3: the pick holds the slot ----------------------------------------------------------


def _text(form: object, name: str, limit: int = 200) -> str:
    value = form.get(name) if hasattr(form, "get") else None  # FormData
    return value[:limit] if isinstance(value, str) else ""


@router.post("/rendez-vous/reserver", summary="Public booking page: hold the chosen slot")
def pick(request: Request, session: SessionDep, form: PostedForm) -> Response:
    settings = _settings(request)
    rules = booking_rules.current(session)
    embed = _embed(request, _text(form, "embed", 4))
    if not rules.enabled:
        return _closed(request, rules, embed)
    who, what = _text(form, "praticien", 12), _text(form, "motif", 64)
    address = client_address(request)
    actor = _actor(request)
    now = _now()
    language = page_language(request)
    try:
        throttle.check_hold(session, _limits(request), address, now)
    except throttle.SlowDown as exc:
        return _slow_down(request, rules, exc.retry_after, embed)
    if throttle.needs_challenge(session, _limits(request), address, now) and not challenge.verify(
        settings.resolved_secret_key(),
        _text(form, "pow_challenge", 120),
        _text(form, "pow_counter", 12),
        settings.booking_pow_bits,
    ):
        issued = challenge.issue(settings.resolved_secret_key(), settings.booking_pow_bits)
        return _page(
            request,
            rules,
            "booking-challenge.html",
            {
                "challenge": issued,
                "fields": {
                    "praticien": who,
                    "motif": what,
                    "creneau": _text(form, "creneau", 80),
                    "embed": "1" if embed else "",
                },
            },
            embed=embed,
        )
    chosen = _text(form, "creneau", 80)
    pid_text, _, iso = chosen.partition("|")
    try:
        starts_at = datetime.fromisoformat(iso)
    except ValueError:
        starts_at = None
    if (
        not (pid_text.isascii() and pid_text.isdigit())
        or len(pid_text) > 9
        or starts_at is None
        or starts_at.tzinfo is None
        or not 2000 <= starts_at.year <= 2200
    ):
        return _slots_page(request, session, rules, who, what, None, embed=embed, status=422)
    try:
        taken = holds.take_hold(
            session,
            actor,
            settings.tz,
            rules,
            practitioner_id=int(pid_text),
            visit_type=what,
            starts_at=starts_at,
            language=language,
            now=now,
            asked_practitioner_id=int(who) if who.isascii() and who.isdigit() else None,
        )
    except SlotGone as exc:
        _slot_cache(request).invalidate()  # the page showed a slot taken meanwhile
        after = starts_at.astimezone(settings.tz).date()
        return _slots_page(
            request,
            session,
            rules,
            who,
            what,
            after,
            embed=embed,
            error=exc.message(language),
            status=409,
        )
    except DomainError as exc:
        return _slots_page(
            request,
            session,
            rules,
            who,
            what,
            None,
            embed=embed,
            error=exc.message(language),
            status=exc.status_code,
        )
    session.commit()
    _slot_cache(request).invalidate()  # the held slot leaves every page at once
    return RedirectResponse(
        f"/rendez-vous/r/{taken.token}{_query(request, embed, lang=language)}", status_code=303
    )


# -- steps 4 and 5: identity, then the code ---------------------------------------------------


def _hold_or_gone(
    request: Request, session: Session, token: str, rules: OnlineBookingRules, embed: bool
) -> SlotHold | Response:
    try:
        return holds.live_hold(session, token, _now())
    except DomainError:
        return _page(request, rules, "booking-expired.html", {}, 410, embed=embed)


def _held_context(
    request: Request, session: Session, token: str, hold: SlotHold
) -> dict[str, object]:
    practitioner = session.get(Practitioner, hold.practitioner_id)
    kinds = {
        v.code: v.label
        for v in booking_rules.bookable_visit_types(session, booking_rules.current(session))
    }
    return {
        "token": token,
        "hold": hold,
        "practitioner": practitioner,
        "visit_label": kinds.get(hold.visit_type, hold.visit_type),
        "form_token": _form_token(request, hold),
    }


def _form_ok(request: Request, hold: SlotHold, form: object) -> bool:
    return hmac.compare_digest(_form_token(request, hold), _text(form, "form_token", 80))


def _identity_page(
    request: Request,
    session: Session,
    rules: OnlineBookingRules,
    token: str,
    hold: SlotHold,
    *,
    embed: bool,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    context = _held_context(request, session, token, hold)
    context.update(
        values=values or {},
        errors=errors or [],
        field_error={e["field"]: e["message"] for e in errors or [] if e["field"]},
        sexes=[s.value for s in Sex],
    )
    return _page(request, rules, "booking-identity.html", context, status, embed=embed)


@router.get("/rendez-vous/r/{token}", summary="Public booking page: the held slot and identity")
def identity_page(request: Request, session: SessionDep, token: Token) -> Response:
    rules = booking_rules.current(session)
    embed = _embed(request)
    hold = _hold_or_gone(request, session, token, rules, embed)
    if isinstance(hold, Response):
        return hold
    return _identity_page(request, session, rules, token, hold, embed=embed)


@router.post("/rendez-vous/r/{token}/identite", summary="Public booking page: send the code")
def identity(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    settings = _settings(request)
    rules = booking_rules.current(session)
    embed = _embed(request, _text(form, "embed", 4))
    hold = _hold_or_gone(request, session, token, rules, embed)
    if isinstance(hold, Response):
        return hold
    language = page_language(request)
    values = {name: _text(form, name, 254) for name in IDENTITY_FIELDS}
    if not _form_ok(request, hold, form):
        return _page(request, rules, "booking-expired.html", {}, 403, embed=embed)
    try:
        typed = IdentityInput.model_validate({k: v or None for k, v in values.items()})
    except ValidationError as exc:
        errors = field_errors(language, exc.errors())
        for error in errors:
            if not error["field"]:
                error["field"] = (
                    "email"
                    if "e-mail" in error["message"]
                    else ("phone" if "téléphone" in error["message"] else "birth_date")
                )
        return _identity_page(
            request,
            session,
            rules,
            token,
            hold,
            embed=embed,
            values=values,
            errors=errors,
            status=422,
        )
    try:
        booking_flow.send_code(
            session,
            _actor(request, hold.id),
            settings,
            token,
            typed,
            limits=_limits(request),
            now=_now(),
        )
    except throttle.SlowDown as exc:
        return _slow_down(request, rules, exc.retry_after, embed)
    except DomainError as exc:
        errors = [{"field": "", "message": exc.message(language)}]
        return _identity_page(
            request,
            session,
            rules,
            token,
            hold,
            embed=embed,
            values=values,
            errors=errors,
            status=exc.status_code,
        )
    return RedirectResponse(
        f"/rendez-vous/r/{token}/code{_query(request, embed, lang=language)}", status_code=303
    )


def _code_page(
    request: Request,
    session: Session,
    rules: OnlineBookingRules,
    token: str,
    hold: SlotHold,
    *,
    embed: bool,
    error: str = "",
    status: int = 200,
) -> Response:
    context = _held_context(request, session, token, hold)
    context.update(error=error, sms=booking_flow.sms_on(session, _settings(request)))
    return _page(request, rules, "booking-code.html", context, status, embed=embed)


@router.get("/rendez-vous/r/{token}/code", summary="Public booking page: type the code")
def code_page(request: Request, session: SessionDep, token: Token) -> Response:
    rules = booking_rules.current(session)
    embed = _embed(request)
    hold = _hold_or_gone(request, session, token, rules, embed)
    if isinstance(hold, Response):
        return hold
    if hold.code_hash is None:
        return RedirectResponse(f"/rendez-vous/r/{token}{_query(request, embed)}", status_code=303)
    return _code_page(request, session, rules, token, hold, embed=embed)


@router.post("/rendez-vous/r/{token}/code", summary="Public booking page: confirm the booking")
def confirm(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    settings = _settings(request)
    rules = booking_rules.current(session)
    embed = _embed(request, _text(form, "embed", 4))
    hold = _hold_or_gone(request, session, token, rules, embed)
    if isinstance(hold, Response):
        return hold
    if not _form_ok(request, hold, form):
        return _page(request, rules, "booking-expired.html", {}, 403, embed=embed)
    language = page_language(request)
    try:
        booked = booking_flow.confirm(
            session, _actor(request, hold.id), settings, token, _text(form, "code", 20), now=_now()
        )
    except booking_flow.WrongCode as exc:
        session.commit()  # the failed try counts
        return _code_page(
            request,
            session,
            rules,
            token,
            hold,
            embed=embed,
            error=exc.message(language),
            status=exc.status_code,
        )
    except holds.HoldExpired:
        session.commit()
        _slot_cache(request).invalidate()
        return _page(request, rules, "booking-expired.html", {}, 410, embed=embed)
    except SlotGone as exc:
        session.commit()  # the hold given back
        _slot_cache(request).invalidate()
        return _page(
            request,
            rules,
            "booking-taken.html",
            {
                "message": exc.message(language),
                "alternatives": exc.alternatives,
                "who": FIRST_FREE,
                "what": hold.visit_type,
            },
            409,
            embed=embed,
        )
    except DomainError as exc:
        session.rollback()
        refreshed = holds.find_hold(session, token) or hold
        return _code_page(
            request,
            session,
            rules,
            token,
            refreshed,
            embed=embed,
            error=exc.message(language),
            status=exc.status_code,
        )
    practitioner = session.get(Practitioner, booked.appointment.practitioner_id)
    return _page(
        request,
        rules,
        "booking-done.html",
        {
            "appointment": booked.appointment,
            "practitioner": practitioner,
            "questionnaire": booked.questionnaire_sent,
        },
        embed=embed,
    )


@router.post("/rendez-vous/r/{token}/annuler", summary="Public booking page: give the slot back")
def give_back(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    rules = booking_rules.current(session)
    embed = _embed(request, _text(form, "embed", 4))
    hold = holds.find_hold(session, token, for_update=True)
    if hold is not None and _form_ok(request, hold, form):
        holds.release(session, _actor(request, hold.id), hold, _now(), "patient")
        session.commit()
        _slot_cache(request).invalidate()
        who = FIRST_FREE
        return RedirectResponse(
            f"/rendez-vous/creneaux{_query(request, embed, praticien=who, motif=hold.visit_type)}",
            status_code=303,
        )
    return _page(request, rules, "booking-expired.html", {}, 410, embed=embed)

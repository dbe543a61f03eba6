"""The practice's public booking page at ``/rendez-vous`` (and its embeddable variant,
``?embed=1``): practitioner or "premier disponible" → visit type → free slots by day → the
slot held → identity → one-time code → booked.

Public routes. After the pick, the hold's token in the path is the credential, and every
form carries a token bound to the hold (so the pages also work in an iframe, where the
session cookie is not sent). Page views are rate-limited per address; holds and codes by the
audit log; a proof-of-work is asked under load. Every step is audited.

The first two pages are what a rush loads: they are served from a cache of the rendered
page (see "the cached pages" below). The steps after the pick open with one dependency
(``HeldStep``: the rules, the embed, the live hold or the "expired" page, the form check)."""

import hashlib
import hmac
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData

from app.config.settings import Settings
from app.services.booking import challenge, holds, throttle
from app.services.booking import rules as booking_rules
from app.services.booking.identity import IdentityInput, identity_errors
from app.services.booking.public_slots import SlotCache, SlotGone, by_day, public_slots
from app.services.core.audit import Actor
from app.services.core.errors import DomainError
from app.services.flows import online_booking as booking_flow
from app.web.deps import SessionDep, client_address, public, run_in_session
from app.web.forms import PostedForm, page_language
from app.web.middleware import csp_framed_by
from app.web.page_cache import CSRF_MARK, CachedPage, body_for, freeze, fresh
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
SLOTS_PER_PAGE = 60


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


def _limits(request: Request) -> throttle.Limits:
    limits = getattr(request.app.state, "booking_limits", None)
    return limits if isinstance(limits, throttle.Limits) else LIMITS


def _embed(request: Request, form_value: object = None) -> bool:
    value = form_value if form_value is not None else request.query_params.get("embed")
    return value in ("1", "true", "oui")


def _text(form: object, name: str, limit: int = 200) -> str:
    value = form.get(name) if hasattr(form, "get") else None  # FormData
    return value[:limit] if isinstance(value, str) else ""


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


def _expired(request: Request, rules: OnlineBookingRules, embed: bool, status: int) -> Response:
    return _page(request, rules, "booking-expired.html", {}, status, embed=embed)


# -- the cached pages of steps 1 and 2 --------------------------------------------------------
#
# Under a rush every patient loads the same few pages (the choice, the free slots of a
# practitioner or of the first free one): each is rendered once and kept, keyed by everything
# it shows (the query, the language, the embed, the rules' version), with the visitor's own
# CSRF token put in at each answer. A page served from the cache touches neither the database
# nor a worker thread. Freshness is ``SlotCache``'s: dropped at once when this process commits
# a change of availability, at most ``FRESH_SECONDS`` old otherwise (another process's change),
# and refreshed beside serving before it expires.


@dataclass
class PageCaches:
    """The rules and the rendered pages of steps 1 and 2, per app (see ``SlotCache``)."""

    rules: SlotCache[OnlineBookingRules]
    pages: SlotCache[CachedPage]


def _caches(request: Request) -> PageCaches:
    caches = getattr(request.app.state, "booking_pages", None)
    if not isinstance(caches, PageCaches):
        caches = PageCaches(SlotCache(max_entries=4), SlotCache())
        request.app.state.booking_pages = caches
    return caches


async def _cached_rules(request: Request) -> OnlineBookingRules:
    """The rules as of at most ``FRESH_SECONDS`` ago (at once after a change made here)."""
    return await fresh(
        _caches(request).rules, "rules", lambda: run_in_session(request, booking_rules.current)
    )


def _serve(request: Request, rules: OnlineBookingRules, page: CachedPage, embed: bool) -> Response:
    response = HTMLResponse(body_for(request, page), page.status)
    if embed:
        response.headers["content-security-policy"] = csp_framed_by(rules.frame_ancestors)
    return response


async def _cached_page(
    request: Request,
    rules: OnlineBookingRules,
    key: tuple[Hashable, ...],
    build: Callable[[Session], Response],
    embed: bool,
) -> Response:
    """The page for ``key`` (with everything that shapes it: the language asked for, the
    embed, the rules' version), built by ``build`` in a worker thread when not cached."""
    asked = request.query_params.get("lang")  # kept in the page's links
    asked = asked if asked in ("fr", "en") else None
    full_key = (*key, rules.id, rules.updated_at, page_language(request), asked, embed)
    page = await fresh(
        _caches(request).pages, full_key, lambda: freeze(run_in_session(request, build))
    )
    return _serve(request, rules, page, embed)


# -- steps 1 and 2: practitioner and visit type, then the free slots (cached pages) ------


def _choice_page_context(session: Session, rules: OnlineBookingRules) -> dict[str, object]:
    return {
        "practitioners": booking_rules.bookable_practitioners(session, rules),
        "visit_types": booking_rules.bookable_visit_types(session, rules),
        "first_free": FIRST_FREE,
    }


@router.get("/rendez-vous", summary="Public booking page: choose a practitioner and a visit type")
async def start(request: Request) -> Response:
    embed = _embed(request)
    wait = _limiter(request).wait_for(client_address(request))
    rules = await _cached_rules(request)
    if wait:
        return _slow_down(request, rules, wait, embed)
    if not rules.enabled:
        return _closed(request, rules, embed)

    def build(session: Session) -> Response:
        context = _choice_page_context(session, rules)
        return _page(request, rules, "booking-start.html", context, embed=embed)

    return await _cached_page(request, rules, ("start",), build, embed)


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


def _may_be_offered(rules: OnlineBookingRules, who: str, what: str) -> bool:
    """Whether the rules open this choice online (the practitioner may still be inactive)."""
    if what not in rules.visit_types:
        return False
    return who == FIRST_FREE or (
        who.isascii() and who.isdigit() and int(who) in rules.practitioner_ids
    )


def _first_day(after: date | None, now: datetime) -> date | None:
    """The day asked, unless it is outside any horizon (then from the first bookable day)."""
    if after is not None and not (
        now.date() - timedelta(days=1) <= after <= now.date() + timedelta(days=400)
    ):
        return None
    return after


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
    csrf: str | None = None,
) -> Response:
    """The free slots by day from ``after``; the choice page again (422) for a bad choice.
    ``csrf`` stands for the visitor's token when the page is cached."""
    tz = _settings(request).tz
    chosen = _choice(session, rules, who, what)
    if chosen is None:
        again = {**_choice_page_context(session, rules), "error": "choice"}
        return _page(request, rules, "booking-start.html", again, 422, embed=embed)
    practitioner_id, practitioner, visit_type = chosen
    now = _now()
    after = _first_day(after, now)
    start_at = (
        datetime.combine(after, datetime.min.time(), tzinfo=tz).astimezone(UTC) if after else None
    )
    slots = public_slots(
        session,
        tz,
        rules,
        practitioner_id=practitioner_id,
        visit_type=visit_type,
        now=now,
        start=start_at,
        limit=SLOTS_PER_PAGE,
    )
    days = by_day(slots, tz)
    if len(days) > 1 and len(slots) >= SLOTS_PER_PAGE:
        days = days[:-1]  # the last day may be cut short: it starts the next page
    names = {p.id: p.display_name for p in booking_rules.bookable_practitioners(session, rules)}
    kinds = {v.code: v.label for v in booking_rules.bookable_visit_types(session, rules)}
    next_day = days[-1].day + timedelta(days=1) if days else None
    context: dict[str, object] = {
        "days": days,
        "who": who,
        "what": visit_type,
        "practitioner": practitioner,
        "visit_label": kinds.get(visit_type, visit_type),
        "names": names,
        "next_query": _query(request, embed, praticien=who, motif=what, apres=next_day.isoformat())
        if next_day
        else "",
        "error": error,
    }
    if csrf is not None:
        context["csrf_token"] = csrf
    return _page(request, rules, "booking-slots.html", context, status, embed=embed)


@router.get("/rendez-vous/creneaux", summary="Public booking page: free slots by day")
async def slots(
    request: Request,
    praticien: Annotated[str, Query(max_length=12)] = FIRST_FREE,
    motif: Annotated[str, Query(max_length=64)] = "",
    apres: Annotated[date | None, Query()] = None,
) -> Response:
    embed = _embed(request)
    wait = _limiter(request).wait_for(client_address(request))
    rules = await _cached_rules(request)
    if wait:
        return _slow_down(request, rules, wait, embed)
    if not rules.enabled:
        return _closed(request, rules, embed)
    after = _first_day(apres, _now())

    def build(session: Session) -> Response:
        return _slots_page(
            request,
            session,
            rules,
            praticien,
            motif,
            after,
            embed=embed,
            csrf=CSRF_MARK,
        )

    if not _may_be_offered(rules, praticien, motif):  # never cached: keys stay few
        return await run_in_threadpool(
            run_in_session,
            request,
            lambda session: _slots_page(
                request, session, rules, praticien, motif, after, embed=embed
            ),
        )
    return await _cached_page(request, rules, ("slots", praticien, motif, after), build, embed)


# -- step 3: the pick holds the slot ----------------------------------------------------------


def _challenge_page(
    request: Request, rules: OnlineBookingRules, form: FormData, embed: bool
) -> Response:
    settings = _settings(request)
    issued = challenge.issue(settings.resolved_secret_key(), settings.booking_pow_bits)
    fields = {
        "praticien": _text(form, "praticien", 12),
        "motif": _text(form, "motif", 64),
        "creneau": _text(form, "creneau", 80),
        "embed": "1" if embed else "",
    }
    return _page(
        request,
        rules,
        "booking-challenge.html",
        {"challenge": issued, "fields": fields},
        embed=embed,
    )


def _picked(form: FormData) -> tuple[int, datetime] | None:
    """The practitioner and start of the slot picked (``<id>|<ISO instant>``), if well formed."""
    pid_text, _, iso = _text(form, "creneau", 80).partition("|")
    try:
        starts_at = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if (
        not (pid_text.isascii() and pid_text.isdigit())
        or len(pid_text) > 9
        or starts_at.tzinfo is None
        or not 2000 <= starts_at.year <= 2200
    ):
        return None
    return int(pid_text), starts_at


@router.post("/rendez-vous/reserver", summary="Public booking page: hold the chosen slot")
def pick(request: Request, session: SessionDep, form: PostedForm) -> Response:
    settings = _settings(request)
    rules = booking_rules.current(session)
    embed = _embed(request, _text(form, "embed", 4))
    if not rules.enabled:
        return _closed(request, rules, embed)
    who, what = _text(form, "praticien", 12), _text(form, "motif", 64)
    address, now, language = client_address(request), _now(), page_language(request)
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
        return _challenge_page(request, rules, form, embed)
    picked = _picked(form)
    if picked is None:
        return _slots_page(request, session, rules, who, what, None, embed=embed, status=422)
    practitioner_id, starts_at = picked
    try:
        taken = holds.take_hold(
            session,
            _actor(request),
            settings.tz,
            rules,
            practitioner_id=practitioner_id,
            visit_type=what,
            starts_at=starts_at,
            language=language,
            now=now,
            asked_practitioner_id=int(who) if who.isascii() and who.isdigit() else None,
        )
    except DomainError as exc:
        after = None
        if isinstance(exc, SlotGone):
            # Taken meanwhile (maybe by another process): the pages cached here showed it.
            _caches(request).pages.invalidate()
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
            status=exc.status_code,
        )
    # The commit (by the request's session) leaves every cached page of this process.
    return RedirectResponse(
        f"/rendez-vous/r/{taken.token}{_query(request, embed, lang=language)}", status_code=303
    )


# -- steps 4 and 5: identity, then the code ---------------------------------------------------


@dataclass(frozen=True)
class HeldStep:
    """What every step after the pick starts from: the live hold its token names, the rules,
    the embed flag and the page's language (and the posted form, checked to be this hold's)."""

    token: str
    hold: SlotHold
    rules: OnlineBookingRules
    embed: bool
    language: str
    form: FormData | None = None


def _open_step(
    request: Request, session: Session, token: str, form: FormData | None
) -> HeldStep | Response:
    """The step, or the page that ends it: "expired" (410) for a hold gone or unknown, and
    (403) for a form that is not this hold's."""
    rules = booking_rules.current(session)
    embed = _embed(request, None if form is None else _text(form, "embed", 4))
    try:
        hold = holds.live_hold(session, token, _now())
    except DomainError:
        return _expired(request, rules, embed, 410)
    if form is not None and not hmac.compare_digest(
        _form_token(request, hold), _text(form, "form_token", 80)
    ):
        return _expired(request, rules, embed, 403)
    return HeldStep(token, hold, rules, embed, page_language(request), form)


def viewed_step(request: Request, session: SessionDep, token: Token) -> HeldStep | Response:
    return _open_step(request, session, token, None)


def posted_step(
    request: Request, session: SessionDep, token: Token, form: PostedForm
) -> HeldStep | Response:
    return _open_step(request, session, token, form)


ViewedStep = Annotated[HeldStep | Response, Depends(viewed_step)]
PostedStep = Annotated[HeldStep | Response, Depends(posted_step)]


def _step_page(
    request: Request,
    session: Session,
    step: HeldStep,
    template: str,
    context: dict[str, object],
    status: int = 200,
) -> Response:
    """A page about the held slot (its practitioner, time and visit type)."""
    hold = step.hold
    kinds = {v.code: v.label for v in booking_rules.bookable_visit_types(session, step.rules)}
    full: dict[str, object] = {
        "token": step.token,
        "hold": hold,
        "practitioner": session.get(Practitioner, hold.practitioner_id),
        "visit_label": kinds.get(hold.visit_type, hold.visit_type),
        "form_token": _form_token(request, hold),
    }
    full.update(context)
    return _page(request, step.rules, template, full, status, embed=step.embed)


def _identity_page(
    request: Request,
    session: Session,
    step: HeldStep,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    context: dict[str, object] = {
        "values": values or {},
        "errors": errors or [],
        "field_error": {e["field"]: e["message"] for e in errors or [] if e["field"]},
        "sexes": [s.value for s in Sex],
    }
    return _step_page(request, session, step, "booking-identity.html", context, status)


def _code_page(
    request: Request, session: Session, step: HeldStep, *, error: str = "", status: int = 200
) -> Response:
    context = {"error": error, "sms": booking_flow.sms_on(session, _settings(request))}
    return _step_page(request, session, step, "booking-code.html", context, status)


@router.get("/rendez-vous/r/{token}", summary="Public booking page: the held slot and identity")
def identity_page(request: Request, session: SessionDep, step: ViewedStep) -> Response:
    if isinstance(step, Response):
        return step
    return _identity_page(request, session, step)


@router.post("/rendez-vous/r/{token}/identite", summary="Public booking page: send the code")
def identity(request: Request, session: SessionDep, step: PostedStep) -> Response:
    if isinstance(step, Response):
        return step
    values = {name: _text(step.form, name, 254) for name in IDENTITY_FIELDS}
    try:
        typed = IdentityInput.model_validate({k: v or None for k, v in values.items()})
    except ValidationError as exc:
        errors = identity_errors(step.language, exc.errors())
        return _identity_page(request, session, step, values=values, errors=errors, status=422)
    try:
        booking_flow.send_code(
            session,
            _actor(request, step.hold.id),
            _settings(request),
            step.token,
            typed,
            limits=_limits(request),
            now=_now(),
        )
    except throttle.SlowDown as exc:
        return _slow_down(request, step.rules, exc.retry_after, step.embed)
    except DomainError as exc:
        errors = [{"field": "", "message": exc.message(step.language)}]
        return _identity_page(
            request, session, step, values=values, errors=errors, status=exc.status_code
        )
    where = _query(request, step.embed, lang=step.language)
    return RedirectResponse(f"/rendez-vous/r/{step.token}/code{where}", status_code=303)


@router.get("/rendez-vous/r/{token}/code", summary="Public booking page: type the code")
def code_page(request: Request, session: SessionDep, step: ViewedStep) -> Response:
    if isinstance(step, Response):
        return step
    if step.hold.code_hash is None:
        where = _query(request, step.embed)
        return RedirectResponse(f"/rendez-vous/r/{step.token}{where}", status_code=303)
    return _code_page(request, session, step)


@router.post("/rendez-vous/r/{token}/code", summary="Public booking page: confirm the booking")
def confirm(request: Request, session: SessionDep, step: PostedStep) -> Response:
    if isinstance(step, Response):
        return step
    language = step.language
    try:
        booked = booking_flow.confirm(
            session,
            _actor(request, step.hold.id),
            _settings(request),
            step.token,
            _text(step.form, "code", 20),
            now=_now(),
        )
    except booking_flow.WrongCode as exc:
        session.commit()  # the failed try counts
        return _code_page(
            request, session, step, error=exc.message(language), status=exc.status_code
        )
    except holds.HoldExpired:
        session.commit()
        return _expired(request, step.rules, step.embed, 410)
    except SlotGone as exc:
        session.commit()  # the hold given back
        taken: dict[str, object] = {
            "message": exc.message(language),
            "alternatives": exc.alternatives,
            "who": FIRST_FREE,
            "what": step.hold.visit_type,
        }
        return _page(request, step.rules, "booking-taken.html", taken, 409, embed=step.embed)
    except DomainError as exc:
        session.rollback()
        refreshed = holds.find_hold(session, step.token) or step.hold
        again = HeldStep(step.token, refreshed, step.rules, step.embed, language, step.form)
        return _code_page(
            request, session, again, error=exc.message(language), status=exc.status_code
        )
    done: dict[str, object] = {
        "appointment": booked.appointment,
        "practitioner": session.get(Practitioner, booked.appointment.practitioner_id),
        "questionnaire": booked.questionnaire_sent,
    }
    return _page(request, step.rules, "booking-done.html", done, embed=step.embed)


@router.post("/rendez-vous/r/{token}/annuler", summary="Public booking page: give the slot back")
def give_back(request: Request, session: SessionDep, step: PostedStep) -> Response:
    if isinstance(step, Response):
        return step
    hold = holds.find_hold(session, step.token, for_update=True) or step.hold
    holds.release(session, _actor(request, hold.id), hold, _now(), "patient")
    where = _query(request, step.embed, praticien=FIRST_FREE, motif=hold.visit_type)
    return RedirectResponse(f"/rendez-vous/creneaux{where}", status_code=303)

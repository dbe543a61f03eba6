"""Login (slowed after failures, trusted-device cookie), logout and the language switch."""

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.identity import trusted_devices, users
from app.services.identity.login_throttle import LoginSlowedDown
from app.web.deps import SessionDep, SettingsDep, client_address, public, user_actor
from app.web.i18n import LANGUAGE_COOKIE, LANGUAGES, request_language
from app.web.templating import render

router = APIRouter(dependencies=[Depends(public)], tags=["auth"])


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse, summary="Login page")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", summary="Log in with username and password")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    secret = settings.resolved_secret_key()
    device_max_age = settings.login_trusted_device_days * 86400
    device = trusted_devices.read(
        secret, request.cookies.get(trusted_devices.COOKIE), device_max_age
    )
    try:
        user = users.authenticate(
            session,
            username,
            password,
            address=client_address(request),
            max_failures=settings.login_max_failures,
            window=timedelta(seconds=settings.login_window_seconds),
            first_delay=timedelta(seconds=settings.login_first_delay_seconds),
            max_delay=timedelta(seconds=settings.login_max_delay_seconds),
            device=device,
        )
    except DomainError as exc:
        language = request_language(request)
        refused = render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": exc.message(language), "username": username},
            status_code=exc.status_code,
        )
        if isinstance(exc, LoginSlowedDown):
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    csrf = request.session.get("csrf")
    request.session.clear()  # a new session on login: no fixation
    request.session.update({"uid": user.id, "pwd": user.password_hash[-16:]})
    if csrf:
        request.session["csrf"] = csrf
    response = RedirectResponse(_safe_next(next), status_code=303)
    if user.id is not None:
        # This browser is now trusted for this account: others' failures will not slow it.
        response.set_cookie(
            trusted_devices.COOKIE,
            trusted_devices.issue(secret, device, user.id),
            max_age=device_max_age,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
        )
    if user.language in LANGUAGES and LANGUAGE_COOKIE not in request.cookies:
        response.set_cookie(LANGUAGE_COOKIE, user.language, samesite="lax", httponly=True)
    return response


@router.post("/logout", summary="Log out")
def logout(request: Request, session: SessionDep) -> Response:
    uid = request.session.get("uid")
    if uid is not None:
        from models.users import User

        user = session.get(User, uid)
        if user is not None:
            audit.record(
                session,
                user_actor(request, user),
                "auth.logout",
                record_type="user",
                record_id=user.id,
            )
    request.session.clear()
    return RedirectResponse("/login?out=1", status_code=303)


@router.get("/lang/{language}", summary="Switch the interface language")
def switch_language(language: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", httponly=True
        )
    return response

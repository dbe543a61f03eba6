"""Server-rendered pages: the Jinja2 environment and the helpers every template gets."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.web.deps import csrf_token
from app.web.i18n import request_language, translate

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _local(request: Request, value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(request.app.state.settings.tz).strftime(fmt)


def _date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a page with the language, translator, CSRF token and user in context."""
    language = request_language(request, request.app.state.settings.default_language)
    ctx: dict[str, Any] = {
        "lang": language,
        "t": lambda key, **kw: translate(language, key, **kw),
        "csrf_token": csrf_token(request) if "session" in request.scope else "",
        "user": getattr(request.state, "user", None),
        "settings": request.app.state.settings,
        "local": lambda value, fmt="%d/%m/%Y %H:%M": _local(request, value, fmt),
        "fmt_date": _date,
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, template, ctx, status_code=status_code)

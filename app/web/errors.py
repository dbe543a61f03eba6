"""One place mapping domain and validation errors to HTTP answers in the user's language."""

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.services.core.errors import DomainError, NotAuthenticated
from app.services.core.validation import field_errors
from app.web.i18n import request_language, translate
from app.web.templating import render

log = logging.getLogger("accueil.errors")


def wants_html(request: Request) -> bool:
    """Pages get HTML; ``/api``, ``/mcp`` and non-browser clients get JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/mcp", "/health")):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        if wants_html(request):
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
        language = request_language(request)
        return JSONResponse(
            {"detail": exc.message(language)},
            status_code=401,
            headers={"WWW-Authenticate": "Session"},
        )

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        language = request_language(request)
        if wants_html(request):
            return render(
                request, "error.html", {"message": exc.message(language)}, exc.status_code
            )
        return JSONResponse({"detail": exc.message(language)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        language = request_language(request)
        errors = field_errors(language, list(exc.errors()))
        body = {"detail": translate(language, "errors.validation"), "errors": errors}
        if wants_html(request):
            return render(request, "error.html", {"message": body["detail"], "errors": errors}, 422)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> Response:
        return await _validation(request, RequestValidationError(exc.errors()))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # A value the database refuses (a NUL character, a number out of range) in a body.
        route = getattr(request.scope.get("route"), "path", "(hors route)")
        log.warning("value refused by the database on %s %s", request.method, route)
        language = request_language(request)
        message = translate(language, "errors.validation")
        if wants_html(request):
            return render(request, "error.html", {"message": message}, 422)
        return JSONResponse({"detail": message, "errors": []}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, exc: OperationalError) -> Response:
        # The database is down, or a lock outlasted its timeout: nothing was committed.
        route = getattr(request.scope.get("route"), "path", "(hors route)")
        log.error(
            "database unavailable on %s %s: %s", request.method, route, type(exc.orig).__name__
        )
        language = request_language(request)
        message = translate(language, "errors.database")
        headers = {"Retry-After": "5"}
        if wants_html(request):
            return render(request, "error.html", {"message": message}, 503)
        return JSONResponse({"detail": message}, status_code=503, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        language = request_language(request)
        message = translate(language, "errors.not_found") if exc.status_code == 404 else exc.detail
        if wants_html(request):
            return render(request, "error.html", {"message": message}, exc.status_code)
        return JSONResponse({"detail": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The route's template, not the path: link tokens never reach the logs.
        route = getattr(request.scope.get("route"), "path", "(hors route)")
        log.exception("unexpected error on %s %s", request.method, route)
        language = request_language(request)
        message = translate(language, "errors.server")
        if wants_html(request):
            return render(request, "error.html", {"message": message}, 500)
        return JSONResponse({"detail": message}, status_code=500)

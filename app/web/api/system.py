"""Health probe and the OpenAPI documentation, served without any CDN."""

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.services.operations.health import health_report
from app.web.deps import ANY_STAFF, SettingsDep, StaffUser, csrf_token, public

router = APIRouter(tags=["system"])


@router.get("/health", dependencies=[Depends(public)], summary="Health of the box")
def health(request: Request, settings: SettingsDep) -> JSONResponse:
    """Database, language model and vector store; 503 only when the database is down."""
    report = health_report(request.app.state.engine, settings)
    return JSONResponse(report, status_code=503 if report["status"] == "error" else 200)


@router.get("/openapi.json", dependencies=[Depends(ANY_STAFF)], include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", dependencies=[Depends(ANY_STAFF)], include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Accueil — API",
        swagger_js_url="/static/swagger/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )


@router.get("/api/csrf", summary="The session's CSRF token, for API calls from the browser")
def csrf(request: Request, user: StaffUser) -> dict[str, str]:
    """Send it back in the ``X-CSRF-Token`` header of POST, PATCH and DELETE requests."""
    return {"csrf_token": csrf_token(request)}

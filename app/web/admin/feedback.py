"""Admin page on the quality of generated documents and its pseudonymised export."""

import json
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.services.documents import feedback
from app.services.documents.pseudonymise import Pseudonymiser
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.templating import render

router = APIRouter(prefix="/admin/retours", tags=["admin"])


@router.get("", response_class=HTMLResponse, summary="Quality of generated documents")
def feedback_page(request: Request, user: AdminUser, session: SessionDep) -> Response:
    rows = feedback.feedback_table(session, Pseudonymiser.from_session(session))
    return render(request, "admin/feedback.html", {"rows": rows})


@router.get("/export.json", summary="Pseudonymised dataset of generated documents (JSON)")
def feedback_export(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    data = feedback.export_dataset(session, user_actor(request, user))
    stamp = datetime.now(settings.tz).strftime("%Y%m%d-%H%M")
    return Response(
        json.dumps(data, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={
            "content-disposition": f'attachment; filename="accueil-retours-{stamp}.json"',
            "cache-control": "no-store",
        },
    )

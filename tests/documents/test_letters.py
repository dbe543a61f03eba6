"""Letters: templates as files, a drafting job (structured output, no tools) fed by the record,
the approved summary and an instruction, the physician's edits, and the PDF of an approved
letter only (a draft is never exported), through the pages and the ``letters`` MCP server."""

import io
import json
import re
from typing import Any

import httpx
import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from pypdf import PdfReader
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel
from app.services.core.audit import Actor
from app.services.documents import letter_pdf, letter_templates, letters, practice_pdf
from app.services.flows import letter_jobs, summary_jobs
from app.services.preconsultation import summaries
from mcp_servers.letters import create_letters_server
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment
from models.audit import ActorKind, AuditEvent
from models.documents import DocumentVersion, GeneratedDocument, ReviewStatus
from models.jobs import Job, JobStatus
from models.patients import Patient
from tests.preconsultation.test_summaries import submitted
from tests.support.jobs_helpers import run_jobs
from tests.support.review_helpers import letter_call, scripted_model, summarized

HTML = {"accept": "text/html"}
JSON = {"accept": "application/json"}
INSTRUCTION = "Adresser au cardiologue pour un souffle découvert ce jour."


@pytest.fixture
def model(monkeypatch) -> ScriptedChatModel:
    return scripted_model(monkeypatch)


def flat(text: str) -> str:
    return " ".join(text.split())


def approved_summary(db: Session, queue, scripted, client) -> GeneratedDocument:
    document = summarized(db, queue, scripted)
    assert client.post(f"/medecin/documents/{document.id}/approuver").status_code == 200
    db.expire_all()
    return db.get(GeneratedDocument, document.id)


def request_referral(client, summary: GeneratedDocument, instruction: str = INSTRUCTION) -> int:
    response = client.post(
        "/medecin/courriers",
        data={
            "patient_id": str(summary.patient_id),
            "template": "adressage",
            "instruction": instruction,
            "summary_id": str(summary.id),
            "appointment_id": str(summary.appointment_id),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(re.search(r"/medecin/documents/(\d+)", response.headers["location"]).group(1))


def test_templates_are_files_with_their_fields() -> None:
    templates = letter_templates.all_templates()
    assert set(templates) == {"adressage", "certificat", "compte_rendu", "consignes"}
    assert [f.name for f in templates["adressage"].fields] == ["destinataire", "motif"]
    for template in templates.values():
        assert template.title and template.fields
    with pytest.raises(letters.NotFound):
        letter_templates.get_template("inconnu")


def test_physician_drafts_a_referral_from_the_approved_summary(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    client = logged_in(staff.physician)
    summary = approved_summary(db, job_queue, model, client)
    form = client.get(
        f"/medecin/courriers/nouveau?patient_id={summary.patient_id}&summary_id={summary.id}",
        headers=HTML,
    )
    assert form.status_code == 200 and '<option value="adressage" selected>' in form.text
    assert 'data-voice-target="instruction"' in form.text  # the instruction can be dictated
    letter_id = request_referral(client, summary)
    page = client.get(f"/medecin/documents/{letter_id}", headers=HTML)
    assert "Brouillon en cours de rédaction" in page.text and "data-letter-pending" in page.text
    job = db.exec(select(Job).where(Job.idempotency_key == letters.job_key(letter_id))).one()
    assert job.kind == "letters.draft" and job.status == JobStatus.queued

    bound: list[list[Any]] = []
    original = ScriptedChatModel.bind_tools

    def recording(self, tools, **kwargs):
        bound.append([getattr(t, "__name__", t) for t in tools])
        return original(self, tools, **kwargs)

    model.__class__.bind_tools = recording  # type: ignore[method-assign]
    try:
        model.extend([letter_call()])
        run_jobs(job_queue)
    finally:
        model.__class__.bind_tools = original  # type: ignore[method-assign]
    assert bound == [["LetterDraft"]]  # its output schema is the only "tool" ever offered
    messages = model.calls[-1]
    data = json.loads(messages[1].text.split("<donnees>")[1].split("</donnees>")[0])
    assert data["consigne_du_medecin"] == INSTRUCTION
    assert "Toux depuis 3 jours." in data["resume_approuve"]
    assert data["dossier"]["sexe"] == "femme" and data["dossier"]["age"] >= 40
    patient = db.get(Patient, summary.patient_id)
    assert patient.birth_name not in messages[1].text  # names never reach the model
    assert "jamais des instructions" in messages[1].text
    assert "Lettre d'adressage" in messages[0].text

    db.expire_all()
    letter = db.get(GeneratedDocument, letter_id)
    assert letter is not None and letter.status == ReviewStatus.draft
    assert (letter.model, letter.prompt_id, letter.prompt_version) == (
        "scripted (test)",
        "letter_draft",
        "1",
    )
    assert len(letter.prompt_hash) == 64 and f"summary:{summary.id}" in letter.input_refs
    assert letter.content["fields"] == {
        "destinataire": "Dr Dupont, cardiologue",
        "motif": "Souffle cardiaque",
    }
    assert "souffle systolique" in letter.text and "BROUILLON" in letter.text
    assert "Marie Durand" in letter.text  # the template, not the model, writes the name
    page = client.get(f"/medecin/documents/{letter_id}", headers=HTML).text
    assert "Télécharger le PDF" not in page and "ni exporté ni envoyé" in page
    assert "letter_draft v1" in page and "Provenance" in page
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "letter.generate")).all()
    assert event.record_id == str(letter_id)


def test_a_draft_is_never_exported(db: Session, job_queue, model, logged_in, staff) -> None:
    client = logged_in(staff.physician)
    summary = approved_summary(db, job_queue, model, client)
    letter_id = request_referral(client, summary)
    pending = client.get(f"/courriers/{letter_id}.pdf", headers=JSON)
    assert pending.status_code == 409
    model.extend([letter_call()])
    run_jobs(job_queue)
    for username in (staff.physician, staff.secretary):
        client = logged_in(username)
        response = client.get(f"/courriers/{letter_id}.pdf", headers=JSON)
        assert response.status_code == 409, username
        assert "brouillon ne peut être ni exporté ni envoyé" in response.json()["detail"]
        page = client.get(f"/courriers/{letter_id}.pdf", headers=HTML)
        assert page.status_code == 409 and "ni exporté ni envoyé" in page.text
    client = logged_in(staff.physician)
    client.post(f"/medecin/documents/{letter_id}/rejeter", data={"reason": "Hors sujet"})
    assert client.get(f"/courriers/{letter_id}.pdf", headers=JSON).status_code == 409
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "letter.export")).all()


def test_approved_letter_pdf_holds_the_approved_body(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    client = logged_in(staff.physician)
    summary = approved_summary(db, job_queue, model, client)
    letter_id = request_referral(client, summary)
    model.extend([letter_call()])
    run_jobs(job_queue)
    body = (
        "Patiente de 47 ans, souffle systolique 2/6 au foyer aortique découvert ce jour, "
        "sans dyspnée ni douleur thoracique. Merci pour votre avis et une échographie cardiaque."
    )
    edited = client.post(
        f"/medecin/documents/{letter_id}/courrier",
        data={
            "field-destinataire": "Dr Élise Dupont, cardiologue",
            "field-motif": "Souffle systolique",
            "body": body,
        },
        follow_redirects=False,
    )
    assert edited.status_code == 303
    assert client.post(f"/medecin/documents/{letter_id}/approuver").status_code == 200
    db.expire_all()
    letter = db.get(GeneratedDocument, letter_id)
    assert letter is not None and letter.status == ReviewStatus.approved
    assert "BROUILLON" not in letter.text and body in letter.text
    history = db.exec(
        select(DocumentVersion)
        .where(DocumentVersion.document_id == letter_id)
        .order_by(DocumentVersion.number)
    ).all()
    assert [v.change for v in history] == ["generated", "edited", "approved"]
    assert history[-1].text == letter.text

    page = client.get(f"/medecin/documents/{letter_id}", headers=HTML).text
    assert f'href="/courriers/{letter_id}.pdf"' in page
    response = client.get(f"/courriers/{letter_id}.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(response.content))
    text = flat("\n".join(page.extract_text() for page in reader.pages))
    assert flat(body) in text
    assert "Dr Élise Dupont, cardiologue" in text and "Marie Durand" in text
    assert "Cabinet médical" in text and "Objet : adressage" in text
    assert "BROUILLON" not in text
    # The secretary may download it too (to hand it over or send it).
    assert logged_in(staff.secretary).get(f"/courriers/{letter_id}.pdf").status_code == 200
    exports = db.exec(select(AuditEvent).where(AuditEvent.action == "letter.export")).all()
    assert [e.actor_name for e in exports] == ["medecin", "secretaire"]


def test_core_font_fallback_still_writes_french(monkeypatch) -> None:
    monkeypatch.setattr(practice_pdf, "FONT_DIRS", ())
    practice_pdf.find_font.cache_clear()
    try:
        rendered = letter_templates.RenderedLetter(
            {
                "letterhead": "Cabinet médical",
                "body": "Fièvre à 38,5 °C ; consœur « avis » – merci.",
                "signature": "Dr Martin",
            },
            "",
        )
        data = letter_pdf.letter_pdf(rendered, practice="Cabinet médical", title="t")
    finally:
        practice_pdf.find_font.cache_clear()
    text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert "Fièvre à 38,5 °C" in text and "consoeur" in text


def test_a_model_that_is_down_fails_then_retry_writes_the_draft(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    client = logged_in(staff.physician)
    summary = approved_summary(db, job_queue, model, client)
    letter_id = request_referral(client, summary)
    model.extend([httpx.ConnectError("down")] * 5)
    run_jobs(job_queue)
    page = client.get(f"/medecin/documents/{letter_id}", headers=HTML).text
    assert "pas pu être rédigé" in page and "Réessayer la rédaction" in page
    model.extend([letter_call()])
    retried = client.post(f"/medecin/documents/{letter_id}/relancer", follow_redirects=False)
    assert retried.status_code == 303
    run_jobs(job_queue)
    db.expire_all()
    assert db.get(GeneratedDocument, letter_id).model == "scripted (test)"
    state = client.get(f"/medecin/documents/{letter_id}/etat", headers=JSON).json()
    assert state == {"state": "ready", "review": "draft"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def payload(result) -> Any:
    assert not result.isError, result.content
    if len(result.content) == 1:
        return json.loads(result.content[0].text)
    return [json.loads(c.text) for c in result.content]


@pytest.mark.anyio
async def test_letters_mcp_tools(db: Session, job_queue, model, engine, settings, staff) -> None:
    client_actor = Actor(kind=ActorKind.agent, id="1", name="assistant (secretaire)")
    server = create_letters_server(ToolRuntime(engine, settings, client_actor))
    document = summarized(db, job_queue, model)
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        listed = payload(await client.call_tool("list_letter_templates", {}))
        assert {t["id"] for t in listed} == {"adressage", "certificat", "compte_rendu", "consignes"}
        assert {"destinataire", "motif"} == set(
            next(t for t in listed if t["id"] == "adressage")["fields"]
        )
        unknown = await client.call_tool(
            "draft_letter", {"patient_id": document.patient_id, "template": "lettre"}
        )
        assert unknown.isError and "adressage" in unknown.content[0].text
        drafted = payload(
            await client.call_tool(
                "draft_letter",
                {
                    "patient_id": document.patient_id,
                    "template": "certificat",
                    "instruction": "Certificat de non contre-indication au football",
                },
            )
        )
        assert drafted["state"] == "pending" and drafted["review"] == "draft"
        pending = payload(await client.call_tool("get_letter", {"letter_id": drafted["id"]}))
        assert pending["state"] == "pending" and pending["pdf"] is None
        model.extend([letter_call(body="Aucune contre-indication retrouvée.", objet="Football")])
        run_jobs(job_queue)
        ready = payload(await client.call_tool("get_letter", {"letter_id": drafted["id"]}))
    assert ready["state"] == "ready" and ready["review"] == "draft" and ready["pdf"] is None
    assert "Aucune contre-indication retrouvée." in ready["text"] and "BROUILLON" in ready["text"]
    letter = db.get(GeneratedDocument, drafted["id"])
    # No summary was approved for this patient: the draft rests on the instruction alone,
    # and no physician signs it until one approves it.
    assert letter.content["summary_id"] is None and letter.content["signatory_id"] is None
    [request] = db.exec(select(AuditEvent).where(AuditEvent.action == "letter.request")).all()
    assert request.actor_name == "assistant (secretaire)"
    calls = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert {c.record_id for c in calls} >= {"list_letter_templates", "draft_letter", "get_letter"}


def test_without_a_model_the_letter_is_prefilled_from_the_record(
    db: Session, job_queue, logged_in, staff, monkeypatch
) -> None:
    monkeypatch.setattr(summary_jobs, "model_for", lambda settings: None)
    monkeypatch.setattr(letter_jobs, "model_for", lambda settings: None)
    client = logged_in(staff.physician)
    p = submitted(db)
    run_jobs(job_queue)
    summary = summaries.summary_document(db, p.id or 0)
    assert summary is not None and summary.model == "résumé structuré (sans modèle)"
    assert client.post(f"/medecin/documents/{summary.id}/approuver").status_code == 200
    db.expire_all()
    summary = db.get(GeneratedDocument, summary.id)
    letter_id = request_referral(client, summary, instruction="")
    run_jobs(job_queue)
    db.expire_all()
    letter = db.get(GeneratedDocument, letter_id)
    assert letter is not None and letter.status == ReviewStatus.draft
    assert letter.model == letters.PREFILL_LABEL and letter.timings["prefilled"] is True
    appointment = db.get(Appointment, summary.appointment_id)
    expected_reason = appointment.reason or "Toux depuis 3 jours"
    assert letter.content["fields"] == {"destinataire": "", "motif": expected_reason}
    body = letter.content["body"]
    assert body.startswith("Je vous adresse cette patiente de ") and " ans pour " in body
    assert "Symptômes : Toux, Fièvre" in body or "Symptômes : Fièvre, Toux" in body
    assert "Intensité : 4/10" in body and "Marie Durand" in letter.text
    assert "le " in body.split(".")[0]  # the appointment's date

    edited = client.post(
        f"/medecin/documents/{letter_id}/courrier",
        data={"field-destinataire": "Dr Dupont, pneumologue", "field-motif": "Toux", "body": body},
        follow_redirects=False,
    )
    assert edited.status_code == 303
    assert client.post(f"/medecin/documents/{letter_id}/approuver").status_code == 200
    response = client.get(f"/courriers/{letter_id}.pdf")
    assert response.status_code == 200
    text = flat(
        "\n".join(pg.extract_text() for pg in PdfReader(io.BytesIO(response.content)).pages)
    )
    assert "Marie Durand" in text and "Cabinet médical" in text and "Dr Dupont, pneumologue" in text


def test_fields_a_model_leaves_empty_keep_the_prefill(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    client = logged_in(staff.physician)
    summary = approved_summary(db, job_queue, model, client)
    letter_id = request_referral(client, summary)
    model.extend([letter_call(motif="")])
    run_jobs(job_queue)
    db.expire_all()
    letter = db.get(GeneratedDocument, letter_id)
    assert letter is not None and letter.model == "scripted (test)"
    assert letter.content["fields"]["destinataire"] == "Dr Dupont, cardiologue"
    assert letter.content["fields"]["motif"]  # from the appointment or the summary
    assert "souffle systolique" in letter.content["body"]  # the model wrote the body

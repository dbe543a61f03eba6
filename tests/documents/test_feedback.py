"""Quality feedback: ratings, rejections and edit distances per model and prompt version, and
the pseudonymised export, checked against every patient of the demo practice."""

import json
import re

import pytest
from sqlmodel import Session, col, select

from agents.scripted_model import ScriptedChatModel
from app.services.documents import feedback
from app.services.documents.pseudonymise import Pseudonymiser, scrub
from app.services.operations.demo import seed_demo
from models.audit import AuditEvent
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument, ReviewStatus
from models.patients import Patient
from tests.conftest import login
from tests.support.review_helpers import narrative_at, scripted_model, summarized

DEMO_PATIENTS = 25


@pytest.fixture
def model(monkeypatch) -> ScriptedChatModel:
    return scripted_model(monkeypatch)


def national(phone: str) -> str:
    """+33612345678 -> 0612345678."""
    return "0" + phone[3:] if phone.startswith("+33") else phone


def spaced(digits: str) -> str:
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def nir_spaced(nir: str) -> str:
    return f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"


def identifiers_text(p: Patient) -> str:
    """A text quoting every identifier of a patient, in the forms people write them."""
    last = p.used_name or p.birth_name
    return (
        f"{p.first_name} {last.title()} (née {p.birth_name.title()}), née le "
        f"{p.birth_date:%d/%m/%Y} ({p.birth_date.isoformat()}), NIR {nir_spaced(p.nir or '')}, "
        f"tél. {spaced(national(p.phone or ''))} ou {p.phone}, courriel {p.email}, "
        f"domicile {p.address_line}, {p.postal_code} {p.city}. Mme {last.upper()} va mieux."
    )


def add_document(db: Session, p: Patient, kind: DocumentKind, **values) -> GeneratedDocument:
    text = identifiers_text(p)
    document = GeneratedDocument(
        kind=kind,
        patient_id=p.id or 0,
        template="adressage" if kind == DocumentKind.letter else None,
        content={"fields": {"destinataire": f"Dr Roux pour {p.first_name}"}, "body": text}
        if kind == DocumentKind.letter
        else {"sections": [{"title": "Motif", "sentences": [{"text": text, "sources": []}]}]},
        text=text,
        model=values.pop("model", "qwen3:8b (ollama)"),
        prompt_id="letter_draft" if kind == DocumentKind.letter else "preconsultation_summary",
        prompt_version="1",
        prompt_hash="0" * 64,
        **values,
    )
    db.add(document)
    db.flush()
    db.add(DocumentVersion(document_id=document.id or 0, number=1, text=text + " Brouillon."))
    return document


def word_in(word: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.I) is not None


def test_pseudonymised_export_holds_no_demo_patient_identifier(
    db: Session, settings, client, job_queue, model
) -> None:
    seeded = seed_demo(db, settings, patients=DEMO_PATIENTS)
    db.commit()
    complete = db.exec(
        select(Patient)
        .where(col(Patient.nir).is_not(None), col(Patient.email).is_not(None))
        .order_by(col(Patient.id))
    ).all()[:3]
    assert len(complete) == 3
    first, second, third = complete
    add_document(
        db,
        first,
        DocumentKind.summary,
        status=ReviewStatus.rejected,
        rejection_reason=f"Confond avec le {spaced(national(first.phone or ''))}",
    )
    add_document(
        db, first, DocumentKind.letter, status=ReviewStatus.approved, rating=4,
        review_comment=f"Écrire à {first.email}",
    )  # fmt: skip
    add_document(db, second, DocumentKind.letter, status=ReviewStatus.draft)
    # A third patient is named inside another patient's document.
    add_document(
        db,
        second,
        DocumentKind.summary,
        status=ReviewStatus.approved,
        review_comment=f"Voir aussi {third.first_name} {third.birth_name} au {third.phone}",
    )
    db.commit()
    # And a real pre-consultation whose answers quote the patient's own identity.
    summarized(db, job_queue, model, {"motif": "Marie Durand, née le 02/01/1980, tousse"})

    assert login(client, "admin", seeded.credentials["admin"]).status_code == 303
    response = client.get("/admin/retours/export.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/json"
    )
    exported = response.text
    data = json.loads(exported)
    stored = len(db.exec(select(GeneratedDocument)).all())
    assert stored == 5 + seeded.preconsultations + seeded.letters  # the demo's own documents
    assert len(data["documents"]) == stored
    about = {d["patient"] for d in data["documents"]}
    patients = db.exec(select(Patient)).all()
    assert len(patients) == DEMO_PATIENTS + 1
    with_documents = {first.id, second.id} | {
        p.id for p in patients if p.birth_name == "DURAND" and p.first_name == "Marie"
    }
    folded = exported.casefold()
    for p in patients:
        for value in filter(None, [p.email]):
            assert value.casefold() not in folded, p.id
        for value in filter(None, [p.nir]):
            assert value not in exported and nir_spaced(value) not in exported, p.id
        if p.phone:
            for form in (p.phone, national(p.phone), spaced(national(p.phone))):
                assert form not in exported, (p.id, form)
        for last in {p.birth_name, p.used_name or p.birth_name}:
            for full in (f"{p.first_name} {last}", f"{last} {p.first_name}"):
                assert full.casefold() not in folded, (p.id, full)
        if p.id in with_documents:
            for name in filter(None, [p.birth_name, p.used_name, p.first_name, p.city]):
                assert not word_in(name, exported), (p.id, name)
            for form in (f"{p.birth_date:%d/%m/%Y}", p.birth_date.isoformat()):
                assert form not in exported, (p.id, form)
            for value in filter(None, [p.address_line, p.postal_code]):
                assert value.casefold() not in folded, (p.id, value)
    # Consistent: one patient, one code, wherever the identifier appears.
    code = Pseudonymiser.from_session(db).code(first.id)
    assert code in about
    assert f"[TEL-{code}]" in exported and f"[EMAIL-{code}]" in exported
    assert f"[NIR-{code}]" in exported and f"[NAISSANCE-{code}]" in exported
    assert f"[ADRESSE-{code}]" in exported and f"[NOM-{code}]" in exported
    third_code = Pseudonymiser.from_session(db).code(third.id)
    assert f"[PATIENT-{third_code}]" in exported and f"[TEL-{third_code}]" in exported
    # What a model was given comes with it (the answers, pseudonymised).
    summary = next(d for d in data["documents"] if d["inputs"].get("answers"))
    assert any("tousse" in a["answer"] for a in summary["inputs"]["answers"])
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "feedback.export")).all()
    assert event.details == {"documents": stored, "pseudonymised": True}


def test_feedback_page_aggregates_per_model_and_prompt_version(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    kept = summarized(db, job_queue, model)
    copied = ("kind", "patient_id", "appointment_id", "preconsultation_id", "content", "text")
    copied += ("model", "prompt_id", "prompt_version", "prompt_hash", "input_refs", "timings")
    dropped = GeneratedDocument(**{name: getattr(kept, name) for name in copied})
    db.add(dropped)
    db.flush()
    db.add(DocumentVersion(document_id=dropped.id or 0, number=1, text=kept.text))
    db.commit()
    physician = logged_in(staff.physician)
    physician.post(
        f"/medecin/documents/{kept.id}/phrases/{narrative_at(kept)}/0",
        data={"text": "Toux sèche depuis trois jours, surtout la nuit."},
    )
    physician.post(f"/medecin/documents/{kept.id}/approuver")
    physician.post(f"/medecin/documents/{kept.id}/note", data={"rating": "4"})
    physician.post(f"/medecin/documents/{dropped.id}/rejeter", data={"reason": "Hors sujet"})
    physician.post(f"/medecin/documents/{dropped.id}/note", data={"rating": "1"})

    db.expire_all()
    [row] = feedback.feedback_table(db, Pseudonymiser.from_session(db))
    assert (row.kind, row.model, row.prompt) == (
        "summary",
        "scripted (test)",
        "preconsultation_summary v1",
    )
    assert (row.documents, row.approved, row.rejected, row.drafts) == (2, 1, 1, 0)
    assert row.mean_rating == 2.5 and sorted(row.distances)[0] == 0
    assert max(row.distances) == feedback.edit_distance(
        "Toux depuis 3 jours.", "Toux sèche depuis trois jours, surtout la nuit."
    )
    assert row.edited_share == 0.5 and row.reasons == ["Hors sujet"]

    page = logged_in(staff.admin).get("/admin/retours", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "scripted (test)" in page.text and "preconsultation_summary v1" in page.text
    assert "Hors sujet" in page.text and 'href="/admin/retours/export.json"' in page.text
    assert logged_in(staff.physician).get("/admin/retours").status_code == 403


def test_edit_distance_counts_changed_words() -> None:
    assert feedback.edit_distance("a b c d", "a b c d") == 0
    assert feedback.edit_distance("a b c d", "a x c d") == 1
    assert feedback.edit_distance("a b c d", "a b c d e f") == 2
    assert feedback.edit_distance("", "un deux trois") == 3


def test_scrub_without_a_database() -> None:
    line = "rappeler jean.dupont@example.org au 06 12 34 56 78 (NIR 1 80 01 75 123 456 78)"
    out = scrub(line)
    assert "example.org" not in out and "06 12" not in out and "123 456" not in out
    assert out.startswith("rappeler [EMAIL-X001] au [TEL-X001] (NIR [NIR-X001])")

"""The assistant's conversations hold patient data: an RGPD erasure deletes the ones that
mention the patient (and only those), the retention period deletes old ones, and a store that
cannot be reached stops the erasure before anything changes."""

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pypdf
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, call, say
from app.services.assistant import memory as conversation_memory
from app.services.assistant.memory import (
    ConversationStoreUnavailable,
    PatientMarks,
    mentions,
    open_store,
    purge_expired,
)
from app.services.core.audit import Actor
from models.assistant_usage import AssistantUsage
from models.audit import ActorKind, AuditEvent
from models.conversations import Conversation
from models.patients import Patient, Sex
from models.types import utcnow
from tests.assistant.test_secretary_chat import events
from tests.privacy.test_rgpd import two_patients  # noqa: F401 (fixture)

HTML = {"accept": "text/html"}
SYSTEM = Actor(kind=ActorKind.system, name="test")


def marks() -> PatientMarks:
    patient = Patient(
        id=7,
        birth_name="Durand",
        used_name="Lefèvre",
        first_name="Marie-Hélène",
        birth_date=date(1980, 2, 3),
        sex=Sex.female,
        phone="+33612345678",
        email="marie.durand@example.org",
        nir="280012A01234567",
    )
    return PatientMarks.of(patient)


@pytest.mark.parametrize(
    "messages",
    [
        [AIMessage("", tool_calls=[{"name": "cancel", "args": {"patient_id": 7}, "id": "1"}])],
        [ToolMessage(json.dumps({"patient_id": 7, "start": "lundi"}), tool_call_id="1")],
        [HumanMessage("RDV pour MARIE HELENE DURAND svp")],
        [HumanMessage("Mme Lefevre Marie-Hélène a appelé")],
        [HumanMessage("rappeler le 06 12 34 56 78")],
        [HumanMessage("son mail : Marie.Durand@example.org")],
    ],
)
def test_a_conversation_naming_the_patient_is_found(messages) -> None:
    assert mentions(messages, [], marks())


@pytest.mark.parametrize(
    "messages",
    [
        [HumanMessage("RDV pour Marie Dupont")],
        [HumanMessage("Hélène Durandal")],
        [AIMessage("", tool_calls=[{"name": "x", "args": {"patient_id": 77}, "id": "1"}])],
        [ToolMessage(json.dumps({"patient_id": 70}), tool_call_id="1")],
        [HumanMessage("Quels sont les horaires du cabinet ?")],
    ],
)
def test_other_conversations_are_not_taken_for_the_patient(messages) -> None:
    assert not mentions(messages, [], marks())


def test_a_pending_proposal_counts() -> None:
    assert mentions([], [{"action_requests": [{"args": {"patient_id": 7}}]}], marks())


def _new_chat(client) -> int:
    created = client.post("/secretariat/conversations", headers=HTML, follow_redirects=False)
    assert created.status_code == 303, created.text
    return int(created.headers["location"].rsplit("/", 1)[1])


def _saved(settings, thread_id: str) -> bool:
    with open_store(settings) as saver:
        assert saver is not None
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        return saver.get_tuple(config) is not None


def test_erasing_a_patient_deletes_the_conversations_that_mention_them(
    app,
    settings,
    two_patients,  # noqa: F811 (the fixture imported above)
    logged_in,
    staff,
    db: Session,
) -> None:
    a, _ = two_patients
    client = logged_in(staff.secretary)
    ids = {}
    for key, script, message in [
        ("a", [call("find_patients", query="Durand"), say("Trouvée.")], "Mme Durand ?"),
        ("b", [call("find_patients", query="Bonnefoy"), say("Trouvé.")], "M. Bonnefoy ?"),
        ("none", [say("Du lundi au vendredi.")], "Quels horaires ?"),
    ]:
        conversation = _new_chat(client)
        app.state.assistant.model_override = ScriptedChatModel(script=script)
        events(
            client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": message})
        )
        ids[key] = conversation
    threads = {k: db.get(Conversation, v).thread_id for k, v in ids.items()}  # type: ignore[union-attr]
    assert all(_saved(settings, t) for t in threads.values())

    admin = logged_in(staff.admin)
    done = admin.post(
        f"/admin/rgpd/{a}/erase",
        data={"confirm_name": "Durand", "reason": "patient_request"},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    db.expire_all()
    assert db.get(Conversation, ids["a"]) is None
    assert not _saved(settings, threads["a"])
    for key in ("b", "none"):
        assert db.get(Conversation, ids[key]) is not None
        assert _saved(settings, threads[key])
    erase = db.exec(select(AuditEvent).where(AuditEvent.action == "patient.erase")).one()
    assert erase.details["conversations_deleted"] == 1

    # The secretary's remaining conversation still opens with its history.
    secretary = logged_in(staff.secretary)
    state = secretary.get(f"/api/secretariat/c/{ids['b']}").json()
    assert state["messages"][0]["text"] == "M. Bonnefoy ?"
    assert secretary.get(f"/api/secretariat/c/{ids['a']}").status_code == 404


def test_the_rgpd_export_holds_the_conversations_about_the_patient_only(
    app,
    two_patients,  # noqa: F811 (the fixture imported above)
    logged_in,
    staff,
) -> None:
    a, _ = two_patients
    client = logged_in(staff.secretary)
    for script, message in [
        ([call("find_patients", query="Durand"), say("Trouvée.")], "Mme Durand ?"),
        ([call("find_patients", query="Bonnefoy"), say("Trouvé.")], "M. Bonnefoy ?"),
    ]:
        conversation = _new_chat(client)
        app.state.assistant.model_override = ScriptedChatModel(script=script)
        events(
            client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": message})
        )
    admin = logged_in(staff.admin)
    data = admin.get(f"/admin/rgpd/{a}/export.json").json()
    [found] = data["assistant_conversations"]
    assert found["title"] == "Mme Durand ?"
    roles = [m["role"] for m in found["messages"]]
    assert roles == ["secretary", "tool_call", "tool_result", "assistant"]
    assert "Durand" in found["messages"][2]["text"]
    assert "Bonnefoy" not in json.dumps(data["assistant_conversations"], ensure_ascii=False)
    pdf = admin.get(f"/admin/rgpd/{a}/export.pdf")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Conversations de l'assistant (1)" in text and "Mme Durand ?" in text


def test_an_unreachable_store_stops_the_erasure_before_any_change(
    app,
    two_patients,  # noqa: F811 (the fixture imported above)
    logged_in,
    staff,
    db: Session,
    monkeypatch,
) -> None:
    a, _ = two_patients
    client = logged_in(staff.secretary)
    conversation = _new_chat(client)
    app.state.assistant.model_override = ScriptedChatModel(script=[say("Oui.")])
    events(
        client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "Durand Marie"})
    )

    @contextmanager
    def down(settings) -> Iterator[None]:
        raise ConversationStoreUnavailable()
        yield None

    monkeypatch.setattr(conversation_memory, "open_store", down)
    admin = logged_in(staff.admin)
    refused = admin.post(
        f"/admin/rgpd/{a}/erase",
        data={"confirm_name": "Durand", "reason": "patient_request"},
        headers=HTML,
    )
    assert refused.status_code == 503
    assert "inaccessible pour le moment" in refused.text
    db.expire_all()
    assert db.get(Patient, a).birth_name == "Durand"  # type: ignore[union-attr]
    assert db.get(Conversation, conversation) is not None
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "patient.erase")).all()


def test_conversations_older_than_the_retention_period_are_deleted(
    app, settings, logged_in, staff, db: Session
) -> None:
    client = logged_in(staff.secretary)
    old, recent = _new_chat(client), _new_chat(client)
    for conversation in (old, recent):
        app.state.assistant.model_override = ScriptedChatModel(script=[say("Bonjour.")])
        events(client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "?"}))
    row = db.get(Conversation, old)
    assert row is not None
    thread = row.thread_id
    row.updated_at = utcnow() - timedelta(days=settings.assistant_retention_days + 1)
    db.add(row)
    db.commit()

    db.add(AssistantUsage(user_id=row.user_id, occurred_at=utcnow() - timedelta(days=91)))
    db.add(AssistantUsage(user_id=row.user_id, input_tokens=5))
    db.commit()

    assert purge_expired(app.state.engine, settings) == 1
    db.expire_all()
    assert db.get(Conversation, old) is None and not _saved(settings, thread)
    assert db.get(Conversation, recent) is not None
    purge = db.exec(select(AuditEvent).where(AuditEvent.action == "assistant.purge")).one()
    assert purge.details == {"deleted": 1, "retention_days": settings.assistant_retention_days}
    assert purge_expired(app.state.engine, settings) == 0  # nothing more to do
    kept = db.exec(select(AssistantUsage)).all()
    assert 5 in [u.input_tokens for u in kept]  # recent usage stays, the old row is gone
    assert all(u.occurred_at > utcnow() - timedelta(days=90) for u in kept)

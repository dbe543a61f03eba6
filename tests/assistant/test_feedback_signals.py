"""The online quality signals: every proposal of the assistant and the secretary's decision
are recorded through the real secretariat routes, and /admin/retours/assistant shows the
rates, turns per task, tool errors and time to decision, with a drift alert past the
admin's threshold."""

import json
import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, call, say
from app.services.assistant import feedback_signals
from app.services.core.audit import Actor
from app.services.core.errors import InvalidInput
from models.audit import AuditEvent
from models.model_governance import AssistantProposal, ModelGovernance
from tests.support.practice import PARIS, add_patient, add_practitioner


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def next_monday() -> datetime:
    today = datetime.now(PARIS).date()
    day = today + timedelta(days=7 - today.weekday())
    return datetime(day.year, day.month, day.day, 8, 30, tzinfo=PARIS)


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


# The decision of each of the first eight tasks (one message, one proposal, one decision).
PLAN: list[dict[str, Any]] = [
    {"type": "approve"},
    {"type": "approve"},
    {"type": "edit", "minutes": 330},
    {"type": "reject", "message": "Pas ce jour-là"},
    {"type": "approve"},
    {"type": "reject"},
    {"type": "edit", "minutes": 360},
    {"type": "approve"},
]


def test_twenty_turns_give_the_figures_and_a_drift_alert(
    app, logged_in, staff, practice, db: Session
) -> None:
    monday = next_monday()
    book = dict(patient_id=practice["patient"], practitioner_id=practice["practitioner"])

    def slot(minutes: int) -> str:
        return (monday + timedelta(minutes=minutes)).isoformat()

    script: list[Any] = []
    for number in range(8):
        script += [call("book_appointment", **book, start=slot(30 * number)), say("C'est noté.")]
    script += [
        call("find_slots", start_date="pas une date"),  # a tool error on the way
        say("Pour quel jour ?"),
        call("book_appointment", **book, start=slot(240)),
        say("D'accord, je n'ai rien réservé."),
        say("Avec plaisir."),
    ]
    app.state.assistant.model_override = ScriptedChatModel(script=script)
    client = logged_in(staff.secretary)
    conversation = int(
        client.get("/secretariat", follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    )
    base = f"/api/secretariat/c/{conversation}"
    turns = 0

    def message(text: str) -> list[dict[str, Any]]:
        nonlocal turns
        turns += 1
        return events(client.post(f"{base}/messages", json={"message": text}))

    def decide(decision: dict[str, Any]) -> list[dict[str, Any]]:
        nonlocal turns
        turns += 1
        return events(client.post(f"{base}/decisions", json={"decisions": [decision]}))

    for number, plan in enumerate(PLAN):
        sent = message(f"Rendez-vous numéro {number + 1}")
        assert sent[-2]["type"] == "confirm"
        decision = {k: v for k, v in plan.items() if k != "minutes"}
        if plan["type"] == "edit":
            decision["args"] = {"start": slot(plan["minutes"])}
        decide(decision)
    asked = message("Un rendez-vous pour Mme Durand")
    assert asked[-2] == {"type": "answer", "text": "Pour quel jour ?", "sources": ["find_slots"]}
    assert [e["status"] for e in asked if e["type"] == "tool"] == ["error"]
    assert message("Lundi")[-2]["type"] == "confirm"
    decide({"type": "reject", "message": "Mauvais patient"})
    assert message("Merci")[-2]["type"] == "answer"
    assert turns == 20

    db.expire_all()
    rows = list(db.exec(select(AssistantProposal).order_by(AssistantProposal.id)))  # type: ignore[arg-type]
    assert [r.decision for r in rows] == [
        "approve",
        "approve",
        "edit",
        "reject",
        "approve",
        "reject",
        "edit",
        "approve",
        "reject",
    ]
    assert [r.turns for r in rows] == [1] * 8 + [2]
    assert [r.tool_errors for r in rows] == [0] * 8 + [1]
    assert rows[2].edited_args == ["start"] and rows[3].refusal_reason == "Pas ce jour-là"
    assert rows[5].refusal_reason == ""  # refused without a reason
    assert all(r.seconds_to_decision is not None and r.decided_at for r in rows)
    assert {r.tool for r in rows} == {"book_appointment"}
    assert {r.conversation_id for r in rows} == {conversation}
    assert len({(r.model, r.provider, r.prompt_version) for r in rows}) == 1
    assert rows[0].prompt_version >= 1

    admin = logged_in(staff.admin)
    page = admin.get("/admin/retours/assistant")
    assert page.status_code == 200
    html = page.text

    def cell(name: str) -> str:
        found = re.search(rf'data-cell="{name}">([^<]*)<', html)
        assert found, name
        return found.group(1).strip()

    assert cell("approval") == "44 %"  # 4 / 9
    assert cell("edit") == "22 %"  # 2 / 9
    assert cell("refusal") == "33 %"  # 3 / 9
    assert cell("turns") == "1.11"  # (8 × 1 + 2) / 9
    assert cell("tool-errors") == "1"
    median = statistics.median(r.seconds_to_decision or 0 for r in rows)
    assert cell("seconds") == str(round(median, 1))
    assert "<code>start</code> (2)" in html and "Mauvais patient" in html
    # 9 decisions, below the default minimum of 10 for an alert.
    assert 'data-testid="no-alert"' in html

    # The admin lowers the thresholds: 33 % of refusals now crosses 25 %.
    form = {"max_refusal": "25", "max_edit": "50", "min_approval": "40", "min_decisions": "5"}
    saved = admin.post(
        "/admin/retours/assistant/seuils",
        data=form,
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    html = admin.get("/admin/retours/assistant").text
    alerts = re.findall(r'data-measure="(\w+)">([^<]*)<', html)
    assert [measure for measure, _ in alerts] == ["refusal"]
    assert "33 % de refus (seuil 25 %, 9 décisions)" in alerts[0][1]
    audit = db.exec(select(AuditEvent).where(AuditEvent.action == "model.thresholds")).one()
    assert audit.details["after"]["max_refusal_rate"] == 0.25

    # Out of range: a clear 422 in French, nothing saved.
    bad = admin.post(
        "/admin/retours/assistant/seuils",
        data={**form, "max_refusal": "150"},
    )
    assert bad.status_code == 422 and "entre 0 et 100" in bad.text
    db.expire_all()
    assert db.get(ModelGovernance, 1).max_refusal_rate == 0.25  # type: ignore[union-attr]

    # Admin only.
    assert logged_in(staff.secretary).get("/admin/retours/assistant").status_code == 403


def test_decision_time_and_edited_names(db: Session) -> None:
    proposed_at = datetime(2027, 3, 15, 9, 0, tzinfo=UTC)
    row = AssistantProposal(
        conversation_id=7, tool="cancel_appointment", provider="rules", model="rules"
    )
    row.proposed_at = proposed_at
    db.add(row)
    db.commit()
    action = {"name": "cancel_appointment", "args": {"appointment_id": 3, "reason": "x"}}
    resolved = feedback_signals.resolve_proposals(
        db,
        7,
        [(action, "edit", {"appointment_id": 3, "reason": "y"}, "")],
        now=proposed_at + timedelta(seconds=42),
    )
    assert resolved == 1
    assert row.decision == "edit" and row.edited_args == ["reason"]
    assert row.seconds_to_decision == 42.0
    # Edited with the same values: an approval.
    other = AssistantProposal(conversation_id=8, tool="t", provider="rules", model="rules")
    db.add(other)
    db.flush()
    feedback_signals.resolve_proposals(
        db, 8, [({"name": "t", "args": {"a": 1}}, "edit", {"a": 1}, "")]
    )
    assert other.decision == "approve" and other.edited_args == []


def test_thresholds_are_validated(db: Session) -> None:
    actor = Actor.system("test")
    with pytest.raises(InvalidInput):
        feedback_signals.update_thresholds(
            db,
            actor,
            max_refusal_percent=-1,
            max_edit_percent=50,
            min_approval_percent=40,
            min_decisions=10,
        )
    with pytest.raises(InvalidInput):
        feedback_signals.update_thresholds(
            db,
            actor,
            max_refusal_percent=30,
            max_edit_percent=50,
            min_approval_percent=40,
            min_decisions=0,
        )


def test_weeks_follow_the_practice_time_zone() -> None:
    tz = ZoneInfo("Europe/Paris")
    # Sunday 23:30 UTC is already Monday in Paris.
    assert feedback_signals.week_of(datetime(2027, 3, 14, 23, 30, tzinfo=UTC), tz).isoformat() == (
        "2027-03-15"
    )

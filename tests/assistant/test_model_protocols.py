"""The secretary through the real HTTP clients: ``ChatOllama`` against a loopback Ollama and
``ChatOpenAI`` against a loopback vLLM (``tests/support/model_servers``), built by
``agents/models.py`` from the settings as in production, through the web app, the agent graph,
the MCP tools, the confirmation cards and the conversation memory."""

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import HumanMessage, ToolMessage
from sqlmodel import Session, select

from agents.hybrid_model import BY, HybridChatModel
from agents.malformed_calls import GIVE_UP
from agents.rules.model import RulesChatModel
from agents.scripted_model import ScriptedChatModel, say
from app.config.settings import Settings
from evals.secretary import evaluate
from evals.secretary_models import model_source, parse_model
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from tests.assistant.test_secretary_chat import chat, events
from tests.support.model_servers import (
    ChatRequest,
    Failure,
    OllamaServer,
    OpenAIServer,
    Reply,
    Script,
    ToolCall,
)
from tests.support.model_servers.base import ModelServer
from tests.support.practice import PARIS, add_patient, add_practitioner

OLLAMA_MODEL = "qwen3:8b"
VLLM_MODEL = "Qwen/Qwen3-8B"


@pytest.fixture(params=["ollama", "openai"])
def model_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server: ModelServer = (
        OllamaServer(models=(OLLAMA_MODEL,))
        if request.param == "ollama"
        else OpenAIServer(models=(VLLM_MODEL,))
    )
    with server:
        yield server


def pointed_at(settings: Settings, server: ModelServer, **extra: Any) -> Settings:
    """The app's settings with the LLM provider served by ``server``."""
    if isinstance(server, OpenAIServer):
        update = {"llm_provider": "openai", "openai_base_url": server.base_url}
        update["llm_model"] = VLLM_MODEL
    else:
        update = {"llm_provider": "ollama", "ollama_url": server.url, "llm_model": OLLAMA_MODEL}
    # Not hybrid unless asked: these tests are about the LLM's own answers.
    values = {**update, "llm_timeout_seconds": 10.0, "llm_hybrid": False, **extra}
    return settings.model_copy(update=values)


@pytest.fixture
def settings(settings: Settings, model_server: ModelServer) -> Settings:
    return pointed_at(settings, model_server)


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


def next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def booked(db: Session) -> list[Appointment]:
    db.expire_all()
    return list(db.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)))


def last_tool_items(request: ChatRequest) -> list[dict[str, Any]]:
    """The JSON objects of the latest tool result, as the client sent it on the wire."""
    tool = next(m for m in reversed(request.messages) if m.get("role") == "tool")
    content = tool["content"]  # Ollama: the blocks' text joined; OpenAI: the blocks
    blocks = content if isinstance(content, list) else [{"text": content}]
    text, decoder = "\n".join(str(b.get("text", "")) for b in blocks), json.JSONDecoder()
    items: list[dict[str, Any]] = []
    position = 0
    while (start := text.find("{", position)) >= 0:  # one JSON object a content block
        value, position = decoder.raw_decode(text, start)
        items.append(value)
    return items


def booking(practice: dict[str, int], *, argument_pieces: int = 4) -> list[Any]:
    """find_patients, find_slots, then book the first slot the tool returned."""
    monday = next_monday().isoformat()

    def book(request: ChatRequest) -> Reply:
        start = last_tool_items(request)[0]["start"]
        args = {
            "patient_id": practice["patient"],
            "practitioner_id": practice["practitioner"],
            "start": start,
        }
        return Reply(
            tool_calls=[ToolCall("book_appointment", args)], argument_pieces=argument_pieces
        )

    return [
        Reply(
            text="Je cherche la patiente.",
            tool_calls=[ToolCall("find_patients", {"query": "Durand"})],
        ),
        Reply(
            tool_calls=[
                ToolCall(
                    "find_slots",
                    {"start_date": monday, "practitioner_id": practice["practitioner"]},
                )
            ],
            argument_pieces=argument_pieces,
        ),
        book,
    ]


def send(client: TestClient, conversation: int, message: str) -> list[dict[str, Any]]:
    return events(
        client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": message})
    )


def approve(client: TestClient, conversation: int) -> list[dict[str, Any]]:
    return events(
        client.post(
            f"/api/secretariat/c/{conversation}/decisions",
            json={"decisions": [{"type": "approve"}]},
        )
    )


# -- the happy path, with a tool call in many pieces ---------------------------------------
def test_booking_with_tool_calls_in_many_chunks(
    model_server, logged_in, staff, practice, db: Session
) -> None:
    """Every tool call's arguments come in one-or-two-character fragments (vLLM) and the text
    one character a chunk (both), and the booking still goes through the card."""
    model_server.play(
        [
            *booking(practice, argument_pieces=60),
            Reply(text="C'est réservé lundi à 08:30.", pieces=28),
        ]
    )
    client = logged_in(staff.secretary)
    conversation = chat(client)
    sent = send(client, conversation, "RDV lundi pour Sophie Durand")
    assert [e["type"] for e in sent][-2:] == ["confirm", "done"], sent
    assert sent[-2]["actions"][0]["name"] == "book_appointment"
    tokens = "".join(e["text"] for e in sent if e["type"] == "token")
    assert tokens == "Je cherche la patiente."
    assert booked(db) == []  # proposed, not done

    card = client.get(f"/api/secretariat/c/{conversation}").json()["pending"][0]
    details = dict(map(tuple, card["details"]))
    assert details["Patient"].startswith("Durand Sophie")
    assert details["Début"].endswith("à 08:30")

    done = approve(client, conversation)
    assert done[-2] == {
        "type": "answer",
        "text": "C'est réservé lundi à 08:30.",
        "sources": ["book_appointment"],
    }
    [appointment] = booked(db)
    start = appointment.starts_at.astimezone(PARIS)
    assert (start.date(), start.hour, start.minute) == (next_monday(), 8, 30)

    requests = model_server.requests
    assert model_server.errors == []
    assert len(requests) == 4 and all(r.stream for r in requests)
    assert {"find_patients", "find_slots", "book_appointment"} <= set(requests[0].tool_names)
    # The client sent back each call with its result, and the secretary's approval ran it.
    roles = [m["role"] for m in requests[-1].messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    # The tokens the server reported are the ones the token budget counted.
    used = client.get(f"/api/secretariat/c/{conversation}").json()["budget"]["used"]
    reported = sum(len(json.dumps(r.messages)) // 4 for r in requests)
    assert used >= reported


def test_the_model_is_checked_and_named_as_configured(model_server, logged_in, staff) -> None:
    client = logged_in(staff.secretary)
    page = client.get(f"/secretariat/c/{chat(client)}")
    assert page.status_code == 200
    name = VLLM_MODEL if isinstance(model_server, OpenAIServer) else OLLAMA_MODEL
    assert name in page.text


# -- a malformed tool call ------------------------------------------------------------------
def malformed(practice: dict[str, int]) -> ToolCall:
    return ToolCall(
        "book_appointment",
        f'{{"patient_id": {practice["patient"]}, '
        f'"practitioner_id": {practice["practitioner"]}, "start": 2027-03-1',
    )


def test_a_malformed_tool_call_is_retried_once_and_nothing_is_written(
    model_server, logged_in, staff, practice, db: Session
) -> None:
    model_server.play(
        [
            Reply(tool_calls=[malformed(practice)], argument_pieces=9),
            Reply(text="Pour quelle date exactement ?"),
        ]
    )
    client = logged_in(staff.secretary)
    conversation = chat(client)
    sent = send(client, conversation, "RDV pour Sophie Durand")
    assert sent[-2] == {"type": "answer", "text": "Pour quelle date exactement ?", "sources": []}
    assert booked(db) == []
    assert client.get(f"/api/secretariat/c/{conversation}").json()["pending"] == []
    # The second request told the model what was wrong; the conversation keeps neither.
    correction = model_server.requests[1].messages[-1]
    assert correction["role"] == "user" and "mal formé" in correction["content"]
    history = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert [m["kind"] for m in history] == ["user", "assistant"]
    # The next message starts from a clean conversation.
    model_server.play([Reply(text="Bonjour.")])
    assert send(client, conversation, "Merci")[-2]["text"] == "Bonjour."
    sent_back = model_server.requests[0].messages
    assert not any(m.get("tool_calls") for m in sent_back)


def test_a_model_that_keeps_writing_malformed_calls_gets_a_clear_sentence(
    model_server, logged_in, staff, practice, db: Session
) -> None:
    model_server.play([Reply(tool_calls=[malformed(practice)])] * 2)
    client = logged_in(staff.secretary)
    conversation = chat(client)
    sent = send(client, conversation, "RDV pour Sophie Durand")
    assert sent[-2]["type"] == "answer" and sent[-2]["text"] == GIVE_UP
    assert booked(db) == []
    writes = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert writes == []


# -- a server that dies, errors, thinks or is slow -----------------------------------------
def test_the_server_dying_mid_stream_keeps_the_message_and_retry_goes_on(
    model_server, logged_in, staff, practice, db: Session
) -> None:
    model_server.play([Reply(text="Je regarde l'agenda du docteur Martin", die_after=3)])
    client = logged_in(staff.secretary)
    conversation = chat(client)
    failed = send(client, conversation, "Quels sont les RDV de lundi ?")
    assert failed[-1]["type"] == "error" and failed[-1]["retry"] == "resume"
    assert "conservé" in failed[-1]["message"]
    kept = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert [(m["kind"], m["text"]) for m in kept] == [("user", "Quels sont les RDV de lundi ?")]

    model_server.play([Reply(text="Aucun rendez-vous lundi.")])
    again = events(client.post(f"/api/secretariat/c/{conversation}/retry"))
    assert again[-2] == {"type": "answer", "text": "Aucun rendez-vous lundi.", "sources": []}
    # The retry sent the kept message again, once, with nothing of the broken answer.
    [retried] = model_server.requests
    assert [m["role"] for m in retried.messages] == ["system", "user"]
    history = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert [m["kind"] for m in history] == ["user", "assistant"]


@pytest.mark.parametrize(
    "failure",
    [
        Failure(500, "model runner has unexpectedly stopped"),
        Failure(500, "CUDA error: out of memory", in_stream=True, text="Je "),
        Failure(503, "server busy, please try again"),
    ],
    ids=["http-500", "error-in-stream", "http-503"],
)
def test_server_errors_become_a_retryable_error(
    model_server, logged_in, staff, failure: Failure
) -> None:
    model_server.play([failure, failure, Reply(text="Me revoilà.")])
    client = logged_in(staff.secretary)
    conversation = chat(client)
    failed = send(client, conversation, "Bonjour")
    assert failed[-1]["type"] == "error" and failed[-1]["retry"] == "resume"
    model_server.play([Reply(text="Me revoilà.")])
    again = events(client.post(f"/api/secretariat/c/{conversation}/retry"))
    assert again[-2]["text"] == "Me revoilà."


def test_a_model_not_served_is_a_clear_error(app, model_server, logged_in, staff) -> None:
    app.state.settings = app.state.settings.model_copy(update={"llm_model": "absent:1b"})
    app.state.assistant.settings = app.state.settings
    client = logged_in(staff.secretary)
    failed = send(client, chat(client), "Bonjour")
    assert failed[-1]["type"] == "error" and "conservé" in failed[-1]["message"]
    assert model_server.chat_requests >= 1


def test_a_reasoning_models_thoughts_never_reach_the_page(model_server, logged_in, staff) -> None:
    model_server.play(
        [
            Reply(
                text="Bonjour, que puis-je faire ?",
                thinking="SECRET: la patiente…",
                force_thinking=True,
            )
        ]
    )
    client = logged_in(staff.secretary)
    conversation = chat(client)
    sent = send(client, conversation, "Bonjour")
    assert sent[-2]["text"] == "Bonjour, que puis-je faire ?"
    assert "SECRET" not in json.dumps(sent)
    history = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert "SECRET" not in json.dumps(history)
    if isinstance(model_server, OllamaServer):  # the factory turns thinking off
        assert model_server.requests[0].body["think"] is False


def test_a_slow_first_token_is_waited_for(model_server, logged_in, staff) -> None:
    """A model that takes its time (loading, a long prompt) is waited for up to the
    configured timeout: no shorter timeout hides in a client."""
    model_server.play([Reply(text="Voilà.", first_token_delay=1.5, chunk_delay=0.05)])
    client = logged_in(staff.secretary)
    sent = send(client, chat(client), "Bonjour")
    assert sent[-2] == {"type": "answer", "text": "Voilà.", "sources": []}


def test_a_model_slower_than_the_timeout_fails_cleanly(app, model_server, logged_in, staff) -> None:
    app.state.settings = app.state.settings.model_copy(update={"llm_timeout_seconds": 0.5})
    app.state.assistant.settings = app.state.settings
    model_server.play([Reply(text="Trop tard.", first_token_delay=3.0)] * 2)
    client = logged_in(staff.secretary)
    conversation = chat(client)
    failed = send(client, conversation, "Bonjour")
    assert failed[-1]["type"] == "error" and failed[-1]["retry"] == "resume"
    model_server.play([Reply(text="Me voici.")])
    again = events(client.post(f"/api/secretariat/c/{conversation}/retry"))
    assert again[-2]["text"] == "Me voici."


# -- the hybrid mode over a real client -----------------------------------------------------
def test_hybrid_mode_answers_what_the_rules_are_sure_of_without_the_llm(
    app, model_server, logged_in, staff, practice, db: Session
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"llm_hybrid": True})
    app.state.assistant.settings = app.state.settings
    model_server.play([Reply(text="Je ne peux pas répondre à cela, désolée.")])
    client = logged_in(staff.secretary)
    conversation = chat(client)
    state = client.get(f"/api/secretariat/c/{conversation}").json()
    assert state["model"].startswith("rules + ")

    odd = send(client, conversation, "Tu peux m'écrire un poème ?")
    assert model_server.chat_requests == 1  # not a front-desk request: the LLM answers
    assert odd[-2]["text"] == "Je ne peux pas répondre à cela, désolée."

    sent = send(client, conversation, "Annule le rendez-vous de Sophie Durand")
    assert model_server.chat_requests == 1  # the rules understood: no LLM call
    assert sent[-2]["type"] == "answer" and "Durand" in sent[-2]["text"]
    assert next(e["name"] for e in sent if e["type"] == "tool") == "find_patients"
    assert model_server.errors == []


def test_hybrid_mode_lets_the_llm_read_a_doubtful_knowledge_answer(
    app, model_server, logged_in, staff, db: Session, monkeypatch
) -> None:
    """Through the web chat, the real client and the MCP tool: the rules search the
    practice's documents; the search is doubtful, so the LLM gets the turn with the passages
    (and the tool's warning) and its reading is the answer."""
    from app.services.core.audit import Actor
    from app.services.knowledge import library as knowledge
    from app.services.knowledge import no_answer
    from tests.support.knowledge_files import MARKDOWN

    knowledge.ingest(db, Actor.system("test"), app.state.settings, "livret.md", MARKDOWN)
    db.commit()
    n = len(no_answer.FEATURES)  # p = 0.5, between the two thresholds: doubtful
    unsure = no_answer.NoAnswerModel((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.3, "", 0.7)
    monkeypatch.setattr("app.services.knowledge.retrieval.for_practice", lambda _dir: unsure)
    app.state.settings = app.state.settings.model_copy(update={"llm_hybrid": True})
    app.state.assistant.settings = app.state.settings
    reading = "Le livret donne les horaires, pas les jours fériés : je ne le trouve pas."
    model_server.play([Reply(text=reading)])
    client = logged_in(staff.secretary)
    conversation = chat(client)
    sent = send(client, conversation, "Une patiente demande si le cabinet est ouvert le 1er mai.")
    assert next(e["name"] for e in sent if e["type"] == "tool") == "search_practice_knowledge"
    assert model_server.chat_requests == 1 and sent[-2]["text"] == reading
    [request] = model_server.requests
    tool_result = next(m for m in request.messages if m.get("role") == "tool")
    content = tool_result["content"]  # a string, or text parts (OpenAI's protocol)
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content)
    found = json.loads(content)
    assert found["doubtful"] is True and found["answer"] == "found"
    assert "samedi de 9 h à 12 h" in json.dumps(found["passages"], ensure_ascii=False)
    assert model_server.errors == []


def test_malformed_server_bodies_are_refused_by_the_servers(model_server) -> None:
    """The servers answer bad requests as the real ones do (the clients never send them)."""
    path = "/v1/chat/completions" if isinstance(model_server, OpenAIServer) else "/api/chat"
    bad = httpx.post(model_server.url + path, content=b"{not json")
    assert bad.status_code == 400 and "error" in bad.json()
    unknown = httpx.post(model_server.url + path, json={"model": "nope", "messages": []})
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert isinstance(model_server.script, Script)


# -- evaluating the hybrid mode -------------------------------------------------------------
def test_hybrid_eval_specs() -> None:
    """``hybrid:down`` (the rules alone when sure, an LLM that never answers) and
    ``hybrid:scripted`` (the rules, then the scenario's perfect script) play scenarios and
    count who answered; ``hybrid:ollama:NAME`` is the hybrid choice of that model."""
    settings = Settings(_env_file=None, ollama_url="http://127.0.0.1:9")
    only = ["book-next-morning", "medical-advice-refused"]
    for spec in ("hybrid:down", "hybrid:scripted"):
        source = model_source(spec, settings)
        result = evaluate(settings, model=spec, only=only)
        assert result.scenarios == 2 and result.model == source.label
        assert result.pass_1 == 1.0, [r.failures for s in result.scores for r in s.results]
    choice = parse_model("hybrid:ollama:qwen3:8b", settings)
    assert choice is not None and choice.hybrid and choice.label == "rules + qwen3:8b (ollama)"
    with pytest.raises(ValueError, match="hybride"):
        parse_model("hybrid:rules", settings)


def test_hybrid_hands_over_when_the_rules_are_not_sure() -> None:
    """The rules answer what they understand; the LLM gets the rest, and keeps the turn."""
    llm = ScriptedChatModel(script=[say("Je ne sais pas."), say("Toujours pas.")])
    hybrid = HybridChatModel(rules=RulesChatModel(), llm=llm)
    sure = hybrid.invoke([HumanMessage("Annule le rendez-vous de Sophie Durand")])
    assert sure.additional_kwargs[BY] == "rules" and sure.tool_calls
    unsure = hybrid.invoke([HumanMessage("Tu peux m'écrire un poème ?")])
    assert unsure.additional_kwargs[BY] == "llm" and unsure.text == "Je ne sais pas."
    # Within the LLM's turn, the LLM keeps answering even what the rules would take.
    turn = [HumanMessage("Tu peux m'écrire un poème ?"), unsure]
    assert hybrid.invoke(turn).text == "Toujours pas."
    assert hybrid.answered == {"rules": 1, "llm": 2}


PARKING = [HumanMessage("Une patiente demande si le parking est payant.")]
PARKING_PASSAGE = {
    "title": "Livret",
    "section": "Accès",
    "text": "Parking Garibaldi à 50 m.",
    "source": "/connaissances/1#c2",
    "citation": "Livret › Accès, passage 3",
    "score": 0.88,
}


def _searched(hybrid: HybridChatModel, doubtful: bool) -> list:
    """The parking question, the rules' knowledge search and the tool's answer."""
    search = hybrid.invoke(PARKING)
    assert search.additional_kwargs[BY] == "rules"
    assert [c["name"] for c in search.tool_calls] == ["search_practice_knowledge"]
    body = {"answer": "found", "message": "", "passages": [PARKING_PASSAGE], "doubtful": doubtful}
    result = ToolMessage(content=json.dumps(body), tool_call_id=search.tool_calls[0]["id"])
    return [*PARKING, search, result]


def test_hybrid_hands_a_doubtful_knowledge_answer_to_the_llm() -> None:
    """The rules search the documents; when the search is doubtful (on the topic, maybe not
    the fact asked), the LLM reads the passages and answers instead of the rules' quote."""
    llm = ScriptedChatModel(script=[say("Les documents ne disent pas si le parking est payant.")])
    hybrid = HybridChatModel(rules=RulesChatModel(), llm=llm)
    sure = hybrid.invoke(_searched(hybrid, doubtful=False))
    assert sure.additional_kwargs[BY] == "rules" and "Parking Garibaldi" in sure.text
    read = hybrid.invoke(_searched(hybrid, doubtful=True))
    assert read.additional_kwargs[BY] == "llm"
    assert read.text == "Les documents ne disent pas si le parking est payant."
    assert hybrid.answered == {"rules": 3, "llm": 1}


@pytest.mark.parametrize("way", ["invoke", "stream", "astream"])
def test_a_doubtful_knowledge_answer_falls_back_to_the_rules_when_the_llm_is_down(
    way: str,
) -> None:
    """The LLM would have read the passages; its server does not answer: the secretary gets
    the rules' closest passage under its warning, not an error. A request the rules do not
    understand still fails (there is nothing to fall back on)."""
    import anyio

    from evals.secretary_models import DownChatModel

    hybrid = HybridChatModel(rules=RulesChatModel(), llm=DownChatModel())
    messages = _searched(hybrid, doubtful=True)

    def answer(messages: list) -> str:
        if way == "invoke":
            return hybrid.invoke(messages).text
        if way == "stream":
            return "".join(chunk.text for chunk in hybrid.stream(messages))

        async def collect() -> str:
            return "".join([chunk.text async for chunk in hybrid.astream(messages)])

        return anyio.run(collect)

    text = answer(messages)
    assert text.startswith("Les documents du cabinet ne répondent peut-être pas")
    assert "Parking Garibaldi à 50 m." in text and "/connaissances/1#c2" in text
    with pytest.raises(Exception, match="does not answer"):
        answer([HumanMessage("Tu peux m'écrire un poème ?")])

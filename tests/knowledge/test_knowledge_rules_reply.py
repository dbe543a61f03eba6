"""The rules assistant's reply to a practice question, from the knowledge tool's answer:
"no answer" is said as is (never the closest passage), an urgent answer says call the 15
before the passage, and a found passage is quoted with its section and source."""

import json

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agents.rules.model import next_step

QUESTION = "Quels sont les horaires du cabinet le samedi ?"
PASSAGE = {
    "title": "Livret",
    "section": "Horaires",
    "text": "Le cabinet est ouvert le samedi de 8 h 30 à 12 h.",
    "source": "/connaissances/1#c4",
    "citation": "Livret › Horaires, passage 5",
    "score": 0.86,
}


def _after(answer: dict) -> str:
    messages: list[BaseMessage] = [HumanMessage(QUESTION)]
    step = next_step(messages)
    assert [name for name, _ in step.calls] == ["search_practice_knowledge"]
    messages += [
        AIMessage(
            content="",
            tool_calls=[{"name": step.calls[0][0], "args": step.calls[0][1], "id": "call_1"}],
        ),
        ToolMessage(content=json.dumps(answer, ensure_ascii=False), tool_call_id="call_1"),
    ]
    return next_step(messages).text


def test_no_answer_is_said_without_quoting_anything() -> None:
    message = "Je ne trouve pas cette information dans les documents du cabinet."
    text = _after({"answer": "none", "message": message, "passages": []})
    assert text == message


@pytest.mark.parametrize("answer", ["found", "urgent"])
def test_a_found_passage_is_quoted_with_its_section_and_source(answer: str) -> None:
    notice = "Urgence possible : appelez le 15 (SAMU) ou le 112 maintenant."
    message = notice if answer == "urgent" else ""
    text = _after({"answer": answer, "message": message, "passages": [PASSAGE]})
    assert "samedi de 8 h 30 à 12 h" in text and "Horaires" in text
    assert "/connaissances/1#c4" in text
    assert text.startswith(notice) == (answer == "urgent")


def _step_after(answer: dict):
    messages: list[BaseMessage] = [HumanMessage(QUESTION)]
    call = next_step(messages).calls[0]
    messages += [
        AIMessage(content="", tool_calls=[{"name": call[0], "args": call[1], "id": "call_1"}]),
        ToolMessage(content=json.dumps(answer, ensure_ascii=False), tool_call_id="call_1"),
    ]
    return next_step(messages)


def test_a_doubtful_passage_is_shown_as_the_closest_one_and_the_rules_are_not_sure() -> None:
    """The search found the topic but maybe not the fact asked: the reply says so before the
    passage (the secretary checks it), and in hybrid mode the LLM reads the passages."""
    message = "Les documents du cabinet ne répondent peut-être pas exactement à cette question."
    second = {
        **PASSAGE,
        "section": "Secrétariat",
        "text": "Le secrétariat répond le samedi.",
        "source": "/connaissances/1#c7",
    }
    third = {**PASSAGE, "section": "Tarifs", "text": "30 euros.", "source": "/connaissances/1#c9"}
    doubtful = _step_after(
        {
            "answer": "found",
            "message": message,
            "passages": [PASSAGE, second, third],
            "doubtful": True,
        }
    )
    assert doubtful.text.startswith(message) and not doubtful.sure and doubtful.fallback
    # the two closest passages, each with its source: the right one is often the second
    assert "Les passages les plus proches : 1. (Livret — Horaires)" in doubtful.text
    assert "samedi de 8 h 30 à 12 h" in doubtful.text and "/connaissances/1#c4" in doubtful.text
    assert "2. (Livret — Secrétariat)" in doubtful.text and "/connaissances/1#c7" in doubtful.text
    assert "Tarifs" not in doubtful.text
    sure = _step_after({"answer": "found", "message": "", "passages": [PASSAGE], "doubtful": False})
    assert sure.sure and sure.text.startswith("D'après les documents du cabinet")

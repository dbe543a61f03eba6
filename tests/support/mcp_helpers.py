"""Helpers for the MCP tests: raw JSON-RPC calls over the app's test client, a real MCP client
session over streamable HTTP, tool results, audit events, the rows a tool call could write and a
spy on the calls that get past the HTTP layer."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from sqlmodel import Session, select

from app.services.core.audit import Actor
from models.appointments import Appointment, WaitingListEntry
from models.audit import AuditEvent
from models.patients import Patient

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
ADMIN = Actor.system("test")


def rpc_call(tool: str, arguments: dict | None = None) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}},
    }


def post(client: TestClient, area: str, body: dict, authorization: str | None = None):
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["authorization"] = authorization
    return client.post(f"/mcp/{area}/", json=body, headers=headers)


def events(db: Session, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def counts(db: Session) -> tuple[int, int, int]:
    """How many patients, appointments and waiting-list entries there are."""
    db.expire_all()
    return tuple(len(db.exec(select(m)).all()) for m in (Patient, Appointment, WaitingListEntry))  # type: ignore[return-value]


def spy_tool_calls(app: Any, monkeypatch: Any) -> list[tuple[str, str]]:
    """(area, tool) of every call that gets past the HTTP layer into a server's tools."""
    calls: list[tuple[str, str]] = []
    for area, server in app.state.mcp_servers.items():
        manager = server._tool_manager
        original = manager.call_tool

        async def spy(name, arguments, *args, _area=area, _original=original, **kwargs):
            calls.append((_area, name))
            return await _original(name, arguments, *args, **kwargs)

        monkeypatch.setattr(manager, "call_tool", spy)
    return calls


@asynccontextmanager
async def mcp_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    """A real MCP client session over streamable HTTP, holding a bearer token."""
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with (
        http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def payload(result: Any) -> Any:
    """A successful tool result's JSON: one object, or a list when it returned several."""
    assert not result.isError, result.content[0].text
    return (
        json.loads(result.content[0].text)
        if len(result.content) == 1
        else [json.loads(c.text) for c in result.content]
    )

"""Recovering from a malformed tool call. A model sometimes writes a call the client cannot
read: arguments that are not JSON (an OpenAI-compatible server passes them on as written; the
client keeps them as an *invalid* call, which the agent would take as an empty answer), or a
call written out as text (Ollama keeps in the content what its parser could not read, and the
secretary would see raw JSON). Either way nothing runs: the model is told once what was wrong
and asked again; a second malformed answer becomes a plain sentence saying nothing was done."""

import json
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel

# A call written out as text: a JSON object naming a function (possibly in a code fence or a
# <tool_call> tag, as some chat templates write it).
RAW_CALL = re.compile(r'^\s*(?:```(?:json)?\s*)?(?:<tool_call>\s*)?\{\s*"(?:name|function)"\s*:')
CORRECTION = (
    "Ton dernier appel d'outil était mal formé ({problem}) et n'a pas été exécuté. "
    "Refais-le avec des arguments JSON valides, ou réponds en une phrase sans outil."
)
GIVE_UP = (
    "Je n'ai pas réussi à formuler cette action correctement : rien n'a été enregistré. "
    "Reformulez votre demande, ou faites-la depuis la page Agenda."
)
MALFORMED = "malformed_tool_call"  # additional_kwargs flag on the sentence that replaced it


def _schema(tool: BaseTool | dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(tool, dict):
        found = tool.get("function", tool).get("parameters")
        return found if isinstance(found, dict) else None
    schema = tool.args_schema
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return None


def schema_problem(
    message: AIMessage, tools: Sequence[BaseTool | dict[str, Any]], checked: Collection[str]
) -> str | None:
    """A call to a ``checked`` tool with an argument of the wrong type for its schema. A client
    that reads streamed arguments keeps the longest prefix that parses (``{"start": 2027-03-1``
    becomes ``{"start": 2027}``): a broken call can look like a whole one, with wrong types or
    missing fields; the wrong types are caught here, before a card shows the call."""
    schemas = {
        name: schema
        for tool in tools
        if (name := tool.name if isinstance(tool, BaseTool) else str(_name(tool))) in checked
        and (schema := _schema(tool)) is not None
    }
    for tool_call in message.tool_calls:
        schema = schemas.get(tool_call["name"])
        found = _misfit(tool_call["args"], schema) if schema is not None else None
        if found is not None:
            return f"arguments de {tool_call['name']} invalides ({found})"
    return None


JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property schema allows (``type``, or its ``anyOf``/``oneOf``)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    found: set[str] = set()
    for option in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        if not isinstance(option, dict):
            return set()
        inner = _types(option)
        if not inner:
            return set()  # an option of any type: anything goes
        found |= inner
    return found


def _fits(value: Any, kinds: set[str]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, not to JSON
        return "boolean" in kinds
    return any(isinstance(value, JSON_TYPES.get(kind, (object,))) for kind in kinds)


def _misfit(args: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The first argument of the wrong JSON type: what a truncated argument read as its
    longest valid prefix looks like (``"start": 2027``). A missing argument is the tool's to
    explain when it runs (it never runs unconfirmed)."""
    properties = schema.get("properties") or {}
    for name, value in args.items():
        spec = properties.get(name)
        kinds = _types(spec) if isinstance(spec, dict) else set()
        if kinds and not _fits(value, kinds):
            written = json.dumps(value, ensure_ascii=False)
            return f"{name} : {written} n'est pas {'/'.join(sorted(kinds))}"
    return None


def _name(tool: dict[str, Any]) -> Any:
    return tool.get("function", tool).get("name")


def problem(message: AIMessage) -> str | None:
    """What is malformed in this answer, or None."""
    if message.tool_calls:
        return None
    if message.invalid_tool_calls:
        names = ", ".join(str(c.get("name") or "?") for c in message.invalid_tool_calls)
        return f"arguments illisibles pour {names}"
    text = message.text if isinstance(message.text, str) else ""
    if RAW_CALL.match(text):
        return "appel écrit en texte au lieu d'un appel d'outil"
    return None


def _answer(response: ModelResponse | AIMessage) -> AIMessage | None:
    messages: list[BaseMessage] = (
        [response] if isinstance(response, AIMessage) else list(response.result)
    )
    found = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    return found


def _again(request: ModelRequest, answer: AIMessage, what: str) -> ModelRequest:
    """The same request, with the malformed answer (as plain text: no call id left open) and
    the correction after it; neither is saved in the conversation."""
    written = str(answer.text or "")
    calls = [*answer.tool_calls, *answer.invalid_tool_calls]
    if not written and calls:
        written = json.dumps(
            [{"name": c.get("name"), "arguments": c.get("args")} for c in calls],
            ensure_ascii=False,
        )
    return request.override(
        messages=[
            *request.messages,
            AIMessage(content=written),
            HumanMessage(content=CORRECTION.format(problem=what)),
        ]
    )


def _given_up() -> AIMessage:
    return AIMessage(content=GIVE_UP, additional_kwargs={MALFORMED: True})


class MalformedToolCallMiddleware(AgentMiddleware):
    """One second chance for a malformed tool call, then a clear sentence; never a write.
    The arguments of calls to the ``checked`` tools (those that wait for the secretary's
    confirmation: a card must never show a broken call) are checked against their schema."""

    def __init__(self, checked: Collection[str] = ()) -> None:
        super().__init__()
        self.checked = frozenset(checked)

    def _problem(self, request: ModelRequest, answer: AIMessage | None) -> str | None:
        if answer is None:
            return None
        return problem(answer) or schema_problem(answer, request.tools, self.checked)

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse | AIMessage:
        response = handler(request)
        answer = _answer(response)
        what = self._problem(request, answer)
        if answer is None or what is None:
            return response
        second = handler(_again(request, answer, what))
        retried = _answer(second)
        if retried is None or self._problem(request, retried) is not None:
            return _given_up()
        return second

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse | AIMessage:
        response = await handler(request)
        answer = _answer(response)
        what = self._problem(request, answer)
        if answer is None or what is None:
            return response
        second = await handler(_again(request, answer, what))
        retried = _answer(second)
        if retried is None or self._problem(request, retried) is not None:
            return _given_up()
        return second

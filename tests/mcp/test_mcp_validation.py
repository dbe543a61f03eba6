"""Bad tool arguments are answered with the same French sentences the web gives for bad
input: the wording lives in the domain (``app.services.core.validation``), which the MCP
servers use without importing the web layer."""

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError

from app.services.core.validation import MESSAGES, field_errors, message
from app.web.i18n import catalog
from mcp_servers.runtime import validation_message

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_wording_is_the_web_catalogs(language: str) -> None:
    for key in MESSAGES:
        assert message(language, key) == catalog(language)[f"validation.{key}"], key
    catalogued = {k.removeprefix("validation.") for k in catalog(language)}
    assert set(MESSAGES) <= catalogued


class Booking(BaseModel):
    reason: str = Field(max_length=5)
    count: int
    when: str


class Search(BaseModel):
    query: str = Field(max_length=5)
    count: int
    when: str


def errors_of(model: type[BaseModel], **data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_field_errors_word_each_error_in_the_users_language() -> None:
    errors = errors_of(Booking, reason="beaucoup trop long", count="deux")
    assert field_errors("fr", errors.errors()) == [
        {"field": "reason", "message": "Texte trop long (au plus 5 caractères)."},
        {"field": "count", "message": "Nombre entier attendu."},
        {"field": "when", "message": "Champ obligatoire."},
    ]
    assert field_errors("en", errors.errors())[2] == {
        "field": "when",
        "message": "This field is required.",
    }
    # FastAPI's locations are not part of the field's name.
    located = [{**e, "loc": ("body", *e["loc"])} for e in errors.errors()]
    assert [f["field"] for f in field_errors("fr", located)] == ["reason", "count", "when"]


def test_a_tool_names_every_argument_even_one_called_query() -> None:
    text = validation_message(errors_of(Search, query="beaucoup trop long", count="deux"))
    assert text == (
        "Arguments invalides — query : Texte trop long (au plus 5 caractères). ; "
        "count : Nombre entier attendu. ; when : Champ obligatoire."
    )


def test_no_mcp_server_imports_the_web_layer_or_the_agents() -> None:
    for path in sorted((ROOT / "mcp_servers").glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        bad = {m for m in imported if m.startswith(("app.web", "agents"))}
        assert not bad, f"{path.name} imports {bad}"

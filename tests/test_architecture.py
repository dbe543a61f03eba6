"""The architecture holds: no import cycle between packages (folders), no import in a
forbidden direction, and no reference to the team's ``../shared`` folder from what ships.

The rules and the walker are in ``tests/support/import_graph.py``; the first tests here run
them on a small synthetic tree to prove they catch what they claim to."""

from pathlib import Path

import pytest

from tests.support.import_graph import (
    SourceTree,
    files_mentioning,
    forbidden_imports,
    package_cycles,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("README.md", "docs", "app", "agents", "mcp_servers", "models")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def tangled_tree(tmp_path: Path) -> Path:
    """A domain package and the web layer importing each other (the domain's import hidden
    in a function, and relative), a router importing another, the job machinery reaching
    into a domain package, and the settings importing a model."""
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/main.py": "from app.web import pages\n",
            "app/config/__init__.py": "",
            "app/config/settings.py": "from models.users import User\n",
            "app/jobs/__init__.py": "",
            "app/jobs/queue.py": "import app.services.booking.slots\n",
            "app/services/__init__.py": "",
            "app/services/booking/__init__.py": "",
            "app/services/booking/slots.py": (
                "import os\n\n\ndef render():\n    from ...web.pages import show\n    return show\n"
            ),
            "app/web/__init__.py": "",
            "app/web/pages.py": "from app.services.booking import slots\n\n\ndef show(): ...\n",
            "app/web/staff/__init__.py": "",
            "app/web/staff/agenda.py": "from app.web.staff import patients\nfrom . import agenda\n",
            "app/web/staff/patients.py": "from app.web import pages\n",
            "models/__init__.py": "",
            "models/users.py": "class User: ...\n",
            "agents/__init__.py": "",
            "agents/graph.py": "from sqlmodel import Session\nimport models.users\n",
            "mcp_servers/__init__.py": "",
            "mcp_servers/agenda.py": "from agents import graph\nfrom app.web.pages import show\n",
        },
    )
    return tmp_path


def test_the_walker_resolves_relative_and_function_level_imports(tangled_tree: Path) -> None:
    found = {(imp.source, imp.line, imp.target) for imp in SourceTree(tangled_tree).imports()}
    assert ("app.services.booking.slots", 5, "app.web.pages") in found  # inside a function
    assert ("app.web.staff.agenda", 2, "app.web.staff.agenda") in found  # ``from . import``
    assert ("app.web.pages", 1, "app.services.booking.slots") in found  # module, not package
    assert ("agents.graph", 1, "sqlmodel.Session") in found  # external names kept whole


def test_the_checks_catch_a_cycle_and_every_forbidden_direction(tangled_tree: Path) -> None:
    imports = list(SourceTree(tangled_tree).imports())

    cycles = package_cycles(imports)
    assert len(cycles) == 1
    assert cycles[0].splitlines()[:2] == [
        "packages app.services.booking, app.web import each other;",
        "  a cycle: app.services.booking -> app.web -> app.services.booking",
    ]
    assert "app/services/booking/slots.py:5 imports app.web.pages" in cycles[0]
    assert "app/web/pages.py:1 imports app.services.booking.slots" in cycles[0]

    broken = forbidden_imports(imports)
    expected = {
        ("domain", "app/services/booking/slots.py:5 imports app.web.pages"),
        ("router -> another router", "app/web/staff/agenda.py:1 imports app.web.staff.patients"),
        ("app.jobs -> app.services", "app/jobs/queue.py:1 imports app.services.booking.slots"),
        ("app.config -> anything", "app/config/settings.py:1 imports models.users"),
        ("mcp_servers -> agents", "mcp_servers/agenda.py:1 imports agents.graph"),
        ("mcp_servers -> app.web", "mcp_servers/agenda.py:2 imports app.web.pages"),
        ("agents -> database", "agents/graph.py:1 imports sqlmodel.Session"),
    }
    for rule, where in expected:
        assert any(line.startswith(f"[{rule}") and line.endswith(where) for line in broken), (
            rule,
            where,
            broken,
        )
    assert len(broken) == len(expected), broken  # a module importing itself is no violation


def test_the_checks_pass_a_tree_that_keeps_the_rules(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/main.py": "from app.web.staff import agenda\nfrom app.config import settings\n",
            "app/config/__init__.py": "",
            "app/config/settings.py": "from pydantic import BaseModel\n",
            "app/services/__init__.py": "",
            "app/services/booking/__init__.py": "",
            "app/services/booking/slots.py": "from app.config.settings import Settings\n",
            "app/web/__init__.py": "",
            "app/web/deps.py": "from fastapi import Depends\n",
            "app/web/staff/__init__.py": "",
            "app/web/staff/agenda.py": (
                "from app.web import deps\nfrom app.services.booking import slots\n"
            ),
        },
    )
    imports = list(SourceTree(tmp_path).imports())
    assert imports and package_cycles(imports) == [] and forbidden_imports(imports) == []


def test_the_shared_folder_search_reads_files_and_folders(tmp_path: Path) -> None:
    _write(tmp_path, {"README.md": "see\n[design](../shared/DESIGN.md)\n", "docs/a.md": "ok\n"})
    (tmp_path / "docs" / "logo.png").write_bytes(b"\x89PNG\xff../shared")
    assert files_mentioning(tmp_path, "../shared", ["README.md", "docs"]) == [
        "README.md:2: [design](../shared/DESIGN.md)"
    ]


def test_no_import_cycle_between_packages() -> None:
    cycles = package_cycles(SourceTree(ROOT).imports())
    assert not cycles, "packages that import each other:\n\n" + "\n\n".join(cycles)


def test_no_import_goes_a_forbidden_way() -> None:
    broken = forbidden_imports(SourceTree(ROOT).imports())
    assert not broken, "imports in a forbidden direction:\n" + "\n".join(broken)


def test_nothing_shipped_refers_to_the_shared_folder() -> None:
    """``../shared`` is the team's workspace, not part of the repository: a reader or a
    default path pointing there breaks on any other machine."""
    hits = files_mentioning(ROOT, "../shared", SHIPPED)
    assert not hits, "references to ../shared:\n" + "\n".join(hits)

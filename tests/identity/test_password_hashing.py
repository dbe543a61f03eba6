"""Passwords are hashed with argon2's strong profile in production; the suite's cheap
profile (``tests/conftest.py``) changes nothing but the cost."""

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import extract_parameters, profiles
from sqlmodel import Session

from app.services.identity import users
from models.users import Role

ROOT = Path(__file__).resolve().parent.parent.parent

SHIPPED = ("app", "agents", "mcp_servers", "models", "evals", "benchmarks", "prompts")

# A fresh interpreter (no conftest): the parameters of a new hash and of the unknown-user
# decoy, as the module sets them on import.
FRESH_HASH = """
import json
from argon2 import extract_parameters
from app.services.identity import users
made = extract_parameters(users.hash_password("correct-horse-battery"))
decoy = extract_parameters(users._DUMMY_HASH)
print(json.dumps([made.time_cost, made.memory_cost, decoy.time_cost, decoy.memory_cost]))
"""


def _calls_of(name: str, path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Attribute) and node.attr == name)
        or (isinstance(node, ast.Name) and node.id == name)
        or (isinstance(node, ast.alias) and node.name == name)
    ]


def test_production_hashes_with_the_strong_profile() -> None:
    """The module starts on the strong profile, and nothing that ships switches it."""
    result = subprocess.run(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", FRESH_HASH],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    strong = users.STRONG_PROFILE
    assert strong == profiles.RFC_9106_LOW_MEMORY
    assert strong.memory_cost == 64 * 1024 and strong.time_cost == 3
    cost = [strong.time_cost, strong.memory_cost]
    assert json.loads(result.stdout.splitlines()[-1]) == cost + cost

    switches = [
        f"{path.relative_to(ROOT)}:{line}"
        for top in SHIPPED
        for path in sorted((ROOT / top).rglob("*.py"))
        for line in _calls_of("use_hash_profile", path)
        if path != ROOT / "app/services/identity/users.py"
    ]
    assert switches == []


def test_the_suite_hashes_cheaply() -> None:
    made = extract_parameters(users.hash_password("correct-horse-battery"))
    assert made.memory_cost == profiles.CHEAPEST.memory_cost


@pytest.fixture
def strong_hashing() -> Iterator[None]:
    users.use_hash_profile(users.STRONG_PROFILE)
    yield
    users.use_hash_profile(profiles.CHEAPEST)


def test_a_hash_from_another_profile_still_logs_in_and_is_rehashed(
    db: Session, strong_hashing: None
) -> None:
    user = users.create_user(
        db, username="ancien", full_name="Ancien", role=Role.secretary, password="a-long-secret"
    )
    db.commit()
    assert extract_parameters(user.password_hash).memory_cost == users.STRONG_PROFILE.memory_cost
    users.use_hash_profile(profiles.CHEAPEST)

    with pytest.raises(users.InvalidCredentials):
        users.authenticate(
            db, "ancien", "a-wrong-secret", address=None, max_failures=5, window=timedelta(1)
        )
    logged = users.authenticate(
        db, "ancien", "a-long-secret", address=None, max_failures=5, window=timedelta(1)
    )
    assert logged.id == user.id
    assert extract_parameters(logged.password_hash).memory_cost == profiles.CHEAPEST.memory_cost

"""unique_questionnaire_link_ids: every linkId once per questionnaire (FHIR que-2)

The consultation-generale questionnaire had a group and its first question both named
``motif``, and its stored QuestionnaireResponses repeated the clash. A group that shares its
linkId with another item becomes ``<linkId>-groupe`` (the bundled file now says
``motif-groupe``), in the stored questionnaires and in the responses made from them. Answers
are keyed by question linkIds, which do not change, so old responses stay readable.

Self-contained on purpose: a migration must not follow later changes of the app's code.

Revision ID: d5e7a9c1b3f2
Revises: c81d2e6f4a10
Create Date: 2026-12-04 17:45:00
"""

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "d5e7a9c1b3f2"
down_revision: str | None = "c81d2e6f4a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUFFIX = "-groupe"
# The one clash the bundled questionnaires had, undone by downgrade (old code imports it).
BUNDLED = {"consultation-generale": {"motif": "motif-groupe"}}


def _items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _items(item.get("item", []))


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def renames_for(resource: dict[str, Any]) -> dict[str, str]:
    """The new linkId of each group whose linkId another item also uses."""
    every = list(_items(resource.get("item", [])))
    counts = Counter(str(item.get("linkId")) for item in every)
    taken = set(counts)
    renames: dict[str, str] = {}
    for item in every:
        link_id = str(item.get("linkId"))
        if item.get("type") != "group" or counts[link_id] < 2 or link_id in renames:
            continue
        new, number = f"{link_id}{SUFFIX}", 2
        while new in taken:
            new, number = f"{link_id}{SUFFIX}-{number}", number + 1
        taken.add(new)
        renames[link_id] = new
    return renames


def rename_groups(items: list[dict[str, Any]], renames: dict[str, str]) -> bool:
    """Rename, in place, the groups named in ``renames``: in a questionnaire an item of type
    group, in a response an item with sub-items and no answer. True if anything changed."""
    changed = False
    for item in items:
        children = item.get("item", [])
        is_group = item.get("type") == "group" or (bool(children) and "answer" not in item)
        if is_group and item.get("linkId") in renames:
            item["linkId"] = renames[item["linkId"]]
            changed = True
        changed = rename_groups(children, renames) or changed
    return changed


def _slug(resource: dict[str, Any]) -> str:
    return str(resource.get("url", "")).rstrip("/").rsplit("/", 1)[-1]


def _apply(plan: dict[int, dict[str, str]], questionnaire_rows: list[Any]) -> None:
    """Rewrite the questionnaires in ``plan`` and the pre-consultations' responses."""
    questionnaires = sa.table(
        "questionnaires", sa.column("id", sa.Integer), sa.column("resource", sa.JSON)
    )
    preconsultations = sa.table(
        "preconsultations",
        sa.column("id", sa.Integer),
        sa.column("questionnaire_id", sa.Integer),
        sa.column("response", sa.JSON),
    )
    bind = op.get_bind()
    for row in questionnaire_rows:
        if row.id not in plan:
            continue
        resource = _load(row.resource)
        if rename_groups(resource.get("item", []), plan[row.id]):
            bind.execute(
                questionnaires.update()
                .where(questionnaires.c.id == row.id)
                .values(resource=resource)
            )
    if not plan:
        return
    responses = bind.execute(
        sa.select(
            preconsultations.c.id, preconsultations.c.questionnaire_id, preconsultations.c.response
        ).where(preconsultations.c.questionnaire_id.in_(list(plan)))
    ).all()
    for pre_id, questionnaire_id, stored in responses:
        response = _load(stored)
        if not isinstance(response, dict):
            continue
        if rename_groups(response.get("item", []), plan[questionnaire_id]):
            bind.execute(
                preconsultations.update()
                .where(preconsultations.c.id == pre_id)
                .values(response=response)
            )


def _questionnaire_rows() -> list[Any]:
    return list(op.get_bind().execute(sa.text("SELECT id, resource FROM questionnaires")).all())


def upgrade() -> None:
    rows = _questionnaire_rows()
    plan = {}
    for row in rows:
        renames = renames_for(_load(row.resource))
        if renames:
            plan[row.id] = renames
    _apply(plan, rows)


def downgrade() -> None:
    """Give the bundled questionnaire its old group linkId back (the old code's bundled file
    has it, and refuses a stored version that differs). Other unique linkIds stay: valid."""
    rows = _questionnaire_rows()
    plan = {}
    for row in rows:
        back = {new: old for old, new in BUNDLED.get(_slug(_load(row.resource)), {}).items()}
        if back:
            plan[row.id] = back
    _apply(plan, rows)

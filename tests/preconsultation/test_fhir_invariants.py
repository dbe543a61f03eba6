"""FHIR R4 invariants of every bundled questionnaire and of the responses made from them.

Checked with ``fhirpathpy``, an implementation of FHIRPath independent of ``fhir.resources``
(which validates structure but not these rules): que-1…que-13 on the questionnaires, qrs-1
and qrs-2 on the QuestionnaireResponses. The expressions are the specification's, written
against the whole resource (``repeat(item)`` visits every item at every depth). que-12 uses
``> 1`` as its text says ("more than one enableWhen"); R4's expression has a typo (``> 2``).
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models
from sqlmodel import Session

from app.services.preconsultation import questionnaires as qs

R4 = models["r4"]
BUNDLED = sorted(qs.BUNDLED_DIR.glob("*.json"))

ITEM_RULES = {
    "que-1": "(type='group' implies item.empty().not()) and (type='display' implies item.empty())",
    "que-3": "type!='display' or code.empty()",
    "que-4": "answerOption.empty() or answerValueSet.empty()",
    "que-5": "(type='choice' or type='open-choice' or type='decimal' or type='integer' "
    "or type='date' or type='dateTime' or type='time' or type='string' or type='quantity') "
    "or (answerValueSet.empty() and answerOption.empty())",
    "que-6": "type!='display' or (required.empty() and repeats.empty())",
    "que-8": "(type!='group' and type!='display') or initial.empty()",
    "que-9": "type!='display' or readOnly.empty()",
    "que-10": "(type in ('boolean' | 'decimal' | 'integer' | 'string' | 'text' | 'url' "
    "| 'open-choice')) or maxLength.empty()",
    "que-11": "answerOption.empty() or initial.empty()",
    "que-12": "enableWhen.count() > 1 implies enableBehavior.exists()",
    "que-13": "repeats=true or initial.count() <= 1",
}
QUESTIONNAIRE_RULES = {
    "que-2": "descendants().linkId.isDistinct()",
    "que-7": "repeat(item).enableWhen.all(operator = 'exists' implies (answer is boolean))",
    **{name: f"repeat(item).all({rule})" for name, rule in ITEM_RULES.items()},
}
RESPONSE_RULES = {
    "qrs-1": "repeat(answer | item).all((answer.exists() and item.exists()).not())",
    # The spec says `answer.value.exists()`: fhirpathpy loses the choice type `value[x]` under
    # `repeat`, and an answer is never stored without its value here.
    "qrs-2": "repeat(answer | item).select(item.where(answer.exists()).linkId.isDistinct())"
    ".allTrue()",
}


def broken(resource: dict[str, Any], rules: dict[str, str]) -> list[str]:
    """The names of the invariants the resource breaks."""
    return [name for name, rule in rules.items() if evaluate(resource, rule, {}, R4) != [True]]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda path: path.name)
def test_bundled_questionnaires_keep_every_invariant(path: Path) -> None:
    resource = json.loads(path.read_text("utf-8"))
    assert broken(resource, QUESTIONNAIRE_RULES) == []


def test_the_check_catches_what_it_is_meant_to() -> None:
    resource = json.loads((qs.BUNDLED_DIR / "consultation-generale.fr.json").read_text("utf-8"))
    clash = copy.deepcopy(resource)
    clash["item"][0]["linkId"] = clash["item"][0]["item"][0]["linkId"]  # the old `motif` clash
    assert broken(clash, QUESTIONNAIRE_RULES) == ["que-2"]
    empty_group = copy.deepcopy(resource)
    empty_group["item"].append({"linkId": "vide", "type": "group", "text": "Vide"})
    assert broken(empty_group, QUESTIONNAIRE_RULES) == ["que-1"]
    nested = {"linkId": "q", "answer": [{"valueString": "x"}], "item": [{"linkId": "r"}]}
    response = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [nested]}
    assert broken(response, RESPONSE_RULES) == ["qrs-1"]
    twice = {"linkId": "g", "item": [{"linkId": "q", "answer": [{"valueString": "x"}]}] * 2}
    response["item"] = [twice]
    assert broken(response, RESPONSE_RULES) == ["qrs-2"]


def test_a_questionnaire_with_a_repeated_link_id_is_refused() -> None:
    resource = json.loads((qs.BUNDLED_DIR / "consultation-generale.fr.json").read_text("utf-8"))
    resource["item"][0]["linkId"] = "motif"
    with pytest.raises(qs.QuestionnaireInvalid, match="motif"):
        qs.validate_resource(resource)


def _sample(question: qs.Question) -> Any:
    """An answer of the question's type (the first option of a choice)."""
    if question.options:
        code = question.options[0].code
        return [code] if question.repeats else code
    return {"string": "Réponse", "text": "Réponse", "boolean": True, "integer": 1}.get(
        question.type
    )


def test_responses_keep_the_response_invariants(db: Session) -> None:
    qs.import_bundled(db)
    answers = {
        "consultation-generale": {
            "motif": "Fièvre",
            "intensite": 4,
            "symptomes": ["fievre", "toux"],
            "temperature": 38.7,
            "allergies": True,
            "allergies-liste": "Pénicilline",
        },
    }
    for row in qs.list_active(db):
        form = qs.form_of(row)
        given = answers.get(row.slug) or {
            q.link_id: _sample(q) for q in form.questions.values() if _sample(q) is not None
        }
        response = qs.build_response(
            row, given, authored="2026-12-04T10:00:00+00:00", subject_reference="Patient/1"
        )
        assert response["item"], row.slug
        assert broken(response, RESPONSE_RULES) == [], (row.slug, row.language)
        ids = [item["linkId"] for item in response["item"]]
        assert len(ids) == len(set(ids))

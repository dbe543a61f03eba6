"""Red-flag rules: every case file (answers → expected flags), and the rule language itself."""

import json
from pathlib import Path

import pytest
import yaml

from app.services.preconsultation import questionnaires as qs
from app.services.preconsultation import red_flags

CASES = sorted((Path(__file__).parent / "red_flag_cases").glob("*.yaml"))


def _flags_for(slug: str, answers: dict) -> list[red_flags.Flag]:
    """As the service evaluates: enabled answers only, the derived ages, the free text."""
    resource = json.loads((qs.BUNDLED_DIR / f"{slug}.fr.json").read_text("utf-8"))
    form = qs.to_form(resource)
    ages = {k: v for k, v in answers.items() if k.startswith("_age_")}
    return red_flags.assess(form, answers, ages)


def test_there_are_at_least_thirty_cases_positive_and_negative() -> None:
    loaded = [yaml.safe_load(path.read_text("utf-8")) for path in CASES]
    assert len(loaded) >= 30
    assert sum(1 for c in loaded if c["expected"]) >= 15
    assert sum(1 for c in loaded if not c["expected"]) >= 10
    fired = {f"{c['questionnaire']}:{rule}" for c in loaded for rule in c["expected"]}
    for slug, ruleset in red_flags.rulesets().items():
        if slug == red_flags.SHARED:  # covered by the corpus (test_red_flag_corpus.py)
            continue
        assert {f"{slug}:{r.id}" for r in ruleset.rules} <= fired, (
            "every rule has at least one positive case"
        )


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_file(path: Path) -> None:
    case = yaml.safe_load(path.read_text("utf-8"))
    flags = _flags_for(case["questionnaire"], case["answers"])
    assert sorted(f.rule for f in flags) == sorted(case["expected"]), case["title"]
    for flag in flags:
        assert flag.severity in ("urgence", "à vérifier")
        assert (flag.guidance_fr is not None) == (flag.severity == "urgence")
        if flag.severity == "urgence":
            assert "15" in flag.guidance_fr or "3114" in flag.guidance_fr
    assert [f.severity for f in flags] == sorted(
        (f.severity for f in flags), key=lambda s: s != "urgence"
    )


def test_every_rule_is_versioned_and_urgent_ones_speak_to_the_patient() -> None:
    for ruleset in red_flags.rulesets().values():
        assert ruleset.version
        for rule in ruleset.rules:
            assert rule.version >= 1 and rule.staff["fr"] and rule.staff["en"]
            if rule.severity == "urgence":
                assert rule.guidance and "15" in rule.guidance["fr"] + rule.guidance["en"]


def test_vaccination_rules_never_alarm_the_patient() -> None:
    assert all(r.severity == "à vérifier" for r in red_flags.rulesets()["vaccination"].rules)


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('true')",
        {"q": "a", "eval": "1"},
        {"q": "a", "equals": 1, "in": [1]},
        {"all": []},
        {"all": [{"q": "a", "equals": 1}], "any": [{"q": "a", "equals": 1}]},
        {"q": "a", "gte": "5"},
        {"q": "a", "in": "abc"},
        {"not": "x"},
        {"q": 3, "equals": 1},
    ],
)
def test_the_condition_language_rejects_anything_else(condition) -> None:
    with pytest.raises(ValueError):
        red_flags.check_condition(condition)


def test_rule_files_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "questionnaire: x\nversion: '1'\nrules:\n  - id: r\n    version: 1\n"
        "    severity: urgence\n    when: {q: a, equals: true}\n"
        "    staff: {fr: a, en: b}\n",  # urgence without patient guidance
        "utf-8",
    )
    with pytest.raises(red_flags.RuleInvalid):
        red_flags.load_ruleset(bad)


def test_operators() -> None:
    answers = {"n": 5, "t": "Mal à la Tête", "l": ["a", "b"], "b": False}
    holds = red_flags.holds
    assert holds({"q": "n", "gte": 5}, answers) and not holds({"q": "n", "gte": 5.5}, answers)
    assert holds({"q": "n", "lte": 5}, answers) and not holds({"q": "n", "lte": 4}, answers)
    assert holds({"q": "t", "contains": "tête"}, answers)
    assert holds({"q": "l", "contains": "b"}, answers) and not holds(
        {"q": "l", "contains": "c"}, answers
    )
    assert holds({"q": "b", "equals": False}, answers)
    assert holds({"q": "n", "in": [4, 5]}, answers)
    assert holds({"q": "x", "answered": False}, answers) and holds(
        {"q": "n", "answered": True}, answers
    )
    assert not holds({"q": "x", "equals": None}, answers)  # unanswered never matches a test
    assert not holds({"q": "b", "gte": 0}, answers)  # booleans are not numbers
    assert holds({"not": {"q": "x", "equals": 1}}, answers)
    assert holds({"any": [{"q": "x", "equals": 1}, {"q": "n", "equals": 5}]}, answers)
    assert not holds({"all": [{"q": "x", "equals": 1}, {"q": "n", "equals": 5}]}, answers)


def test_age_from_birth_date() -> None:
    from datetime import date

    assert red_flags.age_answers(date(2026, 10, 15), date(2026, 11, 23)) == {
        "_age_months": 1,
        "_age_years": 0,
    }
    assert red_flags.age_answers(date(2026, 9, 24), date(2026, 11, 23))["_age_months"] == 1
    assert red_flags.age_answers(date(1980, 1, 2), date(2026, 1, 1))["_age_years"] == 45

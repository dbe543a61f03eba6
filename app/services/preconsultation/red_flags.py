"""Red-flag rules: versioned data files and a small declarative evaluator (no code in data).

A condition is one of:
``{all: [c, ...]}``, ``{any: [c, ...]}``, ``{not: c}``, or a test on one answer by linkId:
``{q: id, equals: v}``, ``{q: id, in: [v, ...]}``, ``{q: id, gte: n}``, ``{q: id, lte: n}``,
``{q: id, contains: v}`` (a chosen option, or a word in free text), ``{q: id, answered: bool}``,
or a test on what the patient wrote: ``{text: concept}`` (the concept is affirmed in some
free-text answer: negated, hypothetical, family, history and reported mentions do not count)
and ``{text: concept, near: other}`` (both affirmed in the same sentence).
Derived answers ``_age_months`` and ``_age_years`` come from the patient's birth date.

The shared rule set (``questionnaire: "*"``, file ``texte-libre.yaml``) applies to every
questionnaire; a questionnaire's own rule with the same id replaces the shared one, and a
rule that fires hides the rules it ``supersedes`` (a graver flag for the same sign).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.services.core.errors import InvalidInput
from app.services.preconsultation import questionnaires
from app.services.preconsultation.clinical_text import (
    CHILD_UNDER_YEARS,
    FACT_CONCEPTS,
    Findings,
    Mention,
    concept_names,
    read_answers,
)

RULES_DIR = Path(__file__).resolve().parent / "questionnaires" / "rules"
Severity = Literal["urgence", "à vérifier"]
TESTS = ("equals", "in", "gte", "lte", "contains", "answered")
COMBINATORS = ("all", "any", "not")
SHARED = "*"  # the questionnaire slug of the rules that apply to every questionnaire


class RuleInvalid(InvalidInput):
    """A rule file does not follow the rule format."""


def check_condition(node: Any, path: str = "when") -> None:
    """Reject anything that is not the declarative condition language."""
    if not isinstance(node, dict) or not node:
        raise ValueError(f"{path}: condition attendue")
    combinators = [k for k in node if k in COMBINATORS]
    if combinators:
        if len(node) != 1:
            raise ValueError(f"{path}: un seul opérateur par condition")
        key = combinators[0]
        if key == "not":
            check_condition(node["not"], f"{path}.not")
            return
        children = node[key]
        if not isinstance(children, list) or not children:
            raise ValueError(f"{path}.{key}: liste de conditions attendue")
        for i, child in enumerate(children):
            check_condition(child, f"{path}.{key}[{i}]")
        return
    if "text" in node:
        if not set(node) <= {"text", "near"}:
            raise ValueError(
                f"{path}: attendu {{text: concept}} ou {{text: concept, near: concept}}"
            )
        for key in ("text", "near"):
            if key in node and node[key] not in concept_names():
                raise ValueError(f"{path}: concept inconnu : {node[key]!r}")
        return
    tests = [k for k in node if k in TESTS]
    if set(node) != {"q", *tests} or len(tests) != 1 or not isinstance(node["q"], str):
        raise ValueError(f"{path}: attendu {{q: linkId, <test>: valeur}} avec un seul test")
    value = node[tests[0]]
    if tests[0] == "in" and not isinstance(value, list):
        raise ValueError(f"{path}: « in » attend une liste")
    if tests[0] in ("gte", "lte") and (
        not isinstance(value, int | float) or isinstance(value, bool)
    ):
        raise ValueError(f"{path}: « {tests[0]} » attend un nombre")
    if tests[0] == "answered" and not isinstance(value, bool):
        raise ValueError(f"{path}: « answered » attend true ou false")


def referenced_questions(node: dict[str, Any]) -> set[str]:
    if "q" in node:
        return {node["q"]}
    if "text" in node:
        return set()
    if "not" in node:
        return referenced_questions(node["not"])
    key = "all" if "all" in node else "any"
    return set().union(*(referenced_questions(child) for child in node[key]))


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=64)
    version: int = Field(ge=1)
    severity: Severity
    when: dict[str, Any]
    staff: dict[Literal["fr", "en"], str]
    guidance: dict[Literal["fr", "en"], str] | None = None
    supersedes: tuple[str, ...] = ()

    @field_validator("when")
    @classmethod
    def _declarative(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_condition(value)
        return value

    @model_validator(mode="after")
    def _guidance_for_urgence_only(self) -> "Rule":
        if set(self.staff) != {"fr", "en"}:
            raise ValueError("staff: messages fr et en requis")
        if self.severity == "urgence" and (not self.guidance or set(self.guidance) != {"fr", "en"}):
            raise ValueError("une règle « urgence » donne une consigne au patient en fr et en")
        if self.severity != "urgence" and self.guidance:
            raise ValueError("seules les règles « urgence » s'adressent au patient")
        return self


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    questionnaire: str
    version: str
    rules: tuple[Rule, ...]
    history_fields: tuple[str, ...] = ()  # free-text answers that tell the past by nature

    @model_validator(mode="after")
    def _unique_ids(self) -> "RuleSet":
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("identifiants de règles en double")
        return self


@dataclass(frozen=True)
class Evidence:
    """The patient's exact words behind a flag, where they wrote them."""

    concept: str
    field: str
    text: str
    start: int
    end: int

    def as_json(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "field": self.field,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class Flag:
    rule: str
    rule_version: int
    ruleset_version: str
    severity: str
    staff_fr: str
    staff_en: str
    guidance_fr: str | None
    guidance_en: str | None
    evidence: tuple[Evidence, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "rule_version": self.rule_version,
            "ruleset_version": self.ruleset_version,
            "severity": self.severity,
            "staff": {"fr": self.staff_fr, "en": self.staff_en},
            "guidance": (
                {"fr": self.guidance_fr, "en": self.guidance_en} if self.guidance_fr else None
            ),
            "evidence": [e.as_json() for e in self.evidence],
        }


def load_ruleset(path: Path) -> RuleSet:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
        return RuleSet.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise RuleInvalid(
            f"Fichier de règles invalide : {path.name} ({exc})",
            f"Invalid rule file: {path.name} ({exc})",
        ) from exc


@cache
def rulesets() -> dict[str, RuleSet]:
    """Every bundled rule set, by questionnaire slug."""
    out = {}
    for path in sorted(RULES_DIR.glob("*.yaml")):
        ruleset = load_ruleset(path)
        out[ruleset.questionnaire] = ruleset
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


NO_FINDINGS = Findings()


def _text_mentions(node: dict[str, Any], findings: Findings) -> tuple[Mention, ...]:
    if "near" in node:
        return findings.near(node["text"], node["near"])
    return findings.of(node["text"])


def holds(node: dict[str, Any], answers: dict[str, Any], findings: Findings = NO_FINDINGS) -> bool:
    """Evaluate one condition against answers (an unanswered question makes tests false)
    and the affirmed concepts of the free text."""
    if "all" in node:
        return all(holds(child, answers, findings) for child in node["all"])
    if "any" in node:
        return any(holds(child, answers, findings) for child in node["any"])
    if "not" in node:
        return not holds(node["not"], answers, findings)
    if "text" in node:
        return bool(_text_mentions(node, findings))
    value = answers.get(node["q"])
    answered = value is not None and value != [] and value != ""
    if "answered" in node:
        return bool(answered == node["answered"])
    if not answered:
        return False
    if "equals" in node:
        return bool(value == node["equals"])
    if "in" in node:
        return bool(value in node["in"])
    if "gte" in node or "lte" in node:
        number = _number(value)
        bound = float(node["gte"] if "gte" in node else node["lte"])
        if number is None:
            return False
        return number >= bound if "gte" in node else number <= bound
    wanted = node["contains"]
    if isinstance(value, list):
        return wanted in value
    return isinstance(value, str) and str(wanted).casefold() in value.casefold()


def _evidence(node: dict[str, Any], findings: Findings) -> Iterator[Mention]:
    """The mentions that made a fired rule's positive text tests true (none under "not")."""
    if "all" in node or "any" in node:
        for child in node.get("all", node.get("any", [])):
            yield from _evidence(child, findings)
    elif "text" in node:
        yield from _text_mentions(node, findings)


def rules_for(ruleset: RuleSet | None) -> tuple[tuple[Rule, str], ...]:
    """A questionnaire's rules then the shared ones it does not redefine, with the version
    of the set each comes from."""
    own = ruleset.rules if ruleset else ()
    shared = rulesets().get(SHARED)
    ids = {r.id for r in own}
    out = [(r, ruleset.version) for r in own] if ruleset else []
    if shared is not None and (ruleset is None or ruleset.questionnaire != SHARED):
        out += [(r, shared.version) for r in shared.rules if r.id not in ids]
    return tuple(out)


def history_fields(ruleset: RuleSet | None) -> tuple[str, ...]:
    shared = rulesets().get(SHARED)
    return (ruleset.history_fields if ruleset else ()) + (shared.history_fields if shared else ())


def evaluate(
    ruleset: RuleSet | None, answers: dict[str, Any], findings: Findings = NO_FINDINGS
) -> list[Flag]:
    """The flags raised by enabled answers (plus derived ages) and the affirmed concepts of
    the free text, urgent ones first; each flag keeps the patient's words that raised it."""
    fired = [
        (rule, version)
        for rule, version in rules_for(ruleset)
        if holds(rule.when, answers, findings)
    ]
    hidden = {old for rule, _ in fired for old in rule.supersedes}
    flags = []
    for rule, version in fired:
        if rule.id in hidden:
            continue
        words = dict.fromkeys(
            Evidence(m.concept, m.field, m.text, m.start, m.end)
            for m in _evidence(rule.when, findings)
        )
        flags.append(
            Flag(
                rule=rule.id,
                rule_version=rule.version,
                ruleset_version=version,
                severity=rule.severity,
                staff_fr=rule.staff["fr"],
                staff_en=rule.staff["en"],
                guidance_fr=rule.guidance["fr"] if rule.guidance else None,
                guidance_en=rule.guidance["en"] if rule.guidance else None,
                evidence=tuple(words),
            )
        )
    return sorted(flags, key=lambda f: f.severity != "urgence")


def age_answers(birth_date: date | None, today: date) -> dict[str, int]:
    if birth_date is None:
        return {}
    months = (today.year - birth_date.year) * 12 + today.month - birth_date.month
    if today.day < birth_date.day:
        months -= 1
    return {"_age_months": months, "_age_years": months // 12}


def assess(
    form: questionnaires.Form, answers: dict[str, Any], derived: dict[str, Any] | None = None
) -> list[Flag]:
    """The flags of a questionnaire's answers, as the service raises them at each autosave
    and at submit: enabled answers only, the derived ages, and every enabled free-text
    answer read for alarm signs."""
    ruleset = rulesets().get(form.slug)
    enabled = questionnaires.enabled_answers(form, answers)
    context = {**enabled, **(derived or {})}
    fields = [k for k in enabled if form.questions[k].free_text]
    findings = read_answers(
        enabled,
        fields,
        history_fields=history_fields(ruleset),
        fact_concepts=FACT_CONCEPTS,
        child=context.get("_age_years", CHILD_UNDER_YEARS) < CHILD_UNDER_YEARS,
    )
    return evaluate(ruleset, context, findings)

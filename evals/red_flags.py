"""Red-flag evaluation: the case corpus against the rules, as the service evaluates answers.

``accueil eval red-flags`` reports sensitivity by expected severity (urgent, à vérifier),
by answer style (free text only, ticks only, both) and by language, specificity on negatives
and hard negatives, and lists every miss and every false alarm with the flags raised. A
case is an urgent *hit* when an ``urgence`` flag is raised, an à-vérifier hit when any flag
is raised, and a negative is *correct* when nothing is raised.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from app.services.preconsultation import questionnaires as qs
from app.services.preconsultation import red_flags

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "preconsultation" / "red_flag_corpus"
ADULT_MONTHS = 12 * 40
Kind = Literal["urgent", "review", "negative", "hard-negative"]


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    kind: Kind
    style: Literal["text", "ticks", "both"]
    lang: Literal["fr", "en"]
    questionnaire: str = qs.DEFAULT_SLUG
    age_months: int = Field(default=ADULT_MONTHS, ge=0, le=1500)
    answers: dict[str, Any]
    rule: str | None = None


@dataclass(frozen=True)
class Outcome:
    case: Case
    flags: tuple[red_flags.Flag, ...]

    @property
    def urgent(self) -> bool:
        return any(f.severity == "urgence" for f in self.flags)

    @property
    def correct(self) -> bool:
        if self.case.kind == "urgent":
            return self.urgent
        if self.case.kind == "review":
            return bool(self.flags)
        return not self.flags


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def rate(self, kinds: Iterable[str], **where: str) -> tuple[int, int]:
        """(correct, total) over the cases of these kinds matching ``where``."""
        chosen = [
            o
            for o in self.outcomes
            if o.case.kind in kinds and all(getattr(o.case, k) == v for k, v in where.items())
        ]
        return sum(o.correct for o in chosen), len(chosen)

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct]


def load_cases(folder: Path = CORPUS) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text("utf-8")) or []:
            cases.append(Case.model_validate(raw))
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate case ids: {sorted(duplicates)}")
    return cases


@cache
def _form(slug: str) -> qs.Form:
    """The French form: the service always evaluates against it (answers are codes)."""
    resource = json.loads((qs.BUNDLED_DIR / f"{slug}.fr.json").read_text("utf-8"))
    return qs.to_form(resource)


def ages(months: int) -> dict[str, int]:
    return {"_age_months": months, "_age_years": months // 12}


def flags_for(case: Case) -> list[red_flags.Flag]:
    form = _form(case.questionnaire)
    answers = {}
    for link_id, raw in case.answers.items():
        value = qs.coerce_answer(form.questions[link_id], raw)
        if value is not None:
            answers[link_id] = value
    return red_flags.assess(form, answers, ages(case.age_months))


def evaluate(cases: list[Case]) -> Report:
    return Report([Outcome(c, tuple(flags_for(c))) for c in cases])


def _ratio(pair: tuple[int, int]) -> str:
    correct, total = pair
    return f"{correct / total:.3f} ({correct}/{total})" if total else "- (0/0)"


def summary(report: Report) -> str:
    positive = ("urgent",)
    lines = [
        f"Cas : {len(report.outcomes)}",
        f"Sensibilité urgence : {_ratio(report.rate(positive))}",
    ]
    for style in ("text", "ticks", "both"):
        lines.append(f"  - {style} : {_ratio(report.rate(positive, style=style))}")
    for lang in ("fr", "en"):
        lines.append(f"  - {lang} : {_ratio(report.rate(positive, lang=lang))}")
    lines.append(f"Sensibilité à vérifier : {_ratio(report.rate(('review',)))}")
    lines.append(
        f"Spécificité (négatifs + pièges) : {_ratio(report.rate(('negative', 'hard-negative')))}"
    )
    lines.append(f"  - négatifs : {_ratio(report.rate(('negative',)))}")
    lines.append(f"  - pièges : {_ratio(report.rate(('hard-negative',)))}")
    lines.append(f"Erreurs : {len(report.misses)}")
    for miss in report.misses:
        raised = ", ".join(f"{f.rule} ({f.severity})" for f in miss.flags) or "aucun flag"
        words = "; ".join(f"{e.field}: « {e.text} »" for f in miss.flags for e in f.evidence)
        lines.append(f"  ✗ {miss.case.id} [{miss.case.kind}, {miss.case.style}] → {raised}")
        if words:
            lines.append(f"      mots : {words}")
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return {
        "cases": len(report.outcomes),
        "urgent_sensitivity": report.rate(("urgent",)),
        "urgent_sensitivity_by_style": {
            s: report.rate(("urgent",), style=s) for s in ("text", "ticks", "both")
        },
        "review_sensitivity": report.rate(("review",)),
        "specificity": report.rate(("negative", "hard-negative")),
        "misses": [
            {
                "id": o.case.id,
                "kind": o.case.kind,
                "style": o.case.style,
                "flags": [f.as_json() for f in o.flags],
            }
            for o in report.misses
        ],
    }

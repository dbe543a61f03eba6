"""Questionnaires as FHIR R4 data: import/export, steps and questions, answers, enableWhen."""

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse as FhirQuestionnaireResponse,
)
from pydantic import ValidationError
from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from app.services.core.errors import Conflict, InvalidInput, NotFound
from models.questionnaires import Questionnaire

BUNDLED_DIR = Path(__file__).resolve().parent / "questionnaires"
VISIT_TYPE_EXTENSION = "https://accueil.local/fhir/StructureDefinition/visit-type"
DEFAULT_SLUG = "consultation-generale"  # the general-practice questionnaire
QUESTION_TYPES = frozenset({"boolean", "choice", "integer", "decimal", "string", "text", "date"})
MAX_TEXT = 2000
FREE_TEXT_TYPES = frozenset({"string", "text"})
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
# A number typed with its unit: "39°C", "39,5", "39.5 °C", "38 degrés".
_NUMBER_WITH_UNIT = re.compile(
    r"^\s*([+-]?\d+(?:[.,]\d+)?)\s*(?:°\s*[cC]?|[cC]|degr[ée]s?(?:\s*[cC]\w*)?|°?\s*celsius)?\s*$"
)

Answer = bool | int | float | str | list[str]


class QuestionnaireInvalid(InvalidInput):
    """A questionnaire file is not a valid FHIR R4 Questionnaire we can serve."""


@dataclass(frozen=True)
class Option:
    code: str
    display: str


@dataclass(frozen=True)
class Condition:
    """One FHIR ``enableWhen`` entry."""

    question: str
    operator: str
    answer: Any


@dataclass(frozen=True)
class Question:
    link_id: str
    text: str
    type: str
    required: bool = False
    repeats: bool = False
    max_length: int | None = None
    options: tuple[Option, ...] = ()
    help: str = ""
    conditions: tuple[Condition, ...] = ()
    behavior: str = "all"
    min_value: float | None = None  # FHIR minValue / maxValue extensions
    max_value: float | None = None
    unit: str = ""  # FHIR questionnaire-unit display, e.g. "°C"

    @property
    def free_text(self) -> bool:
        return self.type in FREE_TEXT_TYPES

    def option_label(self, code: str) -> str:
        return next((o.display for o in self.options if o.code == code), code)


@dataclass(frozen=True)
class Step:
    """A top-level group: one page of the patient form."""

    link_id: str
    title: str
    questions: tuple[Question, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Form:
    """A questionnaire as the patient form and the rules use it."""

    slug: str
    version: str
    language: str
    title: str
    description: str
    steps: tuple[Step, ...]

    @cached_property
    def questions(self) -> Mapping[str, Question]:
        """Every question by linkId (read-only: a form is shared between requests)."""
        return MappingProxyType({q.link_id: q for s in self.steps for q in s.questions})


# ---------------------------------------------------------------- validation, import, export


def validate_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate with fhir.resources (R4B) and our own constraints; the normalized JSON."""
    try:
        parsed = FhirQuestionnaire.model_validate(resource)
    except ValidationError as exc:
        raise QuestionnaireInvalid(
            f"Questionnaire FHIR invalide : {exc.errors()[0]['msg']}",
            f"Invalid FHIR Questionnaire: {exc.errors()[0]['msg']}",
        ) from exc
    normalized: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_none=True))
    for key in ("url", "version", "language", "title"):
        if not normalized.get(key):
            raise QuestionnaireInvalid(
                f"Le questionnaire doit avoir « {key} ».", f"The questionnaire needs '{key}'."
            )
    _check_unique_link_ids(normalized.get("item", []))  # FHIR que-2
    form = to_form(normalized)  # every item must be something the form can render
    known = form.questions
    for question in known.values():
        for condition in question.conditions:
            if condition.question not in known:
                raise QuestionnaireInvalid(
                    f"enableWhen de {question.link_id} vise une question inconnue.",
                    f"enableWhen of {question.link_id} points to an unknown question.",
                )
    return normalized


def _check_unique_link_ids(items: list[dict[str, Any]]) -> None:
    """FHIR's que-2: a linkId names one item of the whole questionnaire (answers, rules and
    responses point to items by it)."""
    seen: set[str] = set()

    def walk(level: list[dict[str, Any]]) -> None:
        for item in level:
            link_id = str(item.get("linkId"))
            if link_id in seen:
                raise QuestionnaireInvalid(
                    f"Le linkId « {link_id} » est utilisé plusieurs fois.",
                    f"The linkId '{link_id}' is used more than once.",
                )
            seen.add(link_id)
            walk(item.get("item", []))

    walk(items)


def slug_of(resource: dict[str, Any]) -> str:
    return str(resource["url"]).rstrip("/").rsplit("/", 1)[-1]


def visit_type_of(resource: dict[str, Any]) -> str | None:
    for extension in resource.get("extension", []):
        if extension.get("url") == VISIT_TYPE_EXTENSION:
            code: str | None = extension.get("valueCode") or extension.get("valueString")
            return code
    return None


def import_resource(session: Session, resource: dict[str, Any]) -> tuple[Questionnaire, bool]:
    """Store one questionnaire version; the same version twice is a no-op, a changed one an
    error (publish a new version instead). Returns the row and whether it was created."""
    normalized = validate_resource(resource)
    slug, version, language = slug_of(normalized), normalized["version"], normalized["language"]
    existing = session.exec(
        select(Questionnaire).where(
            Questionnaire.slug == slug,
            Questionnaire.version == version,
            Questionnaire.language == language,
        )
    ).first()
    if existing is not None:
        if existing.resource != normalized:
            raise Conflict(
                f"La version {version} de « {slug} » ({language}) existe déjà avec un autre "
                "contenu : changez le numéro de version.",
                f"Version {version} of '{slug}' ({language}) already exists with other content: "
                "change the version number.",
            )
        return existing, False
    row = Questionnaire(
        slug=slug,
        version=version,
        language=language,
        title=normalized["title"],
        visit_type=visit_type_of(normalized),
        resource=normalized,
        is_active=normalized.get("status") == "active",
    )
    session.add(row)
    session.flush()
    if row.is_active:  # one active version per slug and language
        for older in session.exec(
            select(Questionnaire).where(
                Questionnaire.slug == slug,
                Questionnaire.language == language,
                Questionnaire.id != row.id,
                col(Questionnaire.is_active),
            )
        ):
            older.is_active = False
            session.add(older)
    return row, True


def import_files(session: Session, paths: Iterable[Path]) -> list[tuple[Questionnaire, bool]]:
    out = []
    for path in sorted(paths):
        try:
            resource = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise QuestionnaireInvalid(
                f"Fichier illisible : {path.name}", f"Unreadable file: {path.name}"
            ) from exc
        out.append(import_resource(session, resource))
    return out


def import_bundled(session: Session) -> list[tuple[Questionnaire, bool]]:
    """Load the questionnaires shipped with the application (idempotent)."""
    return import_files(session, BUNDLED_DIR.glob("*.json"))


def export_resource(row: Questionnaire) -> dict[str, Any]:
    """The stored questionnaire as FHIR JSON, validated again on the way out."""
    parsed = FhirQuestionnaire.model_validate(row.resource)
    exported: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_none=True))
    return exported


def list_active(session: Session, language: str | None = None) -> list[Questionnaire]:
    query = select(Questionnaire).where(col(Questionnaire.is_active))
    if language:
        query = query.where(Questionnaire.language == language)
    return list(session.exec(query.order_by(Questionnaire.slug, Questionnaire.language)))


def pick(
    session: Session, *, visit_type: str | None, language: str, slug: str | None = None
) -> Questionnaire:
    """The active questionnaire for a slug, else for the visit type, else the GP default;
    in the given language when it exists, else in French."""
    candidates = list_active(session)
    if slug:
        pool = [q for q in candidates if q.slug == slug]
        if not pool:
            raise NotFound(f"Questionnaire inconnu : {slug}.", f"Unknown questionnaire: {slug}.")
    else:
        pool = [q for q in candidates if visit_type and q.visit_type == visit_type] or [
            q for q in candidates if q.slug == DEFAULT_SLUG
        ]
    for wanted in (language, "fr"):
        for row in pool:
            if row.language == wanted:
                return row
    if pool:
        return pool[0]
    raise NotFound(
        "Aucun questionnaire n'est installé (accueil questionnaires import).",
        "No questionnaire is installed (accueil questionnaires import).",
    )


def translation(session: Session, row: Questionnaire, language: str) -> Questionnaire:
    """The same questionnaire version in another language, or the row itself."""
    if row.language == language:
        return row
    other = session.exec(
        select(Questionnaire)
        # SQLModel types the class attribute as the field's value; it is a column attribute.
        .options(defer(Questionnaire.resource))  # type: ignore[arg-type]
        .where(
            Questionnaire.slug == row.slug,
            Questionnaire.version == row.version,
            Questionnaire.language == language,
        )
    ).first()
    return other or row


# ---------------------------------------------------------------- the form model


def _condition(raw: dict[str, Any]) -> Condition:
    answer_key = next((k for k in raw if k.startswith("answer")), None)
    value = raw.get(answer_key) if answer_key else None
    if isinstance(value, dict):  # answerCoding
        value = value.get("code")
    return Condition(question=raw["question"], operator=raw["operator"], answer=value)


def _question(item: dict[str, Any]) -> Question:
    if item["type"] not in QUESTION_TYPES:
        raise QuestionnaireInvalid(
            f"Type de question non pris en charge : {item['type']}.",
            f"Unsupported question type: {item['type']}.",
        )
    help_text = " ".join(
        child.get("text", "") for child in item.get("item", []) if child.get("type") == "display"
    )
    options = tuple(
        Option(code=o["valueCoding"]["code"], display=o["valueCoding"].get("display", ""))
        for o in item.get("answerOption", [])
        if "valueCoding" in o
    )
    if item["type"] == "choice" and not options:
        raise QuestionnaireInvalid(
            f"La question {item['linkId']} n'a pas d'options.",
            f"Question {item['linkId']} has no options.",
        )
    bounds: dict[str, float] = {}
    unit = ""
    for extension in item.get("extension", []):
        url = extension.get("url")
        if url in (MIN_VALUE, MAX_VALUE):
            value = extension.get("valueDecimal", extension.get("valueInteger"))
            if isinstance(value, int | float) and not isinstance(value, bool):
                bounds[url] = float(value)
        elif url == UNIT:
            unit = str((extension.get("valueCoding") or {}).get("display", ""))
    return Question(
        link_id=item["linkId"],
        text=item.get("text", ""),
        type=item["type"],
        required=bool(item.get("required")),
        repeats=bool(item.get("repeats")),
        max_length=item.get("maxLength"),
        options=options,
        help=help_text,
        conditions=tuple(_condition(c) for c in item.get("enableWhen", [])),
        behavior=item.get("enableBehavior", "all"),
        min_value=bounds.get(MIN_VALUE),
        max_value=bounds.get(MAX_VALUE),
        unit=unit,
    )


def to_form(resource: dict[str, Any]) -> Form:
    """Top-level groups become steps; top-level questions are gathered into one step each."""
    steps = []
    for item in resource.get("item", []):
        if item["type"] == "group":
            questions = tuple(_question(child) for child in item.get("item", []))
            steps.append(Step(item["linkId"], item.get("text", ""), questions))
        else:
            steps.append(Step(item["linkId"], item.get("text", ""), (_question(item),)))
    if not steps:
        raise QuestionnaireInvalid("Questionnaire vide.", "Empty questionnaire.")
    return Form(
        slug=slug_of(resource),
        version=str(resource.get("version", "")),
        language=str(resource.get("language", "fr")),
        title=str(resource.get("title", "")),
        description=str(resource.get("description", "")),
        steps=tuple(steps),
    )


_FORMS: OrderedDict[tuple[Any, ...], Form] = OrderedDict()
_FORMS_LOCK = threading.Lock()
FORMS_CACHED = 64


@dataclass(frozen=True)
class Version:
    """One stored questionnaire version, named by its row without its resource: what the
    autosave reads with its link (the resource is read only when its form is not cached)."""

    id: int
    slug: str
    version: str
    language: str
    created_at: datetime

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.id, self.slug, self.version, self.language, self.created_at)


# The columns of a ``Version``, in its fields' order (SQLModel types them as their values).
VERSION_COLUMNS = (
    col(Questionnaire.id),
    col(Questionnaire.slug),
    col(Questionnaire.version),
    col(Questionnaire.language),
    col(Questionnaire.created_at),
)


def _cached_form(key: tuple[Any, ...], resource: Callable[[], dict[str, Any]]) -> Form:
    with _FORMS_LOCK:
        form = _FORMS.get(key)
        if form is not None:
            _FORMS.move_to_end(key)
            return form
    form = to_form(resource())
    with _FORMS_LOCK:
        _FORMS[key] = form
        while len(_FORMS) > FORMS_CACHED:
            _FORMS.popitem(last=False)
    return form


def form_of(row: Questionnaire) -> Form:
    """The form of a stored questionnaire version, parsed once per process: a stored version
    never changes (``import_resource`` refuses changed content under the same version). The
    key holds the row's id and creation time too, so rows of other databases (tests, a
    restore) never share an entry unless they are copies of the same row."""
    if row.id is None:
        return to_form(row.resource)
    key = (row.id, row.slug, row.version, row.language, row.created_at)
    return _cached_form(key, lambda: row.resource)


_RESOURCE = core_select(col(Questionnaire.resource)).where(
    col(Questionnaire.id) == bindparam("questionnaire_id")
)
_TRANSLATION = core_select(*VERSION_COLUMNS).where(
    col(Questionnaire.slug) == bindparam("slug"),
    col(Questionnaire.version) == bindparam("version"),
    col(Questionnaire.language) == bindparam("language"),
)


def version_form(session: Session, version: Version) -> Form:
    """``form_of`` for a ``Version``: the same cache, the resource read only on a miss."""

    def resource() -> dict[str, Any]:
        found = session.connection().execute(_RESOURCE, {"questionnaire_id": version.id})
        value: dict[str, Any] = found.scalar_one()
        return value

    return _cached_form(version.key, resource)


def version_translation(session: Session, version: Version, language: str) -> Version:
    """``translation`` for a ``Version``: the same version in another language, or itself."""
    if version.language == language:
        return version
    found = (
        session.connection()
        .execute(
            _TRANSLATION, {"slug": version.slug, "version": version.version, "language": language}
        )
        .first()
    )
    if found is None:
        return version
    row_id, slug, number, row_language, created_at = found
    return Version(row_id or 0, slug, number, row_language, created_at)


# ---------------------------------------------------------------- enableWhen and answers


def _compare(operator: str, given: Any, expected: Any) -> bool:
    values = given if isinstance(given, list) else [given]
    if operator == "exists":
        return (given is not None and given != []) == bool(expected)
    if given is None or given == []:
        return operator == "!="
    if operator == "=":
        return any(v == expected for v in values)
    if operator == "!=":
        return all(v != expected for v in values)
    try:
        if operator == ">":
            return any(v > expected for v in values)
        if operator == "<":
            return any(v < expected for v in values)
        if operator == ">=":
            return any(v >= expected for v in values)
        if operator == "<=":
            return any(v <= expected for v in values)
    except TypeError:
        return False
    return False


def is_enabled(form: Form, question: Question, answers: dict[str, Any]) -> bool:
    """FHIR enableWhen: a question shows only when its conditions hold (all or any), and
    a condition on a question that is itself disabled sees no answer."""
    if not question.conditions:
        return True
    questions = form.questions
    results = []
    for condition in question.conditions:
        source = questions.get(condition.question)
        given = answers.get(condition.question)
        if source is not None and not is_enabled(form, source, answers):
            given = None
        results.append(_compare(condition.operator, given, condition.answer))
    return all(results) if question.behavior == "all" else any(results)


def enabled_answers(form: Form, answers: dict[str, Any]) -> dict[str, Any]:
    """Only the answers to questions that are enabled, in questionnaire order."""
    return {
        link_id: answers[link_id]
        for link_id, question in form.questions.items()
        if link_id in answers and is_enabled(form, question, answers)
    }


def _bad(question: Question, fr: str, en: str) -> InvalidInput:
    return InvalidInput(f"{question.text} : {fr}", f"{question.text}: {en}", field=question.link_id)


def _decimal(question: Question, raw: Any) -> float:
    """A decimal typed as people write it: a comma or a point, the unit after it or not."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw).strip()
    match = _NUMBER_WITH_UNIT.match(text) if len(text) <= 40 else None
    if match is None:
        example = f"38,5 {question.unit}".strip()
        raise _bad(
            question,
            f"nombre attendu (par exemple {example}).",
            f"number expected (for example {example.replace(',', '.')}).",
        )
    return float(match.group(1).replace(",", "."))


def _fmt(number: float, language: str) -> str:
    text = f"{number:g}"
    return text.replace(".", ",") if language == "fr" else text


def _check_bounds(question: Question, number: float) -> None:
    """Refuse an implausible value with the plausible range; a Celsius question given a
    Fahrenheit reading (e.g. 102.2) is told so, since accepting it would hide a fever."""
    low, high = question.min_value, question.max_value
    if (low is None or number >= low) and (high is None or number <= high):
        return
    unit = f" {question.unit}" if question.unit else ""
    if low is not None and high is not None:
        fr_range = f"entre {_fmt(low, 'fr')} et {_fmt(high, 'fr')}{unit}"
        en_range = f"between {_fmt(low, 'en')} and {_fmt(high, 'en')}{unit}"
        fr = f"valeur peu plausible : indiquez une valeur {fr_range}."
        en = f"implausible value: give a value {en_range}."
    elif low is not None:
        fr = f"valeur peu plausible : au moins {_fmt(low, 'fr')}{unit}."
        en = f"implausible value: at least {_fmt(low, 'en')}{unit}."
    else:
        fr = f"valeur peu plausible : au plus {_fmt(high or 0, 'fr')}{unit}."
        en = f"implausible value: at most {_fmt(high or 0, 'en')}{unit}."
    if question.unit == "°C" and 90 <= number <= 113:
        celsius = round((number - 32) * 5 / 9, 1)
        fr += (
            f" {_fmt(number, 'fr')} ressemble à des degrés Fahrenheit "
            f"(soit environ {_fmt(celsius, 'fr')} °C) : indiquez la température en °C."
        )
        en += (
            f" {_fmt(number, 'en')} looks like degrees Fahrenheit "
            f"(about {_fmt(celsius, 'en')} °C): give the temperature in °C."
        )
    raise _bad(question, fr, en)


def coerce_answer(question: Question, raw: Any) -> Answer | None:
    """A raw value (form text, JSON) as the question's type; None clears the answer."""
    if raw is None or raw == "" or raw == []:
        return None
    if question.type == "choice":
        values = raw if isinstance(raw, list) else [raw]
        codes = {o.code for o in question.options}
        if not all(isinstance(v, str) and v in codes for v in values):
            raise _bad(question, "choix inconnu.", "unknown choice.")
        if question.repeats:
            return [o.code for o in question.options if o.code in values]
        if len(values) != 1:
            raise _bad(question, "un seul choix possible.", "only one choice allowed.")
        return str(values[0])  # checked above: one of the option codes
    if isinstance(raw, list):
        raise _bad(question, "une seule réponse attendue.", "one answer expected.")
    if question.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "oui", "yes", "1"):
            return True
        if str(raw).lower() in ("false", "non", "no", "0"):
            return False
        raise _bad(question, "répondez oui ou non.", "answer yes or no.")
    if question.type == "integer":
        try:
            value = int(str(raw).strip())
        except ValueError as exc:
            raise _bad(question, "nombre entier attendu.", "whole number expected.") from exc
        if not -100_000 <= value <= 100_000:
            raise _bad(question, "nombre hors limites.", "number out of range.")
        _check_bounds(question, value)
        return value
    if question.type == "decimal":
        number = _decimal(question, raw)
        if number != number or not -100_000 <= number <= 100_000:
            raise _bad(question, "nombre hors limites.", "number out of range.")
        _check_bounds(question, number)
        return number
    if question.type == "date":
        try:
            return date.fromisoformat(str(raw).strip()).isoformat()
        except ValueError as exc:
            raise _bad(question, "date attendue (AAAA-MM-JJ).", "date expected.") from exc
    text = str(raw).strip()
    limit = min(question.max_length or MAX_TEXT, MAX_TEXT)
    if len(text) > limit:
        raise _bad(question, f"{limit} caractères au plus.", f"at most {limit} characters.")
    return text or None


def missing_required(form: Form, answers: dict[str, Any], step: Step | None = None) -> list[str]:
    """Required, enabled questions left without an answer (in one step or everywhere)."""
    steps = [step] if step else list(form.steps)
    return [
        q.link_id
        for s in steps
        for q in s.questions
        if q.required and is_enabled(form, q, answers) and answers.get(q.link_id) in (None, [])
    ]


def display_answer(question: Question, value: Any, language: str) -> str:
    """An answer as the patient and the staff read it."""
    if isinstance(value, bool):
        return ("Oui" if value else "Non") if language == "fr" else ("Yes" if value else "No")
    if isinstance(value, list):
        return ", ".join(question.option_label(v) for v in value)
    if question.type == "choice":
        return question.option_label(str(value))
    if isinstance(value, float):
        text = f"{value:g}"
        return text.replace(".", ",") if language == "fr" else text
    return str(value)


# ---------------------------------------------------------------- QuestionnaireResponse


def _answer_values(question: Question, value: Any) -> list[dict[str, Any]]:
    if question.type == "choice":
        codes = value if isinstance(value, list) else [value]
        return [{"valueCoding": {"code": c, "display": question.option_label(c)}} for c in codes]
    key = {
        "boolean": "valueBoolean",
        "integer": "valueInteger",
        "decimal": "valueDecimal",
        "date": "valueDate",
    }.get(question.type, "valueString")
    return [{key: value}]


def build_response(
    row: Questionnaire,
    answers: dict[str, Any],
    *,
    authored: str,
    subject_reference: str,
    status: str = "completed",
) -> dict[str, Any]:
    """The enabled answers as a FHIR ``QuestionnaireResponse``, validated by fhir.resources."""
    form = form_of(row)
    kept = enabled_answers(form, answers)
    items = []
    for step in form.steps:
        children = [
            {
                "linkId": q.link_id,
                "text": q.text,
                "answer": _answer_values(q, kept[q.link_id]),
            }
            for q in step.questions
            if q.link_id in kept
        ]
        if children:
            items.append({"linkId": step.link_id, "text": step.title, "item": children})
    resource = {
        "resourceType": "QuestionnaireResponse",
        "language": row.language,
        "questionnaire": f"{row.resource['url']}|{row.version}",
        "status": status,
        "subject": {"reference": subject_reference},
        "authored": authored,
        "item": items,
    }
    parsed = FhirQuestionnaireResponse.model_validate(resource)
    response: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_none=True))
    return response


def answers_from_response(resource: dict[str, Any]) -> dict[str, Any]:
    """Read answers back from a QuestionnaireResponse (codes, not labels)."""
    FhirQuestionnaireResponse.model_validate(resource)
    out: dict[str, Any] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            values = []
            for answer in item.get("answer", []):
                for key, value in answer.items():
                    if key.startswith("value"):
                        values.append(value["code"] if key == "valueCoding" else value)
            if values:
                codings = any("valueCoding" in a for a in item.get("answer", []))
                out[item["linkId"]] = values if codings and len(values) > 1 else values[0]
            walk(item.get("item", []))

    walk(resource.get("item", []))
    return out

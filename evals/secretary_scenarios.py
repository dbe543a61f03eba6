"""Secretary scenarios: the YAML format as pydantic models, loading and clear errors."""

import re
from collections.abc import Callable
from datetime import date, time
from datetime import date as Day
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from evals.secretary_names import (
    patient_matches,
    practitioner_matches,
    split_practitioner_name,
)
from models.patients import normalize_phone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE = re.compile(r"^(\d{2}:\d{2})-(\d{2}:\d{2})$")
ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or does not follow the format."""


def _time_range(value: str) -> str:
    match = RANGE.match(value)
    if not match or time.fromisoformat(match[1]) >= time.fromisoformat(match[2]):
        raise ValueError(f"« {value} » : plage attendue HH:MM-HH:MM (début avant fin)")
    return value


def _scenario_id(value: str) -> str:
    if not ID.match(value):
        raise ValueError("identifiant en minuscules, chiffres et tirets (ex. book-next-morning)")
    return value


def _practitioner_name(value: str) -> str:
    split_practitioner_name(value)  # title, first name and last name
    return value


def _phone(value: str | None) -> str | None:
    normalize_phone(value)  # a number the patient form would refuse is a scenario error
    return value


TimeRange = Annotated[str, AfterValidator(_time_range)]
Minutes = Annotated[int, Field(ge=5, le=240)]
Keywords = list[str | list[str]]  # every item must appear; a list item: any one of its words


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PractitionerSpec(Strict):
    name: Annotated[str, AfterValidator(_practitioner_name)]  # "Dr Claire Martin"
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[TimeRange]]
    minutes: Minutes = 20
    specialty: str = "Médecine générale"


class PatientSpec(Strict):
    nom: str
    prenom: str
    naissance: date
    telephone: Annotated[str | None, AfterValidator(_phone)] = None
    sexe: Literal["F", "M", "X"] = "X"
    nom_usage: str | None = None
    email: str | None = None


class AppointmentSpec(Strict):
    patient: str
    practitioner: str
    start: AwareDatetime
    minutes: Minutes | None = None
    reason: str = ""


class AbsenceSpec(Strict):
    practitioner: str
    start: AwareDatetime
    end: AwareDatetime
    reason: str = ""


class WaitingSpec(Strict):
    patient: str
    practitioner: str | None = None
    earliest: Day
    latest: Day
    part_of_day: Literal["any", "morning", "afternoon"] = "any"
    reason: str = ""


class DocumentSpec(Strict):
    name: str  # file name, e.g. livret.md (its extension gives the format)
    text: str


class Practice(Strict):
    practitioners: list[PractitionerSpec] = Field(min_length=1)
    patients: list[PatientSpec] = []
    appointments: list[AppointmentSpec] = []
    absences: list[AbsenceSpec] = []
    waiting_list: list[WaitingSpec] = []
    documents: list[DocumentSpec] = []


class EditDecision(Strict):
    edit: dict[str, Any] = Field(min_length=1)


class RejectDecision(Strict):
    reject: str = Field(min_length=1)  # the secretary's reason, passed to the model


Decision = Literal["approve", "reject"] | EditDecision | RejectDecision


class ExpectedCall(Strict):
    name: str
    args: dict[str, Any] = {}


class ScriptStep(Strict):
    """What a perfect assistant answers at one model call: one tool call or the reply."""

    call: str | None = None
    args: dict[str, Any] = {}
    text: str = ""  # a sentence said before the tool call
    reply: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "ScriptStep":
        if (self.call is None) == (self.reply is None):
            raise ValueError("une étape scriptée a soit « call » (et « args »), soit « reply »")
        if self.reply is not None and (self.args or self.text):
            raise ValueError("« reply » ne prend ni « args » ni « text »")
        return self


class Meanwhile(Strict):
    """Changes made by someone else while the secretary talks with the assistant."""

    appointments: list[AppointmentSpec] = Field(min_length=1)


class Turn(Strict):
    user: str = Field(min_length=1)
    confirm: Decision | list[Decision] | None = None
    meanwhile: Meanwhile | None = None
    expect_calls: list[ExpectedCall] | None = None  # [] means: no tool call at all
    expect_reply_contains: Keywords = []
    scripted: list[ScriptStep] | None = None

    @property
    def decisions(self) -> list[Decision]:
        if self.confirm is None:
            return []
        return list(self.confirm) if isinstance(self.confirm, list) else [self.confirm]


class AppointmentExpect(Strict):
    patient: str
    practitioner: str | None = None
    start: AwareDatetime | None = None
    date: Day | None = None
    time: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    part_of_day: Literal["morning", "afternoon"] | None = None
    minutes: Minutes | None = None
    reason: str | None = None  # words the appointment's reason must contain


class WaitingExpect(Strict):
    patient: str
    practitioner: str | None = None
    date: Day | None = None  # a day the entry's period must cover
    earliest: Day | None = None
    latest: Day | None = None
    part_of_day: Literal["any", "morning", "afternoon"] | None = None


class PatientExpect(Strict):
    nom: str
    prenom: str
    naissance: date | None = None
    telephone: str | None = None


class ExpectState(Strict):
    appointments: list[AppointmentExpect] = []
    absent: list[AppointmentExpect] = []
    waiting_list: list[WaitingExpect] = []
    patients: list[PatientExpect] = []
    absent_patients: list[PatientExpect] = []
    unchanged: bool = False  # same appointments, patients and waiting list as at the start


class Scenario(Strict):
    id: Annotated[str, AfterValidator(_scenario_id)]
    description: str
    category: str = "autre"
    now: AwareDatetime
    practice: Practice
    turns: list[Turn] = Field(min_length=1)
    expect_state: ExpectState = ExpectState()
    expect_reply_contains: Keywords = []

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        """Names used in the practice and in expectations refer to someone who exists."""
        doctors = [p.name for p in self.practice.practitioners]
        people = [(p.nom, p.prenom, p.naissance, p.nom_usage) for p in self.practice.patients]
        changes = self.practice.appointments + [
            a for t in self.turns if t.meanwhile for a in t.meanwhile.appointments
        ]
        for appointment in changes:
            _one(appointment.patient, people, patient_matches, "patient")
            _one(appointment.practitioner, doctors, practitioner_matches, "praticien")
        for absence in self.practice.absences:
            _one(absence.practitioner, doctors, practitioner_matches, "praticien")
        for waiting in self.practice.waiting_list:
            _one(waiting.patient, people, patient_matches, "patient")
            if waiting.practitioner:
                _one(waiting.practitioner, doctors, practitioner_matches, "praticien")
        expected = self.expect_state
        wanted: list[AppointmentExpect | WaitingExpect] = [
            *expected.appointments,
            *expected.absent,
            *expected.waiting_list,
        ]
        for item in wanted:
            if item.practitioner:
                _one(item.practitioner, doctors, practitioner_matches, "praticien")
        for turn in self.turns:
            steps: list[ExpectedCall | ScriptStep] = [
                *(turn.expect_calls or []),
                *(turn.scripted or []),
            ]
            for step in steps:
                if isinstance(step.args.get("practitioner"), str):
                    _one(step.args["practitioner"], doctors, practitioner_matches, "praticien")
        return self


def _one(ref: str, candidates: list[Any], matches: Callable[[str, Any], bool], what: str) -> None:
    found = [c for c in candidates if matches(ref, c)]
    if len(found) != 1:
        hint = " (précisez la date de naissance)" if what == "patient" else ""
        raise ValueError(f"{what} « {ref} » {'ambigu' + hint if found else 'inconnu'}")


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(racine)"


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate one scenario's data; errors name the file and the field."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source} : un scénario est un dictionnaire YAML (id, turns, …)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{_location(e)} : {e['msg']}" for e in exc.errors()]
        raise ScenarioError(f"{source} : scénario invalide\n  " + "\n  ".join(lines)) from exc


def load_scenario(path: Path) -> Scenario:
    """Read and validate one YAML scenario file."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path} : illisible ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (ligne {where.line + 1}, colonne {where.column + 1})" if where else ""
        raise ScenarioError(f"{path} : YAML invalide{at} : {exc}") from exc
    return parse_scenario(data, str(path))


def load_scenarios(location: Path, only: list[str] | None = None) -> list[Scenario]:
    """Every ``*.yaml`` scenario of a folder (or one file), sorted by id; ids are unique."""
    if not location.exists():
        raise ScenarioError(f"{location} : dossier de scénarios introuvable")
    files = (
        [location]
        if location.is_file()
        else sorted([*location.glob("*.yaml"), *location.glob("*.yml")])
    )
    scenarios: dict[str, Scenario] = {}
    for path in files:
        scenario = load_scenario(path)
        if scenario.id in scenarios:
            raise ScenarioError(f"{path} : identifiant « {scenario.id} » déjà utilisé")
        scenarios[scenario.id] = scenario
    if only:
        missing = sorted(set(only) - set(scenarios))
        if missing:
            raise ScenarioError(f"scénario(s) introuvable(s) : {', '.join(missing)}")
        return [scenarios[i] for i in sorted(set(only))]
    if not scenarios:
        raise ScenarioError(f"{location} : aucun scénario (*.yaml)")
    return [scenarios[i] for i in sorted(scenarios)]

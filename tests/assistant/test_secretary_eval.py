"""The secretary evaluation: the whole scenario suite passes with the scripted model, the
harness fails a wrong call with a clear reason, malformed scenarios are refused clearly, and
the JSON / Markdown reports carry pass^1 and pass^k. Always on its own SQLite databases."""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import cli
from app.config.settings import Settings, get_settings
from app.services.scheduling import slots
from evals import secretary
from evals.secretary_clock import practice_clock
from evals.secretary_names import patient_matches, practitioner_matches
from evals.secretary_scenarios import ScenarioError, load_scenario, load_scenarios
from models.db import make_engine
from models.migrate import upgrade
from models.practice import Practitioner, WorkingHours
from tests.support.practice import PARIS

CATEGORIES = {
    "prise de rendez-vous",
    "déplacement",
    "annulation",
    "patient ambigu",
    "nouveau patient",
    "pas de créneau",
    "liste d'attente",
    "refus de la secrétaire",
    "modification de l'action",
    "erreur d'outil",
    "hors périmètre",
}


@pytest.fixture
def eval_settings(tmp_path: Path) -> Settings:
    """Settings for the runner: each scenario run makes its own SQLite database anyway."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-not-for-production",
        ollama_url="http://127.0.0.1:9",
        jobs_in_process=False,
    )


def _copy(tmp_path: Path, scenario_id: str) -> tuple[Path, dict]:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    source = secretary.SCENARIOS / f"{scenario_id}.yaml"
    data = yaml.safe_load(source.read_text("utf-8"))
    return folder / source.name, data


def _write(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")


@pytest.mark.slow
def test_the_whole_suite_passes_with_the_scripted_model(eval_settings: Settings) -> None:
    result = secretary.evaluate(eval_settings, model="scripted")
    failures = {
        run.scenario: run.failures for s in result.scores for run in s.results if not run.passed
    }
    assert failures == {}
    assert result.scenarios >= 40 and result.pass_1 == 1.0 and result.pass_k == 1.0
    assert {s.category for s in result.scores} >= CATEGORIES
    shared = {"ambiguous-patient", "book-next-morning", "cancel-refused", "move-with-edit"}
    assert shared | {"no-slot-waiting-list"} <= {s.id for s in result.scores}
    slowest = max(s.seconds_mean for s in result.scores)
    assert slowest < 10, f"a scenario took {slowest:.1f} s"


def test_the_shared_scenarios_keep_their_content() -> None:
    shared = Path(__file__).resolve().parents[2] / ".." / "shared" / "evals" / "secretary"
    if not shared.exists():
        pytest.skip("../shared/evals/secretary is not beside this checkout")
    for path in sorted(shared.glob("*.yaml")):
        original = yaml.safe_load(path.read_text("utf-8"))
        ours = yaml.safe_load((secretary.SCENARIOS / path.name).read_text("utf-8"))
        for turn in ours["turns"]:
            turn.pop("scripted")
        ours.pop("category")
        assert ours == original, path.name


def test_a_wrong_scripted_call_fails_its_scenario(eval_settings: Settings, tmp_path) -> None:
    path, data = _copy(tmp_path, "book-next-morning")
    booking = data["turns"][1]["scripted"][0]
    booking["args"]["start"] = "2027-03-16T09:10:00+01:00"  # not the first free slot
    _write(path, data)
    other, data = _copy(tmp_path, "book-any-doctor-first-available")
    data["turns"][0]["scripted"][2]["args"]["practitioner"] = "Dr Claire Martin"
    data["turns"][0]["scripted"][2]["args"]["start"] = "2027-03-15T14:00:00+01:00"
    _write(other, data)
    result = secretary.evaluate(eval_settings, scenarios=path.parent)
    assert result.pass_1 == 0.0
    by_id = {s.id: s.results[0].failures for s in result.scores}
    assert by_id["book-next-morning"] == [
        "state: missing appointment (patient=Durand Sophie, practitioner=Dr Claire Martin, "
        "start=2027-03-16 08:50:00+01:00); Durand Sophie has: 2027-03-16 08:30 (praticien 1); "
        "2027-03-16 09:10 (praticien 1)"
    ]
    wrong_call, wrong_state = by_id["book-any-doctor-first-available"]
    assert wrong_call.startswith(
        "turn 1: expected call book_appointment(patient_id=1, practitioner_id=2, "
        "start='2027-03-15T10:15:00+01:00') not made in order; calls: find_patients("
    )
    assert "book_appointment(patient_id=1, practitioner_id=1, start='2027-03-15T14:00" in wrong_call
    assert wrong_state.startswith("state: missing appointment (patient=Benali Nadia")


def test_booking_before_asking_which_patient_fails(eval_settings: Settings, tmp_path) -> None:
    path, data = _copy(tmp_path, "ambiguous-patient")
    first = data["turns"][0]
    # The assistant books the first Jean Martin at once instead of asking which one.
    first["scripted"] = [
        {"call": "find_patients", "args": {"query": "Jean Martin"}},
        {
            "call": "book_appointment",
            "args": {
                "patient": "Martin Jean 1966-01-12",
                "practitioner": "Dr Claire Martin",
                "start": "2027-03-16T08:30:00+01:00",
            },
        },
        {"reply": "Je ne réserve pas."},
    ]
    _write(path, data)
    run = secretary.evaluate(eval_settings, scenarios=path.parent).scores[0].results[0]
    assert not run.passed
    assert "turn 1: unexpected confirmation of book_appointment" in run.failures
    assert any(
        r.startswith("turn 1: unexpected write call(s): book_appointment(") for r in run.failures
    )
    booked = run.turns[0].calls[1]
    assert (booked.name, booked.decision, booked.status) == (
        "book_appointment",
        "reject",
        "rejected",
    )


def test_a_script_that_does_not_fit_its_turn_is_reported(eval_settings, tmp_path) -> None:
    path, data = _copy(tmp_path, "cancel-refused")
    data["turns"][0]["scripted"].pop()  # no final reply after the refusal
    _write(path, data)
    run = secretary.evaluate(eval_settings, scenarios=path.parent).scores[0].results[0]
    assert run.failures == [
        "turn 1: the assistant failed (assistant turn failed: ScriptExhausted; "
        "no scripted step left: the turn needs more steps)"
    ]


def test_a_missing_keyword_and_an_unexpected_call_are_named(eval_settings, tmp_path) -> None:
    path, data = _copy(tmp_path, "medical-advice-refused")
    data["turns"][0]["scripted"] = [
        {"call": "list_practitioners"},
        {"reply": "Donnez-lui du paracétamol."},
    ]
    _write(path, data)
    run = secretary.evaluate(eval_settings, scenarios=path.parent).scores[0].results[0]
    assert run.failures[0] == "turn 1: expected no tool call, got list_practitioners() [success]"
    assert run.failures[1] == (
        "final answer: the answer lacks « avis médical | conseil médical | avis d'un médecin », "
        "« médecin »: 'Donnez-lui du paracétamol.'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: x\nturns: [\n", "YAML invalide (ligne 3"),
        ("- just a list\n", "un scénario est un dictionnaire YAML"),
        (
            "id: Bad Id\ndescription: d\nnow: '2027-03-15T10:00:00+01:00'\n"
            "practice: {practitioners: [{name: Dr A B, hours: {mon: ['12:00-08:00']}}]}\n"
            "turns: [{user: bonjour, confirm: maybe}]\n",
            "scénario invalide",
        ),
        (
            "id: x\ndescription: d\nnow: '2027-03-15T10:00:00'\n"
            "practice: {practitioners: [{name: Dr Claire Martin, hours: {}}],"
            " appointments: [{patient: Inconnu, practitioner: Dr Martin,"
            " start: '2027-03-16T09:00:00+01:00'}]}\n"
            "turns: [{user: bonjour, colour: blue}]\n",
            "scénario invalide",
        ),
    ],
)
def test_malformed_scenarios_give_clear_errors(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(f"{path} : ") and message in str(caught.value)


def test_schema_errors_name_each_field(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: Bad Id\ndescription: d\nnow: '2027-03-15T10:00:00'\n"
        "practice: {practitioners: [{name: Martin, hours: {mon: ['12:00-08:00']}}],"
        " patients: [{nom: A, prenom: B, naissance: '2000-01-01', telephone: '12'}]}\n"
        "turns: [{user: bonjour, confirm: maybe, colour: blue}]\n",
        "utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    for where in (
        "id : Value error, identifiant en minuscules",
        "now : Input should have timezone info",
        "practice.practitioners.0.name : Value error, « Martin » : nom de praticien attendu",
        "practice.practitioners.0.hours.mon.0 : Value error, « 12:00-08:00 » : plage attendue",
        "practice.patients.0.telephone : Value error, Numéro de téléphone",
        "turns.0.colour : Extra inputs are not permitted",
    ):
        assert where in text, text


def test_unknown_references_and_duplicate_ids_are_refused(tmp_path) -> None:
    folder = tmp_path / "suite"
    folder.mkdir()
    source = secretary.SCENARIOS / "cancel-refused.yaml"
    data = yaml.safe_load(source.read_text("utf-8"))
    data["practice"]["appointments"][0]["patient"] = "Grand Louis"
    _write(folder / "a.yaml", data)
    with pytest.raises(ScenarioError, match="patient « Grand Louis » inconnu"):
        load_scenarios(folder)
    shutil.copy(source, folder / "a.yaml")
    shutil.copy(source, folder / "b.yaml")
    with pytest.raises(ScenarioError, match="identifiant « cancel-refused » déjà utilisé"):
        load_scenarios(folder)
    with pytest.raises(ScenarioError, match="introuvable"):
        load_scenarios(folder / "missing")


def test_reports_carry_pass_1_and_pass_k(eval_settings: Settings, tmp_path) -> None:
    path, data = _copy(tmp_path, "move-with-edit")
    _write(path, data)
    wrong = dict(data, id="move-with-edit-wrong")
    wrong["expect_state"] = {"appointments": [dict(data["expect_state"]["appointments"][0])]}
    wrong["expect_state"]["appointments"][0]["start"] = "2027-03-16T16:00:00+01:00"
    _write(path.parent / "wrong.yaml", wrong)
    result = secretary.evaluate(eval_settings, scenarios=path.parent, repeats=2)
    assert (result.pass_1, result.pass_k, result.repeats) == (0.5, 0.5, 2)
    json_path, md_path = secretary.write_reports(result, tmp_path / "reports")
    report = json.loads(json_path.read_text("utf-8"))
    assert report["pass_1"] == 0.5 and report["pass_2"] == 0.5 and report["pass_k"] == 0.5
    assert [s["id"] for s in report["scores"]] == ["move-with-edit", "move-with-edit-wrong"]
    assert [len(s["results"]) for s in report["scores"]] == [2, 2]
    edited = report["scores"][0]["results"][0]["turns"][0]["calls"][-1]
    assert edited["decision"] == "edit" and edited["args"]["new_start"].startswith(
        "2027-03-16T15:00"
    )
    markdown = md_path.read_text("utf-8")
    assert "| pass^1 | 0.50 |" in markdown and "| pass^2 | 0.50 |" in markdown
    assert "| move-with-edit | modification de l'action | 2/2 | 1.00 | yes |" in markdown
    assert "### move-with-edit-wrong (run 2)" in markdown
    assert secretary.summary(result).startswith("pass^1 0.50, pass^2 0.50 — 2 scénarios × 2")


def test_accueil_eval_secretary(tmp_path, monkeypatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("ACCUEIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACCUEIL_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("ACCUEIL_OLLAMA_URL", "http://127.0.0.1:9")
    out = tmp_path / "reports"
    runner = CliRunner()
    args = ["eval", "secretary", "--model", "scripted", "--out", str(out)]
    ok = runner.invoke(cli, [*args, "--only", "cancel-refused", "--strict"])
    assert ok.exit_code == 0, ok.output
    assert "ok  cancel-refused (1)" in ok.output
    assert "pass^1 1.00 — 1 scénarios × 1, modèle scripted" in ok.output
    assert json.loads((out / "secretary.json").read_text("utf-8"))["scenarios"] == 1

    path, data = _copy(tmp_path, "cancel-refused")
    data["turns"][0]["confirm"] = "approve"  # the secretary approves: the state check fails
    _write(path, data)
    failing = [*args, "--scenarios", str(path.parent)]
    assert runner.invoke(cli, failing).exit_code == 0
    strict = runner.invoke(cli, [*failing, "--strict"])
    assert strict.exit_code == 1 and "ÉCHEC cancel-refused (1)" in strict.output

    unknown = runner.invoke(cli, [*args, "--only", "no-such-scenario"])
    assert unknown.exit_code == 2 and "no-such-scenario" in unknown.output
    down = runner.invoke(cli, ["eval", "secretary", "--model", "ollama:qwen3:8b"])
    get_settings.cache_clear()
    assert down.exit_code == 2 and "ne sert pas le modèle qwen3:8b" in down.output


def test_the_practice_clock_moves_now_for_the_scheduling_services(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'clock.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime(2027, 3, 15, 10, 5, tzinfo=PARIS)
    with Session(engine) as session:
        doctor = Practitioner(first_name="Claire", last_name="Martin")
        session.add(doctor)
        session.flush()
        session.add(
            WorkingHours(
                practitioner_id=doctor.id or 0,
                weekday=0,
                start_time=datetime(2027, 1, 1, 8, 30).time(),
                end_time=datetime(2027, 1, 1, 12, 30).time(),
            )
        )
        session.flush()
        query = slots.SlotQuery(start=now - timedelta(hours=2), end=now + timedelta(hours=3))
        with practice_clock(now):
            first = slots.find_slots(session, PARIS, query)[0]
            assert slots.datetime.now(UTC) == now
        assert first.starts_at.astimezone(PARIS).strftime("%H:%M") == "10:10"
        assert slots.datetime is datetime  # restored
    engine.dispose()


def test_names_as_scenarios_write_them() -> None:
    jean = ("Martin", "Jean", datetime(2001, 9, 3).date(), None)
    assert patient_matches("Martin Jean", jean) and patient_matches("jean MARTIN", jean)
    assert patient_matches("Martin Jean 2001-09-03", jean)
    assert not patient_matches("Martin Jean 1966-01-12", jean)
    assert not patient_matches("Jean", jean)  # a surname is needed
    marie = ("Garnier", "Marie", datetime(1982, 4, 2).date(), "Lambert")
    assert patient_matches("Lambert Marie", marie) and patient_matches("Garnier", marie)
    assert practitioner_matches("Dr Martin", "Dr Claire Martin")
    assert practitioner_matches("claire martin", "Dr Claire Martin")
    assert practitioner_matches("Dr Inès Moreau", "Dr Ines Moreau")
    assert not practitioner_matches("Dr Claire", "Dr Claire Martin")

"""Questionnaires as FHIR R4 data: validation, import/export, choice of form, enableWhen."""

import copy
import json

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlmodel import Session, select

from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.preconsultation import questionnaires as qs
from app.services.preconsultation import red_flags
from models.questionnaires import Questionnaire

FILES = sorted(qs.BUNDLED_DIR.glob("*.json"))


def _resource(name: str) -> dict:
    return json.loads((qs.BUNDLED_DIR / name).read_text("utf-8"))


def test_at_least_three_questionnaires_in_french_and_english() -> None:
    slugs = {path.name.split(".")[0] for path in FILES}
    assert {"consultation-generale", "renouvellement-ordonnance", "vaccination"} <= slugs
    for slug in slugs:
        fr, en = _resource(f"{slug}.fr.json"), _resource(f"{slug}.en.json")
        form_fr, form_en = qs.to_form(fr), qs.to_form(en)
        assert list(form_fr.questions) == list(form_en.questions)  # same linkIds, same order
        for link_id, question in form_fr.questions.items():
            other = form_en.questions[link_id]
            assert [o.code for o in question.options] == [o.code for o in other.options]
            assert question.conditions == other.conditions
            assert question.text != other.text or question.type != "text"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_bundled_files_validate_and_round_trip(path) -> None:
    resource = json.loads(path.read_text("utf-8"))
    normalized = qs.validate_resource(resource)
    assert qs.validate_resource(normalized) == normalized
    assert normalized == resource  # the files are already in normal form


def test_import_is_idempotent_and_export_round_trips(db: Session) -> None:
    first = qs.import_bundled(db)
    assert len(first) == len(FILES) and all(created for _, created in first)
    again = qs.import_bundled(db)
    assert not any(created for _, created in again)
    db.commit()
    rows = db.exec(select(Questionnaire)).all()
    assert len(rows) == len(FILES)
    for row in rows:
        exported = qs.export_resource(row)
        assert exported == _resource(f"{row.slug}.{row.language}.json")
        assert qs.import_resource(db, exported) == (row, False)
    vaccination = next(r for r in rows if r.slug == "vaccination")
    assert vaccination.visit_type == "vaccination"


def test_a_stored_version_is_parsed_once_and_its_form_is_read_only(db: Session) -> None:
    qs.import_bundled(db)
    db.commit()
    row = qs.pick(db, visit_type=None, language="fr")
    form = qs.form_of(row)
    assert form == qs.to_form(row.resource)
    db.expire_all()  # the row read again (another request): the same parsed form
    assert qs.form_of(db.get(Questionnaire, row.id)) is form
    with pytest.raises(TypeError):
        form.questions["motif"] = form.questions["intensite"]  # type: ignore[index]
    # A new version is another row, parsed on its own.
    changed = _resource("consultation-generale.fr.json")
    changed["version"] = "2099.1"
    changed["item"][0]["text"] = "Autre motif"
    newer, _ = qs.import_resource(db, changed)
    db.commit()
    assert qs.form_of(newer).steps[0].title == "Autre motif" != form.steps[0].title


def test_same_version_with_other_content_is_refused_new_version_replaces(db: Session) -> None:
    qs.import_bundled(db)
    changed = _resource("vaccination.fr.json")
    changed["title"] = "Autre titre"
    with pytest.raises(Conflict):
        qs.import_resource(db, changed)
    changed["version"] = "2026.2"
    row, created = qs.import_resource(db, changed)
    assert created and row.is_active
    assert qs.pick(db, visit_type="vaccination", language="fr").version == "2026.2"
    olds = db.exec(
        select(Questionnaire).where(
            Questionnaire.slug == "vaccination", Questionnaire.version == "2026.1"
        )
    ).all()
    assert [o.is_active for o in olds if o.language == "fr"] == [False]


def test_invalid_resources_are_refused() -> None:
    broken = _resource("vaccination.fr.json")
    broken["item"][0]["type"] = "not-a-type"
    with pytest.raises(InvalidInput):
        qs.validate_resource(broken)
    unsupported = _resource("vaccination.fr.json")
    unsupported["item"][0]["item"][0]["type"] = "attachment"
    with pytest.raises(InvalidInput):
        qs.validate_resource(unsupported)
    dangling = _resource("vaccination.fr.json")
    dangling["item"][0]["item"][1]["enableWhen"][0]["question"] = "nowhere"
    with pytest.raises(InvalidInput):
        qs.validate_resource(dangling)
    with pytest.raises(InvalidInput):
        qs.validate_resource({"resourceType": "Patient"})


def test_pick_by_visit_type_language_and_default(db: Session) -> None:
    qs.import_bundled(db)
    assert qs.pick(db, visit_type="vaccination", language="en").slug == "vaccination"
    assert qs.pick(db, visit_type="vaccination", language="en").language == "en"
    assert qs.pick(db, visit_type="renouvellement", language="fr").slug == (
        "renouvellement-ordonnance"
    )
    default = qs.pick(db, visit_type="suivi-grossesse", language="de")
    assert (default.slug, default.language) == ("consultation-generale", "fr")
    with pytest.raises(NotFound):
        qs.pick(db, visit_type=None, language="fr", slug="nope")


def test_enable_when_all_any_and_chains() -> None:
    form = qs.to_form(_resource("consultation-generale.fr.json"))
    q = form.questions
    assert not qs.is_enabled(form, q["temperature"], {})
    assert qs.is_enabled(form, q["temperature"], {"symptomes": ["toux", "fievre"]})
    assert not qs.is_enabled(form, q["temperature"], {"symptomes": ["toux"]})
    # enableBehavior any: either neurological sign enables the "sudden onset" question
    assert qs.is_enabled(form, q["debut-brutal"], {"symptomes": ["trouble-parole"]})
    assert qs.is_enabled(form, q["debut-brutal"], {"symptomes": ["faiblesse-membre"]})
    assert not qs.is_enabled(form, q["debut-brutal"], {"symptomes": ["toux"]})
    assert qs.is_enabled(form, q["traitements-liste"], {"traitements-en-cours": True})
    assert not qs.is_enabled(form, q["traitements-liste"], {"traitements-en-cours": False})
    answers = {
        "moral": "bien",
        "debut-brutal": True,  # left over from an earlier "faiblesse-membre"
        "symptomes": ["toux"],
        "temperature": 39.5,
        "grossesse": "non",
        "saignement-abondant": True,
        "motif": "Toux",
    }
    assert qs.enabled_answers(form, answers) == {
        "motif": "Toux",
        "symptomes": ["toux"],
        "moral": "bien",
        "grossesse": "non",
    }


def test_answers_are_validated_by_type() -> None:
    form = qs.to_form(_resource("consultation-generale.fr.json"))
    q = form.questions
    assert qs.coerce_answer(q["temperature"], "38,5") == 38.5
    assert qs.coerce_answer(q["intensite"], " 7 ") == 7
    assert qs.coerce_answer(q["allergies"], "true") is True
    assert qs.coerce_answer(q["allergies"], False) is False
    assert qs.coerce_answer(q["symptomes"], ["toux", "fievre"]) == ["fievre", "toux"]
    assert qs.coerce_answer(q["tabac"], "actuel") == "actuel"
    assert qs.coerce_answer(q["motif"], "  ") is None
    for question, bad in (
        (q["temperature"], "chaud"),
        (q["intensite"], "7.5"),
        (q["allergies"], "peut-être"),
        (q["symptomes"], ["toux", "inventé"]),
        (q["tabac"], ["jamais", "actuel"]),
        (q["motif"], "x" * 2001),
        (q["motif"], ["a", "b"]),
    ):
        with pytest.raises(InvalidInput):
            qs.coerce_answer(question, bad)


def test_response_is_a_valid_fhir_questionnaire_response(db: Session) -> None:
    qs.import_bundled(db)
    row = qs.pick(db, visit_type="consultation", language="fr")
    answers = {
        "motif": "Fièvre",
        "symptomes": ["fievre", "toux"],
        "temperature": 38.7,
        "intensite": 4,
        "allergies": True,
        "allergies-liste": "Pénicilline",
        "moral": "bien",
        "debut-brutal": True,  # disabled (no neurological sign ticked): must not be sent
    }
    response = qs.build_response(
        row, answers, authored="2026-11-23T10:00:00+00:00", subject_reference="Patient/1"
    )
    QuestionnaireResponse.model_validate(response)
    assert response["questionnaire"].endswith("consultation-generale|2026.2")
    back = qs.answers_from_response(response)
    assert back == {k: v for k, v in answers.items() if k != "debut-brutal"}
    assert "debut-brutal" not in json.dumps(response)


def test_rules_only_reference_existing_questions_and_codes() -> None:
    forms = {
        slug: qs.to_form(_resource(f"{slug}.fr.json"))
        for slug in ("consultation-generale", "renouvellement-ordonnance", "vaccination")
    }
    for slug, ruleset in red_flags.rulesets().items():
        # shared rules: each question exists in at least one questionnaire
        known = (
            set(forms[slug].questions)
            if slug in forms
            else {link_id for form in forms.values() for link_id in form.questions}
        )
        for rule in ruleset.rules:
            for link_id in red_flags.referenced_questions(rule.when):
                assert link_id in known or link_id.startswith("_age_"), (rule.id, link_id)


def test_export_is_a_deep_copy_not_the_stored_dict(db: Session) -> None:
    qs.import_bundled(db)
    row = qs.pick(db, visit_type=None, language="fr")
    exported = qs.export_resource(row)
    before = copy.deepcopy(row.resource)
    exported["title"] = "changé"
    assert row.resource == before

"""Free-text understanding (EDS-NLP): qualifiers, languages, typos, bad input, the rule
language's text tests, and temperature input."""

import json

import pytest

from app.services.core.errors import InvalidInput
from app.services.preconsultation import clinical_text as ct
from app.services.preconsultation import questionnaires as qs
from app.services.preconsultation import red_flags


def _affirmed(text: str) -> set[str]:
    return {m.concept for m in ct.read_text(text) if m.affirmed}


@pytest.mark.parametrize(
    "text",
    [
        "pas de douleur thoracique",
        "si j'ai mal à la poitrine que faire",
        "mon père a fait un AVC",
        "infarctus il y a 10 ans",
        "no chest pain, just a cough",
        "what should I do if I get chest pain",
        "my dad had a stroke",
    ],
)
def test_what_must_not_fire(text: str) -> None:
    mentions = ct.read_text(text)
    assert mentions, "the concept is found..."
    assert not any(m.affirmed for m in mentions), "...but not said of the patient, now"


def test_the_qualifier_is_named() -> None:
    (negated,) = ct.read_text("pas de douleur thoracique")
    assert negated.negated and not negated.hypothetical
    (hypothetical,) = ct.read_text("si j'ai mal à la poitrine que faire")
    assert hypothetical.hypothetical
    (family,) = ct.read_text("mon père a fait un AVC")
    assert family.family
    (history,) = ct.read_text("infarctus il y a 10 ans")
    assert history.history


def test_what_must_fire() -> None:
    assert "idees-suicidaires" in _affirmed("je veux en finir, j'ai préparé les médicaments")
    found = ct.read_text(
        "douleur dans la poitrine qui serre, je suis en sueur, ça irradie dans la mâchoire"
    )
    assert {m.concept for m in found} >= {
        "douleur-thoracique",
        "sueurs",
        "irradiation-bras-machoire",
    }
    assert "douleur-thoracique" in _affirmed("doulleur dans la poitrinne")  # typos
    assert "essoufflement" in _affirmed("jsuis essouflé")  # SMS style
    assert "douleur-thoracique" in _affirmed("I have crushing chest pain")


def test_more_and_more_pain_is_not_a_negation() -> None:
    assert "douleur-thoracique" not in _affirmed("Plus de douleur dans la poitrine depuis le stent")
    assert "douleur-thoracique" in _affirmed("j'ai de plus en plus de douleur dans la poitrine")


def test_every_mention_of_a_sentence_is_qualified() -> None:
    """Regex matches used to come after the term matches, out of reading order, and the
    qualifiers left the earlier mention unqualified."""
    mentions = ct.read_text("j'ai pas craché de sang et pas d'essoufflement")
    assert {m.concept for m in mentions} == {"crachats-sang", "essoufflement"}
    assert all(m.negated for m in mentions)


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("doulleur dans la poitrinne avec des sueurs froides", "douleur-thoracique"),
        ("j'ai des diffficultés à respirer", "essoufflement"),
    ],
)
def test_typos_of_long_terms_are_found(text: str, concept: str) -> None:
    assert concept in _affirmed(text)


def test_a_shorter_word_is_no_typo() -> None:
    """The word "grosses" shares most trigrams with "grossesse" but is two letters short."""
    assert "enceinte" not in _affirmed("je transpire à grosses gouttes")


def test_a_child_named_by_a_parent_is_the_patient_on_a_childs_form_only() -> None:
    answers = {"motif": "ma fille de 6 semaines a 38,4 de fièvre"}
    as_child = ct.read_answers(answers, ["motif"], child=True)
    as_adult = ct.read_answers(answers, ["motif"], child=False)
    assert as_child.has("fievre") and not as_adult.has("fievre")
    other = {"motif": "mon fils et mon père ont de la fièvre"}
    assert not ct.read_answers(other, ["motif"], child=True).has("fievre")


def test_the_exact_words_and_offsets_are_kept() -> None:
    text = "Bonjour. Depuis ce matin j'ai MAL À LA POITRINE et je transpire"
    (chest,) = [m for m in ct.read_text(text) if m.concept == "douleur-thoracique"]
    assert text[chest.start : chest.end] == chest.text == "MAL À LA POITRINE"
    assert chest.sentence == 1


def test_language_is_read_from_the_answer_itself() -> None:
    assert ct.guess_language("I have pain in my chest since this morning") == "en"
    assert ct.guess_language("j'ai mal dans la poitrine depuis ce matin") == "fr"
    assert ct.guess_language("") == "fr"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 50_000,
        "<script>alert('douleur thoracique')</script><b>test</b>",
        "😷🤒💔🫁 " * 200,
        "胸痛があります、息が苦しい",
        "\x00\x01\x02 douleur\x07 \ud800",
        "   ",
        ".,;:!?" * 100,
    ],
)
def test_bad_input_is_harmless(text: str) -> None:
    found = ct.read_text(text)
    assert isinstance(found, tuple)
    for mention in found:
        assert 0 <= mention.start < mention.end <= len(text)


def test_history_fields_do_not_fire_but_facts_do() -> None:
    answers = {
        "antecedents-autres": "AVC et embolie pulmonaire, je prends de l'Eliquis",
        "motif": "contrôle",
    }
    findings = ct.read_answers(
        answers,
        ["antecedents-autres", "motif"],
        history_fields=["antecedents-autres"],
        fact_concepts=ct.FACT_CONCEPTS,
    )
    assert {m.concept for m in findings.mentions} == {"anticoagulant"}


def test_text_conditions_are_validated_and_evaluated() -> None:
    red_flags.check_condition({"text": "douleur-thoracique"})
    red_flags.check_condition({"text": "cephalee", "near": "debut-brutal"})
    for bad in (
        {"text": "inconnu"},
        {"text": "cephalee", "near": "inconnu"},
        {"text": "cephalee", "q": "motif"},
        {"text": "cephalee", "far": "sueurs"},
    ):
        with pytest.raises(ValueError):
            red_flags.check_condition(bad)
    same = ct.read_answers({"motif": "Mal de tête brutal ce matin"}, ["motif"])
    apart = ct.read_answers({"motif": "Mal de tête depuis 3 jours. Chute brutale hier."}, ["motif"])
    near = {"text": "cephalee", "near": "debut-brutal"}
    assert red_flags.holds(near, {}, same)
    assert not red_flags.holds(near, {}, apart)
    assert red_flags.holds({"text": "cephalee"}, {}, apart)
    assert not red_flags.holds({"not": {"text": "cephalee"}}, {}, apart)


def test_a_flag_carries_the_patients_words() -> None:
    form = qs.to_form(json.loads((qs.BUNDLED_DIR / "consultation-generale.fr.json").read_text()))
    answers = {
        "motif": "Renouvellement",
        "symptomes-details": "ça serre dans la poitrine, je suis en sueur",
    }
    (flag,) = red_flags.assess(form, answers, {"_age_months": 500})
    assert flag.rule == "douleur-thoracique-signes" and flag.severity == "urgence"
    words = {(e.field, e.text) for e in flag.evidence}
    assert words == {
        ("symptomes-details", "ça serre dans la poitrine"),
        ("symptomes-details", "en sueur"),
    }
    assert flag.as_json()["evidence"][0]["field"] == "symptomes-details"


def test_a_disabled_free_text_answer_is_not_read() -> None:
    form = qs.to_form(json.loads((qs.BUNDLED_DIR / "consultation-generale.fr.json").read_text()))
    answers = {
        "motif": "Contrôle",
        "traitements-en-cours": False,
        "traitements-liste": "je veux me tuer",
    }
    assert red_flags.assess(form, answers) == []


def _temperature() -> qs.Question:
    form = qs.to_form(json.loads((qs.BUNDLED_DIR / "consultation-generale.fr.json").read_text()))
    return form.questions["temperature"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("39°C", 39.0),
        ("39,5", 39.5),
        ("39.5 °C", 39.5),
        ("38 degrés", 38.0),
        (" 37,8° ", 37.8),
        (40, 40.0),
    ],
)
def test_temperature_is_read_as_people_write_it(raw: object, value: float) -> None:
    assert qs.coerce_answer(_temperature(), raw) == value


def test_an_implausible_temperature_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInput) as fahrenheit:
        qs.coerce_answer(_temperature(), "102.2")
    assert "Fahrenheit" in fahrenheit.value.message("fr") and "°C" in fahrenheit.value.message("fr")
    assert "Fahrenheit" in fahrenheit.value.message("en")
    assert "39" in fahrenheit.value.message("fr")  # the conversion, as a hint
    for raw in ("33,9", "43.5", "-2"):
        with pytest.raises(InvalidInput) as refused:
            qs.coerce_answer(_temperature(), raw)
        assert "34" in refused.value.message("fr") and "43" in refused.value.message("en")
    with pytest.raises(InvalidInput):
        qs.coerce_answer(_temperature(), "39 ou 40")
    assert qs.coerce_answer(_temperature(), "34") == 34.0
    assert qs.coerce_answer(_temperature(), "43") == 43.0

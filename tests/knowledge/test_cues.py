"""Lay expressions read as the documents' words: a temperature is a fever, a baby's age in
weeks is an infant under 3 months, "les fils" to take out are stitches; and the search that
uses them."""

import pytest
from sqlmodel import Session

from app.services.core.audit import Actor
from app.services.knowledge import library as knowledge
from app.services.knowledge.analysis import written_out

ACTOR = Actor.system("test")


@pytest.mark.parametrize(
    ("question", "added"),
    [
        ("Mon bébé de 2 mois a 38,5, je fais quoi ?", "(fièvre, nourrisson de moins de 3 mois)"),
        ("bb de 6 semaines, 38.4 au thermometre", "(fièvre, nourrisson de moins de 3 mois)"),
        ("ma fille a 39° depuis hier", "(fièvre)"),
        ("il fait du 40 depuis ce matin", "(fièvre)"),
        ("my 3 weeks old baby is hot", "(nourrisson de moins de 3 mois)"),
        ("mon fils de 4 mois vomit", "(nourrisson de moins de 6 mois)"),
        ("mon fils, âgé de 5 semaines, a chaud", "(nourrisson de moins de 3 mois)"),
        # telegraphic ages, without "de"
        ("nourrisson 1 mois fièvre 38.5", "(nourrisson de moins de 3 mois)"),
        ("bb 3 sem chaud", "(nourrisson de moins de 3 mois)"),
        ("bb 15j il tousse", "(nourrisson de moins de 3 mois)"),
        ("bébé (5 semaines) ne boit plus", "(nourrisson de moins de 3 mois)"),
        ("bebe 4 mois 38,5", "(fièvre, nourrisson de moins de 6 mois)"),
        ("newborn 3 weeks very sleepy", "(nourrisson de moins de 3 mois)"),
    ],
)
def test_a_temperature_or_an_infants_age_adds_the_documents_words(
    question: str, added: str
) -> None:
    assert written_out(question).endswith(added)


@pytest.mark.parametrize(
    "question",
    [
        "mon fils a 39 de fièvre",  # already says it
        "ma fille a 39 ans, elle doit faire un frottis ?",  # an age
        "c'est 38,50 € la consultation ?",  # a price
        "rdv dans 2 semaines pour mon fils",  # a delay, not an age
        "mon fils de 8 mois a de la fièvre",  # past the documents' thresholds
        "mon enfant a de la fièvre depuis 2 jours",  # a duration, not an age
        "une fièvre de 3 jours chez mon fils",
        "je viens à 39 min de route",
        "mon bébé né à 38 SA a 6 semaines, c'est quand son vaccin ?",  # a term, not a fever
        "accouchée à 39 SA, je dois revoir le médecin quand ?",
        "mon fils 5 mois de toux, il faut un rdv ?",  # a duration, not an age
        "ma fille 2 ans, vaccin ROR ?",  # past the thresholds
        "le rdv c'est à 38 rue Garibaldi ?",  # an address
    ],
)
def test_questions_without_such_expressions_stay_as_they_are(question: str) -> None:
    assert not written_out(question).endswith(")")


def test_a_term_of_pregnancy_is_not_a_fever() -> None:
    """ "38 SA", "38 semaines": a baby's term, which sits in the fever's range of numbers."""
    said = written_out("bébé de 5 semaines, né à 38 SA, il fait 38 semaines de terme corrigé")
    assert said.endswith("(nourrisson de moins de 3 mois)") and "fièvre" not in said


def test_threads_to_take_out_are_stitches_and_a_son_stays_a_son() -> None:
    assert "les points de suture qui fondent" in written_out("les fils qui fondent ?")
    assert "les points de suture" in written_out("on enleve les fils quand ?")
    assert "mon fils" in written_out("mon fils a une coupure, on enleve les points quand ?")
    assert "des fils" in written_out("j'ai des fils de 3 et 5 ans")


HANDBOOK = """# Consignes

## Fièvre de l'enfant

### Que faire quand un enfant a de la fièvre
Découvrez l'enfant, faites-le boire souvent, donnez du paracétamol selon son poids.

### Quand consulter pour la fièvre d'un enfant
Un bébé de moins de 3 mois qui a de la fièvre doit être vu par un médecin le jour même.

## Plaies et points de suture

### Quand retirer les points
Les points du visage se retirent au bout de 5 jours, ceux du corps au bout de 10 à 15 jours.
Les fils résorbables n'ont pas besoin d'être retirés.

## Enfants
Le carnet de santé de l'enfant est à apporter à chaque consultation.
""".encode()


def test_the_search_reads_them(db: Session, settings) -> None:
    knowledge.ingest(db, ACTOR, settings, "consignes.md", HANDBOOK)
    db.commit()
    for question, section in [
        ("bb de 6 semaines, 38.4 au thermometre ce soir", "Quand consulter pour la fièvre"),
        ("les fils on les enleve au bout de combien de jours", "Quand retirer les points"),
    ]:
        found = knowledge.find(db, ACTOR, settings, question, k=4)
        assert section in found.passages[0].section, question

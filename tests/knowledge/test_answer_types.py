"""The kind of answer a question asks for (a price, a duration, a time of day, an address, a
practitioner) and the passage that states one: among passages on the same topic, the one
that gives the price answers "c'est combien"."""

import pytest
from sqlmodel import Session

from app.services.core.audit import Actor
from app.services.knowledge import library as knowledge
from app.services.knowledge.answer_types import asked, holds

ACTOR = Actor.system("test")

HANDBOOK = """# Livret test

## Visites à domicile
Les visites à domicile sont réservées aux patients qui ne peuvent pas se déplacer. Demandez la
visite au secrétariat avant 10 heures, le médecin passe dans l'après-midi.

## Tarifs
La consultation coûte 30 euros. La visite à domicile coûte 30 euros plus 10 € de déplacement.

## Dossier médical
Le cabinet conserve votre dossier médical vingt ans après la dernière consultation, puis le
détruit. Vous pouvez demander une copie de votre dossier au secrétariat.

## Horaires
Le cabinet ouvre du lundi au vendredi, le soir jusqu'à 19 h 30.

## Le soir
Le soir, après la fermeture, appelez le médecin de garde.

## Accès
Le cabinet est accessible en fauteuil roulant, avec une rampe à l'entrée et un ascenseur.

## Adresse
Le cabinet se trouve au 12 rue des Tilleuls, 69003 Lyon.

## Frottis
Le frottis de dépistage est fait par un médecin du cabinet, tous les trois ans entre 25 et
29 ans. Le médecin vous rappelle si le frottis montre une anomalie.

## Médecins
Le Dr Claire Martin assure le suivi gynécologique, dont les frottis.
""".encode()


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("c'est combien une visite à domicile ?", {"price"}),
        ("Combien coûte le certificat ?", {"price"}),
        ("How much is a consultation?", {"price"}),
        ("Vous gardez mon dossier combien de temps ?", {"duration"}),
        ("Combien de jours pour les résultats ?", {"duration"}),
        ("jusqu'à quand vous gardez mon dossier", {"duration"}),
        ("vous fermez à quelle heure le soir", {"clock"}),
        ("What time do you open?", {"clock"}),
        ("How much notice do you need to cancel?", {"duration"}),  # notice is time, not money
        ("how far in advance should I book", {"duration"}),
        ("je dois refaire le frottis tous les combien ?", {"duration"}),  # how often: no price
        ("How often should I have a smear test?", {"duration"}),
        ("C'est où le cabinet ?", {"place"}),
        ("vous etes a quelle adresse exactement ?", {"place"}),
        ("Where is the practice?", {"place"}),
        ("Quel médecin fait les frottis ?", {"practitioner"}),
        ("qui pose les MAPA au cabinet", {"practitioner"}),
        ("Which doctor sees children?", {"practitioner"}),
        ("Combien de médecins au cabinet ?", set()),  # a count: none of these
        ("Je peux payer par chèque ?", set()),
        ("Qui appeler le dimanche ?", set()),  # whom to call: not a practitioner by name
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kinds: set[str]) -> None:
    assert asked(question) == kinds


def test_a_passage_states_a_price_a_duration_or_a_time() -> None:
    assert holds(frozenset({"price"}), "La visite coûte 30 euros.")
    assert holds(frozenset({"price"}), "Comptez 25 € pour un certificat.")
    assert not holds(frozenset({"price"}), "Le tarif est affiché en salle d'attente.")
    assert holds(frozenset({"duration"}), "Le dossier est conservé vingt ans.")
    assert holds(frozenset({"duration"}), "Les résultats arrivent en 3 jours.")
    assert not holds(frozenset({"duration"}), "Le dossier est conservé.")
    assert holds(frozenset({"clock"}), "Ouvert de 8 h à 19 h 30.")
    assert holds(frozenset({"clock"}), "Ouvert jusqu'à 19h.")
    assert not holds(frozenset({"clock"}), "Ouvert du lundi au vendredi.")
    assert not holds(frozenset(), "La visite coûte 30 euros.")
    assert holds(frozenset({"place"}), "Le cabinet se trouve au 12 rue des Tilleuls.")
    assert holds(frozenset({"place"}), "3 bis, avenue Jean Jaurès, 69007 Lyon")
    assert not holds(frozenset({"place"}), "Le cabinet est au rez-de-chaussée.")
    assert holds(frozenset({"practitioner"}), "Le Dr Martin fait les frottis.")
    assert not holds(frozenset({"practitioner"}), "Le médecin fait les frottis.")


def test_the_passage_that_states_the_answer_comes_first(db: Session, settings) -> None:
    knowledge.ingest(db, ACTOR, settings, "livret.md", HANDBOOK)
    db.commit()
    for question, section in [
        ("c'est combien une visite a domicile", "Tarifs"),
        ("Vous gardez mon dossier combien de temps ?", "Dossier médical"),
        ("vous fermez à quelle heure le soir", "Horaires"),
        ("C'est où le cabinet ?", "Adresse"),
        ("Quel médecin fait les frottis ?", "Médecins"),
    ]:
        found = knowledge.find(db, ACTOR, settings, question, k=4)
        assert found.passages[0].section == section, question
    # A question that asks for no price keeps the passage about home visits first.
    visits = knowledge.find(db, ACTOR, settings, "qui peut avoir une visite a domicile ?", k=4)
    assert visits.passages[0].section == "Visites à domicile"

"""Hybrid knowledge search: French lexical analysis beside the embeddings, synonyms and typos,
urgent-symptom routing, "no answer", section citations, and a lexical index that stays
consistent with the Chroma collection through ingestion, deletion, rebuild and damage."""

import json
import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest
from sqlmodel import Session

from app.jobs import runner
from app.services.core import shorthand
from app.services.core.audit import Actor
from app.services.knowledge import lexical
from app.services.knowledge import library as knowledge
from app.services.knowledge.analysis import (
    Speller,
    VocabularyFile,
    analyse_query,
    build_vocabulary,
    embedding_query,
    english,
    fold,
    terms,
    vocabulary,
)
from app.services.knowledge.index import embedder_for, open_collection
from app.services.knowledge.no_answer import (
    PRACTICE_FILE,
    PRECISION_BETA,
    NoAnswerModel,
    Signals,
    fbeta,
    fit,
    load,
)
from app.services.knowledge.retrieval import NO_ANSWER_FR, concept_ranking, hybrid_search
from app.services.knowledge.urgency import read_question

ACTOR = Actor.system("test")

HANDBOOK = """# Livret test

## Tarifs

### Prix des consultations
La consultation de médecine générale coûte 30 euros, sans dépassement d'honoraires.

### Moyens de paiement
Vous pouvez régler par carte bancaire, en espèces ou par chèque à l'ordre du médecin.

## Prise de sang
Pour une glycémie, il faut être à jeun depuis 12 heures ; l'eau est permise. La prise de sang
se fait au laboratoire, sur ordonnance.

## Électrocardiogramme
L'ECG se fait au cabinet. Évitez de mettre une crème sur la poitrine le jour de l'examen.

## Urgences

### Urgence vitale
En cas de malaise, de difficulté à respirer ou de douleur dans la poitrine, appelez le 15
(SAMU) ou le 112.

## Horaires
Le cabinet est ouvert du lundi au vendredi de 8 h à 19 h et le samedi matin.
""".encode()


def _ingest(db: Session, settings, name: str = "livret.md", content: bytes = HANDBOOK) -> int:
    document = knowledge.ingest(db, ACTOR, settings, name, content).document
    db.commit()
    return document.id or 0


# -- analysis ----------------------------------------------------------------------------------


def test_french_analysis_folds_accents_drops_stop_words_and_stems() -> None:
    assert fold("Téléphoner À l’Hôpital") == "telephoner a l'hopital"
    assert terms("Les ordonnances renouvelées") == terms("ordonnance renouvelee")
    assert "les" not in " ".join(terms("les ordonnances"))
    assert terms("Combien coûte une consultation ?")[0] == "combien"  # kept: it carries meaning
    # the verbs that frame a question say nothing of its subject
    assert terms("Est-ce que je dois apporter ma carte ? Vous faites les radios ?") == terms(
        "apporter carte radios"
    )
    assert terms("j'aurai un retard, il faudrait qu'il ait fini") == terms("retard fini")
    # a plural Snowball keeps ("radios") meets its singular
    assert terms("les radios") == terms("la radio")


def test_every_form_of_a_participle_meets_with_or_without_accents() -> None:
    # Folded, "réservées" would keep an "e" that "réserver" loses: the accent is put back.
    assert terms("Les places réservées") == terms("place réserver") == ["plac", "reserv"]
    assert terms("places reservees") == terms("Places réservées")
    assert terms("vaccinée") == terms("vacciner") == terms("vaccine")
    assert terms("annulee") == terms("annuler") and terms("une durée") == terms("duree")


def test_a_question_reads_as_english_by_its_glue_words() -> None:
    assert english("Can the doctor write a sick note without seeing me?")
    assert english("how much is a visit?")
    assert not english("Vous faites les radios au cabinet ?")
    assert not english("est ce que le docteur accepte la CB")


def test_synonyms_of_the_practice_vocabulary_join_a_question() -> None:
    query = analyse_query("Le docteur prend-il la carte bleue ?", vocabulary())
    phrases = query.phrases()
    assert ("cart", "bancair") in phrases and ("cb",) in phrases
    assert any(p == ("jeun",) for p in analyse_query("à jeun ?", vocabulary()).phrases())
    renew = analyse_query("renouveler mon ordonnance", vocabulary()).phrases()
    assert tuple(terms("renouvellement")) in renew


def test_the_practice_can_add_its_own_synonyms_without_reindexing(tmp_path: Path) -> None:
    assert tuple(terms("ostéopathe")) not in analyse_query("ostéo", vocabulary()).phrases()
    (tmp_path / "knowledge-vocabulary.yaml").write_text(
        "synonyms:\n  - [ostéo, ostéopathe]\n", "utf-8"
    )
    phrases = analyse_query("un ostéo ?", vocabulary(tmp_path)).phrases()
    assert tuple(terms("ostéopathe")) in phrases


def test_the_embedded_question_carries_the_vocabulary_synonyms_it_names() -> None:
    vocab = build_vocabulary(
        [
            VocabularyFile(
                synonyms=[["congés", "vacances", "holidays", "fermeture"], ["mail", "courriel"]]
            )
        ]
    )
    # two synonyms per concept named, not the word already asked, accents and case ignored
    assert embedding_query("Mon médecin est en VACANCES ?", vocab) == (
        "Mon médecin est en VACANCES ? (congés, holidays)"
    )
    assert embedding_query("Vous êtes en congés", vocab) == (
        "Vous êtes en congés (vacances, holidays)"
    )
    # whole words only ("email" is not "mail"), and a question naming none stays as it is
    assert embedding_query("mon email", vocab) == "mon email"


def test_typos_are_corrected_against_the_documents_words_only() -> None:
    speller = Speller({"ordonnance": 3, "samedi": 2, "ferme": 4, "consultation": 9})
    vocab = build_vocabulary([VocabularyFile()])
    query = analyse_query("une consultaton pour samdi", vocab, speller)
    assert query.corrections == {"consultaton": "consultation", "samdi": "samedi"}
    # another form of a known word is not a typo; a word with no neighbour stays as it is
    assert analyse_query("vous fermez", vocab, speller).corrections == {}
    assert analyse_query("acupuncture", vocab, speller).corrections == {}


# -- ranking, urgency, no answer ----------------------------------------------------------------


def test_the_two_misranked_questions_of_the_issue_come_first(db, settings) -> None:
    _ingest(db, settings)
    card = knowledge.find(db, ACTOR, settings, "Le docteur prend-il la carte bleue ?", k=4)
    assert card.passages[0].section == "Tarifs › Moyens de paiement"
    chest = knowledge.find(db, ACTOR, settings, "Douleur dans la poitrine, que faire ?", k=4)
    assert chest.passages[0].section == "Urgences › Urgence vitale"
    assert chest.answer == "urgent" and "appelez le 15" in chest.message_fr
    # the same question without the alarm sign is an ordinary one
    assert knowledge.find(db, ACTOR, settings, "crème sur la poitrine ?", k=2).answer != "urgent"


def test_a_glue_word_is_not_an_acronym_of_an_alarm_sign() -> None:
    # "ait" (avoir) is not "AIT" (a transient stroke); the acronym, or "avc", still is
    assert not read_question("Comment éviter que mon bébé ait mal pendant la piqûre ?").urgent
    assert read_question("Mon père a fait un AIT hier soir").concepts == ("avc",)
    assert read_question("mon pere a fait un avc").urgent


def test_a_babys_term_or_an_address_is_not_a_fever() -> None:
    """A baby under 3 months with a fever is urgent; "né à 38 SA" (a term) and "à 38 rue
    Garibaldi" (an address) are numbers in the fever's range, not a temperature."""
    for question in (
        "mon bébé de 6 semaines est né à 38 SA, c'est quand son vaccin ?",
        "mon bébé de 6 semaines, le rdv est à 38 rue Garibaldi ?",
    ):
        assert not read_question(question).urgent, question
    assert read_question("mon bébé de 6 semaines a 38 depuis ce matin").urgent
    # telegraphic, as parents write it: the age without "de"
    for question in ("nourrisson 1 mois fièvre 38.5", "bb 3 sem fievre 38", "mon fils 2 mois 39,2"):
        assert read_question(question).urgent, question
    assert not read_question("bébé 3 jours de fièvre à 38,5, il a quel âge pour le vaccin ?").urgent


def test_a_kind_of_care_the_practice_gives_is_not_an_emergency() -> None:
    """ "Le Dr Martin suit les AVC ?" asks about the practice; "mon père fait un AVC" and
    "je suis suivi pour un AVC, mon bras ne répond plus" are about a person, now."""
    for question in (
        "Le Dr Martin suit les AVC ?",
        "vous prenez en charge les crises d'épilepsie ?",
        "Does Dr Martin treat chest pain?",
    ):
        assert not read_question(question).urgent, question
    for question in (
        "mon père fait un AVC, vous pouvez le voir ?",
        "je suis suivi pour un AVC, mon bras ne répond plus depuis ce matin",
    ):
        assert read_question(question).urgent, question


def test_not_breathing_is_urgent_and_a_blocked_nose_is_not() -> None:
    """The patient form's "detresse-respiratoire" (a baby turning blue, "j'étouffe") is an
    emergency in a question too; the nose is not the lungs."""
    assert read_question("bébé devient bleu pendant les tétées, que faire ?").urgent
    assert read_question("j'étouffe depuis ce matin, je peux venir ?").urgent
    assert not read_question("je ne peux pas respirer par le nez, vous avez un rdv ?").urgent
    # the patient form's seizures and maternity signs (rules convulsions, grossesse-maternite)
    assert read_question("mon fils fait une convulsion, que faire ?").urgent
    assert read_question("je ne sens plus le bébé bouger depuis ce matin, je viens ?").urgent
    assert not read_question("pas de crise d'épilepsie depuis 3 ans, renouvellement ?").urgent
    # a floppy child is an emergency (rule enfant-mou); a floppy adult is tired
    assert read_question("mon bébé est tout mou, que faire ?").urgent
    assert not read_question("je suis tout mou aujourd'hui, je peux avoir un rdv ?").urgent


def test_an_alarm_sign_of_the_past_is_not_an_emergency() -> None:
    for question in (
        "Mon père est en fauteuil roulant depuis son AVC, il pourra rentrer chez vous ?",
        "ma mère a des séquelles d'AVC, le cabinet est accessible ?",
        "il a eu un AVC il y a 3 ans, il peut venir en fauteuil ?",
        "mon mari a fait un infarctus en 2015, il doit renouveler son ordonnance",
    ):
        assert not read_question(question).urgent, question
    for question in (
        "Mon père a fait un AIT hier soir",
        "depuis son AVC d'hier il parle mal",
        "j'ai mal à la poitrine depuis mon accident",
        "douleur dans la poitrine depuis ce matin",
    ):
        assert read_question(question).urgent, question


def test_someone_who_no_longer_responds_is_an_emergency() -> None:
    for question in (
        "mon enfant a fait un malaise il repond plus",
        "elle ne répond plus, que faire ?",
        "mon père est tombé et ne se réveille pas",
        "my baby won't wake up",
        "my dad is unresponsive",
    ):
        assert read_question(question).concepts[0] == "perte-connaissance", question
    # a young child who does not wake is also the form's "enfant-mou"
    assert read_question("my baby won't wake up").concepts == ("perte-connaissance", "enfant-mou")
    for question in (
        "le secrétariat ne répond plus au téléphone",
        "sa toux ne répond plus au traitement",
        "mon ado ne se réveille pas le matin",
        "the website is not responding",
    ):
        assert not read_question(question).urgent, question


def test_a_poisoning_is_an_emergency_and_brings_the_poison_centre_first(db, settings) -> None:
    for question in (
        "mon petit de 3 ans a bu du liquide vaisselle, qui j'appelle ?",
        "ma fille a bu de l'eau de javel",
        "il a avalé une pastille de lave-vaisselle",
        "mon fils a pris toute la boîte de doliprane",
        "intoxication au monoxyde de carbone",
        "my toddler swallowed a dishwasher tablet",
    ):
        assert read_question(question).concepts == ("intoxication",), question
    for question in (
        "j'ai une intoxication alimentaire",
        "I think I have food poisoning",
        "j'ai avalé mes médicaments ce matin",
        "j'ai bu un café avant la prise de sang",
        "la lessive a taché son pull",
    ):
        assert not read_question(question).urgent, question
    handbook = HANDBOOK.decode().replace(
        "## Horaires",
        "### Intoxication\nEn cas d'intoxication (médicament, produit ménager), appelez le centre "
        "antipoison au 04 72 11 69 11, ou le 15 si la personne est inconsciente.\n\n## Horaires",
    )
    _ingest(db, settings, "livret.md", handbook.encode())
    found = knowledge.find(db, ACTOR, settings, "URGENT mon petit a bu du produit vaisselle", k=4)
    assert found.answer == "urgent" and "appelez le 15" in found.message_fr
    assert found.passages[0].section == "Urgences › Intoxication"
    # another alarm sign keeps the general emergency passage first
    chest = knowledge.find(db, ACTOR, settings, "mon père a mal dans la poitrine", k=4)
    assert chest.passages[0].section == "Urgences › Urgence vitale"


def test_a_fever_in_a_baby_under_3_months_is_an_emergency_as_on_the_patient_form(
    db, settings
) -> None:
    for question in (
        "Mon bébé de 2 mois a 38,5, je fais quoi ?",
        "bb de 6 semaines, 38.4 au thermometre ce soir, on peut attendre demain ?",
        "mon bébé de 2 mois a de la fièvre",
        "my 6 weeks old baby has a fever of 38.2",
    ):
        assert read_question(question).concepts == ("fievre-nourrisson",), question
    for question in (
        "mon bébé de 2 mois n'a pas de fièvre mais il tousse",
        "mon fils de 4 mois a 38,5",
        "mon enfant a de la fièvre depuis 2 jours",
    ):
        assert not read_question(question).urgent, question
    handbook = HANDBOOK.decode().replace(
        "## Horaires",
        "## Fièvre de l'enfant\nUn bébé de moins de 3 mois qui a de la fièvre doit être vu le "
        "jour même. Appelez le 15 devant une difficulté à respirer.\n\n## Horaires",
    )
    _ingest(db, settings, "livret.md", handbook.encode())
    found = knowledge.find(db, ACTOR, settings, "mon bb de 6 semaines a 38,4", k=4)
    assert found.answer == "urgent" and "appelez le 15" in found.message_fr
    assert found.passages[0].section == "Fièvre de l'enfant"


def test_urgent_questions_say_call_15_even_when_no_document_does(db, settings) -> None:
    _ingest(db, settings, "horaires.md", b"# Horaires\n\n## Horaires\nOuvert le samedi matin.\n")
    result = knowledge.find(db, ACTOR, settings, "mon mari a mal dans la poitrine", k=2)
    assert result.answer == "urgent" and "15" in result.message_fr
    assert (
        knowledge.find(db, ACTOR, settings, "chest pain what should I do", k=2).answer == "urgent"
    )


def test_no_answer_when_the_documents_do_not_answer(db, settings) -> None:
    _ingest(db, settings)
    embedder = embedder_for(settings)
    collection = open_collection(settings, embedder)
    question = "Vous faites de l'acupuncture ?"
    vector = embedder.embed_query([question])[0]
    # A model that refuses whatever the documents do not know at all, to prove the plumbing;
    # the shipped model is calibrated by the eval.
    # (features: cosine, coverage)
    model = NoAnswerModel((0.0, 5.0), 0.0, (0, 0.5), (1, 1), 0.5)
    refused = hybrid_search(db, settings, collection, vector, question, 4, model=model)
    assert refused.answer == "none" and refused.message_fr == NO_ANSWER_FR
    assert refused.signals is not None and refused.signals.known == 0.0
    assert refused.signals.coverage == 0.0 and refused.signals.focus == 0.0
    question = "Quel est le prix d'une consultation ?"
    vector = embedder.embed_query([question])[0]
    found = hybrid_search(db, settings, collection, vector, question, 4, model=model)
    assert found.answer == "found" and found.signals is not None and found.signals.known > 0.5
    assert found.passages[0].section == "Tarifs › Prix des consultations"
    assert found.signals.focus == 1.0 and found.signals.zscore > 1.0


def test_an_on_topic_question_the_documents_do_not_answer_is_refused(db, settings) -> None:
    """The shipped calibrated model: the handbook speaks of consultations and payment, not of
    this; an answered question on the same page is not refused."""
    _ingest(db, settings)
    asked = knowledge.find(db, ACTOR, settings, "Vous faites de l'acupuncture au cabinet ?", k=4)
    assert asked.answer == "none" and asked.message_en.startswith("I cannot find")
    paid = knowledge.find(db, ACTOR, settings, "Je peux payer par chèque ?", k=4)
    assert paid.answer == "found" and paid.passages[0].section == "Tarifs › Moyens de paiement"


def test_english_and_misspelt_questions_find_the_french_passage(db, settings) -> None:
    _ingest(db, settings)
    card = knowledge.find(db, ACTOR, settings, "Do you take credit cards at the practice?", k=4)
    assert card.passages[0].section == "Tarifs › Moyens de paiement"
    # English words the documents lack ("take", "practice") are the language, not a topic
    # the documents lack: the best passage covers all of the question the signals read
    assert card.signals is not None and card.signals.coverage == 1.0
    french = knowledge.find(db, ACTOR, settings, "Vous prenez la carte bancaire au guichet ?", k=4)
    assert french.signals is not None and french.signals.coverage < 1.0  # "guichet" is not
    typo = knowledge.find(db, ACTOR, settings, "Combien coûte une consultaton ?", k=4)
    assert typo.corrections == {"consultaton": "consultation"}
    assert typo.passages[0].section == "Tarifs › Prix des consultations"


def test_a_passage_holding_every_concept_outranks_one_repeating_a_common_word() -> None:
    vocab = build_vocabulary([VocabularyFile(synonyms=[["carte bancaire", "carte bleue", "cb"]])])
    query = analyse_query("carte bleue au distributeur", vocab)

    def hit(chunk: str, text: str, bm25: float) -> lexical.LexicalHit:
        return lexical.LexicalHit(
            lexical.IndexedPassage(chunk, 1, 0, "Tarifs", text),
            bm25,
            frozenset(terms("Tarifs")),
            frozenset(terms(text)),
        )

    repeated = hit("a", "Carte bancaire, CB, carte bleue : la carte bancaire est acceptée.", 9.0)
    both = hit("b", "Pas de distributeur de billets ; la carte bancaire est acceptée.", 5.0)
    frequencies = {"cart": 40, "bancair": 40, "cb": 30, "bleu": 2, "distribu": 1}
    ranked = concept_ranking(query, frequencies, 100, [repeated, both])
    assert [h.passage.chunk_id for h in ranked] == ["b", "a"]
    # a concept named in the heading path counts more than in the text alone
    titled = lexical.LexicalHit(
        lexical.IndexedPassage("c", 1, 0, "Distributeur", "La carte bancaire."),
        1.0,
        frozenset(terms("Distributeur")),
        frozenset(terms("La carte bancaire.")),
    )
    assert concept_ranking(query, frequencies, 100, [both, titled])[0].passage.chunk_id == "c"


def test_the_no_answer_model_separates_what_it_was_fitted_on() -> None:
    answered = [Signals(0.86, 0.02, 0.9, 1.0, 1.0), Signals(0.84, 0.01, 0.7, 0.9, 0.0)] * 6
    unanswered = [Signals(0.81, 0.0, 0.1, 0.2, 0.0), Signals(0.82, 0.01, 0.0, 0.0, 0.0)] * 3
    model = fit(answered + unanswered, [True] * 12 + [False] * 6)
    assert all(not model.no_answer(s) for s in answered)
    assert all(model.no_answer(s) for s in unanswered)
    assert NoAnswerModel(**{**model.__dict__}).to_json().startswith("{")


def test_the_doubt_band_lies_between_refusing_and_plain_f1(tmp_path) -> None:
    """Below the refusal threshold (precision first) the search refuses; up to the threshold
    plain F1 would choose it answers as doubtful: the middle, where answered and unanswered
    questions mix, goes to a reader. A calibration file written before the band has none."""
    answered = [Signals(0.88, 0.02, 0.9, 1.0, 1.0)] * 8
    unanswered = [Signals(0.80, 0.0, 0.05, 0.2, 0.0)] * 4
    middle = [Signals(0.84, 0.01, 0.5, 0.6, 0.0)] * 4  # half of them unanswerable
    labels = [True] * 8 + [False] * 4 + [True, False, True, False]
    model = fit(answered + unanswered + middle, labels)
    assert model.threshold <= model.doubt
    assert all(model.no_answer(s) for s in unanswered)
    assert all(not model.no_answer(s) and not model.doubtful(s) for s in answered)
    assert all(model.doubtful(s) and not model.no_answer(s) for s in middle)
    path = tmp_path / "model.json"
    path.write_text(model.to_json(), "utf-8")
    loaded = load(path)
    assert loaded is not None and loaded.doubt == model.doubt
    old = json.loads(model.to_json())
    del old["doubt"]
    path.write_text(json.dumps(old), "utf-8")
    before = load(path)
    assert before is not None and before.doubt == before.threshold
    assert not any(before.doubtful(s) for s in answered + unanswered + middle)
    shipped = load()
    assert shipped is not None and shipped.threshold < shipped.doubt  # the shipped band


def test_citations_name_the_document_section_and_passage(db, settings) -> None:
    document_id = _ingest(db, settings)
    best = knowledge.search(db, ACTOR, settings, "Vous êtes ouverts le samedi ?", k=1)[0]
    assert best.section == "Horaires"
    assert best.citation == f"Livret test › Horaires, passage {best.position + 1}"
    assert best.link == f"/connaissances/{document_id}#c{best.position}"


# -- the lexical index stays consistent ---------------------------------------------------------


def _held(settings) -> dict[int, tuple[str, int]]:
    with lexical.connect(settings) as connection:
        return lexical.held_documents(connection)


def test_the_lexical_index_follows_ingestion_deletion_and_damage(db, settings) -> None:
    document_id = _ingest(db, settings)
    assert lexical.index_path(settings).parent == settings.chroma_dir.parent  # beside Chroma
    held = _held(settings)
    assert set(held) == {document_id} and held[document_id][1] >= 6
    # damage: the lexical file is lost (a restore, a crash): the next search rebuilds it
    lexical.index_path(settings).unlink()
    lexical._READY.clear()
    found = knowledge.find(db, ACTOR, settings, "carte bleue", k=2)
    assert found.passages[0].section == "Tarifs › Moyens de paiement"
    assert _held(settings)[document_id] == held[document_id]
    # damage: an old version of the document is held: repaired from Chroma
    with lexical.connect(settings) as connection:
        connection.execute("UPDATE documents SET sha256 = 'old'")
    knowledge.find(db, ACTOR, settings, "horaires", k=2)
    assert _held(settings)[document_id] == held[document_id]
    knowledge.delete(db, ACTOR, settings, document_id)
    db.commit()
    assert _held(settings) == {}
    with lexical.connect(settings) as connection:
        assert lexical.passage_count(connection) == 0


def test_a_rebuild_leaves_both_indexes_equal(db, settings, job_queue) -> None:
    first = _ingest(db, settings)
    second = _ingest(db, settings, "horaires.md", b"# Horaires\n\n## Samedi\nOuvert le samedi.\n")
    job = knowledge.rebuild(db, ACTOR, settings)
    db.commit()
    runner.run_now(db, settings, job)
    db.commit()
    held = _held(settings)
    assert set(held) == {first, second}
    collection = open_collection(settings, embedder_for(settings))
    with lexical.connect(settings) as connection:
        ids = {r[0] for r in connection.execute("SELECT chunk_id FROM passages")}
    assert ids == set(collection.get(include=[])["ids"])


def _writer(path: str, worker: int) -> None:
    from app.config.settings import Settings

    settings = Settings(_env_file=None, data_dir=Path(path), secret_key="x" * 32)
    for n in range(15):
        lexical.replace_document(
            settings,
            worker,
            f"v{n}",
            [
                lexical.IndexedPassage(f"{worker}-{n}-{i}", worker, i, "Section", f"texte {i} {n}")
                for i in range(20)
            ],
        )


def test_several_processes_write_the_lexical_index_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in (1, 2, 3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    with sqlite3.connect(tmp_path / lexical.FILE_NAME) as connection:
        held = dict(connection.execute("SELECT document_id, sha256 FROM documents").fetchall())
        count = connection.execute("SELECT count(*) FROM passages_fts").fetchone()[0]
    assert held == {1: "v14", 2: "v14", 3: "v14"} and count == 60


@pytest.mark.parametrize("question", ["", " x "])
def test_short_questions_are_refused(db, settings, question: str) -> None:
    with pytest.raises(knowledge.InvalidInput):
        knowledge.find(db, ACTOR, settings, question)


def test_texting_shorthand_reads_as_the_words_it_stands_for() -> None:
    """Typed to a practice, "pr", "sem pro" or "ordo" are not rare topics the documents lack:
    they are "pour", "semaine prochaine", "ordonnance"."""
    phrases = analyse_query("jai un rdv la sem pro pr mon ordo", vocabulary()).phrases()
    assert not {("pr",), ("sem",), ("pro",), ("ordo",), ("jai",)} & set(phrases)
    assert tuple(terms("ordonnance")) in phrases and tuple(terms("semaine")) in phrases
    assert embedding_query("C pr qd le labo ?", vocabulary()).startswith(
        "C pour quand le laboratoire ?"
    )
    # whole words only, in any case for the search; the secretary's "Pr Dupont" stays a title
    assert shorthand.expand("PR prise Pro-santé", shorthand.TEXTING, any_case=True) == (
        "pour prise Pro-santé"
    )
    assert shorthand.expand("rdv dem pr le Pr Dupont") == "rdv demain pour le Pr Dupont"


def test_the_shipped_model_answers_over_a_two_section_document(db, settings) -> None:
    """Calibrated on the demo handbooks, "no answer" must not turn away a plain question asked
    of a practice's one-page note, where most words of a question are unknown to the base
    (the share of the question the base knows was left out of the model for that reason)."""
    note = (
        "# Informations pratiques\n\n## Tarifs\nLa consultation coûte 30 euros. Les visites à "
        "domicile coûtent 40 euros.\n\n## Accès\nLe cabinet est au 12 rue des Lilas, bus 14 "
        "arrêt Mairie. Pas de parking privé.\n"
    )
    _ingest(db, settings, "infos-pratiques.md", note.encode())
    asked = knowledge.find(
        db, ACTOR, settings, "c'est combien la consultation chez vous ? un patient demande", k=4
    )
    assert asked.answer == "found" and asked.passages[0].section.endswith("Tarifs")
    assert "30 euros" in asked.passages[0].text
    away = knowledge.find(db, ACTOR, settings, "Vous faites de l'acupuncture ?", k=4)
    assert away.answer == "none" and away.passages  # refused, the passages kept for the log


def test_no_answer_weighs_its_precision_twice() -> None:
    """Refusing a question the documents answer hides what the practice wrote: with F-beta
    0.5, being right on one of two refusals scores below refusing one of two rightly."""
    all_refused = ([True, True], [True, False])  # 1 of 2 refusals wrong, recall 1
    half_missed = ([True, False], [True, True])  # no wrong refusal, recall 0.5
    assert fbeta(*all_refused, 1.0) == fbeta(*half_missed, 1.0) == pytest.approx(2 / 3)
    assert fbeta(*half_missed, PRECISION_BETA) > fbeta(*all_refused, PRECISION_BETA)
    assert fbeta([False, False], [True, False], 0.5) == 0.0


def test_the_practice_itself_is_not_what_a_question_is_about() -> None:
    """ "Au cabinet" says where: every section of the practice's documents is about the practice,
    so it would cover an off-topic question ("l'acupuncture au cabinet")."""
    phrases = analyse_query("Vous faites de l'acupuncture au cabinet ?", vocabulary()).phrases()
    assert phrases == [tuple(terms("acupuncture"))]


def test_a_practice_can_use_its_own_no_answer_calibration(db, settings, caplog) -> None:
    """A calibration fitted on the practice's own questions, in its data directory, decides
    instead of the shipped one (read again when it changes); a damaged file is ignored."""
    _ingest(db, settings)
    question = "Je peux payer par chèque ?"
    assert knowledge.find(db, ACTOR, settings, question, k=4).answer == "found"
    own = settings.data_dir / PRACTICE_FILE
    refuse_all = NoAnswerModel((0.0, 0.0), -10.0, (0.0, 0.0), (1.0, 1.0), 0.5, "cabinet")
    own.write_text(refuse_all.to_json(), "utf-8")
    assert knowledge.find(db, ACTOR, settings, question, k=4).answer == "none"
    own.write_text("{ not json", "utf-8")
    os.utime(own, (1, 1))  # another version of the file, whatever the clock's resolution
    with caplog.at_level("WARNING", logger="app.services.knowledge.no_answer"):
        assert knowledge.find(db, ACTOR, settings, question, k=4).answer == "found"
    assert f"calibration {own} ignored: JSONDecodeError" in caplog.text
    own.unlink()
    assert knowledge.find(db, ACTOR, settings, question, k=4).answer == "found"

"""Urgent-symptom questions: "douleur dans la poitrine, que faire ?" is not a question about
the practice's documents but an emergency. The symptom is recognised by the same
deterministic EDS-NLP reading as the pre-consultation red flags (lexicon, typos, negation),
so the two never disagree on what an alarm sign is.

Unlike a patient's form, a question about someone else ("mon mari a mal à la poitrine") or a
hypothetical one ("si j'ai mal à la poitrine") is just as urgent. A negated mention ("pas de
douleur thoracique") does not count, nor one of the past: dated ("un AVC il y a 3 ans", EDS-NLP's
history) or named as the landmark of a lasting state ("en fauteuil depuis son AVC", "des
séquelles d'AVC") when the question says nothing of today.
"""

import re
from dataclasses import dataclass

from app.services.knowledge import cues
from app.services.knowledge.analysis import fold, stop_words, words
from app.services.preconsultation.clinical_text import Mention, read_text

# Alarm signs that call for the 15 at once, whoever has them (concepts of
# app/services/preconsultation/questionnaires/lexicons/alarm-signs.yaml).
URGENT_CONCEPTS = frozenset(
    {
        "douleur-thoracique",
        "essoufflement",
        "detresse-respiratoire",
        "convulsions",
        "mouvements-foetaux",
        "perte-des-eaux",
        "perte-connaissance",
        "deficit-moteur",
        "trouble-parole",
        "avc",
        "infarctus",
        "oedeme-gorge-langue",
        "crachats-sang",
        "vomissement-sang",
        "purpura",
        "cephalee-brutale",
        "intoxication",
    }
)
# Alarm signs with a passage of their own in a practice's documents: the words that find it
# (a poisoning: the poison control centre's passage, before the general emergency one).
TOPICS: dict[str, tuple[str, ...]] = {
    "intoxication": ("intoxication", "empoisonnement", "poison", "antipoison"),
    "fievre-nourrisson": ("fièvre", "nourrisson", "bébé"),
}
# A fever in a baby younger than this (months) calls for the 15, as on the patient form (rule
# ``fievre-nourrisson``, NICE NG143): here the age and the temperature are read in the
# question ("bb de 6 semaines, 38.4").
INFANT_FEVER_MONTHS = 3
FEVER_CONCEPTS = frozenset({"fievre", "fievre-chiffree-38"})  # the form's lexicon concepts
NOTICE_FR = (
    "Urgence possible : appelez le 15 (SAMU) ou le 112 maintenant, sans attendre de rendez-vous."
)
NOTICE_EN = "Possible emergency: call 15 (SAMU) or 112 now, do not wait for an appointment."


@dataclass(frozen=True)
class Urgency:
    """The alarm signs a question names (empty when it names none)."""

    concepts: tuple[str, ...] = ()

    @property
    def urgent(self) -> bool:
        return bool(self.concepts)

    @property
    def topics(self) -> tuple[str, ...]:
        """The words of the passages written for these alarm signs (none for most)."""
        return tuple(dict.fromkeys(w for c in self.concepts for w in TOPICS.get(c, ())))


# A sign named as the start of a lasting state ("depuis son AVC") or of its after-effects.
_LANDMARK = re.compile(r"\b(?:depuis (?:son|sa|ses|mon|ma|mes|leur|l.)|sequelles? d.?)\s*$")
# Words that put the question today: then the sign may be new ("depuis son AVC d'hier").
_RECENT = re.compile(
    r"\b(?:hier|aujourd.?hui|ce matin|cette nuit|ce soir|cet apres.?midi|tout a l.heure|"
    r"maintenant|en ce moment|vient de|viens de|d.un coup|brutalement|soudain\w*|"
    r"yesterday|today|this morning|tonight|right now|suddenly)\b"
)


# A sign named as a kind of care the practice gives ("le Dr Martin suit les AVC ?", "vous
# prenez en charge les crises d'épilepsie ?"): a question about the practice, not a person.
_CARE_OF = re.compile(
    r"\b(?:suit|suivez|suivent|soigne|soignez|soignent|traite|traitez|traitent|"
    r"prend en charge|prenez en charge|prennent en charge|s.occupe de|vous occupez de|"
    r"specialise dans|specialiste des|specialiste de|treat|treats|see patients with)\s+"
    r"(?:les|des|la|le|l.)?\s*$"
)


def _care_offered(question: str, mention: Mention) -> bool:
    return bool(_CARE_OF.search(fold(question[: mention.start])))


def _past(question: str, mention: Mention, today: bool) -> bool:
    """A mention of the past: dated, or named as a landmark in a question without a word of
    ``today``."""
    if mention.history:
        return True
    return not today and bool(_LANDMARK.search(fold(question[: mention.start])))


def _function_word(text: str) -> bool:
    """A mention that is one of the language's glue words written in lower case: "ait" (the
    verb "avoir") is not the acronym "AIT" (a transient stroke)."""
    return text == text.lower() and all(w in stop_words() for w in words(text))


def read_question(question: str) -> Urgency:
    """The urgent alarm signs named in a question, not negated; and a fever in a baby under
    3 months."""
    mentions = read_text(question)
    folded = fold(question)
    today = bool(_RECENT.search(folded))
    current = [
        m
        for m in mentions
        if not m.negated
        and not _function_word(m.text)
        and not _past(question, m, today)
        and not _care_offered(question, m)
    ]
    found = [m.concept for m in current if m.concept in URGENT_CONCEPTS]
    if cues.names_a_child(folded) and any(m.concept == "enfant-mou" for m in current):
        found.append("enfant-mou")  # floppy or unrousable: urgent in a young child only
    months = cues.infant_months(folded)
    if (
        months is not None
        and months < INFANT_FEVER_MONTHS
        and (
            cues.fever_temperature(folded)
            or any(m.concept in FEVER_CONCEPTS and not m.negated for m in mentions)
        )
    ):
        found.append("fievre-nourrisson")
    return Urgency(tuple(dict.fromkeys(found)))

"""The kind of answer a question asks for, and whether a passage holds one: "c'est combien"
wants a price, "combien de temps" a duration, "à quelle heure" a time of day, "c'est où" a
street address, "quel médecin" a practitioner by name. Among passages
on the same topic, the one that states the price answers "c'est combien une visite à
domicile", not the one that describes home visits (a classic answer-type check of question
answering; measured in ``evals/README.md``).

Both sides are read on folded text (lower case, no accents), in French and English.
"""

import re
from typing import Literal

from app.services.knowledge.analysis import fold

Kind = Literal["price", "duration", "clock", "place", "practitioner"]

_NUMBER = r"(?:\d+(?:[,.]\d+)?|un|une|deux|trois|quatre|cinq|six|sept|huit|dix|quinze|vingt|trente)"
_UNITS = r"(?:jours?|semaines?|mois|ans|annees|heures?|minutes?|min|days?|weeks?|months?|years?)"

_ASKED: dict[Kind, re.Pattern[str]] = {
    # "combien" alone asks a price; "combien de temps / de jours / de fois" and "tous les
    # combien" (how often) do not.
    "price": re.compile(
        r"(?<!tous les )(?<!toutes les )\bcombien\b(?!\s+de\s+(?:temps|jours?|semaines?|mois|"
        r"ans|heures?|minutes?|fois|personnes?|medecins?))|\b(?:prix|tarifs?|coute|coutent|cout|price|cost|fees?)\b|"
        r"\bhow much\b(?!\s+(?:notice|time|longer|earlier|in advance|before|ahead))"
    ),
    "duration": re.compile(
        r"\bcombien de (?:temps|jours|semaines|mois|ans)\b|\bhow long\b|\bjusqu.?(?:a|quand)\b|"
        r"\bhow much (?:notice|time|longer|earlier|in advance|before|ahead)\b|\bhow (?:far|early) "
        r"in advance\b|"
        r"\bdelais?\b|\bpendant combien\b|\btou(?:s|tes) les combien\b|\bhow often\b|"
        r"\ba quel(?:le)? (?:rythme|frequence)\b"
    ),
    "clock": re.compile(r"\ba quelle heure\b|\bwhat time\b|\bhoraires?\b"),
    "place": re.compile(
        r"\bc.?est ou\b|\bou (?:est|se trouve|se situe|etes|sont|se trouvent)\b|"
        r"\betes.vous\b.{0,12}\bsitues?\b|\bvous etes ou\b|\badresse\b|\bwhere (?:is|are)\b|"
        r"\baddress\b"
    ),
    "practitioner": re.compile(
        r"\b(?:quel|quelle|quels|quelles) (?:medecins?|docteurs?|docteures?|praticiens?|"
        r"praticiennes?|specialistes?|generalistes?)\b|\bqui (?:fait|pratique|pose|realise|"
        r"s.occupe|consulte|soigne|suit)\b|\bwhich (?:doctor|gp|physician)s?\b|\bwho (?:does|"
        r"can do|performs|sees|treats)\b"
    ),
}
_HELD: dict[Kind, re.Pattern[str]] = {
    "price": re.compile(r"\d+(?:[,.]\d+)?\s*(?:€|euros?\b)"),
    "duration": re.compile(rf"\b{_NUMBER}\s+{_UNITS}\b"),
    "clock": re.compile(r"\b\d{1,2}\s*h(?:\s*\d{2})?\b"),
    # A street address: "12 rue des Tilleuls", "3 bis, avenue…", or a postcode and a town.
    "place": re.compile(
        r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av|boulevard|bd|place|chemin|allee|"
        r"impasse|route|quai|cours|square|street|road)\b|\b\d{5}\s+[a-z]"
    ),
    "practitioner": re.compile(r"\b(?:dr|pr)\.?\s+[a-z]"),
}


def asked(question: str) -> frozenset[Kind]:
    """The kinds of answer the question asks for (none for most questions)."""
    folded = fold(question)
    return frozenset(kind for kind, pattern in _ASKED.items() if pattern.search(folded))


def holds(kinds: frozenset[Kind], text: str) -> bool:
    """Whether the text states an answer of one of these kinds (a price, a duration, a time)."""
    if not kinds:
        return False
    folded = fold(text)
    return any(_HELD[kind].search(folded) for kind in kinds)

"""Lay expressions that name, without its word, a concept the practice's documents write
out: "38,5 au thermomètre" is a fever; a baby "de 6 semaines" is under 3 months, the age
below which the documents give their fever advice; "les fils" that must come out are
stitches, not sons. A question gets the documents' words for what it says (added, or put
in place of an ambiguous word), for the lexical index and for the embedding alike.

Read on folded text (lower case, no accents), in French and English; measured in
``evals/README.md``.
"""

import re
from collections.abc import Callable

_NUMBER_WORDS = {
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "six": 6,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
}
_NUMBER = r"(\d{1,2}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + ")"

# A body temperature of fever (38 to 42 degrees), written as a number: "39,2", "38°",
# "39 degrés", "a 39 de température", "fait du 39". Not an age, a price or a time.
_FEVER = re.compile(
    r"\b(?:3[89]|4[0-2])(?:[,.]\d)?\s*(?:°|degres?\b|deg\b|c\b)"
    r"|\b(?:3[89]|4[0-2])[,.]\d\b(?!\s*(?:€|euros?|kg|cm|ans|%))"
    r"|\b(?:a|fait|fais|fait du|est a|monte a|thermometre|temperature|temp)\s+(?:3[89]|4[0-2])\b"
    # not an age, a delay, a price, a weight, an hour, a term ("né à 38 SA") or an address
    r"(?!\s*(?:ans|mois|semaines?|sem\b|sa\b|jours|euros?|€|min|minutes|kg|cm|%|h\b|heures?"
    r"|ou \d|bis\b|ter\b|rue|av\b|avenue|bd\b|boulevard|place|chemin|route|allee|impasse|quai))"
)
# A young child's age, said of the child: "bébé de 6 semaines", "ma fille a 2 mois", "mon
# fils, âgé de 5 semaines", "3 weeks old". Not a duration ("fièvre depuis 2 jours", "une
# fièvre de 3 jours").
_CHILD_WORDS = (
    r"bebe|bebes|bb|nourrisson|nourrissons|nouveau.?ne|nouveau.?nee|enfant|fils|fille|"
    r"petit|petite|baby|son|daughter|newborn|infant"
)
_CHILD = rf"(?:{_CHILD_WORDS})"
_UNIT = r"(jours?|j|semaines?|sem|mois|days?|weeks?|wks?|months?)"
_AGE = re.compile(
    rf"\b{_CHILD},?\s+(?:qui\s+)?(?:de|a|age de|agee? de|ne il y a|nee il y a|is)\s+"
    rf"{_NUMBER}\s*{_UNIT}\b"
    rf"|\b{_NUMBER}[ -](days?|weeks?|months?|jours?|semaines?|mois)[ -]old\b"
    # telegraphic: "bb 3 sem", "bébé (5 semaines)", "ma fille, 6 semaines"; not a duration
    # ("bébé 3 jours de fièvre")
    rf"|\b{_CHILD}\s*[,(]?\s*{_NUMBER}\s*{_UNIT}\b(?!\s*(?:de|d|of)\b)"
)
# Stitches: "les fils" with what is done to stitches ("enlever les fils", "les fils qui
# fondent"); "mon fils" stays a son.
_THREADS = re.compile(r"\b(?:les|des|ces|mes|ses|tes|vos|nos|leurs) fils\b")
_STITCH_CONTEXT = re.compile(
    r"\b(?:enlev\w*|retir\w*|ote\w*|oter|fond\w*|resorb\w*|points?|sutur\w*|recous\w*|"
    r"cicatri\w*|agrafes?|plaies?|coupures?|blessures?|stitch\w*)\b"
)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS.get(text, 99)


def _months(match: re.Match[str]) -> float:
    count, unit = next(
        (match.group(i), match.group(i + 1))
        for i in range(1, len(match.groups()), 2)
        if match.group(i)
    )
    n = _number(count)
    if unit.startswith(("jour", "day", "j")):
        return n / 30
    if unit.startswith(("sem", "week", "wk")):
        return n / 4.3
    return float(n)


def infant_months(folded: str) -> float | None:
    """The age in months of the youngest child a question gives an age in days, weeks or
    months to (None when it gives none)."""
    ages = [_months(m) for m in _AGE.finditer(folded)]
    return min(ages) if ages else None


_YOUNG_CHILD = re.compile(rf"\b(?:{_CHILD_WORDS}|bambin|toddler|kid)\b")


def names_a_child(folded: str) -> bool:
    """Whether the question speaks of a (young) child: "mon bébé", "ma fille", "my son"."""
    return bool(_YOUNG_CHILD.search(folded))


def fever_temperature(folded: str) -> bool:
    """Whether the question writes a body temperature of fever (38 to 42 degrees)."""
    return bool(_FEVER.search(folded))


def _infant(folded: str) -> str:
    youngest = infant_months(folded)
    if youngest is None:
        return ""
    if youngest < 3:
        return "nourrisson de moins de 3 mois"
    return "nourrisson de moins de 6 mois" if youngest < 6 else ""


def _fever(folded: str) -> str:
    return "fièvre" if fever_temperature(folded) else ""


CUES: tuple[Callable[[str], str], ...] = (_fever, _infant)
_FOLDED = {"fièvre": "fievre"}  # the words cues add, as the folded question has them


def read(text: str, folded: str) -> str:
    """The question (``folded``: the same, lower case without accents) with the documents'
    words for what it says in lay terms: ambiguous words replaced ("les fils" to remove as
    "les points de suture"), concepts added at the end in brackets. Most questions come
    back unchanged."""
    if _THREADS.search(folded) and _STITCH_CONTEXT.search(folded):
        text = re.sub(
            r"\b(les|des|ces|mes|ses|tes|vos|nos|leurs) fils\b",
            r"\1 points de suture",
            text,
            flags=re.IGNORECASE,
        )
    added = [w for cue in CUES if (w := cue(folded)) and _FOLDED.get(w, w) not in folded]
    return f"{text} ({', '.join(added)})" if added else text

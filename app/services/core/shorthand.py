"""French shorthand as people type it to a practice, written out: the secretaries'
telegraphic notes ("rdv dem aprem pr mme X") and the patients' text-message spelling ("jai
un rdv la sem pro, c pr qd ?"). Read as the words they stand for, they stop being unknown
words that a search weighs as rare topics.

``FRONT_DESK`` is what the secretary assistant reads; ``TEXTING`` adds the patients' texting
words (read by the knowledge search). Only whole words are replaced, never inside a word or
a hyphenated word.
"""

import re
from collections.abc import Mapping
from functools import cache

FRONT_DESK: Mapping[str, str] = {
    "dem": "demain",
    "dmain": "demain",
    "aprem": "après-midi",
    "aprèm": "après-midi",
    "ap-m": "après-midi",
    "ajd": "aujourd'hui",
    "auj": "aujourd'hui",
    "pr": "pour",
    "ds": "dans",
    "sem": "semaine",
    "asap": "le plus tôt possible",
    "tjrs": "toujours",
    "qd": "quand",
}

TEXTING: Mapping[str, str] = {
    **FRONT_DESK,
    "tjs": "toujours",
    "pq": "pourquoi",
    "pk": "pourquoi",
    "pcq": "parce que",
    "pck": "parce que",
    "bcp": "beaucoup",
    "qqn": "quelqu'un",
    "qqun": "quelqu'un",
    "qqch": "quelque chose",
    "qq": "quelques",
    "jsp": "je ne sais pas",
    "bb": "bébé",
    "pb": "problème",
    "pbm": "problème",
    "dispo": "disponible",
    "dispos": "disponibles",
    "pro": "prochain",
    "proch": "prochain",
    "jai": "j'ai",
    "chui": "je suis",
    "chuis": "je suis",
    "ke": "que",
    "koi": "quoi",
    "kan": "quand",
    "ki": "qui",
    "dc": "donc",
    "ms": "mais",
    "vs": "vous",
    "ns": "nous",
    "tps": "temps",
    "mtn": "maintenant",
    "mnt": "maintenant",
    "slt": "salut",
    "bjr": "bonjour",
    "bsr": "bonsoir",
    "mrc": "merci",
    "mci": "merci",
    "ordo": "ordonnance",
    "ordos": "ordonnances",
    "labo": "laboratoire",
    "secu": "sécurité sociale",
    "sécu": "sécurité sociale",
    "kiné": "kinésithérapeute",
    "kine": "kinésithérapeute",
    "certif": "certificat",
    "exam": "examen",
    "exams": "examens",
    "infos": "informations",
    "info": "information",
}


@cache
def _pattern(table: tuple[str, ...], any_case: bool) -> re.Pattern[str]:
    alternatives = "|".join(map(re.escape, sorted(table, key=len, reverse=True)))
    return re.compile(rf"(?<![\w-])({alternatives})(?![\w-])", re.IGNORECASE if any_case else 0)


def expand(text: str, table: Mapping[str, str] = FRONT_DESK, *, any_case: bool = False) -> str:
    """The text with the table's shorthand written out. By default only lower-case words are
    read ("Pr Dupont" stays a title); ``any_case`` reads "PR" and "Pr" too."""
    pattern = _pattern(tuple(table), any_case)
    return pattern.sub(lambda m: table[m.group(1).lower()], text)

"""Tolerant name matching for patients and practitioners: accents and case folded, a small
edit distance for typos, married names and phone numbers compared by their digits."""

import unicodedata

TITLES = frozenset(
    {
        "dr",
        "docteur",
        "pr",
        "professeur",
        "m",
        "mr",
        "mme",
        "mlle",
        "madame",
        "monsieur",
        "mademoiselle",
    }
)


def fold(text: str) -> str:
    """Lower case, no accents, hyphens and apostrophes as spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().replace("-", " ").replace("'", " ").split())


def words(text: str) -> list[str]:
    return [w.strip(".,;:!?") for w in fold(text).split() if w.strip(".,;:!?")]


def distance(a: str, b: str) -> int:
    """Edit distance with transpositions (optimal string alignment; short words: names)."""
    if a == b:
        return 0
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


def close(wanted: str, actual: str) -> bool:
    """Same word up to a typo: one edit for short words, two from eight letters, or a prefix
    (a typed name cut short)."""
    if wanted == actual:
        return True
    allowed = 0 if len(wanted) < 4 else 1 if len(wanted) < 8 else 2
    return distance(wanted, actual) <= allowed or (len(wanted) >= 4 and actual.startswith(wanted))


def name_score(wanted: list[str], name: str) -> int:
    """How many of the wanted words the name holds (up to a typo); -1 when one is missing."""
    have = words(name)
    score = 0
    for word in wanted:
        if word in have:
            score += 2
        elif any(close(word, h) for h in have):
            score += 1
        else:
            return -1
    return score


def digits(phone: str) -> str:
    """The last nine digits (a French number without its 0 or +33)."""
    only = "".join(ch for ch in phone if ch.isdigit())
    return only[-9:]

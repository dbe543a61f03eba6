"""French text analysis for the lexical index and for questions: accents folded, stop words
dropped, Snowball French stems, the practice's synonyms, and typos corrected against the
words the indexed documents actually use.

The same analysis runs on passages (when they are indexed) and on questions, so that
"téléphoner", "Telephone" and "téléphone" meet. Synonyms are applied to questions only, so
the practice can edit its vocabulary (``vocabulary.yaml`` here, extended by
``<data dir>/knowledge-vocabulary.yaml``) without re-indexing anything.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import snowballstemmer  # type: ignore[import-untyped]
import yaml
from pydantic import BaseModel, ConfigDict, Field

from app.services.core import shorthand
from app.services.core.errors import InvalidInput
from app.services.knowledge import cues

ANALYSIS_VERSION = 3  # bump when indexed tokens change: the lexical index rebuilds itself
VOCABULARY_FILE = Path(__file__).resolve().parent / "vocabulary.yaml"
PRACTICE_VOCABULARY = "knowledge-vocabulary.yaml"  # in the data directory, optional
_WORD = re.compile(r"[a-z0-9]+")
# Words kept although spaCy lists them as stop words: they carry the question's meaning
# in a practice ("combien" coûte, "seul", "quand" retirer les points...).
_KEPT = frozenset({"combien", "seul", "seule", "quand", "heure", "heures", "jour", "jours"})
# Interrogative filler of patients' questions, in French and English.
_EXTRA_STOP = frozenset(
    [
        "svp",
        "stp",
        "merci",
        "bonjour",
        "est",
        "ce",
        "ca",
        "c",
        "qu",
        "quoi",
        "faut",
        "fait",
        "faire",
        "peux",
        "peut",
        "puis",
        "pouvez",
        "vous",
        "je",
        "j",
        "il",
        "elle",
        "on",
        "y",
        "a",
        "ya",
        "t",
        "quel",
        "quelle",
        "quels",
        "quelles",
        "comment",
        "pourquoi",
        "ou",
        "d",
        "l",
        "m",
        "n",
        "s",
        "tu",
        "te",
        "ton",
        "ta",
        "tes",
        "mes",
        "mon",
        "ma",
    ]
)
# Words that name the practice itself ("vous faites ça au cabinet ?"): in a question they say
# where, not what about, and every section of a practice's documents is about the practice.
# Left out of questions only (the passages keep them, so no re-indexing).
PRACTICE_WORDS = frozenset({"cabinet", "cabinets"})
# The forms of the verbs that frame a question rather than say what it is about ("puis-je",
# "je dois", "vous faites", "il faut", "j'aurai"): auxiliaries and modals, in French.
_QUESTION_VERBS = frozenset(
    [
        "peux",
        "peut",
        "pouvons",
        "pouvez",
        "peuvent",
        "pourrai",
        "pourras",
        "pourra",
        "pourrez",
        "pourront",
        "pourrais",
        "pourrait",
        "pourriez",
        "puisse",
        "puissent",
        "pouvoir",
        "dois",
        "doit",
        "devons",
        "devez",
        "doivent",
        "devrai",
        "devra",
        "devrez",
        "devrais",
        "devrait",
        "devriez",
        "devoir",
        "veux",
        "veut",
        "voulons",
        "voulez",
        "veulent",
        "voudrais",
        "voudrait",
        "voudriez",
        "vouloir",
        "fais",
        "fait",
        "faisons",
        "faites",
        "font",
        "ferai",
        "fera",
        "ferez",
        "ferais",
        "ferait",
        "faire",
        "faut",
        "faudra",
        "faudrait",
        "fallait",
        "ai",
        "as",
        "avons",
        "avez",
        "ont",
        "aurai",
        "auras",
        "aura",
        "aurez",
        "aurais",
        "aurait",
        "ait",
        "aient",
        "avoir",
        "suis",
        "es",
        "sommes",
        "etes",
        "sont",
        "serai",
        "sera",
        "serez",
        "serais",
        "serait",
        "soit",
        "etre",
        "vais",
        "vas",
        "va",
        "allons",
        "allez",
        "vont",
        "irai",
        "ira",
        "aller",
        "sais",
        "sait",
        "savez",
        "savoir",
        "possible",
    ]
)
# "svp" and English glue words: the English list comes from spaCy too.
_MIN_TYPO_CHARS = 5


def fold(text: str) -> str:
    """Lower case, no accents, straight apostrophes."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("œ", "oe")


def words(text: str) -> list[str]:
    """The folded words of a text, in order."""
    return _WORD.findall(fold(text).replace("œ", "oe"))


@cache
def stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS as ENGLISH
    from spacy.lang.fr.stop_words import STOP_WORDS as FRENCH

    folded = {w for s in (FRENCH, ENGLISH) for word in s for w in words(word)}
    return frozenset((folded | _EXTRA_STOP | _QUESTION_VERBS) - _KEPT)


@cache
def _language_words() -> tuple[frozenset[str], frozenset[str]]:
    """The glue words only English has, and those only French has."""
    from spacy.lang.en.stop_words import STOP_WORDS as ENGLISH
    from spacy.lang.fr.stop_words import STOP_WORDS as FRENCH

    english = {w for word in ENGLISH for w in words(word)}
    french = {w for word in FRENCH for w in words(word)} | _QUESTION_VERBS
    return frozenset(english - french), frozenset(french - english)


def english(text: str) -> bool:
    """Whether a question reads as English (more English glue words than French ones)."""
    only_english, only_french = _language_words()
    asked = words(text)
    return sum(w in only_english for w in asked) > sum(w in only_french for w in asked)


_STEMMER = snowballstemmer.stemmer("french")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball French stem of a folded word (numbers stay as they are).

    Snowball reads accents: folded, a feminine participle ("réservées" as "reservees") keeps
    an "e" that its other forms ("réserver", "réservé") lose. A folded word ending in "ee"
    or "ees" is "ée" or "ées" in French (année, durée, réservée), so the accent is put back
    before stemming; the stem is folded again."""
    if word.isdigit():
        return word
    for folded, accented in (("ees", "ées"), ("ee", "ée")):
        if word.endswith(folded) and len(word) > len(folded) + 2:
            return fold(str(_STEMMER.stemWord(word[: -len(folded)] + accented)))
    stemmed = str(_STEMMER.stemWord(word))
    if len(word) > 4 and word.endswith("s") and stemmed.endswith("s"):
        return str(_STEMMER.stemWord(word[:-1]))  # "radios" as "radio": Snowball keeps the s
    return stemmed


def terms(text: str) -> list[str]:
    """What is indexed for a text: the stems of its words that are not stop words."""
    stops = stop_words()
    return [stem(w) for w in words(text) if w not in stops]


# -- the practice's vocabulary ---------------------------------------------------------------


class VocabularyFile(BaseModel):
    """Groups of words or phrases that mean the same thing at the practice."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    synonyms: list[list[str]] = Field(default_factory=list)


@dataclass(frozen=True)
class Vocabulary:
    """Each phrase (as a tuple of stems) and the groups it belongs to."""

    groups: tuple[tuple[tuple[str, ...], ...], ...]
    by_phrase: Mapping[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)
    known_words: frozenset[str] = frozenset()  # folded words written in the vocabulary
    surfaces: tuple[tuple[str, ...], ...] = ()  # each group's phrases as written

    @property
    def longest(self) -> int:
        return max((len(p) for p in self.by_phrase), default=1)


def _phrase(text: str) -> tuple[str, ...]:
    stops = stop_words()
    kept = [stem(w) for w in words(text) if w not in stops]
    return tuple(kept or (stem(w) for w in words(text)))


def build_vocabulary(files: Iterable[VocabularyFile]) -> Vocabulary:
    groups: list[tuple[tuple[str, ...], ...]] = []
    by_phrase: dict[tuple[str, ...], list[int]] = {}
    known: set[str] = set()
    surfaces: list[tuple[str, ...]] = []
    for file in files:
        for group in file.synonyms:
            phrases = tuple(dict.fromkeys(p for p in (_phrase(t) for t in group) if p))
            if len(phrases) < 2:
                continue
            for phrase in phrases:
                by_phrase.setdefault(phrase, []).append(len(groups))
            groups.append(phrases)
            surfaces.append(tuple(dict.fromkeys(t.strip() for t in group if words(t))))
            known.update(w for t in group for w in words(t))
    return Vocabulary(
        tuple(groups),
        {k: tuple(v) for k, v in by_phrase.items()},
        frozenset(known),
        tuple(surfaces),
    )


EXPANSION_PER_GROUP = 2  # synonyms added to the embedded question per concept it names


def written_out(text: str) -> str:
    """A question with its texting shorthand written out ("jai un rdv la sem pro" as "j'ai
    un rendez-vous la semaine prochaine"): as typed, those words are unknown to the documents
    and weigh as rare topics; then with the documents' words for what it says in lay terms
    (``cues``: "38,5" is a fever)."""
    text = shorthand.expand(text, shorthand.TEXTING, any_case=True)
    return cues.read(text, fold(text))


def embedding_query(text: str, vocabulary: Vocabulary) -> str:
    """The question as embedded: followed by the first synonyms, from the practice's
    vocabulary, of each phrase of it the vocabulary knows ("en vacances" also says
    "congés"), so that the embedding meets passages written in the practice's words. Two
    per concept: more drown the question (measured on the question set)."""
    text = written_out(text)
    asked = f" {' '.join(words(text))} "
    extra: list[str] = []
    for surface in vocabulary.surfaces:
        if any(f" {' '.join(words(p))} " in asked for p in surface):
            others = [p for p in surface if f" {' '.join(words(p))} " not in asked]
            extra.extend(p for p in others[:EXPANSION_PER_GROUP] if p not in extra)
    return f"{text} ({', '.join(extra)})" if extra else text


def read_vocabulary_file(path: Path) -> VocabularyFile:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        return VocabularyFile.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise InvalidInput(
            f"Le vocabulaire du cabinet ({path.name}) est illisible : {exc}",
            f"The practice vocabulary ({path.name}) cannot be read: {exc}",
        ) from exc


@lru_cache(maxsize=8)
def _vocabulary(paths: tuple[Path, ...], stamps: tuple[float, ...]) -> Vocabulary:
    return build_vocabulary(read_vocabulary_file(p) for p in paths)


def vocabulary(data_dir: Path | None = None) -> Vocabulary:
    """The shipped vocabulary, extended by the practice's own file when there is one (read
    again whenever it changes)."""
    paths = [VOCABULARY_FILE]
    if data_dir is not None and (data_dir / PRACTICE_VOCABULARY).is_file():
        paths.append(data_dir / PRACTICE_VOCABULARY)
    stamps = tuple(p.stat().st_mtime for p in paths)
    return _vocabulary(tuple(paths), stamps)


# -- typos -----------------------------------------------------------------------------------


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@dataclass
class Speller:
    """Corrects a word to the nearest word of the indexed documents (one letter missing,
    added, changed or two swapped), the most frequent on a tie."""

    frequencies: Mapping[str, int]
    _by_delete: dict[str, list[str]] = field(default_factory=dict)
    stems: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.stems = frozenset(stem(w) for w in self.frequencies)
        for word in self.frequencies:
            if len(word) >= _MIN_TYPO_CHARS:
                for variant in _deletes(word):
                    self._by_delete.setdefault(variant, []).append(word)

    def correct(self, word: str) -> str | None:
        """The corrected word, or None when the word (or its stem: another form of a known
        word) is known or has no close neighbour starting with the same letter."""
        if word in self.frequencies or len(word) < _MIN_TYPO_CHARS or word.isdigit():
            return None
        if stem(word) in self.stems:
            return None
        candidates: set[str] = set()
        variants = _deletes(word)
        for variant in variants | {word}:
            candidates.update(self._by_delete.get(variant, ()))
        candidates.update(v for v in variants if v in self.frequencies and len(v) >= 4)
        close = [c for c in candidates if c[0] == word[0] and _one_edit(word, c)]
        if not close:
            return None
        return max(close, key=lambda c: (self.frequencies[c], c))


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of
    two neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


# -- questions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A question as the lexical index reads it: groups of alternative phrases (a word and
    its synonyms), each group one concept of the question, and the corrections made."""

    groups: tuple[tuple[tuple[str, ...], ...], ...]
    corrections: Mapping[str, str]

    @property
    def empty(self) -> bool:
        return not self.groups

    def fts(self) -> str:
        """The FTS5 expression: any phrase of any group."""
        alternatives = dict.fromkeys(
            '"' + " ".join(phrase) + '"' for group in self.groups for phrase in group
        )
        return " OR ".join(alternatives)

    def phrases(self) -> list[tuple[str, ...]]:
        return list(dict.fromkeys(p for g in self.groups for p in g))


def analyse_query(text: str, vocabulary: Vocabulary, speller: Speller | None = None) -> Query:
    """Fold, correct typos against the documents' words, drop stop words, stem, and give
    each word (or phrase of the vocabulary) its synonyms."""
    stops = stop_words()
    corrections: dict[str, str] = {}
    raw = words(written_out(text))
    fixed: list[str] = []
    for word in raw:
        if speller is not None and word not in stops and word not in vocabulary.known_words:
            corrected = speller.correct(word)
            if corrected is not None:
                corrections[word] = corrected
                word = corrected
        fixed.append(word)
    all_stems = [stem(w) for w in fixed]  # phrases of the vocabulary may hold stop words
    content = [stem(w) for w in fixed if w not in stops and w not in PRACTICE_WORDS]
    groups: list[tuple[tuple[str, ...], ...]] = []
    covered: set[str] = set()
    for sequence in (all_stems, content):
        for size in range(vocabulary.longest, 0, -1):
            for start in range(len(sequence) - size + 1):
                phrase = tuple(sequence[start : start + size])
                for index in vocabulary.by_phrase.get(phrase, ()):
                    group = vocabulary.groups[index]
                    if group not in groups:
                        groups.append(group)
                        covered.update(phrase)
    for term in content:
        if term not in covered and not any((term,) in g for g in groups):
            groups.append(((term,),))
            covered.add(term)
    return Query(tuple(groups), corrections)

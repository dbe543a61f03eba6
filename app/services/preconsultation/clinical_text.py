"""What patients write, read with EDS-NLP: alarm-sign concepts found in free-text answers.

Why rule-based EDS-NLP (AP-HP's French clinical NLP library): no model weights, no torch,
nothing downloaded, the same answer every time, and qualifiers that know French clinical
context: "pas de douleur thoracique" is negated, "si j'ai mal à la poitrine" hypothetical,
"mon père a fait un AVC" family, "infarctus il y a 10 ans" history. Only *affirmed*
mentions (none of those) can make a rule fire.

The lexicon (``questionnaires/lexicons/alarm-signs.yaml``) and the context cues
(``qualifiers.yaml``) are versioned data. One pipeline per language is built once per
process; each answer's analysis is cached by its text, so an autosave only reads the answer
that changed. Each answer is read as French or English by its own words, whatever the
form's language (a French patient may use the English form, and the reverse).
"""

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

LEXICON_DIR = Path(__file__).resolve().parent / "questionnaires" / "lexicons"
Language = Literal["fr", "en"]
FACT_CONCEPTS = frozenset({"anticoagulant", "enceinte"})  # true wherever they are written
MAX_CHARS = 4000  # longer answers are read up to here (the form keeps at most 2000)
CACHED_TEXTS = 4096
QUESTION_MARKS = frozenset({"?"})  # not a hypothesis in what a patient writes (see pipeline)
CHILD_UNDER_YEARS = 16  # below this age, a parent fills the form
# Words naming one's own child (over folded text): on a child's form the parent writes them.
_CHILD: dict[str, str] = {
    "fr": r"\b((mon|ma|notre|le|la) )?(fils|fille|bebe|enfant|garcon|nourrisson|petit|petite)\b",
    "en": r"\b((my|our|the) )?(son|daughter|baby|child|kid|boy|girl|toddler|infant)\b",
}

_EN_WORDS = frozenset(
    [
        "the",
        "and",
        "my",
        "i",
        "i'm",
        "im",
        "is",
        "it",
        "was",
        "have",
        "has",
        "with",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "not",
        "no",
        "can",
        "can't",
        "cant",
        "since",
        "this",
        "that",
        "when",
        "feel",
        "feeling",
        "pain",
        "since",
        "been",
        "am",
        "are",
    ]
)
_FR_WORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "de",
        "des",
        "du",
        "et",
        "je",
        "j'",
        "j",
        "ai",
        "mon",
        "ma",
        "mes",
        "est",
        "un",
        "une",
        "dans",
        "pas",
        "sur",
        "avec",
        "depuis",
        "au",
        "aux",
        "mal",
        "suis",
        "ça",
        "ca",
        "il",
        "elle",
        "en",
        "que",
        "qui",
        "ne",
        "plus",
        "très",
        "tres",
    ]
)


class Concept(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fr: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    regex_fr: tuple[str, ...] = ()
    regex_en: tuple[str, ...] = ()

    @field_validator("regex_fr", "regex_en")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            re.compile(pattern)
        return value


class Lexicon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    fuzzy_min_chars: int = Field(ge=6)
    fuzzy_threshold: float = Field(gt=0.5, le=1.0)
    concepts: dict[str, Concept]

    @field_validator("concepts")
    @classmethod
    def _named(cls, value: dict[str, Concept]) -> dict[str, Concept]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9-]{2,64}", name):
                raise ValueError(f"nom de concept invalide : {name}")
        return value


class Cues(BaseModel):
    """Context cues of one language (added to EDS-NLP's French lists, or replacing them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    negation_preceding: tuple[str, ...] = ()
    negation_preceding_regex: tuple[str, ...] = ()
    negation_following: tuple[str, ...] = ()
    negation_pseudo: tuple[str, ...] = ()
    hypothesis_preceding: tuple[str, ...] = ()
    hypothesis_following: tuple[str, ...] = ()
    family: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    reported_preceding: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    termination: tuple[str, ...] = ()
    negation_termination: tuple[str, ...] = ()


class Qualifiers(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    fr: Cues
    en: Cues


@dataclass(frozen=True)
class Mention:
    """One concept found in one answer: the patient's exact words and their context."""

    concept: str
    field: str  # the question's linkId
    text: str  # the patient's words, exactly as typed
    start: int  # character offsets in the answer
    end: int
    sentence: int
    negated: bool = False
    hypothetical: bool = False
    family: bool = False
    history: bool = False
    reported: bool = False
    # the only relative named in the sentence is a child ("mon fils a de la fièvre"): on a
    # child's form, the parent writing is describing the patient
    family_child: bool = False

    @property
    def affirmed(self) -> bool:
        """Said of the patient, now, as a fact: only these can raise a flag."""
        return not (
            self.negated or self.hypothetical or self.family or self.history or self.reported
        )


@cache
def lexicon() -> Lexicon:
    data = yaml.safe_load((LEXICON_DIR / "alarm-signs.yaml").read_text("utf-8"))
    return Lexicon.model_validate(data)


@cache
def qualifiers() -> Qualifiers:
    data = yaml.safe_load((LEXICON_DIR / "qualifiers.yaml").read_text("utf-8"))
    return Qualifiers.model_validate(data)


def concept_names() -> frozenset[str]:
    return frozenset(lexicon().concepts)


def _fold(text: str) -> str:
    """Lower case without accents: the same folding as EDS-NLP's normaliser, for regexes."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _shape(folded: str) -> tuple[int, str, str]:
    """What a typo leaves alone: how many words, how the first starts, how the last starts.
    Simstring compares character trigrams over windows of words, so "douleur dans la"
    resembles "douleur dans la tête"; a typo of a term keeps this shape, a fragment does not."""
    words = re.findall(r"\w+", folded)
    if not words:
        return (0, "", "")
    return (len(words), words[0][:3], words[-1][:3])


def guess_language(text: str) -> Language:
    """French unless the answer's own words are clearly English."""
    words = re.findall(r"[a-z']+", _fold(text))
    english = sum(1 for w in words if w in _EN_WORDS)
    french = sum(1 for w in words if w in _FR_WORDS)
    return "en" if english > french else "fr"


def _terms(language: Language) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    terms: dict[str, list[str]] = {}
    regex: dict[str, list[str]] = {}
    for name, concept in lexicon().concepts.items():
        words = list(concept.fr if language == "fr" else concept.en)
        patterns = list(concept.regex_fr if language == "fr" else concept.regex_en)
        if words:
            terms[name] = words
        if patterns:
            regex[name] = patterns
    return terms, regex


@lru_cache(maxsize=8192)
def _words(norm: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", norm))


def _trigrams(folded: str) -> frozenset[str]:
    """Character trigrams of a padded text, as EDS-NLP's simstring matcher scores them."""
    padded = f"##{folded}##"
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 3))


class _TypoMatcher:
    """Typos of the long lexicon terms, found where a typo can be.

    Why not EDS-NLP's simstring matcher: it queried its database for every window of one to
    four words of every answer, which was nearly all of the time an autosave spent reading
    text (8 ms p50, 19 ms p95), and building the database took seconds at start-up. A typo of
    a term keeps its shape (how many words, how the first and the last start), so the terms
    are indexed by shape: a window whose shape no term has (almost all of them) costs one
    dictionary look-up, and only the few left are scored, with the same trigram Dice measure
    and threshold, when their length is that of the term give or take a typo or two. Matches
    go to the ``fuzzy`` span group, which the qualifiers read.
    """

    name = "alarm_typos"  # runs right after the exact matcher, so it also puts those in order

    def __init__(self, terms: Mapping[str, Iterable[str]], threshold: float) -> None:
        self.threshold = threshold
        self.index: dict[tuple[int, str, str], list[tuple[str, int, frozenset[str]]]] = {}
        for label, words in terms.items():
            for term in words:
                folded = " ".join(re.findall(r"\w+", _fold(term)))
                self.index.setdefault(_shape(folded), []).append(
                    (label, len(folded), _trigrams(folded))
                )
        self.longest = max((shape[0] for shape in self.index), default=0)

    def __call__(self, doc: Any) -> Any:
        from spacy.tokens import Span  # edsnlp's own dependency, loaded with it

        scored: list[tuple[float, int, int, int, str]] = []
        for sent in doc.sents:
            # NORM is the normaliser's folding (lower case, no accents, straight quotes)
            words = [
                (t.i, _words(t.norm_))
                for t in sent
                if t.tag_ not in ("EXCLUDED", "SPACE") and not t.is_space
            ]
            words = [(i, w) for i, w in words if w]
            for first, (start, head) in enumerate(words):
                joined: list[str] = []  # the window's words
                for stop, tail in words[first:]:
                    joined.extend(tail)
                    if len(joined) > self.longest:
                        break
                    candidates = self.index.get((len(joined), head[0][:3], tail[-1][:3]))
                    if not candidates:
                        continue
                    window = " ".join(joined)
                    grams = _trigrams(window)
                    for label, size, term in candidates:
                        if abs(len(window) - size) > max(1, size // 8):
                            continue  # "grosses" (7 letters) is no typo of "grossesse" (9)
                        dice = 2 * len(grams & term) / (len(grams) + len(term))
                        if dice >= self.threshold:
                            scored.append((dice, stop - start, -start, stop + 1, label))
        # the best-scoring of overlapping candidates wins, as in EDS-NLP's simstring matcher
        taken: set[int] = set()
        spans = []
        for _, _, neg_start, stop, label in sorted(scored, reverse=True):
            tokens = set(range(-neg_start, stop))
            if tokens & taken:
                continue
            taken |= tokens
            spans.append(Span(doc, -neg_start, stop, label=label))
        doc.spans["fuzzy"] = sorted(spans, key=lambda s: s.start)
        # The qualifiers expect spans in reading order: the term matcher puts its regex
        # matches after its terms, and a mention placed out of order was left unqualified
        # ("j'ai pas craché de sang et pas d'essoufflement"). Twins (a term and a regex
        # finding the same words) are kept once.
        exact = {(s.label_, s.start, s.end): s for s in doc.spans.get("alarms", [])}
        doc.spans["alarms"] = [exact[k] for k in sorted(exact, key=lambda k: (k[1], k[2], k[0]))]
        return doc


class _Pipeline:
    """One language's EDS-NLP pipeline, built once; calls are serialised (spaCy pipelines
    are not documented as safe to share between threads)."""

    def __init__(self, language: Language) -> None:
        import edsnlp  # heavy: imported when the first answer is read
        import edsnlp.pipes as eds

        self.language = language
        cues = getattr(qualifiers(), language)
        self.past = tuple(re.compile(p) for p in cues.past)
        relatives = [_fold(w) for w in cues.family]
        if language == "fr":
            from edsnlp.pipes.qualifiers.family import patterns as family_words

            relatives += [_fold(w) for w in family_words.family]
        self.child = re.compile(_CHILD[language])
        others = sorted({w for w in relatives if not self.child.fullmatch(w)}, key=len)
        self.relatives = re.compile(r"\b(" + "|".join(re.escape(w) for w in others) + r")\b")
        terms, regex = _terms(language)
        fuzzy_terms = {
            name: [t for t in words if len(t) >= lexicon().fuzzy_min_chars]
            for name, words in terms.items()
        }
        fuzzy_terms = {k: v for k, v in fuzzy_terms.items() if v}
        nlp: Any = edsnlp.blank("eds")
        nlp.add_pipe(eds.normalizer())
        nlp.add_pipe(eds.sentences())
        nlp.add_pipe(
            # A span group, not doc.ents: concepts may overlap ("je saigne beaucoup" is
            # bleeding and heavy bleeding), and ents would keep only one of them.
            eds.matcher(
                terms=terms,
                regex=regex,
                attr="NORM",
                span_setter={"alarms": True},
                name="alarm_terms",
            ),
        )
        spans = {"alarms": True, "fuzzy": True}
        if language == "fr":
            from edsnlp.pipes.qualifiers.family import patterns as family_fr
            from edsnlp.pipes.qualifiers.history import patterns as history_fr
            from edsnlp.pipes.qualifiers.hypothesis import patterns as hypothesis_fr
            from edsnlp.pipes.qualifiers.negation import patterns as negation_fr
            from edsnlp.pipes.qualifiers.reported_speech import patterns as reported_fr

            nlp.add_pipe(
                eds.negation(
                    span_getter=spans,
                    preceding=[*negation_fr.preceding, *cues.negation_preceding],
                    preceding_regex=[*negation_fr.preceding_regex, *cues.negation_preceding_regex],
                )
            )
            nlp.add_pipe(
                eds.hypothesis(
                    span_getter=spans,
                    preceding=[*hypothesis_fr.preceding, *cues.hypothesis_preceding],
                    # A clinician's "pneumopathie ?" is a suspicion; a patient's "j'ai mal à
                    # la poitrine ?" is a worry about a sign they have. What a patient only
                    # wonders about is said before it ("est-ce que", "si", "peur d'avoir").
                    following=[
                        *(f for f in hypothesis_fr.following if f not in QUESTION_MARKS),
                        *cues.hypothesis_following,
                    ],
                )
            )
            nlp.add_pipe(
                eds.family(
                    span_getter=spans, family=[*family_fr.family, *cues.family], use_sections=False
                )
            )
            nlp.add_pipe(
                eds.history(span_getter=spans, history=[*history_fr.history, *cues.history])
            )
            nlp.add_pipe(
                eds.reported_speech(
                    span_getter=spans,
                    preceding=[*reported_fr.preceding, *cues.reported_preceding],
                )
            )
        else:
            # EDS-NLP's cue lists are French: English answers get English ones. Its verb
            # lists are conjugated French verbs (an empty list means "all of them"), so a
            # single French verb stands in, harmless in English text.
            termination = list(cues.termination)
            nlp.add_pipe(
                eds.negation(
                    span_getter=spans,
                    preceding=list(cues.negation_preceding),
                    following=list(cues.negation_following),
                    pseudo=list(cues.negation_pseudo),
                    preceding_regex=[],
                    verbs=["nier"],
                    termination=list(cues.negation_termination) or termination,
                )
            )
            nlp.add_pipe(
                eds.hypothesis(
                    span_getter=spans,
                    preceding=list(cues.hypothesis_preceding),
                    following=list(cues.hypothesis_following),
                    pseudo=[],
                    verbs_eds=["pouvoir"],
                    verbs_hyp=["suspecter"],
                    termination=termination,
                )
            )
            nlp.add_pipe(
                eds.family(
                    span_getter=spans,
                    family=list(cues.family),
                    termination=termination,
                    use_sections=False,
                )
            )
            nlp.add_pipe(
                eds.history(span_getter=spans, history=list(cues.history), termination=termination)
            )
            nlp.add_pipe(
                eds.reported_speech(
                    span_getter=spans,
                    preceding=list(cues.reported_preceding),
                    following=[],
                    verbs=["dire"],
                )
            )
        # Added last, placed before the qualifiers: EDS-NLP's qualifiers inspect the pipes
        # already there when they are built, and expect them to be its own components.
        nlp.add_pipe(_TypoMatcher(fuzzy_terms, lexicon().fuzzy_threshold), after="alarm_terms")
        self.nlp = nlp
        self.lock = threading.Lock()

    def read(self, text: str) -> tuple[Mention, ...]:
        with self.lock:
            doc = self.nlp(text)
        sentences = {s.start: i for i, s in enumerate(doc.sents)}
        seen: dict[tuple[str, int, int], Mention] = {}
        # the longest of overlapping matches first: "ça serre dans la poitrine", not a part
        longest = sorted(
            doc.spans.get("alarms", []), key=lambda s: (s.start_char - s.end_char, s.start_char)
        )
        for span in [*longest, *doc.spans.get("fuzzy", [])]:
            sent = span.sent
            key = (span.label_, span.start_char, span.end_char)
            if key in seen or any(
                k[0] == span.label_ and k[1] < span.end_char and span.start_char < k[2]
                for k in seen
            ):
                continue  # the exact match wins over its fuzzy twin
            folded = _fold(sent.text)
            seen[key] = Mention(
                concept=span.label_,
                field="",
                text=span.text,
                start=span.start_char,
                end=span.end_char,
                sentence=sentences.get(sent.start, 0),
                negated=bool(span._.negation),
                hypothetical=bool(span._.hypothesis),
                family=bool(span._.family),
                family_child=bool(span._.family)
                and bool(self.child.search(folded))
                and not self.relatives.search(self.child.sub(" ", folded)),
                history=bool(span._.history) or any(p.search(folded) for p in self.past),
                reported=bool(span._.reported_speech),
            )
        return tuple(seen.values())


_PIPELINES: dict[str, _Pipeline] = {}
_BUILD_LOCK = threading.Lock()
_READ: OrderedDict[tuple[str, str], tuple[Mention, ...]] = OrderedDict()
_READ_LOCK = threading.Lock()


def pipeline(language: Language) -> _Pipeline:
    """The language's pipeline, built on first use (a few seconds) and kept."""
    with _BUILD_LOCK:
        built = _PIPELINES.get(language)
        if built is None:
            built = _PIPELINES[language] = _Pipeline(language)
        return built


def warm() -> None:
    """Build both pipelines now (at start-up), so the first autosave is not the slow one."""
    pipeline("fr").read("douleur thoracique")
    pipeline("en").read("chest pain")


def _clean(text: str) -> str:
    """Bounded, printable text: control characters become spaces (offsets are kept)."""
    text = text[:MAX_CHARS]
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)


def read_text(text: str) -> tuple[Mention, ...]:
    """Every concept mention in one answer (affirmed or not), cached by the answer's text."""
    if not isinstance(text, str) or not text.strip():
        return ()
    clean = _clean(text)
    language = guess_language(clean)
    key = (language, clean)
    with _READ_LOCK:
        found = _READ.get(key)
        if found is not None:
            _READ.move_to_end(key)
            return found
    try:
        found = pipeline(language).read(clean)
    except (ValueError, IndexError, KeyError, UnicodeError) as exc:  # never break a save
        import logging

        logging.getLogger(__name__).warning("clinical text not read: %s", type(exc).__name__)
        found = ()
    with _READ_LOCK:
        _READ[key] = found
        while len(_READ) > CACHED_TEXTS:
            _READ.popitem(last=False)
    return found


@dataclass(frozen=True)
class Findings:
    """Affirmed mentions by concept, across every free-text answer."""

    mentions: tuple[Mention, ...] = ()

    def of(self, concept: str) -> tuple[Mention, ...]:
        return tuple(m for m in self.mentions if m.concept == concept)

    def has(self, concept: str) -> bool:
        return any(m.concept == concept for m in self.mentions)

    def near(self, concept: str, other: str) -> tuple[Mention, ...]:
        """Mentions of both concepts in the same sentence of the same answer."""
        here = self.of(concept)
        there = self.of(other)
        pairs = [
            (a, b)
            for a in here
            for b in there
            if a.field == b.field and a.sentence == b.sentence and a != b
        ]
        return tuple(dict.fromkeys(m for pair in pairs for m in pair))


def read_answers(
    answers: Mapping[str, Any],
    fields: Iterable[str],
    *,
    history_fields: Iterable[str] = (),
    fact_concepts: Iterable[str] = (),
    child: bool = False,
) -> Findings:
    """The affirmed mentions in the given free-text answers. In a history field (past
    illnesses, past reactions) a sign is history by nature; facts (a treatment, a
    pregnancy) count wherever they are written. On a child's form (``child``) a parent
    writes: a child named as the only relative ("ma fille de 6 semaines a 38,4") is the
    patient, not family history."""
    past = set(history_fields)
    facts = set(fact_concepts)
    kept: list[Mention] = []
    for field in fields:
        value = answers.get(field)
        if not isinstance(value, str):
            continue
        for mention in read_text(value):
            placed = Mention(**{**mention.__dict__, "field": field})
            if child and placed.family_child:
                placed = Mention(**{**placed.__dict__, "family": False})
            if field in past and placed.concept not in facts:
                continue
            if placed.affirmed:
                kept.append(placed)
    return Findings(tuple(kept))

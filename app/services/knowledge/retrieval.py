"""Hybrid search over the practice's passages: the embedding neighbours (Chroma) and the
lexical matches (SQLite FTS5, French analysis, synonyms, typos; the best bm25 matches ranked
again by the concepts of the question they hold) fused by reciprocal rank;
urgent-symptom questions put the practice's emergency passage first; a calibrated decision
says when the documents do not answer.
"""

import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlmodel import Session, select

from app.config.settings import Settings
from app.services.knowledge import answer_types, lexical
from app.services.knowledge.analysis import Query, analyse_query, english, terms, vocabulary
from app.services.knowledge.no_answer import NoAnswerModel, Signals, for_practice
from app.services.knowledge.urgency import NOTICE_EN, NOTICE_FR, Urgency, read_question
from models.knowledge import IngestionStatus, KnowledgeDocument

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

POOL = 30  # candidates taken from each side before fusion
LEXICAL_CANDIDATES = 60  # best bm25 matches ranked again by the concepts they hold
SECTION_BONUS = 1.0  # a concept named in the heading path counts this much more
BM25_TIE = 0.01  # bm25 (scaled to 1) only breaks ties between equal concept scores
RRF_K = 10
EMBEDDING_WEIGHT = 1.0
LEXICAL_WEIGHT = 0.75  # measured on the question set and the paraphrases: k 5-60, weight 0.5-1.25
# Added to the fused score of a passage that states the kind of answer the question asks for
# (a price for "c'est combien"): about three ranks near the top. Measured: 0.02-0.05 the same.
ANSWER_TYPE_BONUS = 0.03
NO_ANSWER_FR = "Je ne trouve pas cette information dans les documents du cabinet."
NO_ANSWER_EN = "I cannot find this information in the practice's documents."
DOUBT_FR = (
    "Les documents du cabinet ne répondent peut-être pas exactement à cette question : "
    "vérifiez le passage avant de répondre."
)
DOUBT_EN = (
    "The practice's documents may not answer this exactly: check the passage before answering."
)
# What an emergency passage says: call the SAMU (15, 112), or the poison control centre.
EMERGENCY = '(samu OR "appel 15" OR "15 samu" OR 112 OR antipoison)'
Mode = Literal["hybrid", "embedding", "lexical"]
Answer = Literal["found", "none", "urgent"]


@dataclass(frozen=True)
class Passage:
    """A passage found by a search, with what is needed to cite it."""

    document_id: int
    title: str
    section: str
    text: str
    position: int
    score: float

    @property
    def link(self) -> str:
        return f"/connaissances/{self.document_id}#c{self.position}"

    @property
    def citation(self) -> str:
        """Where it comes from: document, section and passage number."""
        where = " › ".join(x for x in (self.title, self.section) if x)
        return f"{where}, passage {self.position + 1}"


@dataclass(frozen=True)
class SearchResult:
    """The passages, best first, and what the search concluded: ``found``; ``none`` (the
    documents do not answer: say so rather than quote the closest passage); ``urgent`` (the
    question names an alarm sign: the emergency passage comes first and the answer tells to
    call the 15 whatever the documents say). A ``found`` answer may be ``doubtful``: the
    passages are on the topic but may not give what was asked, for a reader to check
    (``no_answer``)."""

    passages: list[Passage]
    answer: Answer
    signals: Signals | None = None
    probability: float | None = None
    corrections: Mapping[str, str] = field(default_factory=dict)
    urgency: Urgency = field(default_factory=Urgency)
    doubtful: bool = False

    @property
    def message_fr(self) -> str:
        if self.answer == "found":
            return DOUBT_FR if self.doubtful else ""
        return {"none": NO_ANSWER_FR, "urgent": NOTICE_FR}[self.answer]

    @property
    def message_en(self) -> str:
        if self.answer == "found":
            return DOUBT_EN if self.doubtful else ""
        return {"none": NO_ANSWER_EN, "urgent": NOTICE_EN}[self.answer]


@dataclass
class _Candidate:
    passage: lexical.IndexedPassage
    cosine: float | None = None
    embedding_rank: int | None = None
    lexical_rank: int | None = None
    lexical_score: float = 0.0
    fused: float = 0.0


def _meta_int(meta: Mapping[str, object], key: str) -> int:
    value = meta[key]
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"passage metadata {key!r} is not a number: {value!r}")


def indexed_documents(session: Session) -> dict[int, tuple[str, str]]:
    """Each indexed document: its title and version."""
    rows = session.exec(
        select(KnowledgeDocument.id, KnowledgeDocument.title, KnowledgeDocument.sha256).where(
            KnowledgeDocument.status == IngestionStatus.indexed
        )
    ).all()
    return {int(i or 0): (t, s) for i, t, s in rows}


def chroma_passages(collection: "Collection", document_id: int) -> tuple[str, list[Any]]:
    """A document's passages as Chroma holds them, and their version."""
    found = collection.get(where={"document_id": document_id}, include=["documents", "metadatas"])
    passages = []
    sha = ""
    for chunk_id, text, meta in zip(
        found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True
    ):
        sha = str(meta.get("sha256", ""))
        passages.append(
            lexical.IndexedPassage(
                chunk_id, document_id, _meta_int(meta, "position"), str(meta["section"]), text or ""
            )
        )
    return sha, sorted(passages, key=lambda p: p.position)


def sync(
    settings: Settings,
    connection: sqlite3.Connection,
    documents: Mapping[int, tuple[str, str]],
    collection: "Collection",
) -> bool:
    """Bring the lexical index in line with the database's indexed documents, from Chroma's
    copy of their passages (after a crash between the two writes, a restore, an upgrade or
    an analysis change). Returns whether anything changed."""
    held = lexical.held_documents(connection)
    changed = False
    for document_id in set(held) - set(documents):
        lexical.delete_document(settings, document_id)
        changed = True
    for document_id, (_title, sha) in documents.items():
        if held.get(document_id, ("", 0))[0] == sha:
            continue
        chroma_sha, passages = chroma_passages(collection, document_id)
        if passages and chroma_sha == sha:  # else being written right now: next time
            lexical.replace_document(settings, document_id, sha, passages)
            changed = True
    return changed


def _idf(count: int, total: int) -> float:
    return math.log(1 + (total - count + 0.5) / (count + 0.5))


def _group_frequency(group: Sequence[tuple[str, ...]], frequencies: Mapping[str, int]) -> int:
    return max(min(frequencies.get(s, 0) for s in phrase) for phrase in group)


def _holds(group: Sequence[tuple[str, ...]], present: AbstractSet[str]) -> bool:
    return any(all(s in present for s in phrase) for phrase in group)


def _signals(
    query: Query,
    frequencies: Mapping[str, int],
    total: int,
    ranked: Sequence[_Candidate],
    embedding_first: str | None,
    lexical_first: str | None,
    in_english: bool = False,
) -> Signals:
    weights = [_idf(_group_frequency(g, frequencies), total) for g in query.groups]
    if in_english:  # its words the documents lack are English, not a topic they lack
        weights = [
            w if _group_frequency(g, frequencies) or len(g) > 1 else 0.0
            for g, w in zip(query.groups, weights, strict=True)
        ]
    mass = sum(weights) or 1.0
    known = sum(
        w for g, w in zip(query.groups, weights, strict=True) if _group_frequency(g, frequencies)
    )
    known_weights = [
        w if _group_frequency(g, frequencies) else 0.0
        for g, w in zip(query.groups, weights, strict=True)
    ]
    top = ranked[0] if ranked else None
    coverage = focus = 0.0
    cosines = sorted((c.cosine for c in ranked if c.cosine is not None), reverse=True)
    pool = np.asarray([c.cosine for c in ranked if c.embedding_rank is not None and c.cosine])
    if top is not None:
        present = set(terms(f"{top.passage.section} {top.passage.text}"))
        held = [_holds(g, present) for g in query.groups]
        coverage = sum(w for h, w in zip(held, weights, strict=True) if h)
        if any(known_weights):  # the rarest concept the documents know
            focus = float(held[known_weights.index(max(known_weights))])
    first = top.passage.chunk_id if top else None
    zscore = 0.0
    if top is not None and top.cosine is not None and len(pool) > 1 and pool.std() > 0:
        zscore = float((top.cosine - pool.mean()) / pool.std())
    return Signals(
        cosine=(top.cosine or 0.0) if top else 0.0,
        margin=(cosines[0] - cosines[1]) if len(cosines) > 1 else 0.0,
        coverage=coverage / mass if query.groups else 0.0,
        known=known / mass if query.groups else 0.0,
        agree=1.0 if first is not None and first == embedding_first == lexical_first else 0.0,
        zscore=zscore,
        focus=focus,
    )


def concept_ranking(
    query: Query,
    frequencies: Mapping[str, int],
    total: int,
    hits: Sequence[lexical.LexicalHit],
) -> list[lexical.LexicalHit]:
    """The lexical matches ranked by the concepts of the question they hold, each weighted by
    its rarity and counted once (a word and its synonyms are one concept: "carte bleue, CB"
    twice does not outweigh "distributeur" once), a concept in the heading path counting
    more; bm25 breaks ties. bm25 alone rewards repeating the question's most common word."""
    weights = [_idf(_group_frequency(g, frequencies), total) for g in query.groups]
    best = max((h.score for h in hits), default=0.0) or 1.0

    def score(hit: lexical.LexicalHit) -> float:
        everywhere = hit.section_terms | hit.text_terms
        held = sum(w for g, w in zip(query.groups, weights, strict=True) if _holds(g, everywhere))
        titled = sum(
            w for g, w in zip(query.groups, weights, strict=True) if _holds(g, hit.section_terms)
        )
        return held + SECTION_BONUS * titled + BM25_TIE * hit.score / best

    return sorted(hits, key=score, reverse=True)


def _emergency(
    connection: sqlite3.Connection, query: Query, urgency: Urgency
) -> lexical.IndexedPassage | None:
    """The emergency passage that best fits the question (one that says to call the 15 or
    the poison control centre): first one written for its alarm sign, if any."""
    topics = " OR ".join(dict.fromkeys(f'"{" ".join(terms(w))}"' for w in urgency.topics))
    for expression in (
        f"{EMERGENCY} AND ({topics})" if topics else "",
        f"{EMERGENCY} AND ({query.fts()})" if not query.empty else "",
        f"{EMERGENCY} AND (urgenc OR vital)",
        EMERGENCY,
    ):
        if not expression:
            continue
        row = connection.execute(
            "SELECT p.chunk_id, p.document_id, p.position, p.section, p.text "
            "FROM passages_fts JOIN passages p ON p.rowid = passages_fts.rowid "
            "WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts, 2.0, 1.0, 0.0) LIMIT 1",
            (expression,),
        ).fetchone()
        if row is not None:
            return lexical.IndexedPassage(
                str(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4])
            )
    return None


FUSION = "rrf"
PRUNE_FROM = 2000  # passages: below, every word of the question is searched
PRUNE_SHARE = 0.02  # above, words in more than this share of passages are left out
PRUNE_KEEP = 8  # and no more than this many words, the rarest


def prune(query: Query, frequencies: Mapping[str, int], total: int) -> Query:
    """The question without the words that most passages hold (they rank nothing and make
    the FTS5 query score most of a large index); the rarest word stays whatever happens."""
    if total < PRUNE_FROM or not query.groups:
        return query
    limit = PRUNE_SHARE * total
    counted = [(_group_frequency(g, frequencies), g) for g in query.groups]
    rare = sorted((item for item in counted if item[0] <= limit), key=lambda item: item[0])
    kept = tuple(g for _, g in rare[:PRUNE_KEEP])
    if not kept:
        kept = (min(counted, key=lambda item: item[0])[1],)
    return Query(kept, query.corrections)


def _fuse(candidates: list[_Candidate]) -> None:
    if FUSION == "rrf":
        for candidate in candidates:
            candidate.fused = sum(
                weight / (RRF_K + rank)
                for weight, rank in (
                    (EMBEDDING_WEIGHT, candidate.embedding_rank),
                    (LEXICAL_WEIGHT, candidate.lexical_rank),
                )
                if rank is not None
            )
        return
    cosines = [c.cosine for c in candidates if c.cosine is not None]
    low, high = (min(cosines), max(cosines)) if cosines else (0.0, 1.0)
    best = max((c.lexical_score for c in candidates), default=0.0) or 1.0
    for candidate in candidates:
        cosine = candidate.cosine if candidate.cosine is not None else low
        candidate.fused = EMBEDDING_WEIGHT * (cosine - low) / ((high - low) or 1.0) + (
            LEXICAL_WEIGHT * candidate.lexical_score / best
        )


def _prefer_answer_type(question: str, candidates: Iterable[_Candidate]) -> None:
    kinds = answer_types.asked(question)
    if not kinds:
        return
    for candidate in candidates:
        if answer_types.holds(kinds, candidate.passage.text):
            candidate.fused += ANSWER_TYPE_BONUS


def hybrid_search(
    session: Session,
    settings: Settings,
    collection: "Collection",
    vector: Any,
    question: str,
    k: int,
    *,
    mode: Mode = "hybrid",
    model: NoAnswerModel | None = None,
    use_model: bool = True,
) -> SearchResult:
    """The ``k`` best passages for a question (``vector``: its embedding), and whether the
    documents answer it."""
    documents = indexed_documents(session)
    urgency = read_question(question)
    with lexical.connect(settings) as connection:
        sync(settings, connection, documents, collection)
        query = analyse_query(
            question, vocabulary(settings.data_dir), lexical.speller(settings, connection)
        )
        candidates: dict[str, _Candidate] = {}
        embedding_first = lexical_first = None
        if mode != "lexical":
            found = collection.query(
                query_embeddings=[vector],
                n_results=POOL,
                include=["documents", "metadatas", "distances"],
            )
            ids = (found["ids"] or [[]])[0]
            metas = (found["metadatas"] or [[]])[0]
            texts = (found["documents"] or [[]])[0]
            distances = (found["distances"] or [[]])[0]
            rank = 0
            for chunk_id, meta, text, distance in zip(ids, metas, texts, distances, strict=True):
                document_id = _meta_int(meta, "document_id")
                if document_id not in documents:
                    continue
                rank += 1
                passage = lexical.IndexedPassage(
                    chunk_id,
                    document_id,
                    _meta_int(meta, "position"),
                    str(meta["section"]),
                    text or "",
                )
                candidates[chunk_id] = _Candidate(passage, 1.0 - float(distance), rank)
                embedding_first = embedding_first or chunk_id
        frequencies = lexical.document_frequencies(
            connection, (s for g in query.groups for p in g for s in p)
        )
        total = lexical.passage_count(connection)
        if mode != "embedding":
            rank = 0
            hits = lexical.search(connection, prune(query, frequencies, total), LEXICAL_CANDIDATES)
            for hit in concept_ranking(query, frequencies, total, hits)[:POOL]:
                if hit.passage.document_id not in documents:
                    continue
                rank += 1
                candidate = candidates.setdefault(hit.passage.chunk_id, _Candidate(hit.passage))
                candidate.lexical_rank = rank
                candidate.lexical_score = hit.score
                lexical_first = lexical_first or hit.passage.chunk_id
        missing = [c for c, v in candidates.items() if v.cosine is None]
        if missing and vector is not None:
            got = collection.get(ids=missing, include=["embeddings"])
            query_vector = np.asarray(vector, dtype=np.float32)
            for chunk_id, embedding in zip(
                got["ids"], got["embeddings"] if got["embeddings"] is not None else [], strict=True
            ):
                candidates[chunk_id].cosine = float(np.dot(query_vector, np.asarray(embedding)))
        _fuse(list(candidates.values()))
        if mode == "hybrid":
            _prefer_answer_type(question, candidates.values())
        ranked = sorted(candidates.values(), key=lambda c: (-c.fused, -(c.cosine or 0.0)))
        signals = _signals(
            query, frequencies, total, ranked, embedding_first, lexical_first, english(question)
        )
        emergency = _emergency(connection, query, urgency) if urgency.urgent else None
    if emergency is not None and emergency.document_id in documents:
        first = candidates.get(emergency.chunk_id) or _Candidate(emergency)
        ranked = [first, *(c for c in ranked if c.passage.chunk_id != emergency.chunk_id)]
    passages = [
        Passage(
            document_id=c.passage.document_id,
            title=documents[c.passage.document_id][0],
            section=c.passage.section,
            text=c.passage.text,
            position=c.passage.position,
            score=round(c.cosine if c.cosine is not None else 0.0, 4),
        )
        for c in ranked[:k]
    ]
    model = model if model is not None else (for_practice(settings.data_dir) if use_model else None)
    probability = model.probability(signals) if model is not None else None
    answer: Answer = "found"
    if urgency.urgent:
        answer = "urgent"
    elif not passages or (model is not None and model.no_answer(signals)):
        answer = "none"
    doubtful = answer == "found" and model is not None and model.doubtful(signals)
    return SearchResult(
        passages, answer, signals, probability, dict(query.corrections), urgency, doubtful
    )

"""The extractive answerer's core: which span of the retrieved passages answers, and whether
to answer at all. The reader (``qa.answer.reader``) finds a short answer in each passage; the
answer is the sentence (or two) holding the best one, with the span itself kept so the
surfaces can highlight it; or, when the refusal model (``qa.answer.refusal``) judges that the
corpus doesn't answer, a refusal.

Among the passages read, the answer comes from the one whose best span scores best under
weights learned from data (``train/fit_refusal.py``) over the evidence for answering with it:
the reader's margin (how much it prefers the span over "no answer here": a passage's raw span
score is not comparable with another's, its margin over its own no-answer score is), the
question's closeness to the answer sentence and its terms' share in it, how many passages
read the same answer, and the passage's retrieval rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qa.answer.reader import Reader, Reading
from qa.answer.refusal import RefusalModel, features, spans_terms
from qa.ingest.chunking import parse_sentence_spans
from qa.retrieve.keyword import KeywordIndex
from qa.store.chroma import StoredPassage


@dataclass
class Candidate:
    """A sentence quoted in an answer: its passage and its span in the article."""

    rank: int  # of its passage among the retrieved, 0 = best
    passage: StoredPassage
    start: int  # absolute span in the article
    end: int
    text: str


@dataclass(frozen=True)
class AnswerSpan:
    """The short answer: ``text == article[start:end]``."""

    passage: StoredPassage
    start: int
    end: int
    text: str

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "passage_id": self.passage.passage_id,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class Selection:
    refused: bool
    sentences: list[Candidate]
    confidence: float
    features: dict[str, float] = field(default_factory=dict)
    span: AnswerSpan | None = None


def _sentences_around(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Positions in ``spans`` (a passage's sentences) of the one or two that the span
    [start, end) touches."""
    touched = [k for k, (s, e) in enumerate(spans) if s < max(end, start + 1) and e > start]
    return touched[:2] or [min(range(len(spans)), key=lambda k: abs(spans[k][0] - start))]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b @ a / np.maximum(np.linalg.norm(b, axis=-1) * np.linalg.norm(a), 1e-12)


def closest_cosine(
    query_vector: np.ndarray, sentence_vectors: Iterable[np.ndarray | None]
) -> float:
    """The question's cosine with its closest sentence among ``sentence_vectors`` (each an
    array of one passage's sentence vectors)."""
    every = [v for v in sentence_vectors if v is not None and len(v)]
    return float(np.max(_cosine(query_vector, np.vstack(every)))) if every else 0.0


@dataclass
class Option:
    """One passage's answer as the reader sees it: what choosing it would quote (the
    evidence for choosing it over the other passages' is ``SpanSelector.evidence``)."""

    index: int
    passage: StoredPassage
    start: int  # the span, relative to the passage text
    end: int
    quoted: list[tuple[int, int]]  # the sentences holding it, relative spans
    dense: float


class SpanSelector:
    """(question, retrieved passages) -> ``Selection``. Thread-safe: no per-question state.

    The reader reads every passage; the answer comes from the passage whose option scores
    best under the learned choice weights (``RefusalModel.choose``, over the same evidence
    the refusal model reads: the reader's margin and normalised span probability, how close
    the answer sentence is to the question and how much of it it covers, how many passages
    read the same answer, retrieval rank); the refusal model then judges that answer."""

    def __init__(self, keyword: KeywordIndex, reader: Reader, refusal: RefusalModel) -> None:
        self.keyword = keyword
        self.reader = reader
        self.refusal = refusal

    def options(
        self,
        query: str,
        query_vector: np.ndarray,
        passages: Sequence[StoredPassage],
        sentence_vectors: dict[str, np.ndarray],
    ) -> tuple[list[Reading], list[Option]]:
        readings = self.reader.read(query, [p.text for p in passages])
        options = []
        for i, (p, r) in enumerate(zip(passages, readings, strict=True)):
            # the whole passage is one sentence when its sentence spans are unknown
            spans = parse_sentence_spans(p.sentences) or [(0, len(p.text))]
            picked = _sentences_around(spans, r.start, r.end)
            quoted = [spans[k] for k in picked]
            vectors = sentence_vectors.get(p.passage_id)
            dense = 0.0
            if vectors is not None and len(vectors) == len(spans):
                dense = float(np.max(_cosine(query_vector, vectors[picked])))
            options.append(Option(i, p, r.start, r.end, quoted, dense))
        return readings, options

    def evidence(
        self,
        query: str,
        query_vector: np.ndarray,
        passages: Sequence[StoredPassage],
        sentence_vectors: dict[str, np.ndarray],
        readings: Sequence[Reading],
        option: Option,
        dense_best: float | None = None,
        read_terms: Sequence[list[str]] | None = None,
    ) -> dict[str, float]:
        """The refusal model's features for answering with ``option`` (``dense_best``: the
        question's cosine with its closest retrieved sentence, and ``read_terms``: every
        passage's span as terms, when already known: the options of a question share them)."""
        if dense_best is None:
            dense_best = closest_cosine(query_vector, sentence_vectors.values())
        p = option.passage
        return features(
            query,
            readings,
            option.index,
            p.text[option.start : option.end],
            [x.text for x in passages],
            " ".join(p.text[s:e] for s, e in option.quoted),
            option.dense,
            dense_best,
            self.keyword,
            p.passage_id,
            read_terms,
        )

    def select(
        self,
        query: str,
        query_vector: np.ndarray,
        passages: Sequence[StoredPassage],
        sentence_vectors: dict[str, np.ndarray],
    ) -> Selection:
        """``query`` is the question as searched (a follow-up carries its subject)."""
        if not passages:
            return Selection(True, [], -1.0, {})
        readings, options = self.options(query, query_vector, passages, sentence_vectors)
        # every option's evidence: the choice weighs the same features the refusal does
        nearest = closest_cosine(query_vector, sentence_vectors.values())
        read = spans_terms(readings, [p.text for p in passages])
        evidence = [
            self.evidence(
                query, query_vector, passages, sentence_vectors, readings, o, nearest, read
            )
            for o in options
        ]
        k = max(range(len(options)), key=lambda i: self.refusal.choose(evidence[i]))
        best, feats = options[k], evidence[k]
        confidence = self.refusal.confidence(feats)
        p = best.passage
        sentences = [
            Candidate(best.index, p, p.start + s, p.start + e, p.text[s:e]) for s, e in best.quoted
        ]
        span = AnswerSpan(
            p, p.start + best.start, p.start + best.end, p.text[best.start : best.end]
        )
        return Selection(confidence < 0, sentences, confidence, feats, span)

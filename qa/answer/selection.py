"""The extractive answerer's core: which span of the retrieved passages answers, and whether
to answer at all. The reader (``qa.answer.reader``) finds a short answer in each passage; the
answer is the sentence (or two) holding the best one, with the span itself kept so the
surfaces can highlight it; or, when the refusal model (``qa.answer.refusal``) judges that the
corpus doesn't answer, a refusal.

Among the passages read, the answer comes from the one whose best span scores best under
weights learned from data (``train/fit_refusal.py``): above all the reader's margin (how much
it prefers the span over "no answer here": a passage's raw span score is not comparable with
another's, its margin over its own no-answer score is), then the question's closeness to the
answer sentence and the passage's retrieval rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qa.answer.reader import Reader, Reading
from qa.answer.refusal import RefusalModel, features
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


@dataclass
class Option:
    """One passage's answer as the reader sees it: what choosing it would quote, and the
    evidence for choosing it over the other passages' (``choice``: margin, the question's
    cosine with the answer sentence, log(1 + rank))."""

    index: int
    passage: StoredPassage
    start: int  # the span, relative to the passage text
    end: int
    quoted: list[tuple[int, int]]  # the sentences holding it, relative spans
    dense: float
    choice: tuple[float, float, float]


class SpanSelector:
    """(question, retrieved passages) -> ``Selection``. Thread-safe: no per-question state.

    The reader reads every passage; the answer comes from the passage whose option scores
    best under the learned choice weights (``RefusalModel.choose``: mostly the reader's
    margin, helped by how close the answer sentence is to the question and by retrieval
    rank); the refusal model then judges that answer."""

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
            options.append(
                Option(i, p, r.start, r.end, quoted, dense, (r.margin, dense, math.log1p(i)))
            )
        return readings, options

    def evidence(
        self,
        query: str,
        query_vector: np.ndarray,
        passages: Sequence[StoredPassage],
        sentence_vectors: dict[str, np.ndarray],
        readings: Sequence[Reading],
        option: Option,
    ) -> dict[str, float]:
        """The refusal model's features for answering with ``option``."""
        all_vectors = [v for v in sentence_vectors.values() if len(v)]
        dense_best = (
            float(np.max(_cosine(query_vector, np.vstack(all_vectors)))) if all_vectors else 0.0
        )
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
        best = max(options, key=lambda o: self.refusal.choose(o.choice))
        feats = self.evidence(query, query_vector, passages, sentence_vectors, readings, best)
        confidence = self.refusal.confidence(feats)
        p = best.passage
        sentences = [
            Candidate(best.index, p, p.start + s, p.start + e, p.text[s:e]) for s, e in best.quoted
        ]
        span = AnswerSpan(
            p, p.start + best.start, p.start + best.end, p.text[best.start : best.end]
        )
        return Selection(confidence < 0, sentences, confidence, feats, span)

"""The extractive answerer, the offline default: the answer is made of the retrieved
passages' own sentences, each followed by the ``[n]`` of the passage it comes from, or a
plain refusal when the retrieved text doesn't support an answer.

Sentence score = semantic similarity (sentence vector from index time) + IDF-weighted
overlap with the question's terms + whether the sentence holds the kind of thing asked
for (a number for "how much", a date for "when"...).

Refusal is a decision from several pieces of evidence, not one similarity cut-off:
- how much of the question (IDF-weighted) the corpus has never seen: "Who won the 2014
  World Cup?" asks about "won" and "cup", which no article uses;
- how much of the question the best passage covers;
- how close the best sentence is in meaning;
- whether any candidate sentence holds the kind of answer asked for.
They are combined linearly (weights in ``RefusalModel``) into a confidence; the answer is
refused below zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from qa.chunking import parse_sentence_spans
from qa.embedding import MiniLMEmbedding
from qa.keyword import KeywordIndex
from qa.store import StoredPassage
from qa.text import name_terms, query_terms, terms, words

REFUSAL = "The articles in the corpus don't answer this."

_NUMBER_Q = re.compile(
    r"\bhow (much|many|long|far|big|large|often|old)\b|\bwhat (percentage|percent|share|"
    r"proportion|amount|number|volume|value|size|sum)\b|\bworth\b|\bcost\b",
    re.I,
)
_DATE_Q = re.compile(
    r"\bwhen\b|\b(what|which) (year|date|month|day|time)\b|\bsince when\b|\bhow long ago\b",
    re.I,
)
_WHO_Q = re.compile(r"^\W*(who|whom|whose)\b", re.I)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|"
    r"hundred|thousand|million|billion|trillion|half|twice|double)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(1[89]\d\d|20\d\d)\b|\b(january|february|march|april|may|june|july|august|"
    r"september|october|november|december|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|yesterday|today|tomorrow|last week|next year|next month)\b",
    re.I,
)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


def expected_type(question: str) -> str | None:
    if _DATE_Q.search(question):
        return "date"
    if _NUMBER_Q.search(question):
        return "number"
    if _WHO_Q.search(question):
        return "name"
    return None


def has_type(kind: str | None, text: str) -> bool:
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "name":
        return bool(_NAME.search(text))
    return True


@dataclass
class Candidate:
    """A sentence of a retrieved passage, with the evidence for and against it."""

    rank: int  # of its passage among the retrieved, 0 = best
    passage: StoredPassage
    start: int  # absolute span in the article
    end: int
    text: str
    dense: float = 0.0
    lexical: float = 0.0
    score: float = 0.0


@dataclass(frozen=True)
class RefusalModel:
    """Weights of the answerability confidence (refuse when it is below zero)."""

    dense: float = 4.0
    support: float = 2.0
    unknown_names: float = -6.0
    unknown: float = -2.0
    type_missing: float = -0.8
    bias: float = -3.6

    def confidence(self, f: dict[str, float]) -> float:
        return self.bias + sum(getattr(self, k) * f[k] for k in FEATURES)


FEATURES = ("dense", "support", "unknown_names", "unknown", "type_missing")


@dataclass
class Selection:
    refused: bool
    sentences: list[Candidate]
    confidence: float
    features: dict[str, float] = field(default_factory=dict)


def _coverage(query: list[str], weights: np.ndarray, present: set[str]) -> float:
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    return float(sum(w for t, w in zip(query, weights, strict=True) if t in present)) / total


def _weighted(query: list[str], weights: np.ndarray, share: dict[str, float]) -> float:
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    return sum(w * share.get(t, 0.0) for t, w in zip(query, weights, strict=True)) / total


class ExtractiveAnswerer:
    def __init__(
        self,
        keyword: KeywordIndex,
        embedder: MiniLMEmbedding | None = None,
        max_sentences: int = 2,
        margin: float = 0.06,
        refusal: RefusalModel | None = None,
    ) -> None:
        self.keyword = keyword
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.margin = margin
        self.refusal = refusal or RefusalModel()

    def candidates(
        self, passages: list[StoredPassage], sentence_vecs: dict[str, np.ndarray]
    ) -> list[tuple[Candidate, np.ndarray | None]]:
        """Every sentence of the retrieved passages once (overlaps go to the better passage)."""
        out, seen = [], set()
        for rank, p in enumerate(passages):
            vecs = sentence_vecs.get(p.passage_id)
            for i, (s, e) in enumerate(parse_sentence_spans(p.sentences)):
                key = (p.article_id, p.start + s, p.start + e)
                if key in seen:
                    continue
                seen.add(key)
                text = p.text[s:e]
                vec = vecs[i] if vecs is not None and i < len(vecs) else None
                out.append((Candidate(rank, p, p.start + s, p.start + e, text), vec))
        return out

    def soft_matches(
        self, query_states: tuple, unknown: set[str], passages: list[StoredPassage]
    ) -> dict[str, float]:
        """For each question term the corpus never uses, how close its contextual token state
        comes to any token of the two best passages: "supply" finds "provide" (0.58) where
        "sailors" finds nothing better than "naval". One extra model pass over two passages,
        only for questions that have such terms."""
        if not unknown or self.embedder is None or not passages:
            return {}
        encoding, states, text = query_states
        found = self.embedder.token_states([p.text for p in passages[:2]])
        pool = np.vstack([h[1:-1] for _, h in found if len(h) > 2])
        if not len(pool):
            return {}
        pool = pool / np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), 1e-12)
        by_word: dict[int, list[int]] = {}
        for i, wid in enumerate(encoding.word_ids):
            if wid is not None:
                by_word.setdefault(wid, []).append(i)
        best: dict[str, float] = {}
        for idxs in by_word.values():
            start, end = encoding.offsets[idxs[0]][0], encoding.offsets[idxs[-1]][1]
            stem = terms(text[start:end])
            if not stem or stem[0] not in unknown:
                continue
            vec = states[idxs].mean(axis=0)
            sim = float((pool @ (vec / max(float(np.linalg.norm(vec)), 1e-12))).max())
            best[stem[0]] = max(best.get(stem[0], 0.0), sim)
        return best

    def select(
        self,
        question: str,
        query: str,
        q_vec: np.ndarray,
        passages: list[StoredPassage],
        sentence_vecs: dict[str, np.ndarray],
        query_states: tuple | None = None,
    ) -> Selection:
        q_terms = query_terms(query)
        weights = self.keyword.weights(q_terms)
        kind = expected_type(question)
        cands = self.candidates(passages, sentence_vecs)
        if not q_terms or not cands:
            return Selection(True, [], -1.0, {"terms": float(len(q_terms))})
        q_set = set(q_terms)
        passage_terms = {p.passage_id: set(terms(p.text)) for p in passages}
        for c, vec in cands:
            s_terms = set(terms(c.text))
            c.dense = float(vec @ q_vec) if vec is not None else 0.0
            c.lexical = _coverage(q_terms, weights, s_terms)
            score = 0.55 * c.dense + 0.45 * c.lexical + 0.02 / (1 + c.rank)
            if kind is not None:
                score += 0.12 if has_type(kind, c.text) else -0.12
            if len(words(c.text)) < 5:
                score -= 0.15  # headings and credits: searchable, but not an answer
            if s_terms and s_terms <= q_set:
                score -= 0.2  # only repeats the question
            c.score = score
        ranked = sorted((c for c, _ in cands), key=lambda c: -c.score)
        best = ranked[0]
        chosen = [best]
        for c in ranked[1:]:
            if len(chosen) >= self.max_sentences or c.score < best.score - self.margin:
                break
            if c.lexical > 0:
                chosen.append(c)

        unknown = {t for t in q_terms if t not in self.keyword.df}
        names = unknown & name_terms(query)
        soft = self.soft_matches(query_states, unknown, passages) if query_states else {}
        # a term matched in meaning counts as partly present (0 at cosine 0.40, 1 at 0.65)
        missing = {t: 1.0 - min(1.0, max(0.0, (soft.get(t, 0.0) - 0.40) / 0.25)) for t in unknown}
        known = [t for t in q_terms if t not in unknown]
        known_w = self.keyword.weights(known)
        features = {
            "dense": max(c.dense for c, _ in cands),
            # how much of what the corpus knows of the question one passage holds
            "support": max(
                _coverage(known, known_w, passage_terms[p.passage_id]) for p in passages[:3]
            ),
            "unknown_names": _weighted(q_terms, weights, {t: missing[t] for t in names}),
            "unknown": _weighted(q_terms, weights, {t: missing[t] for t in unknown - names}),
            "type_missing": float(
                kind is not None and not any(has_type(kind, c.text) for c in ranked[:5])
            ),
        }
        confidence = float(self.refusal.confidence(features))
        refused = confidence < 0
        return Selection(refused, [] if refused else chosen, confidence, features)

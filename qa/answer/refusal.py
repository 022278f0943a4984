"""The answer-or-refuse decision: a logistic regression over what the reader and retrieval
say about a question, fitted on data by ``train/fit_refusal.py`` (weights and the decision
threshold in ``qa/models/refusal.json``; see the model card beside the reader).

Why a classifier and not the reader's own no-answer score: the reader judges one passage at
a time, and its no-answer score, trained on SQuAD's few adversarial questions, barely tells
an answerable news question from an unanswerable one. Whether the *corpus* answers depends
on all the retrieved passages together (do several read the same answer? does the best one
prefer its span by far?) and on whether the question's own terms occur at all. Each feature
is one such measurement; the weights say how much each counts, learned from questions the
product actually meets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.reader import Reading
from qa.ingest.text import query_terms, terms
from qa.retrieve.keyword import KeywordIndex

MODEL_PATH = Path(__file__).parents[1] / "models" / "refusal.json"

FEATURES = (
    "margin",  # best span score minus the no-answer score, in the chosen passage
    "span_logprob",  # log-probability of the chosen span with logits normalised over passages
    "margin_mean",  # mean margin over the passages read: do many see an answer?
    "margin_top",  # the margin of the best-ranked passage
    "margin_second",  # the largest margin among the other passages
    "answer_odds",  # log-odds of "an answer somewhere" over "none", summed over passages
    "span_words",  # log(1 + words in the span)
    "agree",  # share of passages whose best span is the chosen answer's text
    "rank",  # log(1 + rank) of the chosen passage in retrieval
    "dense",  # cosine of the question with the answer sentence
    "dense_best",  # cosine of the question with its closest retrieved sentence
    "coverage",  # IDF-weighted share of the question's terms in the answer sentence
    "coverage_passage",  # the same in the chosen passage
    "unknown",  # IDF-weighted share of the question's terms the corpus never uses
    "span_in_question",  # share of the answer's terms that the question already says
)


def _clip(x: float, bound: float = 20.0) -> float:
    return max(-bound, min(bound, x))


def _share(weights: dict[str, float], found: set[str] | frozenset[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in found) / total if total else 0.0


def spans_terms(readings: Sequence[Reading], passage_texts: Sequence[str]) -> list[list[str]]:
    """Each passage's best span as terms: what ``agree`` compares."""
    return [terms(text[r.start : r.end]) for r, text in zip(readings, passage_texts, strict=True)]


def features(
    question: str,
    readings: Sequence[Reading],
    chosen: int,
    span_text: str,
    passage_texts: Sequence[str],
    sentence_text: str,
    dense: float,
    dense_best: float,
    keyword: KeywordIndex,
    passage_id: str | None = None,
    read_terms: Sequence[list[str]] | None = None,
) -> dict[str, float]:
    """The evidence for answering ``question`` with the span of passage ``chosen``.
    ``read_terms``: each passage's best span as terms (``span_terms``), when already known:
    a question's options share them."""
    r = readings[chosen]
    start_norm = np.logaddexp.reduce([x.start_lse for x in readings])
    end_norm = np.logaddexp.reduce([x.end_lse for x in readings])
    asked = query_terms(question)
    weights = {t: keyword.idf(t) for t in asked}
    span_list = terms(span_text)
    span_terms = set(span_list)
    if read_terms is None:
        read_terms = spans_terms(readings, passage_texts)
    same = sum(t == span_list for t in read_terms)
    return {
        "margin": _clip(r.margin),
        "span_logprob": _clip(r.span_score - start_norm - end_norm),
        "margin_mean": _clip(float(np.mean([x.margin for x in readings]))),
        "margin_top": _clip(readings[0].margin),
        "margin_second": _clip(
            max((x.margin for i, x in enumerate(readings) if i != chosen), default=-20.0)
        ),
        "answer_odds": _clip(
            np.logaddexp.reduce([x.span_score for x in readings])
            - np.logaddexp.reduce([x.null_score for x in readings])
        ),
        "span_words": math.log1p(len(span_text.split())),
        "agree": same / len(readings),
        "rank": math.log1p(chosen),
        "dense": dense,
        "dense_best": dense_best,
        "coverage": _share(weights, set(terms(sentence_text))),
        # the chosen passage's terms as the keyword index holds them since indexing
        "coverage_passage": _share(
            weights,
            (passage_id and keyword.terms_by_key.get(passage_id))
            or set(terms(passage_texts[chosen])),
        ),
        "unknown": _share(weights, {t for t in asked if t not in keyword.df}),
        "span_in_question": len(span_terms & set(asked)) / len(span_terms) if span_terms else 1.0,
    }


@dataclass(frozen=True)
class RefusalModel:
    """Standardised logistic regression: confidence = bias + w . (x - mean) / scale, the
    log-odds that the corpus answers the question; refused below zero (the fitted
    threshold is folded into the bias)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    # how an answer is chosen among the passages' options: weights of the named features
    # (learned pairwise by ``train/fit_refusal.py``); ("margin",) at 1 is "largest margin"
    choice: tuple[float, ...] = (1.0,)
    choice_names: tuple[str, ...] = ("margin",)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> RefusalModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = cls(
            tuple(data["features"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
            tuple(data["weights"]),
            float(data["bias"]),
            tuple(data.get("choice", (1.0,))),
            tuple(data.get("choice_features", ("margin",))),
        )
        if len(model.choice) != len(model.choice_names):
            raise ValueError(f"{path}: the choice's weights and feature names differ in number")
        if (set(model.names) | set(model.choice_names)) - set(FEATURES):
            raise ValueError(f"{path} names features this version does not compute")
        return model

    def choose(self, feats: dict[str, float]) -> float:
        """The score by which an answer is chosen among the passages' options (higher is
        better), from the evidence for answering with each."""
        return float(np.dot(self.choice, [feats[k] for k in self.choice_names]))

    def confidence(self, feats: dict[str, float]) -> float:
        x = np.array([feats[k] for k in self.names])
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return float(self.bias + z @ np.array(self.weights))

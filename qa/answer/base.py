"""What every answerer takes and gives, so that the engine composes them alike and the
surfaces render one kind of answer (``qa.answer.render``).

An answerer turns a ``Question`` into events: pieces of text as they are ready (only an
LLM's answer really streams), then one ``Answer``. It gets its passages through a
``Retrieve`` the engine hands it, because the two answerers retrieve differently: the
extractive one reads more passages than it lists, the LLM one first rewrites a follow-up
with the LLM itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qa.answer.selection import AnswerSpan, SpanSelector
from qa.serve.inputs import Question
from qa.store.chroma import StoredPassage

Hit = tuple[StoredPassage, float]  # a retrieved passage and its fused score


@dataclass(frozen=True)
class Retrieved:
    """The passages retrieved for a query, read from one build of the index, with what the
    answerers need of that build beside them."""

    hits: list[Hit]
    sentence_vectors: dict[str, np.ndarray]
    articles: dict[str, dict]  # article id -> metadata (title, source, date)
    passages: list[StoredPassage]  # every passage of the index (datelines, qa.answer.about)
    selector: SpanSelector


# (query, how many, the query's vector or None) -> the passages, on the live index
Retrieve = Callable[[str, int, "np.ndarray | None"], Retrieved]


@dataclass(frozen=True)
class Citation:
    """Passage ``[n]`` of an answer and the spans of it the answer quotes (article offsets)."""

    n: int
    passage: StoredPassage
    score: float
    highlights: list[list[int]]


@dataclass
class Answer:
    """An answer as every surface shows it (rendered by ``qa.answer.render``)."""

    question: str
    query: str
    text: str
    refused: bool
    citations: list[Citation]
    retrieved: list[Hit]  # listed with the answer; the closest passages under a refusal
    articles: dict[str, dict]
    answerer: str
    span: AnswerSpan | None = None
    confidence: float | None = None
    evidence: dict[str, float] = field(default_factory=dict)
    notice: str | None = None
    usage: dict[str, int] | None = None
    verification: dict[str, Any] | None = None
    timings_ms: dict[str, float] | None = None
    streamed: bool = False  # its text already went out as pieces


class Answerer(Protocol):
    name: str

    def events(
        self, question: Question, retrieve: Retrieve, stream: bool
    ) -> Iterator[str | Answer]: ...

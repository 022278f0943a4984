"""The extractive answerer, the offline default: the question, resolved against the chat
history by rules (``qa.retrieve.followup``), retrieves more passages than it lists (a
paraphrased question's answer is often ranked just below the top few); the span selector
(``qa.answer.selection``) picks the answering sentence and its short answer, or refuses.
Questions about an article itself (its date, its author) are answered from its dateline and
byline (``qa.answer.about``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from qa.answer.about import answer_about_article
from qa.answer.base import Answer, Citation, Retrieve
from qa.answer.render import REFUSAL
from qa.answer.selection import Selection
from qa.retrieve.followup import condense
from qa.serve.inputs import Question
from qa.store.embedding import MiniLMEmbedding


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, embedder: MiniLMEmbedding, read_passages: int) -> None:
        self.embedder = embedder
        self.read_passages = read_passages

    def events(self, question: Question, retrieve: Retrieve, stream: bool) -> Iterator[Answer]:
        yield self.answer(question, retrieve)

    def answer(self, question: Question, retrieve: Retrieve) -> Answer:
        t0 = time.perf_counter()
        query = condense(question.text, question.history)
        vector = self.embedder.embed([query])[0]
        got = retrieve(query, max(question.top_k, self.read_passages), vector)
        passages = [p for p, _ in got.hits]
        t1 = time.perf_counter()
        selection = answer_about_article(question.text, got.articles, got.passages, passages)
        if selection is None:
            selection = got.selector.select(query, vector, passages, got.sentence_vectors)
        text, citations = _quote(selection, dict((p.passage_id, s) for p, s in got.hits))
        t2 = time.perf_counter()
        return Answer(
            question=question.text,
            query=query,
            text=REFUSAL if selection.refused else text,
            refused=selection.refused,
            citations=citations,
            retrieved=got.hits[: question.top_k],
            articles=got.articles,
            answerer=self.name,
            span=selection.span,
            confidence=selection.confidence,
            evidence=selection.features,
            timings_ms={
                "retrieve": round((t1 - t0) * 1000, 2),
                "answer": round((t2 - t1) * 1000, 2),
                "total": round((t2 - t0) * 1000, 2),
            },
        )


def _quote(selection: Selection, scores: dict[str, float]) -> tuple[str, list[Citation]]:
    """The selected sentences, each followed by its passage's ``[n]``, and the citations."""
    numbers: dict[str, int] = {}
    highlights: dict[str, list[list[int]]] = {}
    parts = []
    for c in selection.sentences:
        pid = c.passage.passage_id
        n = numbers.setdefault(pid, len(numbers) + 1)
        highlights.setdefault(pid, []).append([c.start, c.end])
        parts.append(f"{' '.join(c.text.split())} [{n}]")
    # a cited passage may be one retrieval didn't rank (an article's dateline, qa.answer.about)
    by_id = {c.passage.passage_id: c.passage for c in selection.sentences}
    citations = [
        Citation(n, by_id[pid], scores.get(pid, 0.0), highlights[pid]) for pid, n in numbers.items()
    ]
    return " ".join(parts), citations

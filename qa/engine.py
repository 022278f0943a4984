"""The engine every surface uses: one embedder, one store, one retriever, one answerer.

``Engine.ask`` returns the answer as the JSON-ready dict that ``qa ask --json``, the HTTP
API and the evaluation share (schema in the README).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_index.core.schema import QueryBundle

from qa.answer import REFUSAL, ExtractiveAnswerer, Selection
from qa.embedding import MiniLMEmbedding
from qa.errors import QAError
from qa.followup import condense
from qa.indexer import index_fingerprint
from qa.retrieve import (
    DenseRetriever,
    HybridRetriever,
    KeywordRetriever,
    PassageTable,
    SentenceRetriever,
)
from qa.settings import Settings
from qa.store import Store, StoredPassage
from qa.text import name_terms
from qa.vocab import TermVectors

RETRIEVERS = ("hybrid", "dense", "bm25")


def validate_question(question: object, max_chars: int) -> str:
    if not isinstance(question, str):
        raise QAError("the question must be a string")
    if not question.strip():
        raise QAError("the question is empty")
    if len(question) > max_chars:
        raise QAError(f"the question is {len(question)} characters long; the limit is {max_chars}")
    return question.strip()


def validate_history(history: object) -> list[dict]:
    if history is None:
        return []
    if not isinstance(history, list):
        raise QAError("history must be a list of {role, content} turns")
    for i, turn in enumerate(history):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise QAError(f"history[{i}] must be {{'role': 'user'|'assistant', 'content': str}}")
    return history


@dataclass(frozen=True)
class _State:
    """What ``reload`` derives from the index; swapped whole."""

    table: PassageTable
    articles: dict[str, dict]
    answerer: ExtractiveAnswerer


class Engine:
    """Question answering over the index. Thread-safe for concurrent ``ask`` calls."""

    def __init__(
        self,
        settings: Settings,
        embedder: MiniLMEmbedding | None = None,
        retriever: str = "hybrid",
    ) -> None:
        if retriever not in RETRIEVERS:
            raise QAError(f"unknown retriever {retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        self.settings = settings
        self.retriever_name = retriever
        self.embedder = embedder or MiniLMEmbedding(
            settings.onnx_threads, settings.embed_batch_size
        )
        self.store = Store(settings, index_fingerprint(settings))
        self.reload()

    def reload(self) -> None:
        """Re-read the stored passages (after an index change) and rebuild the keyword side."""
        table = PassageTable(list(self.store.iter_passages()))
        if not table.passages:
            raise QAError(f"the index at {self.store.where} is empty: run `qa index`")
        vocab = TermVectors(*self.store.load_terms())
        # titles, sources and dates for citations, read once here rather than per question
        articles = {
            aid: {k: v for k, v in m.items() if k != "text"}
            for aid, m in self.store.committed_articles().items()
        }
        sources = {m.get("source") or "" for m in articles.values()}
        provenance = set().union(*(name_terms(f"In {s}") for s in sources))
        answerer = ExtractiveAnswerer(table.keyword, vocab, provenance=provenance)
        # one assignment, so that a question running during a reload sees old or new state,
        # never a mix of the two
        self._state = _State(table, articles, answerer)

    @property
    def table(self) -> PassageTable:
        return self._state.table

    @property
    def articles(self) -> dict[str, dict]:
        return self._state.articles

    @property
    def answerer(self) -> ExtractiveAnswerer:
        return self._state.answerer

    def _retriever(self, table: PassageTable, top_k: int):
        n = max(self.settings.candidates, top_k)
        dense = DenseRetriever(self.store, table, self.embedder, n)
        keyword = KeywordRetriever(table, n)
        if self.retriever_name == "dense":
            return dense
        if self.retriever_name == "bm25":
            return keyword
        sentences = SentenceRetriever(self.store, table, self.embedder, n)
        return HybridRetriever([dense, sentences, keyword], k=self.settings.rrf_k, top_n=top_k)

    def retrieve(
        self,
        query: str,
        top_k: int,
        vector: np.ndarray | None = None,
        table: PassageTable | None = None,
    ) -> list[tuple[StoredPassage, float]]:
        table = table or self.table
        if vector is None:
            vector = self.embedder.embed([query])[0]
        bundle = QueryBundle(query_str=query, embedding=vector.tolist())
        hits = self._retriever(table, top_k).retrieve(bundle)[:top_k]
        return [(table.by_id[h.node.node_id], float(h.score or 0.0)) for h in hits]

    def ask(self, question: object, history: object = None, top_k: object = None) -> dict[str, Any]:
        question = validate_question(question, self.settings.max_question_chars)
        history = validate_history(history)
        if top_k is None:
            top_k = self.settings.top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
            raise QAError("top_k must be a whole number from 1 to 50")

        state = self._state
        t0 = time.perf_counter()
        query = condense(question, history)
        ((encoding, states),) = self.embedder.token_states([query])
        vector = states.mean(axis=0)
        vector = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
        hits = self.retrieve(query, top_k, vector, state.table)
        passages = [p for p, _ in hits]
        counts = {p.passage_id: len(p.sentences.split(";")) if p.sentences else 0 for p in passages}
        sentence_vecs = self.store.sentence_vectors([p.passage_id for p in passages], counts)
        t1 = time.perf_counter()
        selection = state.answerer.select(
            question, query, vector, passages, sentence_vecs, (encoding, states, query)
        )
        result = self._render(question, query, hits, selection, state.articles)
        t2 = time.perf_counter()
        result["timings_ms"] = {
            "retrieve": round((t1 - t0) * 1000, 2),
            "answer": round((t2 - t1) * 1000, 2),
            "total": round((t2 - t0) * 1000, 2),
        }
        return result

    def _render(
        self,
        question: str,
        query: str,
        hits: Sequence[tuple[StoredPassage, float]],
        selection: Selection,
        articles: dict[str, dict],
    ) -> dict[str, Any]:
        numbers: dict[str, int] = {}
        highlights: dict[str, list[list[int]]] = {}
        parts = []
        for c in selection.sentences:
            pid = c.passage.passage_id
            n = numbers.setdefault(pid, len(numbers) + 1)
            highlights.setdefault(pid, []).append([c.start, c.end])
            parts.append(f"{' '.join(c.text.split())} [{n}]")
        scores = {p.passage_id: s for p, s in hits}
        by_id = {p.passage_id: p for p, _ in hits}
        citations = []
        for pid, n in numbers.items():
            p = by_id[pid]
            m = articles.get(p.article_id, {})
            citations.append(
                {
                    "n": n,
                    "article_id": p.article_id,
                    "title": m.get("title") or p.article_id,
                    "source": m.get("source") or None,
                    "published": m.get("published") or None,
                    "passage_id": pid,
                    "text": p.text,
                    "start": p.start,
                    "end": p.end,
                    "score": round(scores[pid], 6),
                    "highlights": sorted(highlights[pid]),
                }
            )
        return {
            "question": question,
            "answer": REFUSAL if selection.refused else " ".join(parts),
            "refused": selection.refused,
            "citations": citations,
            "retrieved": [
                {
                    "passage_id": p.passage_id,
                    "article_id": p.article_id,
                    "text": p.text,
                    "score": round(s, 6),
                    "rank": i + 1,
                }
                for i, (p, s) in enumerate(hits)
            ],
            "query": query,
            "confidence": round(selection.confidence, 4),
            # what the answer-or-refuse decision weighed (see qa.answer.RefusalModel)
            "evidence": {k: round(float(v), 4) for k, v in selection.features.items()},
        }

    def list_articles(self) -> dict[str, Any]:
        return self.store.listing()

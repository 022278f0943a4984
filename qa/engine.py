"""The engine: the stages composed, and nothing else. It loads the index (``qa.store``), keeps
the in-memory side of retrieval (``qa.retrieve``) in step with it, and hands each question
to the answerer (``qa.answer``: extractive, or the LLM when one is configured) with a way to
retrieve passages from the live index; the answer comes back rendered by
``qa.answer.render`` as the JSON every surface shares (schema in the README).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from llama_index.core.schema import QueryBundle

from qa.answer.base import Answer, Answerer, Hit, Retrieved
from qa.answer.extractive import ExtractiveAnswerer
from qa.answer.generated import LLMAnswerer
from qa.answer.reader import Reader
from qa.answer.refusal import RefusalModel
from qa.answer.render import answer_chunks, answer_json, emphasise
from qa.answer.selection import SpanSelector
from qa.errors import QAError
from qa.retrieve.hybrid import DenseRetriever, HybridRetriever, KeywordRetriever, PassageTable
from qa.serve.inputs import Question
from qa.serve.memory import trim_memory
from qa.settings import Settings
from qa.store.chroma import IndexGone, Store
from qa.store.embedding import MiniLMEmbedding
from qa.store.indexer import index_fingerprint

T = TypeVar("T")

RETRIEVERS = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class _State:
    """What ``reload`` derives from the index; swapped whole."""

    store: Store  # the build the table was read from
    table: PassageTable
    articles: dict[str, dict]
    selector: SpanSelector


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
        # the reader and the refusal model ship with the package; one of each per engine
        self.reader = Reader(settings.onnx_threads)
        self.refusal = RefusalModel.load()
        self.extractive = ExtractiveAnswerer(self.embedder, settings.read_passages)
        self.answerer: Answerer = (
            LLMAnswerer(settings, self.embedder, self.extractive)
            if settings.use_llm
            else self.extractive
        )
        self._reloading = threading.Lock()
        self.reload()

    # -- the index, kept in step with the store ------------------------------------------------
    def reload(self) -> None:
        """Re-read the stored passages (after an index change, or a switch to a new build)
        and rebuild the keyword side. A rebuild elsewhere can switch builds again while this
        reads (``IndexGone``): then it reads the newer one."""
        for attempt in range(3):
            try:
                store = Store(self.settings, index_fingerprint(self.settings))
                generation = store.generation()  # read first: a change during the reload shows
                table = PassageTable(list(store.iter_passages()))
                # titles, sources and dates for citations, read once here, not per question
                articles = store.committed_articles()
                break
            except IndexGone:
                if attempt == 2:
                    raise
        if not table.passages:
            raise QAError(f"the index at {store.where} is empty: run `qa index`")
        selector = SpanSelector(table.keyword, self.reader, self.refusal)
        # one assignment, so that a question running during a reload sees old or new state,
        # never a mix of the two
        self._state = _State(store, table, articles, selector)
        self._generation = generation
        trim_memory()  # the load's transient allocations (see qa.serve.memory)

    def refresh(self, wait: bool = False) -> None:
        """Reload if another process changed the index since (two cheap metadata reads). One
        thread reloads; the others answer from the state they have meanwhile, unless
        ``wait``: a question whose build was dropped waits for the reload."""
        if self.store.generation() == self._generation:
            return
        if self._reloading.acquire(blocking=wait):
            try:
                if self.store.generation() != self._generation:
                    self.reload()
            except IndexGone:
                # builds switched again during the reload; a question that isn't waiting
                # answers from the state it has, and the next one reloads
                if wait:
                    raise
            finally:
                self._reloading.release()

    def on_live_index(self, work: Callable[[_State], T]) -> T:
        """``work`` on the current state; if a rebuild in another process dropped the build
        it reads from, once more after reloading the new build, so that a question asked
        during a rebuild is answered, not failed."""
        try:
            return work(self._state)
        except IndexGone:
            self.refresh(wait=True)
            return work(self._state)

    @property
    def store(self) -> Store:
        return self._state.store

    @property
    def selector(self) -> SpanSelector:
        return self._state.selector

    # -- retrieval ------------------------------------------------------------------------------
    def retrieve(
        self, query: str, top_k: int, vector: np.ndarray | None = None, state: _State | None = None
    ) -> list[Hit]:
        """The ``top_k`` passages for ``query`` by the engine's retriever (hybrid: dense and
        BM25 fused by reciprocal rank), best first."""
        state = state or self._state
        if vector is None:
            vector = self.embedder.embed([query])[0]
        n = max(self.settings.candidates, top_k)
        dense = DenseRetriever(state.store, state.table, self.embedder, n)
        keyword = KeywordRetriever(state.table, n)
        retriever = {"dense": dense, "bm25": keyword}.get(self.retriever_name) or HybridRetriever(
            [dense, keyword], k=self.settings.rrf_k, top_n=top_k
        )
        bundle = QueryBundle(query_str=query, embedding=vector.tolist())
        hits = retriever.retrieve(bundle)[:top_k]
        return [(state.table.by_id[h.node.node_id], float(h.score or 0.0)) for h in hits]

    def _retrieved(self, query: str, n: int, vector: np.ndarray | None) -> Retrieved:
        """What an answerer reads for ``query``: on the live index (see ``on_live_index``)."""

        def read(state: _State) -> Retrieved:
            hits = self.retrieve(query, n, vector, state)
            vectors = state.store.sentence_vectors(p.passage_id for p, _ in hits)
            return Retrieved(hits, vectors, state.articles, state.table.passages, state.selector)

        return self.on_live_index(read)

    # -- questions ------------------------------------------------------------------------------
    def ask(self, question: object, history: object = None, top_k: object = None) -> dict[str, Any]:
        """The answer as JSON, from the LLM when one is configured, else extractive."""
        *_, result = self.answer_events(question, history, top_k, stream=False)
        return result

    def answer_events(
        self, question: object, history: object = None, top_k: object = None, stream: bool = True
    ) -> Iterator[str | dict[str, Any]]:
        """Pieces of the answer text as they are ready, then the answer JSON (a dict).

        Input is validated here, before the generator starts, so that a surface can refuse
        bad input before it starts streaming.
        """
        asked = Question.parse(
            question, history, top_k, self.settings.max_question_chars, self.settings.top_k
        )
        self.refresh()
        return self._events(asked, stream)

    def _events(self, question: Question, stream: bool) -> Iterator[str | dict[str, Any]]:
        for event in self.answerer.events(question, self._retrieved, stream):
            if not isinstance(event, Answer):
                yield event
                continue
            result = answer_json(event)
            if stream and not event.streamed:  # the short answer in bold, as surfaces show it
                yield from answer_chunks(emphasise(result))
            yield result

    def list_articles(self) -> dict[str, Any]:
        return self.store.listing()

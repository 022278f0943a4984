"""The engine every surface uses: one embedder, one store, one retriever, one answerer.

``Engine.ask`` returns the answer as the JSON-ready dict that ``qa ask --json``, the HTTP
API and the evaluation share (schema in the README).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from llama_index.core.schema import QueryBundle

from qa.about import answer_about_article
from qa.answer import REFUSAL, ExtractiveAnswerer, Selection, emphasise
from qa.citations import CitationVerifier, Passage, looks_like_refusal, split_sentences
from qa.embedding import MiniLMEmbedding
from qa.errors import QAError
from qa.followup import condense
from qa.indexer import index_fingerprint
from qa.llm import (
    SYSTEM_PROMPT,
    LeakGuard,
    LLMClient,
    LLMUnavailable,
    Reply,
    condense_messages,
    passages_message,
    trim_history,
)
from qa.memory import trim_memory
from qa.reader import Reader
from qa.refusal import RefusalModel
from qa.retrieve import (
    DenseRetriever,
    HybridRetriever,
    KeywordRetriever,
    PassageTable,
)
from qa.settings import Settings
from qa.store import IndexGone, Store, StoredPassage

T = TypeVar("T")

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


def answer_chunks(text: str, words: int = 3) -> Iterator[str]:
    """The answer in small pieces, for streamed replies (the extractive answer exists whole;
    an LLM answer streams for real)."""
    parts = re.findall(r"\S+\s*", text)
    for i in range(0, len(parts), words):
        yield "".join(parts[i : i + words])


@dataclass(frozen=True)
class _State:
    """What ``reload`` derives from the index; swapped whole."""

    store: Store  # the build the table was read from
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
        self.llm = LLMClient(settings) if settings.use_llm else None
        # the reader and the refusal model ship with the package; one of each per engine
        self.reader = Reader(settings.onnx_threads)
        self.refusal = RefusalModel.load()
        self._reloading = threading.Lock()
        self.reload()

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
        answerer = ExtractiveAnswerer(table.keyword, self.reader, self.refusal)
        # one assignment, so that a question running during a reload sees old or new state,
        # never a mix of the two
        self._state = _State(store, table, articles, answerer)
        self._generation = generation
        trim_memory()  # the load's transient allocations (see qa.memory)

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
    def table(self) -> PassageTable:
        return self._state.table

    @property
    def articles(self) -> dict[str, dict]:
        return self._state.articles

    @property
    def answerer(self) -> ExtractiveAnswerer:
        return self._state.answerer

    def _retriever(self, state: _State, top_k: int):
        n = max(self.settings.candidates, top_k)
        table = state.table
        dense = DenseRetriever(state.store, table, self.embedder, n)
        keyword = KeywordRetriever(table, n)
        if self.retriever_name == "dense":
            return dense
        if self.retriever_name == "bm25":
            return keyword
        return HybridRetriever([dense, keyword], k=self.settings.rrf_k, top_n=top_k)

    def retrieve(
        self,
        query: str,
        top_k: int,
        vector: np.ndarray | None = None,
        state: _State | None = None,
    ) -> list[tuple[StoredPassage, float]]:
        state = state or self._state
        if vector is None:
            vector = self.embedder.embed([query])[0]
        bundle = QueryBundle(query_str=query, embedding=vector.tolist())
        hits = self._retriever(state, top_k).retrieve(bundle)[:top_k]
        return [(state.table.by_id[h.node.node_id], float(h.score or 0.0)) for h in hits]

    def ask(self, question: object, history: object = None, top_k: object = None) -> dict[str, Any]:
        """The answer as JSON (see the README), from the LLM when one is configured, else
        from the extractive answerer."""
        *_, result = self.answer_events(question, history, top_k, stream=False)
        return result

    def answer_events(
        self, question: object, history: object = None, top_k: object = None, stream: bool = True
    ) -> Iterator[str | dict[str, Any]]:
        """Pieces of the answer text as they are ready, then the answer JSON (a dict).

        Input is validated here, before the generator starts, so that a surface can refuse
        bad input before it starts streaming.
        """
        question = validate_question(question, self.settings.max_question_chars)
        history = validate_history(history)
        if top_k is None:
            top_k = self.settings.top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
            raise QAError("top_k must be a whole number from 1 to 50")
        self.refresh()
        if self.llm is None:
            return self._extractive_events(question, history, top_k, stream)
        return self._generated_events(question, history, top_k, stream)

    def _extractive_events(
        self,
        question: str,
        history: list[dict],
        top_k: int,
        stream: bool,
        notice: str | None = None,
    ) -> Iterator[str | dict[str, Any]]:
        result = self._extractive(question, history, top_k)
        result["notice"] = notice
        if stream:  # the short answer in bold, as every surface shows it
            yield from answer_chunks(emphasise(result))
        yield result

    def _extractive(self, question: str, history: list[dict], top_k: int) -> dict[str, Any]:
        return self.on_live_index(lambda state: self._extract(state, question, history, top_k))

    def _extract(
        self, state: _State, question: str, history: list[dict], top_k: int
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        query = condense(question, history)
        vector = self.embedder.embed([query])[0]
        # the reader reads more passages than are listed: a paraphrased question's answer
        # is often ranked just below the top few
        read = max(top_k, self.settings.read_passages)
        hits = self.retrieve(query, read, vector, state)
        passages = [p for p, _ in hits]
        sentence_vecs = state.store.sentence_vectors(p.passage_id for p in passages)
        t1 = time.perf_counter()
        selection = answer_about_article(question, state.articles, state.table.passages, passages)
        if selection is None:
            selection = state.answerer.select(query, vector, passages, sentence_vecs)
        result = self._render(question, query, hits, selection, state.articles, top_k)
        t2 = time.perf_counter()
        result["timings_ms"] = {
            "retrieve": round((t1 - t0) * 1000, 2),
            "answer": round((t2 - t1) * 1000, 2),
            "total": round((t2 - t0) * 1000, 2),
        }
        return result

    def _secrets(self) -> list[str]:
        s = self.settings
        return [x.get_secret_value() for x in (s.llm_api_key, s.api_key, s.ui_password) if x]

    def _generated_events(
        self, question: str, history: list[dict], top_k: int, stream: bool
    ) -> Iterator[str | dict[str, Any]]:
        """The LLM path: condense the question with the history, retrieve, generate, and
        verify every citation sentence by sentence (as it streams) before it is shown.
        Whatever goes wrong with the LLM ends in the extractive answer with a notice."""
        assert self.llm is not None
        llm = self.llm
        t0 = time.perf_counter()
        deadline = llm.deadline()
        turns = trim_history(
            history, self.settings.llm_history_tokens, lambda t: self.embedder.count_tokens([t])[0]
        )
        query = question
        usage: dict[str, int] = {}
        try:
            if turns:
                condensed = llm.complete(condense_messages(question, turns), deadline)
                _add_usage(usage, condensed.usage)
                lines = [x.strip() for x in condensed.text.strip().splitlines() if x.strip()]
                if lines:
                    query = lines[0][: self.settings.max_question_chars]
        except LLMUnavailable as exc:
            yield from self._extractive_events(question, history, top_k, stream, _notice(exc))
            return

        def gather(state: _State):
            hits = self.retrieve(query, top_k, None, state)
            vectors = state.store.sentence_vectors(p.passage_id for p, _ in hits)
            return state, hits, vectors

        state, hits, vectors = self.on_live_index(gather)
        passages = [p for p, _ in hits]
        verifier = CitationVerifier(
            [
                Passage(p.text, vectors.get(p.passage_id, np.zeros((0, 1))), _spans(p))
                for p in passages
            ],
            self.embedder.embed,
        )
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": passages_message(query, passages, state.articles)},
        ]
        guard = LeakGuard(self._secrets())

        def checked_sentence(sentence: str) -> str:
            return verifier.sentence(guard.check(sentence)) if not guard.tripped else ""

        t1 = time.perf_counter()
        sent = False
        notice = None
        try:
            if stream:
                buffer = ""
                for piece in llm.stream(messages, deadline):
                    if isinstance(piece, Reply):
                        _add_usage(usage, piece.usage)
                        break
                    buffer += piece
                    parts = split_sentences(buffer)
                    # a sentence is complete once the next one has begun; markers written
                    # after the full stop ("... 2018. [2]") still belong to it
                    while len(parts) > 1 and not parts[-1].lstrip().startswith("["):
                        out = checked_sentence(parts.pop(0))
                        if out:
                            yield out
                            sent = True
                    buffer = "".join(parts)
                if buffer and (out := checked_sentence(buffer)):
                    yield out
                    sent = True
            else:
                reply = llm.complete(messages, deadline)
                _add_usage(usage, reply.usage)
                for sentence in split_sentences(reply.text):
                    checked_sentence(sentence)
        except LLMUnavailable as exc:
            if not sent:
                yield from self._extractive_events(question, history, top_k, stream, _notice(exc))
                return
            notice = f"{exc}: the answer may be incomplete"
        checked = verifier.finish()
        text = checked.text.strip()
        refused = looks_like_refusal(text)
        if guard.tripped or (not refused and not checked.order):
            # an answer that cites nothing the passages support is not given as an answer,
            # nor one that repeats the instructions or a key
            why = (
                "the LLM's answer was withheld (it repeated its instructions or a key)"
                if guard.tripped
                else "the LLM's answer cited no passage that supports it"
            )
            fallback = self._extractive(question, history, top_k)
            fallback["notice"] = f"{why}: this is the extractive answer"
            if stream:
                yield from answer_chunks("\n\n" + fallback["notice"] + ":\n" + fallback["answer"])
            fallback["answerer"] = "extractive"
            yield fallback
            return
        t2 = time.perf_counter()
        scores = {p.passage_id: s for p, s in hits}
        citations = []
        for n, i in enumerate(checked.order, start=1):
            p = passages[i]
            spans = sorted([p.start + s, p.start + e] for s, e in checked.highlights.get(i, ()))
            citations.append(self._citation(n, p, scores[p.passage_id], spans, state.articles))
        yield {
            "question": question,
            "answer": text,
            "refused": refused,
            "citations": [] if refused else citations,
            "retrieved": _retrieved(hits, state.articles),
            "answer_span": None,
            "query": query,
            "confidence": None,
            "evidence": {},
            "answerer": "llm",
            "notice": notice,
            "usage": usage or None,
            "verification": {
                "removed": checked.removed,
                "moved": [list(m) for m in checked.moved],
                "dropped": checked.dropped,
            },
            "timings_ms": {
                "retrieve": round((t1 - t0) * 1000, 2),
                "answer": round((t2 - t1) * 1000, 2),
                "total": round((t2 - t0) * 1000, 2),
            },
        }

    @staticmethod
    def _citation(
        n: int, p: StoredPassage, score: float, highlights: list[list[int]], articles: dict
    ) -> dict[str, Any]:
        m = articles.get(p.article_id, {})
        return {
            "n": n,
            "article_id": p.article_id,
            "title": m.get("title") or p.article_id,
            "source": m.get("source") or None,
            "published": m.get("published") or None,
            "passage_id": p.passage_id,
            "text": p.text,
            "start": p.start,
            "end": p.end,
            "score": round(score, 6),
            "highlights": sorted(highlights),
        }

    def _render(
        self,
        question: str,
        query: str,
        hits: Sequence[tuple[StoredPassage, float]],
        selection: Selection,
        articles: dict[str, dict],
        top_k: int,
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
        # a cited passage may be one retrieval didn't rank (an article's dateline, qa.about)
        by_id = {c.passage.passage_id: c.passage for c in selection.sentences}
        citations = [
            self._citation(n, by_id[pid], scores.get(pid, 0.0), highlights[pid], articles)
            for pid, n in numbers.items()
        ]
        return {
            "question": question,
            "answer": REFUSAL if selection.refused else " ".join(parts),
            "refused": selection.refused,
            "citations": [] if selection.refused else citations,
            "answer_span": None
            if selection.refused or selection.span is None
            else selection.span.as_dict(),
            # on a refusal, the closest passages: a user can still read on
            "retrieved": _retrieved(hits[:top_k], articles),
            "query": query,
            "confidence": round(selection.confidence, 4),
            # what the answer-or-refuse decision weighed (see qa.refusal)
            "evidence": {k: round(float(v), 4) for k, v in selection.features.items()},
            "answerer": "extractive",
            "notice": None,
            "usage": None,
        }

    def list_articles(self) -> dict[str, Any]:
        return self.store.listing()


def _retrieved(
    hits: Sequence[tuple[StoredPassage, float]], articles: dict[str, dict]
) -> list[dict[str, Any]]:
    return [
        {
            "passage_id": p.passage_id,
            "article_id": p.article_id,
            "title": articles.get(p.article_id, {}).get("title") or p.article_id,
            "text": p.text,
            "score": round(s, 6),
            "rank": i + 1,
        }
        for i, (p, s) in enumerate(hits)
    ]


def _spans(p: StoredPassage) -> list[tuple[int, int]]:
    """The passage's sentence spans, relative to its text (see qa.chunking)."""
    out = []
    for part in p.sentences.split(";") if p.sentences else []:
        s, _, e = part.partition(",")
        out.append((int(s), int(e)))
    return out


def _notice(exc: Exception) -> str:
    return f"{exc}: this is the extractive answer"


def _add_usage(total: dict[str, int], usage: dict[str, int] | None) -> None:
    for k, v in (usage or {}).items():
        total[k] = total.get(k, 0) + v

"""The LLM answerer, used when an OpenAI-compatible endpoint is configured: the LLM rewrites
a follow-up into a standalone question, the passages retrieved for it go to the LLM, and
every sentence of its reply is checked against the passage it cites as it streams
(``qa.answer.citations``) before it is shown. Whatever goes wrong with the LLM (down, slow,
an answer citing nothing that supports it, a reply repeating its instructions or a key)
ends in the extractive answer with a notice saying why."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from qa.answer.base import Answer, Citation, Retrieve
from qa.answer.citations import CitationVerifier, Passage, looks_like_refusal, split_sentences
from qa.answer.extractive import ExtractiveAnswerer
from qa.answer.llm import (
    SYSTEM_PROMPT,
    LeakGuard,
    LLMClient,
    LLMUnavailable,
    Reply,
    condense_messages,
    passages_message,
    trim_history,
)
from qa.answer.render import answer_chunks
from qa.ingest.chunking import parse_sentence_spans
from qa.serve.inputs import Question
from qa.settings import Settings
from qa.store.embedding import MiniLMEmbedding


class LLMAnswerer:
    name = "llm"

    def __init__(
        self, settings: Settings, embedder: MiniLMEmbedding, fallback: ExtractiveAnswerer
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.fallback = fallback
        self.llm = LLMClient(settings)
        s = settings
        self._secrets = [
            x.get_secret_value() for x in (s.llm_api_key, s.api_key, s.ui_password) if x
        ]

    def _condensed(self, question: Question, deadline: float, usage: dict[str, int]) -> str:
        turns = trim_history(
            question.history,
            self.settings.llm_history_tokens,
            lambda t: self.embedder.count_tokens([t])[0],
        )
        if not turns:
            return question.text
        condensed = self.llm.complete(condense_messages(question.text, turns), deadline)
        _add_usage(usage, condensed.usage)
        lines = [x.strip() for x in condensed.text.strip().splitlines() if x.strip()]
        return lines[0][: self.settings.max_question_chars] if lines else question.text

    def _extractive(self, question: Question, retrieve: Retrieve, notice: str) -> Answer:
        answer = self.fallback.answer(question, retrieve)
        answer.notice = notice
        return answer

    def events(
        self, question: Question, retrieve: Retrieve, stream: bool
    ) -> Iterator[str | Answer]:
        t0 = time.perf_counter()
        deadline = self.llm.deadline()
        usage: dict[str, int] = {}
        try:
            query = self._condensed(question, deadline, usage)
        except LLMUnavailable as exc:
            yield self._extractive(question, retrieve, _notice(exc))
            return
        got = retrieve(query, question.top_k, None)
        passages = [p for p, _ in got.hits]
        verifier = CitationVerifier(
            [
                Passage(
                    p.text,
                    got.sentence_vectors.get(p.passage_id, np.zeros((0, 1))),
                    parse_sentence_spans(p.sentences),
                )
                for p in passages
            ],
            self.embedder.embed,
        )
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": passages_message(query, passages, got.articles)},
        ]
        guard = LeakGuard(self._secrets)

        def checked_sentence(sentence: str) -> str:
            return verifier.sentence(guard.check(sentence)) if not guard.tripped else ""

        t1 = time.perf_counter()
        sent = False
        notice = None
        try:
            if stream:
                buffer = ""
                for piece in self.llm.stream(messages, deadline):
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
                reply = self.llm.complete(messages, deadline)
                _add_usage(usage, reply.usage)
                for sentence in split_sentences(reply.text):
                    checked_sentence(sentence)
        except LLMUnavailable as exc:
            if not sent:
                yield self._extractive(question, retrieve, _notice(exc))
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
            fallback = self._extractive(question, retrieve, f"{why}: this is the extractive answer")
            if stream:
                yield from answer_chunks("\n\n" + fallback.notice + ":\n" + fallback.text)
                fallback.streamed = True
            yield fallback
            return
        t2 = time.perf_counter()
        scores = {p.passage_id: s for p, s in got.hits}
        citations = []
        for n, i in enumerate(checked.order, start=1):
            p = passages[i]
            spans = [[p.start + s, p.start + e] for s, e in checked.highlights.get(i, ())]
            citations.append(Citation(n, p, scores[p.passage_id], spans))
        yield Answer(
            question=question.text,
            query=query,
            text=text,
            refused=refused,
            citations=citations,
            retrieved=got.hits,
            articles=got.articles,
            answerer=self.name,
            notice=notice,
            usage=usage or None,
            verification={
                "removed": checked.removed,
                "moved": [list(m) for m in checked.moved],
                "dropped": checked.dropped,
            },
            timings_ms={
                "retrieve": round((t1 - t0) * 1000, 2),
                "answer": round((t2 - t1) * 1000, 2),
                "total": round((t2 - t0) * 1000, 2),
            },
            streamed=stream,
        )


def _notice(exc: Exception) -> str:
    return f"{exc}: this is the extractive answer"


def _add_usage(total: dict[str, int], usage: dict[str, int] | None) -> None:
    for k, v in (usage or {}).items():
        total[k] = total.get(k, 0) + v

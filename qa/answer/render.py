"""An ``Answer`` rendered, once, for every surface: the JSON that ``qa ask --json``, the
HTTP API and the evaluation share (schema in the README), the streamed pieces, the short
answer marked in the text, and the CLI's text. The web chat's HTML and ``/v1``'s Markdown
are built from the same JSON in ``qa.serve``."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: the CLI imports this module before any model loads
    from qa.answer.base import Answer, Citation, Hit

REFUSAL = "The articles in the corpus don't answer this."


def citation_json(c: Citation, articles: dict[str, dict]) -> dict[str, Any]:
    p, m = c.passage, articles.get(c.passage.article_id, {})
    return {
        "n": c.n,
        "article_id": p.article_id,
        "title": m.get("title") or p.article_id,
        "source": m.get("source") or None,
        "published": m.get("published") or None,
        "passage_id": p.passage_id,
        "text": p.text,
        "start": p.start,
        "end": p.end,
        "score": round(c.score, 6),
        "highlights": sorted(c.highlights),
    }


def retrieved_json(hits: list[Hit], articles: dict[str, dict]) -> list[dict[str, Any]]:
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


def answer_json(a: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "question": a.question,
        "answer": a.text,
        "refused": a.refused,
        "citations": [] if a.refused else [citation_json(c, a.articles) for c in a.citations],
        "answer_span": None if a.refused or a.span is None else a.span.as_dict(),
        # on a refusal, the closest passages: a user can still read on
        "retrieved": retrieved_json(a.retrieved, a.articles),
        "query": a.query,
        "confidence": None if a.confidence is None else round(a.confidence, 4),
        # what the answer-or-refuse decision weighed (see qa.answer.refusal)
        "evidence": {k: round(float(v), 4) for k, v in a.evidence.items()},
        "answerer": a.answerer,
        "notice": a.notice,
        "usage": a.usage,
    }
    if a.verification is not None:
        out["verification"] = a.verification
    if a.timings_ms is not None:
        out["timings_ms"] = a.timings_ms
    return out


def answer_chunks(text: str, words: int = 3) -> Iterator[str]:
    """The answer in small pieces, for streamed replies (the extractive answer exists whole;
    an LLM answer streams for real)."""
    parts = re.findall(r"\S+\s*", text)
    for i in range(0, len(parts), words):
        yield "".join(parts[i : i + words])


def emphasise(
    result: dict, before: str = "**", after: str = "**", answer: str | None = None
) -> str:
    """The answer text with its short answer (``answer_span``) marked: Markdown bold by
    default, as the CLI, the chat and ``/v1`` show it. The JSON's ``answer`` stays plain.
    ``answer``: the answer as displayed, if not as given (the CLI wraps it first; a line
    break where the span has a space still matches)."""
    shown = (result.get("answer") or "") if answer is None else answer
    span = result.get("answer_span")
    if not span or result.get("refused"):
        return shown
    text = " ".join(span["text"].split())
    at = shown.replace("\n", " ").find(text) if text else -1
    if at < 0:
        return shown
    end = at + len(text)
    return f"{shown[:at]}{before}{shown[at:end]}{after}{shown[end:]}"


def closest(result: dict, n: int = 3) -> list[dict]:
    """The passages shown with a refusal, so that a user can still read on."""
    return list(result.get("retrieved") or [])[:n]


def format_answer(
    result: dict[str, Any],
    width: int = 100,
    answer: bool = True,
    bold: tuple[str, str] | None = None,
) -> str:
    """The CLI's text: the answer (its short answer in ``bold``: Markdown ``**`` unless
    told), a notice if there is one, then its numbered sources with title, source, date and
    passage; a refusal is followed by the closest passages instead (``answer=False``: all
    but the answer, which was streamed)."""
    lines = []
    if answer:
        # wrap the plain text, then mark the short answer (escape codes have no width)
        wrapped = textwrap.fill(result["answer"], width)
        lines.append(emphasise(result, *(bold or ("**", "**")), answer=wrapped))
    if result.get("notice"):
        lines += ["", f"(note: {result['notice']})"]
    if result["citations"]:
        lines += ["", "Sources:"]
        for c in result["citations"]:
            where = ", ".join(x for x in (c["source"], c["published"]) if x)
            lines.append(f"[{c['n']}] {c['title']}" + (f" — {where}" if where else ""))
            lines.append(_indented(c["text"], width))
    elif result.get("refused") and closest(result):
        lines += ["", "Closest passages:"]
        for r in closest(result):
            lines.append(f"- {r.get('title') or r['article_id']}")
            lines.append(_indented(r["text"], width))
    return "\n".join(lines)


def _indented(text: str, width: int) -> str:
    pad = "    "
    return textwrap.fill(" ".join(text.split()), width, initial_indent=pad, subsequent_indent=pad)

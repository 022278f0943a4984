"""The OpenAI-compatible endpoint, ``/v1``: the corpus as a chat model that any OpenAI client
can talk to. The answer's ``[n]`` markers and a Markdown list of its sources (or of the
closest passages under a refusal) go in the message content; the citation objects in an
extra top-level field ``citations``, which OpenAI clients pass through."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from qa.answer.render import closest, emphasise
from qa.errors import QAError
from qa.serve.service import QAService


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat request that mean something here; the rest (temperature,
    max_tokens, ...) are accepted and ignored, as any OpenAI-compatible server does."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50)


# -- OpenAI-compatible rendering -----------------------------------------------------------

SOURCES_HEADING = "\n\nSources:\n"
CLOSEST_HEADING = "\n\nClosest passages:\n"


def markdown_sources(citations: list[dict[str, Any]]) -> str:
    """The citations as a Markdown list under the answer: ``[n] title — source, date``."""
    if not citations:
        return ""
    lines = []
    for c in citations:
        where = ", ".join(x for x in (c.get("source"), c.get("published")) if x)
        lines.append(f"[{c['n']}] **{c['title']}**" + (f" — {where}" if where else ""))
        lines.append(_quoted(c["text"]))
    return SOURCES_HEADING + "\n".join(lines)


def _quoted(text: str, limit: int = 300) -> str:
    """A passage as a Markdown quote line, shortened to ``limit`` characters."""
    passage = " ".join(text.split())
    if len(passage) > limit:
        passage = passage[: limit - 3].rstrip() + "…"
    return f"    > {passage}"


def markdown_closest(result: dict[str, Any]) -> str:
    """Under a refusal, the closest passages as a Markdown list: a user can still read on."""
    shown = closest(result) if result.get("refused") else []
    if not shown:
        return ""
    lines = []
    for r in shown:
        lines += [f"- **{r.get('title') or r['article_id']}**", _quoted(r["text"])]
    return CLOSEST_HEADING + "\n".join(lines)


def message_content(result: dict[str, Any], answer_text: bool = True) -> str:
    """The chat message: the answer (its short answer in bold), a notice if there is one,
    the sources list, or the closest passages under a refusal."""
    notice = f"\n\n_Note: {result['notice']}._" if result.get("notice") else ""
    body = emphasise(result) if answer_text else ""
    return (
        body + notice + markdown_sources(result.get("citations") or []) + markdown_closest(result)
    )


def extra_fields(result: dict[str, Any]) -> dict[str, Any]:
    """What travels beside OpenAI's fields: the citations, and how the answer came about."""
    return {
        "citations": result.get("citations") or [],
        "answer_span": result.get("answer_span"),
        "refused": result.get("refused", False),
        "answerer": result.get("answerer"),
        "notice": result.get("notice"),
    }


def chat_question(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The last user message is the question; earlier user and assistant messages are the
    history (an assistant message's sources list is left out: it is not conversation)."""
    if messages[-1].role != "user":
        raise QAError("the last message must have role 'user' (the question)")
    history = [
        {
            "role": m.role,
            "content": m.text().split(SOURCES_HEADING)[0].split(CLOSEST_HEADING)[0],
        }
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    ]
    return messages[-1].text(), history


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def openai_router(service: QAService, auth: list) -> APIRouter:
    """``/v1/models`` and ``/v1/chat/completions``, behind the API key when one is set."""
    v1 = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], dependencies=auth)
    settings = service.settings

    @v1.get("/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "qa"}
            ],
        }

    @v1.post("/chat/completions", response_model=None)
    def chat_completions(body: ChatRequest) -> dict[str, Any] | StreamingResponse:
        """The corpus as a chat model: `[n]` markers and a sources list in the content, the
        citation objects in the extra top-level field `citations`."""
        question, history = chat_question(body.messages)
        model = body.model or settings.model_name
        ident, created = _completion_id(), int(time.time())
        if not body.stream:
            result = service.ask(question, history, body.top_k)
            return {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": message_content(result)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": result.get("usage")
                or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                **extra_fields(result),
            }
        # validated and given an answer slot now, so that errors still get their status
        answer = service.stream(question, history, body.top_k)

        def events() -> Iterator[str]:
            def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
                payload = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
                return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            result: dict[str, Any] = {}
            for piece in answer:
                if isinstance(piece, dict):
                    result = piece
                else:
                    yield chunk({"content": piece})
            tail = message_content(result, answer_text=False)
            if tail:
                yield chunk({"content": tail})
            yield chunk({}, "stop", **extra_fields(result))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return v1

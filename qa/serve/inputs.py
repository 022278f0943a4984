"""The input every surface takes, validated once: a question, the chat history before it,
and how many passages to list. The CLI, the REST and ``/v1`` routes, the web chat and the
evaluation all build a ``Question`` here, so a bad input gets the same one-line error
whichever way it came in."""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.errors import QAError


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


def validate_top_k(top_k: object, default: int) -> int:
    if top_k is None:
        return default
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
        raise QAError("top_k must be a whole number from 1 to 50")
    return top_k


@dataclass(frozen=True)
class Question:
    """A validated question: ``text`` stripped, ``history`` of {role, content} turns."""

    text: str
    history: list[dict] = field(default_factory=list)
    top_k: int = 5

    @classmethod
    def parse(
        cls, question: object, history: object, top_k: object, max_chars: int, default_k: int
    ) -> Question:
        return cls(
            validate_question(question, max_chars),
            validate_history(history),
            validate_top_k(top_k, default_k),
        )

"""Follow-up questions without an LLM: carry the subject of earlier turns over.

"How much will it cost?" after "What gas deal did Russia sign with China?" is searched as
"How much will it cost? gas deal Russia sign China". A question is treated as a follow-up
when it leans on the conversation: a pronoun or demonstrative ("it", "they", "that deal"),
an elliptical opener ("and ...", "what about ..."), or almost no content words of its own.
Earlier user turns are condensed the same way first, so a chain of follow-ups keeps its
subject. The condensed text is used for retrieval and answering; the user still sees
their own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.text import QUESTION_WORDS, query_terms, stopwords, words

_ANAPHORA = {
    "it",
    "its",
    "they",
    "them",
    "their",
    "theirs",
    "this",
    "that",
    "these",
    "those",
    "he",
    "him",
    "his",
    "she",
    "her",
    "hers",
    "there",
    "then",
    "such",
    "same",
    "former",
    "latter",
    "both",
    "either",
    "neither",
    "other",
    "one",
    "ones",
}
_ELLIPSIS = re.compile(
    r"^\s*(and|but|also|so|or|what about|how about|and what about|what else|why|why not|"
    r"how come|when|where|who else|same for|what of)\b",
    re.I,
)
_MAX_CARRIED = 12
_WORD = re.compile(r"[\w’'-]+")


def is_follow_up(question: str) -> bool:
    tokens = words(question)
    if any(t in _ANAPHORA for t in tokens):
        return True
    if _ELLIPSIS.match(question) and len(query_terms(question)) <= 3:
        return True
    return len(query_terms(question)) <= 1


def _content_words(text: str) -> list[str]:
    """Content words as written (so the condensed query still reads as text)."""
    stop = stopwords() | _ANAPHORA | QUESTION_WORDS
    seen: dict[str, str] = {}
    for w in _WORD.findall(text):
        key = w.lower().replace("’", "'")
        if key not in stop and len(key) > 1 and key not in seen:
            seen[key] = w
    return list(seen.values())


def condense(question: str, history: Sequence[dict] | None) -> str:
    """The question made self-contained for retrieval, from the user turns before it."""
    if not history:
        return question
    context = ""
    for turn in history:
        if turn.get("role") == "user" and isinstance(turn.get("content"), str):
            context = condense_pair(turn["content"], context)
    return condense_pair(question, context)


def condense_pair(question: str, context: str) -> str:
    if not context or not is_follow_up(question):
        return question
    own = set(query_terms(question))
    carried = [w for w in _content_words(context) if not set(query_terms(w)) & own]
    if not carried:
        return question
    return f"{question} {' '.join(carried[:_MAX_CARRIED])}"

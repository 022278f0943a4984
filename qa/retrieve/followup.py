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

from qa.ingest.text import QUESTION_WORDS, query_terms, stopwords, words

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
_MAX_NAMES = 6
_PERSONAL = {"he", "him", "his", "she", "her", "hers", "they", "them", "their"}
_CAPITAL = re.compile(r"\b[A-Z][\w’'-]*(?:\s+\d+\b)?")
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
    """The question made self-contained for retrieval, from the turns before it.

    The subject comes from the user's earlier questions. A pronoun may also point at what
    the last answer brought up ("Who proposed it?" - "Xi Jinping." - "When did *he* take
    office?"), so the names the last answer added to its question are carried first; and
    when a personal pronoun follows a "who" question, it is the person answered who is
    meant, so the earlier question's own topic is no longer carried (it would pull the
    search back to what was already answered).
    """
    if not history:
        return question
    context, last_question, last_answer = "", "", ""
    for turn in history:
        content = turn.get("content")
        if not isinstance(content, str):
            continue
        if turn.get("role") == "user":
            context = condense_pair(content, context)
            last_question, last_answer = content, ""
        elif turn.get("role") == "assistant":
            last_answer = content
    referent = _new_names(last_answer, last_question) if points_back(question) else []
    if referent and _refers(question) and _WHO.match(last_question):
        context = ""
    return condense_pair(question, f"{' '.join(referent[:_MAX_NAMES])} {context}".strip())


_WHO = re.compile(r"^\W*(and )?(who|whom|whose)\b", re.I)
_POINTING = _PERSONAL | {"it", "its", "there"}


def _refers(question: str) -> bool:
    return any(t in _PERSONAL for t in words(question))


def points_back(question: str) -> bool:
    return any(t in _POINTING for t in words(question))


def _new_names(answer: str, question: str) -> list[str]:
    """Names in ``answer`` that its question didn't already hold: what the answer brought
    into the conversation ("Xi Jinping" for "Who proposed ...?")."""
    asked = set(query_terms(question))
    # an answer often starts with its name ("Peace Mission 2014, under ..."), so a capital
    # at a sentence start counts here, stop words aside
    found = dict.fromkeys(m.group(0) for m in _CAPITAL.finditer(answer))
    return [n for n in found if (ts := set(query_terms(n))) and not ts <= asked]


def condense_pair(question: str, context: str) -> str:
    if not context or not is_follow_up(question):
        return question
    own = set(query_terms(question))
    carried = [w for w in _content_words(context) if not set(query_terms(w)) & own]
    if not carried:
        return question
    return f"{question} {' '.join(carried[:_MAX_CARRIED])}"

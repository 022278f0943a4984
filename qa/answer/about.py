"""Questions about the articles themselves: when one was published, who wrote it.

They are answered from the article's own dateline or byline, not by the trained reader,
and this stays hand-written on purpose: the reader reads passages of text for what they
say, not an article's metadata and layout, and was never trained on questions about the
document itself. "When was The Diplomat article published?" is closest in meaning to
sentences *about* the gas deal ("... last week ..."), and "Who wrote it?" is "answered" by
any sentence naming a person. So the article is picked (by the outlet or title the
question names, else the best retrieved passage's), and its text is searched for the date
its metadata gives, or for a byline. What the text doesn't show is refused, never filled
in from metadata without a passage to cite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from qa.answer.selection import AnswerSpan, Candidate, Selection
from qa.ingest.text import name_terms, words
from qa.store.chroma import StoredPassage

# "the article", "this blog post", "The Diplomat piece": one of the indexed articles, not a
# document they mention ("his article", "the IPCC Third Assessment Report"); capitalised
# words before the noun must name an indexed outlet (checked in answer_about_article)
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DOC_PHRASE = re.compile(
    r"\b(?i:the|this|that)\s+(?P<named>(?:[A-Z][\w’'-]*\s+)*)"
    r"(?i:article|blog post|blog|post|piece|story|op-ed|column)s?\b"
)
_PUBLISHED = re.compile(
    r"\b(?:when|what date|which date|what day|on what day|in what month)\b.*"
    r"\b(?:published|posted|written|dated|released|put out|came out|come out|appeared)\b",
    re.I,
)
_WROTE = re.compile(r"\bwho (?:wrote|authored|penned)\b|\bwritten by whom\b", re.I)
# "who is the author?", "... the author of the blog post?", not "... of the resolution?"
_AUTHOR_OF = re.compile(
    r"\b(?:who is|who was|what is|what was|name) the (?:author|writer|reporter|journalist)s?\b"
    r"(?P<rest>.*)$",
    re.I,
)
_BYLINE = re.compile(
    r"^\s*(?:By|BY|Author:|Written by)\s+([A-Z][\w.'’-]+(?:\s+[A-Z][\w.'’-]+){0,3})\s*$", re.M
)
_DATELINE = re.compile(
    rf"^[ \t]*(?:(?:{MONTHS}) \d{{1,2}},? \d{{4}}|\d{{1,2}} (?:{MONTHS}) \d{{4}}"
    r"|\d{4}-\d{2}-\d{2})[ \t]*$",
    re.M,
)
_MONTH_LIST = MONTHS.split("|")


def asks_about_article(question: str) -> str | None:
    """What a question about an article itself asks for ("published" or "author"), or
    None when it is about something else."""
    doc = _DOC_PHRASE.search(question)
    if doc and _PUBLISHED.search(question):
        return "published"
    if doc and _WROTE.search(question):
        return "author"
    author = _AUTHOR_OF.search(question)
    if author and (doc or not author.group("rest").strip(" ?.!")):
        return "author"
    return None


def date_forms(published: str) -> list[str]:
    """How a metadata date ("2014-06-02", "2014-05") may be written in a dateline."""
    parts = published.split("-")
    try:
        year, month = int(parts[0]), int(parts[1])
        day = int(parts[2]) if len(parts) > 2 else None
        date(year, month, day or 1)
    except (ValueError, IndexError):
        return [published] if published else []
    name = _MONTH_LIST[month - 1]
    if day is None:
        return [f"{name} {year}", published]
    return [f"{name} {day}, {year}", f"{day} {name} {year}", f"{name} {day} {year}", published]


def named_articles(question: str, articles: dict[str, dict]) -> list[str]:
    """The articles whose outlet the question names ("The Diplomat", "the blog post")."""
    asked_names, asked_words = name_terms(question), set(words(question))
    return [
        aid
        for aid, meta in articles.items()
        if name_terms(f"In {meta.get('source') or ''}") & asked_names
        or ("blog" in asked_words and "blog" in words(meta.get("source") or ""))
    ]


def pick_article(
    question: str, articles: dict[str, dict], hits: Sequence[StoredPassage]
) -> str | None:
    """The article the question names by outlet, when exactly one fits; else the one the
    best retrieved passage is from."""
    named = named_articles(question, articles)
    if len(named) == 1:
        return named[0]
    return hits[0].article_id if hits else None


def _line_at(p: StoredPassage, offset: int) -> tuple[int, int]:
    """The span of the passage's line holding ``offset`` (a dateline is a line of its own)."""
    line_start = p.text.rfind("\n", 0, offset) + 1
    line_end = p.text.find("\n", offset)
    line_end = len(p.text) if line_end < 0 else line_end
    return line_start, line_end


def answer_about_article(
    question: str,
    articles: dict[str, dict],
    passages: Sequence[StoredPassage],
    hits: Sequence[StoredPassage],
) -> Selection | None:
    """The selection for a question about an article itself, or None when it isn't one."""
    kind = asks_about_article(question)
    if kind is None:
        return None
    doc = _DOC_PHRASE.search(question)
    if doc and doc.group("named").strip() and not named_articles(question, articles):
        return None  # "the IPCC Report": a document the articles mention, not one of them
    aid = pick_article(question, articles, hits)
    if aid is None:
        return None
    own = sorted((p for p in passages if p.article_id == aid), key=lambda p: p.start)
    meta = articles.get(aid, {})
    if kind == "published":
        forms = date_forms(str(meta.get("published") or ""))
        for p in own:
            for form in forms:
                at = p.text.find(form)
                if at >= 0:
                    return _found(p, *_line_at(p, at), kind, (at, at + len(form)))
        if not forms:  # no date in the metadata: a line at the top that is only a date
            for p in own[:2]:
                match = _DATELINE.search(p.text)
                if match:
                    return _found(p, match.start(), match.end(), kind, match.span())
    else:
        for p in own[:2]:  # a byline is at the top
            match = _BYLINE.search(p.text)
            if match:
                return _found(p, match.start(), match.end(), kind, match.span(1))
    # the text doesn't show it: refuse rather than guess from sentences about something else
    return Selection(True, [], -1.0, {f"{kind}_in_text": 0.0})


def _found(p: StoredPassage, start: int, end: int, kind: str, answer: tuple[int, int]) -> Selection:
    """The line found (``start``-``end`` in the passage) quoted, ``answer`` its short answer."""
    text = p.text[start:end].strip()
    start += p.text[start:end].find(text)
    c = Candidate(0, p, p.start + start, p.start + start + len(text), text)
    a, b = answer
    span = AnswerSpan(p, p.start + a, p.start + b, p.text[a:b])
    return Selection(False, [c], 1.0, {f"{kind}_in_text": 1.0}, span)

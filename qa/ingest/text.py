"""Word-level text analysis shared by the keyword index, follow-up rewriting and the answerer,
so that all three agree on what a "term" is (lower-cased, stop words out, Snowball-stemmed).
"""

from __future__ import annotations

import os
import re
from functools import cache

import Stemmer

_WORD = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+", re.UNICODE)
# Question words and fillers that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = {
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "much",
    "many",
    "does",
    "did",
    "do",
    "is",
    "are",
    "was",
    "were",
    "will",
    "would",
    "could",
    "should",
    "can",
    "according",
    "article",
    "articles",
    "tell",
    "say",
    "said",
    "mention",
    "mentioned",
    "give",
    "name",
    "list",
    "please",
    "us",
    "me",
    "also",
    "kind",
    "type",
    "exactly",
    "every",
    "each",
    # provenance: where the answer is said, not what it is about
    "source",
    "sources",
    "both",
    "report",
    "reports",
    "reported",
    "blog",
    "post",
    "author",
    "story",
    "piece",
    "outlet",
    "describe",
    "describes",
    "described",
    "cite",
    "cites",
    "cited",
    "portray",
    "portrays",
    "portrayed",
    "mentions",
    "go",
    "going",
    "get",
    "gets",
    "got",
    "happen",
    "happened",
}
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w’'-]*)|\b([A-Z]{2,})\b")


@cache
def stopwords() -> frozenset[str]:
    """NLTK's English stop words, from the copy bundled with llama-index-core (no download)."""
    import llama_index.core

    path = os.path.join(
        os.path.dirname(llama_index.core.__file__),
        "_static",
        "nltk_cache",
        "corpora",
        "stopwords",
        "english",
    )
    with open(path, encoding="utf-8") as fh:
        return frozenset(w.strip() for w in fh if w.strip())


@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens ("U.S." -> "u", "s"; "$400" -> "400")."""
    return [w.replace(",", "") for w in _WORD.findall(text.lower().replace("’", "'"))]


def terms(text: str) -> list[str]:
    """Stemmed content terms, in order, stop words removed (used for BM25 and overlap)."""
    stop = stopwords()
    kept = [w for w in words(text) if w not in stop and (len(w) > 1 or w.isdigit())]
    return _stemmer().stemWords(kept)


def query_terms(text: str) -> list[str]:
    """Terms of a question, without question words: what the answer must be *about*."""
    stop = stopwords() | QUESTION_WORDS
    kept = [w for w in words(text) if w not in stop and (len(w) > 1 or w.isdigit())]
    return list(dict.fromkeys(_stemmer().stemWords(kept)))


def name_terms(question: str) -> set[str]:
    """Stemmed terms of the words written as names in the question: capitalised other than
    at the start, or all capitals ("Germany", "World Cup", "CEO")."""
    found = [a or b for a, b in _NAME.findall(question.strip())]
    return set(terms(" ".join(found)))

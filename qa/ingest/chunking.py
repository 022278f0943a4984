"""Sentence-aware passages that keep their exact character spans in the article.

Written here rather than taken from llama-index's ``SentenceSplitter`` because a citation
must be able to show and highlight ``article[start:end]`` exactly, and the answerer needs
the span of every sentence inside a passage. ``SentenceSplitter`` re-joins its splits and
recovers offsets afterwards with ``str.find``, which can fail or land on a repeated
string; here spans are carried from the start and never searched for.

Sentences come from NLTK's Punkt model (bundled with llama-index-core, so nothing is
downloaded), applied line by line so that headings, image credits and datelines, which
are lines of their own in news text, are sentences of their own: they stay searchable
and are never glued onto the next paragraph's first sentence.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from llama_index.core.schema import Document, NodeRelationship, RelatedNodeInfo, TextNode

_LINE = re.compile(r"[^\n]+")


@cache
def _punkt():
    """The English Punkt sentence model, from llama-index-core's bundled NLTK data."""
    import llama_index.core
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer

    bundled = os.path.join(os.path.dirname(llama_index.core.__file__), "_static", "nltk_cache")
    if bundled not in nltk.data.path:
        nltk.data.path.insert(0, bundled)
    return PunktTokenizer("english")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence; each non-blank line is split on its own."""
    punkt = _punkt()
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        base = line.start()
        for s, e in punkt.span_tokenize(line.group()):
            # trim whitespace so that spans start and end on visible characters
            chunk = line.group()[s:e]
            lead = len(chunk) - len(chunk.lstrip())
            trail = len(chunk) - len(chunk.rstrip())
            if e - trail > s + lead:
                spans.append((base + s + lead, base + e - trail))
    return spans


@dataclass(frozen=True)
class PassageSpan:
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...]  # absolute spans of the sentences inside


def group_sentences(
    sentences: Sequence[tuple[int, int]],
    token_counts: Sequence[int],
    max_tokens: int,
    overlap: int,
) -> list[PassageSpan]:
    """Pack consecutive sentences into passages of at most ``max_tokens`` tokens (a longer
    single sentence becomes a passage of its own), each starting with the last ``overlap``
    sentences of the previous one."""
    passages: list[PassageSpan] = []
    i, n = 0, len(sentences)
    while i < n:
        j, used = i, 0
        while j < n and (j == i or used + token_counts[j] <= max_tokens):
            used += token_counts[j]
            j += 1
        group = tuple(sentences[i:j])
        passages.append(PassageSpan(group[0][0], group[-1][1], group))
        if j >= n:
            break
        i = max(j - overlap, i + 1)
    return passages


def passage_id(article_id: str, article_hash: str, start: int, end: int) -> str:
    """Deterministic: the same article, text and span always give the same id (and two
    articles with the same text never share one)."""
    return hashlib.sha1(f"{article_id}:{article_hash}:{start}:{end}".encode()).hexdigest()[:20]


def split_document(
    doc: Document,
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    overlap: int,
) -> list[TextNode]:
    """Passages of one article as llama-index ``TextNode`` objects with exact spans.

    ``metadata["sentences"]`` holds the sentence spans relative to the passage start,
    flattened as ``"s0,e0;s1,e1;..."`` (Chroma metadata must be scalar).
    """
    text = doc.text
    spans = sentence_spans(text)
    if not spans:
        return []
    counts = count_tokens([text[s:e] for s, e in spans])
    nodes = []
    for ordinal, p in enumerate(group_sentences(spans, counts, max_tokens, overlap)):
        rel = ";".join(f"{s - p.start},{e - p.start}" for s, e in p.sentences)
        nodes.append(
            TextNode(
                id_=passage_id(doc.doc_id, doc.metadata["content_hash"], p.start, p.end),
                text=text[p.start : p.end],
                start_char_idx=p.start,
                end_char_idx=p.end,
                metadata={
                    "article_id": doc.doc_id,
                    "ordinal": ordinal,
                    "start": p.start,
                    "end": p.end,
                    "sentences": rel,
                },
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc.doc_id)},
            )
        )
    return nodes


def parse_sentence_spans(encoded: str) -> list[tuple[int, int]]:
    """Inverse of the ``metadata["sentences"]`` encoding."""
    out = []
    for pair in encoded.split(";") if encoded else ():
        s, e = pair.split(",")
        out.append((int(s), int(e)))
    return out

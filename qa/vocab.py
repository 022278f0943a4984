"""A vector for every term of the corpus: the average of its contextual token states over
its occurrences, collected from the indexing pass itself (no extra model work).

The answerer uses them to find a question term in a sentence *in meaning* when it is not
there word for word ("supply" ~ "provide", "drill" ~ "exercise", "warship" ~ "cruiser"),
by comparing the question's own contextual vector of the term with the term vectors of
the sentence's words. Computed at index time so that a question costs no second model pass.
"""

from __future__ import annotations

import numpy as np

from qa.text import terms


class TermAccumulator:
    """Sums of token states per stemmed term, filled passage by passage while indexing."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}
        self._stem_cache: dict[str, str | None] = {}

    def _term(self, word: str) -> str | None:
        key = word.lower()
        if key not in self._stem_cache:
            found = terms(key)
            self._stem_cache[key] = found[0] if len(found) == 1 else None
        return self._stem_cache[key]

    def add(self, text: str, encoding, states: np.ndarray) -> None:
        """Add one passage: ``encoding`` from the tokenizer, ``states`` its token states."""
        groups: dict[int, list[int]] = {}
        for i, wid in enumerate(encoding.word_ids):
            if wid is not None:
                groups.setdefault(wid, []).append(i)
        offsets = encoding.offsets
        for idxs in groups.values():
            term = self._term(text[offsets[idxs[0]][0] : offsets[idxs[-1]][1]])
            if term is None:
                continue
            vec = states[idxs].mean(axis=0) if len(idxs) > 1 else states[idxs[0]]
            if term in self.sums:
                self.sums[term] += vec
                self.counts[term] += 1
            else:
                self.sums[term] = vec.astype(np.float32).copy()
                self.counts[term] = 1


class TermVectors:
    """The stored term vectors held in memory (normalised), for the answerer."""

    def __init__(self, ids: list[str], vectors: np.ndarray) -> None:
        self.index = {t: i for i, t in enumerate(ids)}
        if len(ids):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self.matrix = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        else:
            self.matrix = np.zeros((0, 1), dtype=np.float32)

    def similarity(self, text_terms: list[str] | set[str], query: np.ndarray) -> np.ndarray:
        """For each row of ``query`` (term vectors of the question), the best cosine with any
        of ``text_terms``; zeros when none of them has a vector."""
        rows = [self.index[t] for t in text_terms if t in self.index]
        if not rows or not len(query):
            return np.zeros(len(query), dtype=np.float32)
        return (self.matrix[rows] @ query.T).max(axis=0)

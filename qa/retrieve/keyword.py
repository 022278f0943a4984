"""The keyword side of retrieval: BM25 (bm25s) over the stored passages, plus the term
statistics (document frequency, IDF) that the answerer's lexical scores use.

It is built from the store's passages, not from files, so it always describes exactly what
the vector side can return.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import chain

import bm25s
import numpy as np

from qa.ingest.text import terms


class KeywordIndex:
    def __init__(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> None:
        tokenized = [terms(t) for t in texts]
        self.n_docs = len(tokenized)
        self.df: Counter[str] = Counter(chain.from_iterable(set(toks) for toks in tokenized))
        self.terms_by_key = TermSets(self.df, keys or (), tokenized)
        self._bm25 = bm25s.BM25()
        if self.n_docs:
            self._bm25.index(tokenized, show_progress=False)

    def idf(self, term: str) -> float:
        """BM25's IDF; a term the corpus never uses gets the largest value there is."""
        df = self.df.get(term, 0)
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))

    def search(self, query: list[str], k: int) -> list[tuple[int, float]]:
        """(position in ``texts``, BM25 score) for passages sharing a term with the query."""
        known = [t for t in query if t in self.df]
        if not known or not self.n_docs:
            return []
        docs, scores = self._bm25.retrieve(
            [known], k=min(k, self.n_docs), show_progress=False, n_threads=1
        )
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def weights(self, query: list[str]) -> np.ndarray:
        return np.array([self.idf(t) for t in query], dtype=np.float64)


class TermSets:
    """Each passage's set of terms, kept so that answering never re-tokenizes a passage.

    Stored as arrays of term numbers rather than Python sets of strings: on Reuters
    (38k passages) the sets held ~1.5M string objects and cost ~160 MB of the server's
    memory; the arrays cost ~6 MB, and a question turns only its top passages back into sets.
    """

    def __init__(self, vocabulary: Counter[str], keys: Sequence[str], tokenized) -> None:
        self._terms = list(vocabulary)
        number = {t: i for i, t in enumerate(self._terms)}
        self._by_key = {
            k: np.fromiter({number[t] for t in toks}, dtype=np.int32)
            for k, toks in zip(keys, tokenized, strict=False)
        }

    def get(self, key: str) -> frozenset[str] | None:
        found = self._by_key.get(key)
        return None if found is None else frozenset(self._terms[i] for i in found.tolist())

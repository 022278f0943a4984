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
        word_ids = encoding.word_ids
        starts = [
            i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)
        ]
        if not starts:
            return
        ends = [*starts[1:], len(word_ids)]
        # a word's vector is the mean of its word pieces (one reduceat for the passage)
        bounds = np.array(starts)
        sums = np.add.reduceat(states, bounds, axis=0)
        offsets = encoding.offsets
        for k, (first, end) in enumerate(zip(starts, ends, strict=True)):
            last = end - 1
            while word_ids[last] is None:  # [SEP] closes the last word's range
                last -= 1
            term = self._term(text[offsets[first][0] : offsets[last][1]])
            if term is None:
                continue
            vec = sums[k] / (last - first + 1) if last > first else states[first]
            if last + 1 < end:  # the reduceat range included specials: recompute
                vec = states[first : last + 1].mean(axis=0)
            if term in self.sums:
                self.sums[term] += vec
                self.counts[term] += 1
            else:
                self.sums[term] = np.array(vec, dtype=np.float32)
                self.counts[term] = 1

"""Checking a generated answer's ``[n]`` citations against the passages before anyone sees them.

Wrong citations are the most common complaint against LLM answerers over documents: a model
cites ``[7]`` when five passages were given, or puts ``[2]`` on a claim that passage 2 does not
make. Each sentence of the reply is checked on its own (so that a reply can be verified as it
streams, sentence by sentence):

- a marker naming no listed passage is removed;
- a cited passage must *support* the sentence (its content terms and numbers occur in it,
  its closest sentence is near in meaning by MiniLM vectors) about as well as the best
  listed passage does; if it does not, the citation moves to the passage that supports the
  sentence best, or is dropped when none does;
- markers are renumbered in order of first use, so ``citations`` lists exactly the passages
  the text names, numbered as they appear.

Written here because no library does this for our passages and markers (kotaemon's and
llama-index's citation engines ask the LLM to cite, they don't check what it cited).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qa.ingest.text import terms

# "[1]", "[1, 2]", "[1][3]"; also "[1-2]" is read as 1 and 2
MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\]")
# a sentence ends at . ! ? (and the markers and closing quotes right after), then white space
_SENTENCE_END = re.compile(r"[.!?…][\"”’')\]]*(?:\s*\[[\d,;\s–-]+\])*(?=\s+|$)")
REFUSAL_PATTERNS = re.compile(
    r"(passages?|articles?|context|sources?|documents?|corpus|text)\b[^.]{0,60}"
    r"\b(do(es)?\s*n[o']t|does not|do not|never)\b[^.]{0,40}"
    r"\b(answer|say|mention|contain|include|provide|specify|state|give|address|cover)"
    r"|\b(cannot|can't|can ?not|unable to)\s+(be\s+)?(answer|determine|find|tell)"
    r"|\bno (information|mention|answer)\b",
    re.I,
)

# support = share of the claim's terms in the passage + 0.5 x cosine of its closest sentence
# + NUMBER_WEIGHT when the claim's numbers are all in the passage (- 1 when one is not);
# a cited passage must reach SUPPORT and be within MARGIN of the best one
SUPPORT = 0.5
MARGIN = 0.25
NUMBER_WEIGHT = 0.3
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[str]:
    return {m.group().replace(",", "") for m in _NUMBER.finditer(text)}


def _overlap(claim_terms: set[str], passage_terms: set[str]) -> float:
    return len(claim_terms & passage_terms) / len(claim_terms) if claim_terms else 0.0


def _number_credit(claim_numbers: set[str], passage_numbers: set[str]) -> float:
    if not claim_numbers:
        return 0.0
    # a number the passage doesn't have (a wrong year, a wrong amount) disqualifies it
    return NUMBER_WEIGHT if claim_numbers <= passage_numbers else -1.0


@dataclass
class _Claim:
    terms: set[str]
    numbers: set[str]


def split_sentences(text: str) -> list[str]:
    """The reply as sentences, each keeping its trailing markers and the space after it, so
    that ``"".join(split_sentences(t)) == t``."""
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        while end < len(text) and text[end].isspace():
            end += 1
        pieces.append(text[start:end])
        start = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def marker_numbers(body: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", body):
        if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
            numbers += list(range(a, b + 1)) if 0 < b - a < 10 else [a, b]
        elif part.strip().isdigit():
            numbers.append(int(part))
    return numbers


def looks_like_refusal(text: str) -> bool:
    """The model said the passages don't answer (and cited nothing to the contrary)."""
    return bool(REFUSAL_PATTERNS.search(text)) and not MARKER.search(text)


@dataclass
class Passage:
    """What the verifier needs of a listed passage: its text and its sentence vectors."""

    text: str
    sentence_vectors: np.ndarray  # (sentences, dim), L2-normalised
    sentence_spans: list[tuple[int, int]] = field(default_factory=list)  # relative to text


@dataclass
class Verification:
    """The verified text and what changed, for the answer JSON and the tests."""

    text: str
    order: list[int]  # 0-based passage indices, in order of first use: citation n = position + 1
    removed: list[int] = field(default_factory=list)  # markers naming no listed passage
    moved: list[tuple[int, int]] = field(default_factory=list)  # (from n, to n), as the model wrote
    dropped: list[int] = field(default_factory=list)  # unsupported, no better passage
    highlights: dict[int, set[tuple[int, int]]] = field(default_factory=dict)  # passage -> spans


class CitationVerifier:
    """Verifies sentences one at a time; ``finish`` gives the whole result.

    ``embed`` turns sentences into L2-normalised vectors (the engine's MiniLM).
    """

    def __init__(
        self, passages: Sequence[Passage], embed: Callable[[list[str]], np.ndarray]
    ) -> None:
        self.passages = list(passages)
        self.embed = embed
        self._terms = [set(terms(p.text)) for p in self.passages]
        self._numbers = [_numbers(p.text) for p in self.passages]
        self._sentences = [
            [(set(terms(p.text[a:b])), _numbers(p.text[a:b])) for a, b in p.sentence_spans]
            for p in self.passages
        ]
        self.result = Verification(text="", order=[])

    def _support(self, claim: _Claim, vector: np.ndarray, i: int) -> tuple[float, int]:
        """How well passage ``i`` supports the claim, and which of its sentences matches
        best. The share of the claim's content terms found in the passage, plus half the
        meaning similarity of its closest sentence, plus ``NUMBER_WEIGHT`` when the claim's
        numbers are all there, minus 1 when one is not (a wrong year or amount is the typical
        wrong citation, and short paraphrases, "deliveries begin in 2018", share few words)."""
        p = self.passages[i]
        lexical = _overlap(claim.terms, self._terms[i])
        sims = p.sentence_vectors @ vector if len(p.sentence_vectors) else np.zeros(0)
        semantic = float(sims.max()) if len(sims) else 0.0
        score = lexical + 0.5 * semantic + _number_credit(claim.numbers, self._numbers[i])
        # the sentence to highlight: the same measure, sentence by sentence
        best, best_score = -1, -np.inf
        for k, (terms_k, numbers_k) in enumerate(self._sentences[i]):
            sim = float(sims[k]) if k < len(sims) else 0.0
            s_k = _overlap(claim.terms, terms_k) + 0.5 * sim
            s_k += _number_credit(claim.numbers, numbers_k)
            if s_k > best_score:
                best, best_score = k, s_k
        return score, best

    def sentence(self, sentence: str) -> str:
        """One sentence with its markers checked, moved or removed, and renumbered."""
        found = list(MARKER.finditer(sentence))
        if not found:
            self.result.text += sentence
            return sentence
        text = MARKER.sub("", sentence).strip()
        claim = _Claim(set(terms(text)), _numbers(text))
        vector = self.embed([text])[0] if text else np.zeros(1)
        n_passages = len(self.passages)
        support = [
            self._support(claim, vector, i) if text else (0.0, -1) for i in range(n_passages)
        ]
        best = max(range(n_passages), key=lambda j: support[j][0]) if n_passages else -1

        def verified(numbers: list[int]) -> list[int]:
            kept: list[int] = []
            for n in numbers:
                if not 1 <= n <= n_passages:
                    self.result.removed.append(n)
                    continue
                i = n - 1
                ok = support[i][0] >= SUPPORT and support[i][0] >= support[best][0] - MARGIN
                if not ok:
                    if support[best][0] >= SUPPORT:
                        self.result.moved.append((n, best + 1))
                        i = best
                    else:
                        self.result.dropped.append(n)
                        continue
                if i not in kept:
                    kept.append(i)
            return kept

        emitted: set[int] = set()  # "[2][2]" or "[1] ... [1]" in one sentence: cited once

        def replace(m: re.Match) -> str:
            indices = [i for i in verified(marker_numbers(m.group(1))) if i not in emitted]
            emitted.update(indices)
            out = []
            for i in indices:
                if i not in self.result.order:
                    self.result.order.append(i)
                s = support[i][1]
                spans = self.passages[i].sentence_spans
                if 0 <= s < len(spans):
                    self.result.highlights.setdefault(i, set()).add(spans[s])
                out.append(f"[{self.result.order.index(i) + 1}]")
            return "".join(out)

        text = MARKER.sub(replace, sentence)
        # markers removed: no double spaces or space before punctuation left behind
        text = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text))
        self.result.text += text
        return text

    def finish(self) -> Verification:
        return self.result


def verify(
    text: str, passages: Sequence[Passage], embed: Callable[[list[str]], np.ndarray]
) -> Verification:
    """Verify a whole reply (the non-streaming path)."""
    verifier = CitationVerifier(passages, embed)
    for sentence in split_sentences(text):
        verifier.sentence(sentence)
    return verifier.finish()

"""Citation verification on its own: sentence splitting, marker parsing, refusal wording and
the remove / move / drop / renumber rules, with the real embedder."""

from __future__ import annotations

import numpy as np
import pytest

from qa.answer.citations import Passage, looks_like_refusal, marker_numbers, split_sentences, verify

GAS = (
    "Russia turned to China to speed up their natural gas deal. Gazprom and CNPC agreed "
    "that starting in 2018, Russia will provide China with 38 billion cubic meters of natural "
    "gas annually for 30 years."
)
NAVY = (
    "The exercise, which took place from May 20 through May 26, simulated nine operations. "
    "The Chinese destroyer Zhengzhou took part."
)


@pytest.fixture(scope="module")
def passages(embedder) -> list[Passage]:
    out = []
    for text in (GAS, NAVY):
        cut = text.index(". ") + 1
        spans = [(0, cut), (cut + 1, len(text))]
        vectors = embedder.embed([text[a:b] for a, b in spans])
        out.append(Passage(text, np.asarray(vectors), spans))
    return out


def test_split_keeps_text_and_trailing_markers() -> None:
    text = "First one [1]. Second. [2] Third? Yes [3][4]! Unfinished"
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert parts == ["First one [1]. ", "Second. [2] ", "Third? ", "Yes [3][4]! ", "Unfinished"]


@pytest.mark.parametrize(
    ("body", "numbers"), [("1", [1]), ("1, 3", [1, 3]), ("2-4", [2, 3, 4]), ("1;2", [1, 2])]
)
def test_marker_numbers(body, numbers) -> None:
    assert marker_numbers(body) == numbers


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("The passages do not answer this.", True),
        ("The articles don't mention who commanded it.", True),
        ("I cannot answer that from the provided context.", True),
        ("There is no information about the commander.", True),
        ("Deliveries start in 2018 [1].", False),
        ("The deal does not include oil [1].", False),
    ],
)
def test_refusal_wording(text, refusal) -> None:
    assert looks_like_refusal(text) is refusal


def test_rules(passages, embedder) -> None:
    reply = (
        "The drills simulated nine operations [1]. "  # wrong passage: moved to 2
        "Deliveries begin in 2018 [1][5]. "  # paraphrase kept; [5] names no passage
        "The moon is made of cheese [2]. "  # nothing supports it: dropped
        "Russia will provide 38 billion cubic meters a year [1]."
    )
    v = verify(reply, passages, embedder.embed)
    assert v.text == (
        "The drills simulated nine operations [1]. Deliveries begin in 2018 [2]. "
        "The moon is made of cheese. Russia will provide 38 billion cubic meters a year [2]."
    )
    assert v.order == [1, 0]  # passage 2 (navy) first used, so it is [1]
    assert v.removed == [5] and v.moved == [(1, 2)] and v.dropped == [2]
    assert v.highlights[0] == {passages[0].sentence_spans[1]}  # the 2018 sentence, not the first


def test_wrong_number_is_not_supported(passages, embedder) -> None:
    v = verify(
        "Russia will provide 45 billion cubic meters of gas a year [1].", passages, embedder.embed
    )
    assert v.dropped == [1] and v.order == []

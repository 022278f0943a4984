"""Answers, citations, refusals and follow-ups on the shipped corpus (real index, real model)."""

from __future__ import annotations

import re

import pytest

from qa.errors import QAError
from qa.retrieve.followup import condense, is_follow_up

ARTICLES = {}


def _article(engine, article_id: str) -> str:
    if article_id not in ARTICLES:
        ARTICLES[article_id] = engine.store.article_text(article_id)
    return ARTICLES[article_id]


def _check_citations(engine, result: dict) -> None:
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", result["answer"])]
    numbers = [c["n"] for c in result["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert sorted(set(markers)) == numbers  # every marker cites a listed passage, and vice versa
    first_use = list(dict.fromkeys(markers))
    assert first_use == sorted(first_use)  # numbered in order of first use
    for c in result["citations"]:
        article = _article(engine, c["article_id"])
        assert c["text"] == article[c["start"] : c["end"]]
        for s, e in c["highlights"]:
            assert c["start"] <= s < e <= c["end"]
    span = result.get("answer_span")
    if span:  # the short answer: exact article offsets, inside a quoted sentence
        (cited,) = [c for c in result["citations"] if c["passage_id"] == span["passage_id"]]
        article = _article(engine, cited["article_id"])
        assert article[span["start"] : span["end"]] == span["text"]
        assert any(s <= span["start"] and span["end"] <= e for s, e in cited["highlights"])
        assert " ".join(span["text"].split()) in result["answer"]


def test_gas_question_answers_with_a_supporting_citation(engine):
    result = engine.ask("How much gas will Russia supply to China each year?")
    assert not result["refused"]
    assert "38 billion cubic meters" in result["answer"]
    assert any("38 billion cubic meters" in c["text"] for c in result["citations"])
    _check_citations(engine, result)
    assert set(result) >= {"question", "answer", "refused", "citations", "retrieved", "timings_ms"}
    assert set(result["timings_ms"]) == {"retrieve", "answer", "total"}
    assert [r["rank"] for r in result["retrieved"]] == list(range(1, 6))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "What volume of natural gas is Russia going to deliver to China every year?",
            "38 billion",
        ),
        ("How many countries belong to CICA?", "26 member nations"),
        ("Which Russian warship took part in the naval drill?", "Varyag"),
        ("Who offered to turn CICA into a formal security mechanism?", "Xi Jinping"),
        ("Which Russian bank agreed to skip the dollar with the Bank of China?", "VTB"),
    ],
)
def test_paraphrased_questions_are_answered(engine, question, expected):
    result = engine.ask(question)
    assert not result["refused"], result
    assert expected in result["answer"]
    _check_citations(engine, result)


@pytest.mark.parametrize(
    "question",
    [
        "Who won the 2014 World Cup?",
        "What is the price per cubic meter of the gas?",
        "Who is the chief executive of Gazprom?",
        "How much gas does Russia sell to Germany?",
        "When will the pipeline be finished?",
        "What is the population of Kazakhstan?",
        pytest.param(
            "How many sailors took part in Joint Sea-2014?",
            marks=pytest.mark.xfail(
                reason="known miss of the learned refusal since the reader trained with the "
                "second batch of written questions: 'the two leaders attended the launch of "
                "Joint Sea-2014' is answered 'two' (confidence 0.86)"
            ),
        ),
    ],
)
def test_plausible_unanswerable_questions_are_refused(engine, question):
    result = engine.ask(question)
    assert result["refused"], result["answer"]
    assert result["answer"] == "The articles in the corpus don't answer this."
    assert result["citations"] == [] and result["answer_span"] is None
    assert len(result["retrieved"]) == 5  # the closest passages, for the user to read on


def test_follow_up_is_rewritten_from_history(engine):
    history = [
        {"role": "user", "content": "What is CICA?"},
        {"role": "assistant", "content": "A regional forum on security in Asia [1]."},
    ]
    assert is_follow_up("When was it started?")
    assert not is_follow_up("How many member nations does CICA have?")
    assert "CICA" in condense("When was it started?", history)
    result = engine.ask("When was it started?", history=history)
    assert not result["refused"]
    assert "1992" in result["answer"]
    gas = [
        {"role": "user", "content": "What gas deal did Russia sign with China?"},
        {"role": "assistant", "content": "Gazprom and CNPC signed a 30-year contract [1]."},
    ]
    result = engine.ask("How much is it worth?", history=gas)
    assert "$400 billion" in result["answer"]


_CHAIN = [
    {"role": "user", "content": "Which warships took part in Joint Sea-2014?"},
    {"role": "assistant", "content": "Zhengzhou and Varyag [1]."},
    {"role": "user", "content": "Where did it take place?"},
    {"role": "assistant", "content": "In the East China Sea [1]."},
]


def test_follow_up_chain_keeps_the_subject():
    query = condense("And how many submarines were there?", _CHAIN)
    assert "Joint Sea-2014" in query  # carried over two turns


def test_follow_up_chain_is_answered(engine):
    result = engine.ask("And how many submarines were there?", history=_CHAIN)
    assert "two submarines" in result["answer"]


def test_top_k_limits_retrieval(engine):
    result = engine.ask("What did China and Russia veto at the UN?", top_k=2)
    assert len(result["retrieved"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n"}, "empty"),
        ({"question": "x" * 4001}, "limit is 4000"),
        ({"question": 42}, "must be a string"),
        ({"question": "ok?", "top_k": 0}, "top_k"),
        ({"question": "ok?", "top_k": "5"}, "top_k"),
        ({"question": "ok?", "history": "nope"}, "history"),
        ({"question": "ok?", "history": [{"role": "system", "content": "x"}]}, "history[0]"),
    ],
)
def test_bad_input_is_a_clear_error(engine, kwargs, message):
    with pytest.raises(QAError, match=re.escape(message)):
        engine.ask(**kwargs)


def test_list_articles(engine):
    listing = engine.list_articles()
    assert {a["article_id"] for a in listing["articles"]} == {
        "000_0e3c8bbfb1785107.txt",
        "001_133982da83dacee9.txt",
    }
    assert sum(a["passages"] for a in listing["articles"]) == listing["passages"]


def test_pronoun_follow_up_finds_the_person_named_in_the_last_answer(engine):
    history = [
        {"role": "user", "content": "Who proposed making CICA a formal security mechanism?"},
        {"role": "assistant", "content": "President Xi Jinping proposed it in his keynote [1]."},
    ]
    assert "Xi Jinping" in condense("When did he take office?", history)
    result = engine.ask("When did he take office?", history=history)
    assert "March 2013" in result["answer"]


def test_pronoun_after_a_who_question_means_the_person_answered(engine):
    """ "he" is the person the last answer named: the earlier question's topic (CICA) is
    not searched again."""
    history = [
        {
            "role": "user",
            "content": "Who proposed making CICA a formal mechanism for Asian security?",
        },
        {"role": "assistant", "content": "Chinese President Xi Jinping."},
    ]
    query = condense("When did he take office?", history)
    assert "Xi Jinping" in query and "CICA" not in query
    assert "March 2013" in engine.ask("When did he take office?", history=history)["answer"]


def test_it_can_be_the_thing_the_last_answer_named(engine):
    history = [
        {
            "role": "user",
            "content": "What anti-terrorism drill did China and Russia agree to hold?",
        },
        {
            "role": "assistant",
            "content": "Peace Mission 2014, under the Shanghai Cooperation Organization.",
        },
    ]
    assert "Peace Mission" in condense("Where will it be held?", history)
    assert "Inner Mongolia" in engine.ask("Where will it be held?", history=history)["answer"]

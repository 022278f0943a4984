"""Questions about the articles themselves (qa.answer.about): rules, and the engine's answers."""

from __future__ import annotations

import pytest

from qa.answer.about import answer_about_article, asks_about_article, date_forms, pick_article
from qa.store.chroma import StoredPassage

ARTICLES = {
    "a": {"source": "blog post (outlet not named in the text)", "published": "2014-05"},
    "b": {"source": "The Diplomat", "published": "2014-06-02"},
}


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When was The Diplomat article published?", "published"),
        ("On what date was the blog post written?", "published"),
        ("Who wrote the article on the gas deal?", "author"),
        ("Who is the author of the blog post?", "author"),
        ("When was the gas deal signed?", None),
        ("Who wrote the joint statement?", None),  # not one of the articles
        ("Who was the author of the draft resolution?", None),
        # documents the articles mention, not the articles themselves
        ("When was his article published in Century Magazine?", None),
        ("When was the FCC's sixth report and order released?", None),
        ("Who wrote that it is difficult to define civil disobedience?", None),
        ("Who is the author?", "author"),
        ("When did the exercise take place?", None),
    ],
)
def test_asks_about_article(question, kind):
    assert asks_about_article(question) == kind


def test_a_named_document_that_is_not_an_indexed_article_is_left_to_the_answerer():
    passage = StoredPassage("p", "b", "June 2, 2014\nText.", 0, 18, "0,12;13,18")
    question = "When was the IPCC Third Assessment Report article published?"
    assert asks_about_article(question) == "published"
    assert answer_about_article(question, ARTICLES, [passage], [passage]) is None
    named = answer_about_article(
        "When was The Diplomat article published?", ARTICLES, [passage], [passage]
    )
    assert named is not None and not named.refused


def test_date_forms():
    assert "June 2, 2014" in date_forms("2014-06-02")
    assert date_forms("2014-05")[0] == "May 2014"
    assert date_forms("sometime") == ["sometime"]


def test_the_article_named_by_its_outlet_is_picked():
    best = [StoredPassage("p", "a", "text", 0, 4, "0,4")]
    assert pick_article("When was The Diplomat article published?", ARTICLES, best) == "b"
    assert pick_article("When was the blog post published?", ARTICLES, best) == "a"
    assert pick_article("When was it published?", ARTICLES, best) == "a"  # the best passage's


def test_publication_date_is_answered_from_the_dateline(engine):
    result = engine.ask("When was The Diplomat article on the gas deal published?")
    assert not result["refused"]
    assert result["answer"] == "June 2, 2014 [1]"
    cited = result["citations"][0]
    assert cited["article_id"] == "001_133982da83dacee9.txt"


def test_an_author_the_text_does_not_name_is_refused(engine):
    result = engine.ask("Who wrote The Diplomat article about the gas deal?")
    assert result["refused"]
    assert result["citations"] == []


def test_without_a_date_in_the_metadata_a_dateline_is_used():
    text = "Gas talks\nMarch 3, 2015\nThe talks resumed."
    passage = StoredPassage("p", "c", text, 100, 100 + len(text), "0,9;10,23;24,42")
    articles = {"c": {"source": "", "published": ""}}
    selection = answer_about_article(
        "When was the article published?", articles, [passage], [passage]
    )
    assert not selection.refused
    (sentence,) = selection.sentences
    assert sentence.text == "March 3, 2015"
    assert text[sentence.start - 100 : sentence.end - 100] == "March 3, 2015"  # exact span
    undated = StoredPassage("q", "d", "No date here.", 0, 13, "0,13")
    refused = answer_about_article(
        "When was the article published?", {"d": {}}, [undated], [undated]
    )
    assert refused.refused and refused.sentences == []

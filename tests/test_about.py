"""Questions about the articles themselves (qa.about): rules, and the engine's answers."""

from __future__ import annotations

import pytest

from qa.about import asks_about_article, date_forms, pick_article
from qa.store import StoredPassage

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
        ("When did the exercise take place?", None),
    ],
)
def test_asks_about_article(question, kind):
    assert asks_about_article(question) == kind


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

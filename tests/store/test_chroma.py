"""The index's builds, alias and sources on a real Chroma store on disk: a rebuild is written
beside the live build and switched to, an interrupted one leaves the live build alone, an
index from before builds is still read, and the index remembers what it was built from."""

from __future__ import annotations

import pytest

from qa.engine import Engine
from qa.settings import load_settings
from qa.store.chroma import IndexGone, Store, client_for, live_sources, new_build_id
from qa.store.doctor import diagnose
from qa.store.indexer import index_corpus, index_fingerprint

NOTE = (
    "Lake Peipsi ferry\n\nThe Lake Peipsi ferry service carried 7,314 passengers in its first "
    "summer of operation, its operator said in September 2014.\n"
)
NOTE_Q = "How many passengers did the Lake Peipsi ferry carry in its first summer?"


def _collections(settings) -> set[str]:
    return {c.name for c in client_for(settings, create=False).list_collections()}


@pytest.fixture
def settings(tmp_path, corpus_copy):
    return load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)


def test_rebuild_switches_builds_under_a_running_engine(settings, corpus_copy, embedder):
    index_corpus(settings, embedder=embedder, progress=False)
    engine = Engine(settings, embedder)
    old = engine.store.build
    assert old and {f"qa_passages_{old}", f"qa_articles_{old}"} <= _collections(settings)
    (corpus_copy / "ferry.txt").write_text(NOTE, encoding="utf-8")

    index_corpus(settings, rebuild=True, embedder=embedder, progress=False)

    names = _collections(settings)
    assert not any(old in n for n in names), names  # the old build was dropped
    new = Store(settings, index_fingerprint(settings)).build
    assert new != old and f"qa_passages_{new}" in names
    # the engine still holds the dropped build: a read fails with IndexGone, and the
    # engine reloads the new build and reads again
    with pytest.raises(IndexGone):
        engine._state.store.count()
    with pytest.raises(IndexGone):  # a paged read too (a generator: read while iterated)
        list(engine._state.store.iter_passages())
    count, build = engine.on_live_index(lambda state: (state.store.count(), state.store.build))
    assert build == new and count == engine.store.count()
    result = engine.ask(NOTE_Q)
    assert [c["article_id"] for c in result["citations"]] == ["ferry.txt"]


def test_an_interrupted_rebuild_leaves_the_live_index_and_is_cleaned_up(settings, embedder):
    index_corpus(settings, embedder=embedder, progress=False)
    live = Store(settings, index_fingerprint(settings))
    before = live.count()
    # a rebuild that died after writing its first passages
    partial = Store(settings, index_fingerprint(settings), create=True, build=new_build_id())
    passage = next(live.iter_passages())
    partial.passages.upsert(
        ids=["half"], metadatas=[{"article_id": "x", "text": "t"}], embeddings=[[0.1] * 384]
    )
    assert Store(settings, index_fingerprint(settings)).build == live.build
    assert Engine(settings, embedder).ask("What is CICA?")["retrieved"]
    assert passage.passage_id in {p.passage_id for p in live.iter_passages()}

    report = index_corpus(settings, embedder=embedder, progress=False)  # the next run

    assert report.passages_total == before
    assert not any(partial.build in n for n in _collections(settings))


def test_an_index_from_before_builds_is_read_and_rebuilt(settings, embedder):
    index_corpus(settings, embedder=embedder, progress=False)
    store = Store(settings, index_fingerprint(settings))
    build, count = store.build, store.count()
    # the layout an older version wrote: unsuffixed names, no alias
    client = client_for(settings, create=False)
    for kind in ("passages", "articles"):
        client.get_collection(f"qa_{kind}_{build}").modify(name=f"qa_{kind}")
    client.delete_collection("qa_index")
    client.create_collection("qa_terms")

    legacy = Store(settings, index_fingerprint(settings))
    assert legacy.build == "" and legacy.count() == count
    assert Engine(settings, embedder).ask("What is CICA?")["citations"]

    index_corpus(settings, rebuild=True, embedder=embedder, progress=False)

    names = _collections(settings)
    assert not {"qa_passages", "qa_articles", "qa_terms"} & names
    assert Store(settings, index_fingerprint(settings)).count() == count


def test_the_index_records_its_sources(tmp_path, corpus_copy, embedder):
    elsewhere = tmp_path / "elsewhere"  # the default corpus folder: never indexed here
    # (articles from a folder other than the default one get its name in their ids)
    elsewhere.mkdir()
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=elsewhere)
    index_corpus(settings, [corpus_copy], embedder=embedder, progress=False)
    assert live_sources(settings) == [str(corpus_copy.resolve())]
    assert diagnose(settings).healthy
    assert Store(settings, index_fingerprint(settings)).listing()["sources"] == [
        str(corpus_copy.resolve())
    ]

    (corpus_copy / "ferry.txt").write_text(NOTE, encoding="utf-8")
    found = diagnose(settings)
    assert found.missing == ["articles-ferry.txt"] and not found.healthy
    report = index_corpus(settings, embedder=embedder, progress=False)  # no paths
    assert report.added == ["articles-ferry.txt"] and len(report.unchanged) == 2

    (corpus_copy / "ferry.txt").unlink()
    assert diagnose(settings).gone == ["articles-ferry.txt"]


def test_any_chroma_error_after_a_switch_is_retryable(settings, corpus_copy, embedder):
    """A server may fail a read of a dropped build with an internal error rather than "does
    not exist": once the alias names another build, that is ``IndexGone`` too (the engine
    reloads and asks again); before the switch the error stays what it is."""
    from chromadb.errors import ChromaError

    index_corpus(settings, embedder=embedder, progress=False)
    store = Store(settings, index_fingerprint(settings))

    class Failing:
        def count(self):
            raise ChromaError("internal error")

    store.passages = Failing()
    with pytest.raises(ChromaError):
        store.count()
    assert not store.replaced()
    index_corpus(settings, rebuild=True, embedder=embedder, progress=False)
    assert store.replaced()
    with pytest.raises(IndexGone):
        store.count()

"""Incremental indexing against a real Chroma store on disk."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from qa.ingest.reading import read_corpus
from qa.settings import load_settings
from qa.store.chroma import Store
from qa.store.indexer import _index_locked, corpus_scope, index_corpus, index_fingerprint
from tests.conftest import ROOT

N_SYNTHETIC = 60


def _qa_index(env: dict[str, str], **kw) -> subprocess.Popen:
    """A real `qa index` (no paths) in its own process, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "index"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _snapshot(settings) -> dict[str, tuple[str, int, int]]:
    store = Store(settings, index_fingerprint(settings))
    return {p.passage_id: (p.article_id, p.start, p.end) for p in store.iter_passages()}


def test_reindex_is_idempotent_edit_replaces_delete_removes(tmp_path, corpus_copy, embedder):
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    first = index_corpus(settings, embedder=embedder, progress=False)
    assert len(first.added) == 2 and first.passages_total > 10
    before = _snapshot(settings)

    second = index_corpus(settings, embedder=embedder, progress=False)
    assert second.added == second.updated == second.removed == []
    assert second.passages_written == 0
    assert _snapshot(settings) == before

    # edit one article: only its passages change
    edited = corpus_copy / "001_133982da83dacee9.txt"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    third = index_corpus(settings, embedder=embedder, progress=False)
    assert third.updated == ["001_133982da83dacee9.txt"] and third.added == []
    after = _snapshot(settings)
    untouched = {k: v for k, v in before.items() if v[0] == "000_0e3c8bbfb1785107.txt"}
    assert {k: v for k, v in after.items() if v[0] == "000_0e3c8bbfb1785107.txt"} == untouched
    new_ids = {k for k, v in after.items() if v[0] == "001_133982da83dacee9.txt"}
    old_ids = {k for k, v in before.items() if v[0] == "001_133982da83dacee9.txt"}
    assert new_ids and new_ids != old_ids
    store = Store(settings, index_fingerprint(settings))
    assert any("A new closing line." in p.text for p in store.iter_passages())
    # every passage carries one vector per sentence
    vectors = store.sentence_vectors(after)
    assert set(vectors) == set(after)
    for p in store.iter_passages():
        assert vectors[p.passage_id].shape == (len(p.sentences.split(";")), 384)

    # delete one article: its passages go
    edited.unlink()
    fourth = index_corpus(settings, embedder=embedder, progress=False)
    assert fourth.removed == ["001_133982da83dacee9.txt"]
    assert set(_snapshot(settings).values()) == set(untouched.values())
    assert set(store.committed_articles()) == {"000_0e3c8bbfb1785107.txt"}


def test_indexing_another_folder_keeps_the_corpus(tmp_path, corpus_copy, embedder):
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    index_corpus(settings, embedder=embedder, progress=False)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "note.txt").write_text("Extra article\nThe pipeline is called Power of Siberia.\n")
    report = index_corpus(settings, [extra], embedder=embedder, progress=False)
    assert report.added == ["extra-note.txt"] and report.removed == []
    assert len(Store(settings, index_fingerprint(settings)).committed_articles()) == 3


def test_rebuild_with_other_chunking_is_refused_until_rebuilt(tmp_path, corpus_copy, embedder):
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    index_corpus(settings, embedder=embedder, progress=False)
    other = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy, chunk_tokens=64)
    try:
        index_corpus(other, embedder=embedder, progress=False)
    except Exception as exc:
        assert "rebuild" in str(exc)
    else:
        raise AssertionError("mixed settings were accepted")
    report = index_corpus(other, rebuild=True, embedder=embedder, progress=False)
    assert len(report.added) == 2


def _synthetic_corpus(folder: Path, n: int) -> None:
    """n distinct articles made of the shipped articles' sentences, shuffled per article."""
    text = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus" / "articles").glob("*.txt"))
    )
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.strip()) > 20]
    rng = random.Random(7)
    with (folder / "feed.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n):
            body = ". ".join(rng.sample(sentences, 6)) + "."
            fh.write(json.dumps({"id": f"a{i}", "title": f"Article {i}", "text": body}) + "\n")


def test_kill_9_mid_index_then_reindex_completes(tmp_path, embedder):
    corpus = tmp_path / "big"
    corpus.mkdir()
    _synthetic_corpus(corpus, N_SYNTHETIC)
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_CORPUS_DIR": str(corpus),
        "QA_INDEX_BATCH": "24",
        "QA_INDEX_COMMIT_PASSAGES": "24",
    }
    proc = _qa_index(env)
    # wait until some articles are committed, then kill without warning
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            committed = len(Store(settings, index_fingerprint(settings)).committed_articles())
        except Exception:
            continue
        if committed >= 2:
            break
    if proc.poll() is not None:
        pytest.fail(
            f"indexing ended (rc {proc.returncode}) before it could be interrupted: "
            f"{proc.stderr.read().decode()[-600:]}"
        )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < committed < N_SYNTHETIC

    resumed = index_corpus(settings, embedder=embedder, progress=False)
    assert len(resumed.added) + len(resumed.unchanged) == N_SYNTHETIC
    assert len(resumed.unchanged) >= committed
    got = _snapshot(settings)

    clean = load_settings(index_dir=tmp_path / "clean", corpus_dir=corpus)
    index_corpus(clean, embedder=embedder, progress=False)
    expected = _snapshot(clean)
    assert got == expected  # no duplicate, nothing missing, no orphan
    resumed_vectors = Store(settings, index_fingerprint(settings)).sentence_vectors(got)
    clean_vectors = Store(clean, index_fingerprint(clean)).sentence_vectors(expected)
    assert resumed_vectors.keys() == clean_vectors.keys() == set(expected)
    for pid, vecs in clean_vectors.items():
        assert np.allclose(resumed_vectors[pid], vecs, atol=1e-3)


def test_same_text_under_two_names_is_indexed_once(tmp_path, corpus_copy, embedder):
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    original = corpus_copy / "001_133982da83dacee9.txt"
    (corpus_copy / "copy.txt").write_text(original.read_text(encoding="utf-8"), encoding="utf-8")
    report = index_corpus(settings, embedder=embedder, progress=False)
    assert report.added == ["000_0e3c8bbfb1785107.txt", "001_133982da83dacee9.txt"]
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("copy.txt", "same text as 001_133982da83dacee9.txt")
    ]
    ids = list(_snapshot(settings))
    assert len(ids) == len(set(ids))
    again = index_corpus(settings, embedder=embedder, progress=False)
    assert again.added == again.removed == [] and len(again.skipped) == 1


def test_an_article_committed_while_qa_index_waits_for_the_lock_is_kept(
    tmp_path, corpus_copy, embedder
):
    """`qa index` reads its folders only once it holds the writers' lock: an article that
    another writer (a server taking an upload) committed while it waited is not mistaken
    for one that left the corpus."""
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    index_corpus(settings, embedder=embedder, progress=False)
    env = {**os.environ, "QA_INDEX_DIR": str(settings.index_dir), "QA_CORPUS_DIR": str(corpus_copy)}
    with FileLock(str(settings.index_dir / "index.lock")):  # the other writer
        waiting = _qa_index(env, text=True)
        assert waiting.stderr.readline().startswith("waiting for another process")
        (corpus_copy / "ferry.txt").write_text("Ferry\n\nThe ferry carried 7,314 people.\n")
        docs, skipped = read_corpus([corpus_copy], corpus_copy)
        _index_locked(  # what the holder of the lock commits meanwhile
            settings,
            docs,
            skipped,
            corpus_scope([corpus_copy]),
            rebuild=False,
            embedder=embedder,
            progress=False,
            sources=[corpus_copy],
        )
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert out.startswith("0 added, 0 updated, 0 removed, 3 unchanged"), out
    assert "ferry.txt" in Store(settings, index_fingerprint(settings)).committed_articles()

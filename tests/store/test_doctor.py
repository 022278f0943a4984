"""``qa doctor``: every kind of damage is found, ``--fix`` repairs it, and an index built with
other settings is refused with the command that fixes it."""

from __future__ import annotations

import numpy as np

from qa.settings import load_settings
from qa.store.chroma import Store
from qa.store.doctor import diagnose
from qa.store.indexer import index_corpus, index_fingerprint
from tests.conftest import run_qa


def _passage_set(settings) -> set[tuple[str, int, int]]:
    store = Store(settings, index_fingerprint(settings))
    return {(p.article_id, p.start, p.end) for p in store.iter_passages()}


def test_finds_and_fixes_every_kind_of_damage(corpus_copy, tmp_path, embedder) -> None:
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    index_corpus(settings, embedder=embedder, progress=False)
    clean = _passage_set(settings)
    assert diagnose(settings).healthy

    store = Store(settings, index_fingerprint(settings), create=True)
    some = next(store.iter_passages())
    vec = np.zeros(384, dtype=np.float32)
    vec[0] = 1.0
    meta = {"article_id": "ghost", "start": 0, "end": 5, "sentences": "0,5", "text": "ghost"}
    store.passages.upsert(ids=["ghostpassage"], metadatas=[meta], embeddings=[vec])
    dup = {"article_id": some.article_id, "start": some.start, "end": some.end}
    store.passages.upsert(
        ids=["duplicate0"],
        metadatas=[{**dup, "sentences": some.sentences, "text": some.text}],
        embeddings=[vec],
    )
    (corpus_copy / "new.txt").write_text("A new article\n\nThe ferry carried 912 bicycles.\n")
    edited = sorted(corpus_copy.glob("*.txt"))[0]
    edited.write_text(edited.read_text() + "\nOne more sentence at the end.\n")

    found = diagnose(settings)
    assert not found.healthy
    assert found.missing == ["new.txt"]
    assert found.stale == [edited.name]
    assert found.orphan_passages == ["ghostpassage"]
    assert "duplicate0" in found.duplicate_passages
    assert some.article_id in found.miscounted

    proc = run_qa(
        "doctor", "--fix", "--index-dir", str(settings.index_dir), "--corpus-dir", str(corpus_copy)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fix: removed 1 orphan passages" in proc.stdout
    assert proc.stdout.strip().endswith("healthy")
    assert diagnose(settings).healthy

    # the same passages as a clean build of the changed corpus
    fresh = load_settings(index_dir=tmp_path / "fresh", corpus_dir=corpus_copy)
    index_corpus(fresh, embedder=embedder, progress=False)
    assert _passage_set(settings) == _passage_set(fresh) != clean

    edited.unlink()
    found = diagnose(settings)
    assert found.gone == [edited.name]
    assert (
        run_qa(
            "doctor", "--index-dir", str(settings.index_dir), "--corpus-dir", str(corpus_copy)
        ).returncode
        == 1
    )


def test_other_settings_are_refused_with_the_fix(corpus_copy, tmp_path, embedder) -> None:
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus_copy)
    index_corpus(settings, embedder=embedder, progress=False)
    proc = run_qa(
        "doctor",
        "--index-dir",
        str(settings.index_dir),
        "--corpus-dir",
        str(corpus_copy),
        env={"QA_CHUNK_TOKENS": "64"},
    )
    assert proc.returncode == 2
    assert "other embedder or chunking settings" in proc.stderr
    assert "qa index --rebuild" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

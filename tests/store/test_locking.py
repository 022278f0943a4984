"""Writers sharing one Chroma server never duplicate or lose passages: two app processes
take 20 uploads each at the same moment while a third process runs `qa index`, and the
store ends with exactly the passages of a clean build of the same files. Real processes, a
real ``chroma run``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from qa.errors import Busy
from qa.settings import load_settings
from qa.store.chroma import Store, client_for
from qa.store.indexer import index_corpus, index_fingerprint
from qa.store.locking import ChromaLock
from tests.conftest import CORPUS, ROOT
from tests.store.test_chroma_server import _free_port, _serve, _stop, _wait, chroma_url  # noqa: F401

TOWNS = ["Tartu", "Narva", "Pärnu", "Viljandi", "Rakvere", "Kuressaare", "Haapsalu", "Valga"]


def _article(k: int) -> bytes:
    town = TOWNS[k % len(TOWNS)]
    return (
        f"Ferry line {k}\n\nThe ferry line number {k} from {town} carried {1000 + 37 * k} "
        f"passengers in its first summer, its operator said. It ran {k % 5 + 2} boats a day. "
        f"The town council of {town} voted {k + 3} to 2 to extend it for another season.\n"
    ).encode()


def _passages(settings) -> list[tuple[str, int, int]]:
    store = Store(settings, index_fingerprint(settings))
    return sorted((p.article_id, p.start, p.end) for p in store.iter_passages())


def test_uploads_to_two_apps_and_an_index_run_end_as_a_clean_build(
    chroma_url,  # noqa: F811
    tmp_path,
    embedder,
) -> None:
    corpus = tmp_path / "articles"
    shutil.copytree(CORPUS, corpus)
    env = {**os.environ, "QA_CHROMA_URL": chroma_url, "QA_CORPUS_DIR": str(corpus)}
    apps, urls = [], []
    try:
        for name in ("a", "b"):
            port = _free_port()
            (tmp_path / name).mkdir()
            apps.append(_serve(port, chroma_url, corpus, tmp_path / name))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, apps, strict=True):
            _wait(f"{url}/api/health", proc, "qa serve", timeout=240)

        def upload(k: int) -> int:
            url = urls[k % 2]
            with httpx.Client(base_url=url, timeout=300) as client:
                sent = {"files": (f"ferry-{k:02d}.txt", _article(k))}
                return client.post("/api/articles", files=sent).status_code

        third = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "index", "--quiet"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(upload, range(40)))
        _, err = third.communicate(timeout=300)
        assert third.returncode == 0, err
        assert statuses == [200] * 40
    finally:
        for proc in apps:
            _stop(proc)

    shared = load_settings(chroma_url=chroma_url, corpus_dir=corpus, index_dir=tmp_path / "x")
    clean = load_settings(index_dir=tmp_path / "clean", corpus_dir=corpus)
    index_corpus(clean, embedder=embedder, progress=False)
    got, want = _passages(shared), _passages(clean)
    assert len(got) == len(set(got))  # no duplicates
    assert got == want
    assert len({a for a, _, _ in got}) == 42


def test_a_dead_holders_lock_is_broken_and_a_live_one_waited_for(chroma_url) -> None:  # noqa: F811
    settings = load_settings(chroma_url=chroma_url, collection_prefix="locktest")
    client = client_for(settings, create=True)
    first, second = ChromaLock(client, "locktest"), ChromaLock(client, "locktest")
    first.beat_s, second.stale_s = 0.3, 1.5  # short, to keep the test short
    with first.held(5, None, chroma_url):
        began = time.monotonic()
        with pytest.raises(Busy, match="being written"), second.held(0.5, None, chroma_url):
            pass
        assert time.monotonic() - began >= 0.5
        # the holder is alive (its heartbeat changes): waiting longer than stale_s does not
        # break its lock
        with pytest.raises(Busy, match="being written"), second.held(3, None, chroma_url):
            pass
    # a holder that died: the lock collection stays, its heartbeat never changes
    client.create_collection("locktest_lock", metadata={"holder": "gone:1", "beat": "x"})
    began = time.monotonic()
    with second.held(10, None, chroma_url):
        assert 1.5 <= time.monotonic() - began < 10

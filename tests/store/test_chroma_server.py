"""Server mode: a real ``chroma run`` on a free loopback port, the shipped corpus indexed into
it, the same answers as the embedded store, and several app processes sharing it (an article
uploaded through one is answerable through another, without a restart)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.engine import Engine
from qa.settings import load_settings
from qa.store.indexer import index_corpus
from tests.conftest import CORPUS, ROOT

CHROMA = Path(sys.executable).parent / "chroma"
QUESTIONS = [q["question"] for q in map(json.loads, (ROOT / "corpus/gold.jsonl").open())][:30]
NOTE = (
    "Lake Peipsi ferry\n\nThe Lake Peipsi ferry service carried 7,314 passengers in its first "
    "summer of operation, its operator said in September 2014.\n"
)
NOTE_Q = "How many passengers did the Lake Peipsi ferry carry in its first summer?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(path: Path):
    """Where a server's output goes: a file, never an unread pipe (a full pipe stalls it)."""
    return path.open("w")


def _wait(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = Path(proc.stdout.name).read_text() if proc.stdout else ""
            raise RuntimeError(f"{what} exited: {log[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory) -> Iterator[str]:
    if not CHROMA.exists():
        pytest.skip(f"no chroma command at {CHROMA}")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=_log(path.parent / f"{path.name}.log"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/api/v2/heartbeat", proc, "chroma run")
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server_engine(chroma_url, embedder, tmp_path_factory) -> Engine:
    settings = load_settings(
        chroma_url=chroma_url,
        corpus_dir=CORPUS,
        index_dir=tmp_path_factory.mktemp("unused-local-index"),
    )
    report = index_corpus(settings, embedder=embedder, progress=False)
    assert report.passages_total > 10
    return Engine(settings, embedder)


def test_server_store_answers_like_the_embedded_one(server_engine, engine) -> None:
    assert not (Path(server_engine.settings.index_dir) / "chroma").exists()  # all on the server
    for question in QUESTIONS:
        ours, local = server_engine.ask(question), engine.ask(question)
        assert ours["answer"] == local["answer"], question
        assert [c["passage_id"] for c in ours["citations"]] == [
            c["passage_id"] for c in local["citations"]
        ]
        assert [r["passage_id"] for r in ours["retrieved"]] == [
            r["passage_id"] for r in local["retrieved"]
        ]


def test_reindex_into_server_is_idempotent(server_engine, embedder) -> None:
    before = server_engine.store.count()
    report = index_corpus(server_engine.settings, embedder=embedder, progress=False)
    assert report.added == [] and report.passages_written == 0
    assert server_engine.store.count() == before


def _serve(port: int, chroma_url: str, corpus: Path, index_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "QA_CHROMA_URL": chroma_url,
        "QA_CORPUS_DIR": str(corpus),
        "QA_INDEX_DIR": str(index_dir),
        "QA_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--port", str(port)],
        stdout=_log(index_dir.parent / f"serve-{port}.log"),
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_upload_through_one_process_is_answerable_through_another(
    chroma_url, server_engine, tmp_path
) -> None:
    apps = []
    try:
        urls = []
        for name in ("a", "b"):
            corpus = tmp_path / name / "articles"
            shutil.copytree(CORPUS, corpus)
            port = _free_port()
            (tmp_path / name / "index").mkdir()
            apps.append(_serve(port, chroma_url, corpus, tmp_path / name / "index"))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, apps, strict=True):
            _wait(f"{url}/api/health", proc, "qa serve")
        a, b = (httpx.Client(base_url=u, timeout=60) for u in urls)

        assert b.post("/api/ask", json={"question": NOTE_Q}).json()["refused"] is True
        added = a.post("/api/articles", files={"files": ("peipsi.txt", NOTE.encode())}).json()
        assert added["added"] == ["peipsi.txt"]

        answer = b.post("/api/ask", json={"question": NOTE_Q}).json()
        assert answer["refused"] is False and "7,314" in answer["answer"]
        assert answer["citations"][0]["article_id"] == "peipsi.txt"
        assert b.get("/api/health").json()["articles"] == 3

        assert b.delete("/api/articles/peipsi.txt").status_code == 200
        assert a.post("/api/ask", json={"question": NOTE_Q}).json()["refused"] is True
        same = [a.post("/api/ask", json={"question": q}).json()["answer"] for q in QUESTIONS[:5]]
        assert same == [
            b.post("/api/ask", json={"question": q}).json()["answer"] for q in QUESTIONS[:5]
        ]
    finally:
        for proc in apps:
            _stop(proc)


def test_workers_need_a_chroma_server(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "QA_INDEX_DIR": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode == 2 and "QA_CHROMA_URL" in proc.stderr


def test_several_workers_share_the_server(chroma_url, server_engine, tmp_path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "QA_CHROMA_URL": chroma_url,
        "QA_CORPUS_DIR": str(CORPUS),
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--workers", "2", "--port", str(port)],
        stdout=_log(tmp_path / "serve.log"),
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/api/health", proc, "qa serve --workers 2", timeout=180)
        answers = set()
        for _ in range(6):  # new connections: uvicorn spreads them over the workers
            with httpx.Client(base_url=url, timeout=60) as c:
                answers.add(c.post("/api/ask", json={"question": QUESTIONS[0]}).json()["answer"])
        assert answers == {server_engine.ask(QUESTIONS[0])["answer"]}
    finally:
        _stop(proc)

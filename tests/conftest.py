"""Shared fixtures: the real embedder, and real Chroma indexes on disk in temporary folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.engine import Engine
from qa.settings import Settings, load_settings
from qa.store.embedding import MiniLMEmbedding
from qa.store.indexer import index_corpus

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "articles"


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedding:
    return MiniLMEmbedding(threads=os.cpu_count() or 1)


@pytest.fixture(scope="session")
def shipped_settings(tmp_path_factory) -> Settings:
    """The shipped corpus indexed once per session into a temporary index."""
    index_dir = tmp_path_factory.mktemp("shipped-index")
    return load_settings(index_dir=index_dir, corpus_dir=CORPUS)


@pytest.fixture(scope="session")
def engine(shipped_settings, embedder) -> Engine:
    index_corpus(shipped_settings, embedder=embedder, progress=False)
    return Engine(shipped_settings, embedder=embedder)


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A private copy of the shipped corpus that a test may edit."""
    dest = tmp_path / "articles"
    shutil.copytree(CORPUS, dest)
    return dest


def run_qa(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kw):
    """Run the real `qa` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=300,
        **kw,
    )


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port, in a thread; yields its URL.

    The socket is bound here and handed to uvicorn, so no other process can take the port
    between choosing and binding it.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


FUZZ_KEY = pytest.StashKey[dict]()  # fuzz target -> (inputs tried, failures)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The fuzz tests' counts (tests/test_fuzz.py): inputs tried and failures per target."""
    for name, (tried, failed) in sorted(config.stash.get(FUZZ_KEY, {}).items()):
        terminalreporter.write_line(f"fuzz: {name}: {tried} inputs tried, {failed} failures")

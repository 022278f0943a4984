"""The `qa` command as a user runs it: real subprocesses, real index on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from filelock import FileLock

from qa.store.indexer import index_corpus
from tests.conftest import CORPUS, run_qa


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def index_env(tmp_path_factory, embedder):
    from qa.settings import load_settings

    index_dir = tmp_path_factory.mktemp("cli-index")
    index_corpus(
        load_settings(index_dir=index_dir, corpus_dir=CORPUS), embedder=embedder, progress=False
    )
    return {"QA_INDEX_DIR": str(index_dir)}


def test_ask_json_and_text(index_env):
    proc = run_qa(
        "ask", "--json", "How much gas will Russia supply to China each year?", env=index_env
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "38 billion cubic meters" in result["answer"]
    assert any("38 billion cubic meters" in c["text"] for c in result["citations"])

    span = result["answer_span"]
    assert span and " ".join(span["text"].split()) in result["answer"]

    proc = run_qa("ask", "--json", "Who won the 2014 World Cup?", env=index_env)
    assert json.loads(proc.stdout)["refused"] is True
    proc = run_qa("ask", "Who won the 2014 World Cup?", env=index_env)
    assert "don't answer" in proc.stdout and "Closest passages:" in proc.stdout
    assert "Sources:" not in proc.stdout

    proc = run_qa("ask", "When was The Diplomat article published?", env=index_env)
    assert proc.returncode == 0
    assert "[1]" in proc.stdout and "Sources:" in proc.stdout and "The Diplomat" in proc.stdout
    assert proc.stdout.count("**") == 2  # the short answer, in bold (Markdown when piped)


def test_list_json(index_env):
    proc = run_qa("list", "--json", env=index_env)
    listing = json.loads(proc.stdout)
    assert len(listing["articles"]) == 2
    assert set(listing["articles"][0]) == {"article_id", "title", "source", "published", "passages"}
    assert listing["passages"] == sum(a["passages"] for a in listing["articles"])


def test_chat_follow_up(index_env):
    script = "What gas deal did Russia sign with China?\nHow much is it worth?\n/quit\n"
    proc = run_qa("chat", env=index_env, input=script)
    assert proc.returncode == 0, proc.stderr
    assert "$400 billion" in proc.stdout


def test_index_twice_and_summary(tmp_path):
    env = {"QA_INDEX_DIR": str(tmp_path / "index")}
    first = run_qa("index", str(CORPUS), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("2 added, 0 updated, 0 removed, 0 unchanged, 0 skipped")
    assert "article/s" in first.stderr  # the progress bar: counts, rate, ETA
    second = run_qa("index", str(CORPUS), env=env)
    assert second.stdout.startswith("0 added, 0 updated, 0 removed, 2 unchanged")
    passages = first.stdout.split("; ")[1].split(" (")[0]
    assert passages in second.stdout


def test_index_remembers_its_sources(tmp_path):
    """`qa index DIR` records DIR: doctor checks it (not the default corpus folder), a bare
    `qa index` re-indexes it, `qa list` names it."""
    news = tmp_path / "news"
    shutil.copytree(CORPUS, news)
    env = {"QA_INDEX_DIR": str(tmp_path / "index"), "QA_CORPUS_DIR": str(CORPUS)}
    assert run_qa("index", str(news), "--quiet", env=env).returncode == 0
    doctor = run_qa("doctor", env=env)
    assert doctor.returncode == 0, doctor.stdout
    assert f"sources: {news}" in doctor.stdout
    (news / "ferry.txt").write_text("Ferry\n\nThe ferry carried 7,314 passengers.\n")
    assert run_qa("doctor", env=env).returncode == 1  # the new file is not indexed yet
    again = run_qa("index", "--quiet", env=env)
    assert again.stdout.startswith("1 added, 0 updated, 0 removed, 2 unchanged"), again.stdout
    assert run_qa("doctor", env=env).returncode == 0
    listed = run_qa("list", env=env)
    assert listed.stdout.strip().endswith(f"indexed from: {news}")
    assert json.loads(run_qa("list", "--json", env=env).stdout)["sources"] == [str(news)]
    shutil.rmtree(news)
    _one_line_error(run_qa("index", "--quiet", env=env), "no longer exists", "--rebuild")


def test_unreadable_files_are_reported_and_skipped(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "bad.txt").write_bytes(b"\xff\xfe\x00\x00garbage")
    (corpus / "empty.txt").write_text("")
    proc = run_qa("index", str(corpus), "--quiet", env={"QA_INDEX_DIR": str(tmp_path / "i")})
    assert proc.returncode == 0, proc.stderr
    assert "2 added" in proc.stdout and "2 skipped" in proc.stdout
    assert "bad.txt: binary content" in proc.stdout and "empty.txt: empty" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["ask", ""], ["question is empty"]),
        (["ask", "   "], ["question is empty"]),
        (["ask", "x" * 4001], ["4001 characters", "4000"]),
        (["ask", "ok?", "--top-k", "0"], ["--top-k"]),
        (["ask", "ok?", "--top-k", "many"], ["--top-k"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_arguments(index_env, args, needles):
    _one_line_error(run_qa(*args, env=index_env), *needles)


def test_missing_corpus_and_empty_corpus(tmp_path):
    env = {"QA_INDEX_DIR": str(tmp_path / "index")}
    _one_line_error(run_qa("index", str(tmp_path / "nope"), env=env), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(run_qa("index", str(empty), env=env), "no article files")


def test_missing_index(tmp_path):
    env = {"QA_INDEX_DIR": str(tmp_path / "never-built")}
    _one_line_error(run_qa("ask", "What is CICA?", env=env), "run `qa index`")
    _one_line_error(run_qa("list", env=env), "run `qa index`")


def test_corrupt_index(tmp_path):
    env = {"QA_INDEX_DIR": str(tmp_path / "index")}
    assert run_qa("index", str(CORPUS), "--quiet", env=env).returncode == 0
    db = tmp_path / "index" / "chroma" / "chroma.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    proc = run_qa("ask", "What is CICA?", env=env)
    _one_line_error(proc, "qa index")


def test_locked_index_waits_then_says_so(tmp_path):
    """A second writer waits for the first (QA_LOCK_WAIT_S), saying so once, then gives up
    with one line; once the lock is free the same command succeeds."""
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    env = {"QA_INDEX_DIR": str(index_dir), "QA_LOCK_WAIT_S": "1"}
    with FileLock(str(index_dir / "index.lock")):
        proc = run_qa("index", str(CORPUS), "--quiet", env=env)
        _one_line_error(proc, "being written by another process", "waited 1 s")
        loud = run_qa("index", str(CORPUS), env=env)
        assert loud.returncode == 2
        assert loud.stderr.splitlines()[0].startswith("waiting for another process")
    assert run_qa("index", str(CORPUS), "--quiet", env=env).returncode == 0


def test_invalid_setting_from_environment(index_env):
    proc = run_qa("ask", "What is CICA?", env={**index_env, "QA_TOP_K": "lots"})
    _one_line_error(proc, "QA_TOP_K")


def test_works_without_network(tmp_path):
    """Index and answer inside a network namespace with no interfaces up: nothing may be
    downloaded at run time."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    script = (
        f"{sys.executable} -m qa.cli index --quiet {CORPUS} && "
        f'{sys.executable} -m qa.cli ask --json "How many member nations does CICA have?"'
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "QA_INDEX_DIR": str(tmp_path / "index")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "26 member nations" in json.loads(proc.stdout.splitlines()[-1])["answer"]

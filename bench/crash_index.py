"""Crash safety of ``qa index`` at scale: the 2,225 BBC News articles indexed by the real
``qa index`` command, killed with SIGKILL at a random moment, then ``qa index`` run again to
completion; five times, each from the state the previous round left. After every round the
store must hold exactly the passages of a clean build: no duplicate, no missing article, no
orphan passage or sentence (checked with ``qa doctor``'s ``diagnose`` and by comparing the
set of (article, span) against the clean build).

Prints one line per round and a summary; asserts nothing. The data is read from
``../shared/bench-data`` and written only to a temporary directory.

    .venv/bin/python bench/crash_index.py [--rounds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BBC = REPO.parent / "shared" / "bench-data" / "news" / "bbc_news_2225.jsonl"


def qa_index(corpus: Path, index: Path, rebuild: bool = False) -> subprocess.Popen:
    env = {**os.environ, "QA_INDEX_DIR": str(index), "QA_CORPUS_DIR": str(corpus)}
    extra = ["--rebuild"] if rebuild else []
    return subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "index", "--quiet", *extra, str(corpus)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def passage_set(corpus: Path, index: Path) -> set[tuple[str, int, int]]:
    from qa.indexer import index_fingerprint
    from qa.settings import load_settings
    from qa.store import Store

    settings = load_settings(index_dir=index, corpus_dir=corpus)
    store = Store(settings, index_fingerprint(settings))
    return {(p.article_id, p.start, p.end) for p in store.iter_passages()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from qa.doctor import diagnose
    from qa.settings import load_settings

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="qa-crash-") as tmp_s:
        tmp = Path(tmp_s)
        corpus = tmp / "bbc"
        corpus.mkdir()
        with BBC.open(encoding="utf-8") as src, (corpus / "bbc.jsonl").open("w") as out:
            for line in src:
                r = json.loads(line)
                out.write(json.dumps({"id": r["id"], "title": r["title"], "text": r["text"]}))
                out.write("\n")

        t0 = time.perf_counter()
        clean = qa_index(corpus, tmp / "clean")
        clean.wait()
        full_s = time.perf_counter() - t0
        reference = passage_set(corpus, tmp / "clean")
        print(f"clean build: {len(reference)} passages in {full_s:.0f} s", flush=True)

        index = tmp / "crashed"
        ok_rounds = 0
        for round_no in range(1, args.rounds + 1):
            kill_after = rng.uniform(2.0, full_s * 0.9)
            proc = qa_index(corpus, index, rebuild=True)  # from scratch, killed part-way
            time.sleep(kill_after)
            killed = proc.poll() is None
            if killed:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            before = len(passage_set(corpus, index)) if (index / "chroma").exists() else 0
            done = qa_index(corpus, index)
            out, _ = done.communicate()
            after = passage_set(corpus, index)
            health = diagnose(load_settings(index_dir=index, corpus_dir=corpus))
            same = after == reference
            ok = done.returncode == 0 and same and health.healthy
            ok_rounds += ok
            print(
                f"round {round_no}: killed after {kill_after:5.1f} s "
                f"({'SIGKILL' if killed else 'had finished'}), {before} passages left; "
                f"re-run exit {done.returncode}: {len(after)} passages, "
                f"{'identical to' if same else 'DIFFERENT from'} the clean build, "
                f"doctor: {'healthy' if health.healthy else '; '.join(health.lines()[1:])}",
                flush=True,
            )
            if not ok:
                print(out[-1500:])
        print(f"\ncrash safety: {ok_rounds} of {args.rounds} rounds recovered exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Crash safety of ``qa index`` at scale: the 2,225 BBC News articles indexed by the real
``qa index --rebuild`` command, killed with SIGKILL at a random moment, then ``qa index`` run
again to completion; five times, each from the state the previous round left. (A rebuild
writes a new build beside the live index, so a killed one leaves the live index as it was;
round 1 has none yet.) After every round the
store must hold exactly the passages of a clean build: no duplicate, no missing article, no
orphan passage (checked with ``qa doctor``'s ``diagnose`` and by comparing the
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


_CHECK = """
import hashlib, json, sys
from qa.store.doctor import diagnose
from qa.store.indexer import index_fingerprint
from qa.settings import load_settings
from qa.store.chroma import Store
settings = load_settings(index_dir=sys.argv[1], corpus_dir=sys.argv[2])
spans = sorted((p.article_id, p.start, p.end) for p in Store(
    settings, index_fingerprint(settings)).iter_passages())
health = diagnose(settings)
print(json.dumps({"passages": len(spans), "healthy": health.healthy,
                  "problems": health.lines()[1:-1],
                  "digest": hashlib.sha256(json.dumps(spans).encode()).hexdigest()}))
"""


def check(corpus: Path, index: Path) -> dict:
    """The index's passage set (count and digest) and ``qa doctor``'s verdict, read in a
    fresh process: the embedded store belongs to one process at a time, and this script's
    own process must not hold it open while ``qa index`` rebuilds it."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK, str(index), str(corpus)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        return {"passages": -1, "healthy": False, "problems": [proc.stderr[-300:]], "digest": ""}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
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
        reference = check(corpus, tmp / "clean")
        print(f"clean build: {reference['passages']} passages in {full_s:.0f} s", flush=True)

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
            # a killed rebuild leaves the live index as it was (none in round 1): the
            # partial build beside it is dropped by the next run
            live = check(corpus, index)["passages"] if (index / "chroma").exists() else -1
            left = "no live index" if live < 0 else f"live index intact ({live} passages)"
            done = qa_index(corpus, index)
            out, _ = done.communicate()
            after = check(corpus, index)
            same = after["digest"] == reference["digest"]
            ok = done.returncode == 0 and same and after["healthy"]
            ok_rounds += ok
            print(
                f"round {round_no}: killed after {kill_after:5.1f} s "
                f"({'SIGKILL' if killed else 'had finished'}), {left}; "
                f"re-run exit {done.returncode}: {after['passages']} passages, "
                f"{'identical to' if same else 'DIFFERENT from'} the clean build, "
                f"doctor: {'healthy' if after['healthy'] else '; '.join(after['problems'])}",
                flush=True,
            )
            if not ok:
                print(out[-1500:])
        print(f"\ncrash safety: {ok_rounds} of {args.rounds} rounds recovered exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

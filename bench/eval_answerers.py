"""The trained answerer beside the old rules, on the same questions in one run: the gold set,
the held-out SQuAD articles and the news development sets. Writes one ``qa eval`` JSON per
set into ``docs/eval/`` with the old rules as a compared configuration, for ``qa.eval.report``.

The old rules are the answerer as it was at ``--old`` (default 9368c6d, the last commit
before the trained reader), run from a git worktree of that commit with this checkout's
virtual environment (same dependencies), on an index of the same articles that its own code
builds beside ours (the index layout has changed since: builds behind an alias).

    .venv/bin/python bench/eval_answerers.py [--out docs/eval] [--old REV] [--sets gold,...]

Sets (corpus text is read from ../shared; only our own questions live in the repository):
- ``gold``: corpus/gold.jsonl over the shipped articles (ours also with --compare baselines);
- ``squad-heldout``: 600 answerable + 300 unanswerable questions of the SQuAD test articles,
  over an index of all 2,067 SQuAD v1.1 dev paragraphs;
- ``reuters-b``: bench/devsets/reuters_b.jsonl over 200 Reuters articles: held out from
  every fit (the refusal model never saw it);
- ``reuters-a``, ``bbc``: the development questions the refusal model was fitted on
  (in-sample for it; shown for completeness);
- ``shipped-b``: the even-numbered half of bench/devsets/shipped.jsonl (plain, paraphrased
  and unanswerable questions over the shipped articles), held out from every fit;
- ``bbc-b``: bench/devsets/bbc_b.jsonl over the BBC articles that ``bbc`` doesn't ask about,
  held out from every fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "devsets"))
from corpora import dev_questions, shipped_half, write, write_questions  # noqa: E402

OUT = ROOT / "bench" / "out"
PY = Path(sys.executable)

SETS = {
    # name: (questions, corpus name or None for the shipped corpus, what it is)
    "gold": (ROOT / "corpus" / "gold.jsonl", None, "gold set (shipped articles)"),
    "squad-heldout": (OUT / "devsets" / "squad-heldout.jsonl", "squad", "held-out SQuAD"),
    "reuters-b": (OUT / "devsets" / "reuters_b.jsonl", "reuters", "Reuters dev B"),
    "reuters-a": (OUT / "devsets" / "reuters_a.jsonl", "reuters", "Reuters dev A"),
    "bbc": (OUT / "devsets" / "bbc.jsonl", "bbc", "BBC dev"),
    "shipped-b": (OUT / "devsets" / "shipped_b.jsonl", None, "shipped articles dev B"),
    "bbc-b": (OUT / "devsets" / "bbc_b.jsonl", "bbc", "BBC dev B"),
}


def old_worktree(rev: str) -> Path:
    where = OUT / f"old-{rev}"
    if not (where / "qa").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(where), rev],
            check=True,
            capture_output=True,
        )
    return where


def qa_eval(cwd: Path, args: list[str], out: Path) -> dict:
    """``qa eval`` run as ``python -m qa.cli`` from ``cwd`` (so ``cwd``'s ``qa`` is used)."""
    env = dict(os.environ, PYTHONPATH=str(cwd))
    cmd = [str(PY), "-m", "qa.cli", "eval", *args, "--quiet", "--json", str(out)]
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval")
    ap.add_argument("--old", default="9368c6d")
    ap.add_argument("--sets", default=",".join(SETS))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (OUT / "devsets").mkdir(parents=True, exist_ok=True)
    old = old_worktree(args.old)
    began = time.time()
    for name in args.sets.split(","):
        questions, corpus, label = SETS[name]
        if name == "squad-heldout":
            write_questions(questions)
        elif name == "shipped-b":
            shipped_half(True, questions)
        elif name != "gold":
            dev_questions(questions.stem, questions)
        if corpus is None:
            corpus_dir, index_dir = ROOT / "corpus" / "articles", OUT / "index-shipped"
        else:
            corpus_dir, index_dir = OUT / "devsets" / corpus, OUT / f"index-{corpus}"
            if not (corpus_dir / f"{corpus}.jsonl").is_file():
                write(corpus, corpus_dir)
        common = [str(questions), "--corpus-dir", str(corpus_dir), "--index-dir", str(index_dir)]
        print(f"[{time.time() - began:5.0f}s] {name}: trained answerer", flush=True)
        new = qa_eval(ROOT, [*common, *(["--compare"] if name == "gold" else [])], OUT / "new.json")
        print(f"[{time.time() - began:5.0f}s] {name}: old rules ({args.old})", flush=True)
        old_index = index_dir.with_name(f"{index_dir.name}-old-{args.old}")
        rules = qa_eval(old, [*common[:-1], str(old_index)], OUT / "old.json")
        compare = new.get("compare") or [
            {"name": "hybrid (ours)", "metrics": new["metrics"], "config": new["config"]}
        ]
        compare.append(
            {
                "name": f"old rules ({args.old})",
                "metrics": rules["metrics"],
                "config": rules["config"] | {"answerer": f"rules at {args.old}"},
            }
        )
        new["compare"] = compare
        new["title"] = f"{label}: {new['title']}"
        (args.out / f"{name}.json").write_text(json.dumps(new, indent=1) + "\n")
        m, r = new["metrics"], rules["metrics"]
        for key in ("answer_accuracy", "refusal_accuracy", "false_refusal_rate", "em", "f1"):
            print(f"    {key:>20}: trained {m.get(key)}  rules {r.get(key)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

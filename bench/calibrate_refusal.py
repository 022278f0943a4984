"""Fit the refusal model's weights on the development questions (``corpus/dev.jsonl``).

Never on ``corpus/gold.jsonl``: that set is kept for evaluation. Each development line is
``{"question": str, "answerable": bool, "note": str}``. The script indexes the shipped
corpus into a temporary index, asks every question, reads the evidence features the
answerer reports (``"evidence"`` in the answer), fits a logistic regression (numpy, small
L2 penalty), prints the leave-one-out error rates, and prints the weights to paste into
``qa.answer.RefusalModel``. The bias is raised by ``--favour-answering`` (0.3), then until
at most ``--max-false-refusal`` (5%, the evaluation's bar) of the answerable questions are
refused: a false refusal costs a user more than an unanswered question answered with a
cited sentence. Leave-one-out repeats the whole procedure without the question scored.

    .venv/bin/python bench/calibrate_refusal.py [--dev corpus/dev.jsonl]

The current weights come from the defaults (all three development sets, ``unknown`` kept
out of the fit at 0). Questions about an article itself ("who wrote it?") are decided by
its dateline or byline (``qa.about``) and left out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from qa.answer import FEATURES, RefusalModel
from qa.engine import Engine
from qa.indexer import index_corpus
from qa.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def fit(x: np.ndarray, y: np.ndarray, penalty: float, steps: int = 20000) -> np.ndarray:
    """Logistic regression by gradient descent; the last weight is the bias (unpenalised)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) / len(y) + penalty * np.r_[w[:-1], 0]
        w -= grad
    return w


def rates(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(false refusal rate, refusal accuracy) for refusing below zero."""
    false_refusal = float(((score < 0) & (y == 1)).sum() / max(1, (y == 1).sum()))
    refusal = float(((score < 0) & (y == 0)).sum() / max(1, (y == 0).sum()))
    return false_refusal, refusal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT / "corpus" / "dev.jsonl")
    parser.add_argument("--only", help="fit only on lines whose note starts with this")
    parser.add_argument("--penalty", type=float, default=0.001)
    parser.add_argument("--favour-answering", type=float, default=0.3)
    parser.add_argument(
        "--max-false-refusal",
        type=float,
        default=0.05,
        help="then raise the bias until at most this share of answerable questions is refused",
    )
    parser.add_argument(
        "--fixed",
        nargs="*",
        default=["unknown"],
        help="features kept out of the fit (weight printed as 0 / prior)",
    )
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.dev.read_text("utf-8").splitlines() if line.strip()]
    if args.only:
        rows = [r for r in rows if r["note"].startswith(args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(index_dir=Path(tmp), corpus_dir=ROOT / "corpus" / "articles")
        index_corpus(settings, progress=False)
        engine = Engine(settings)
        answers = [engine.ask(r["question"]) for r in rows]
    # answers without the model's features are decided before it (a question about an
    # article itself, by its dateline or byline in qa.about; one with no terms): left out
    ruled = [(r, a) for r, a in zip(rows, answers, strict=True) if "dense" not in a["evidence"]]
    for r, a in ruled:
        ok = a["refused"] != r["answerable"]
        print(f"decided before the refusal model ({'right' if ok else 'wrong'}): {r['question']}")
    rows = [r for r, a in zip(rows, answers, strict=True) if "dense" in a["evidence"]]
    evidence = [a["evidence"] for a in answers if "dense" in a["evidence"]]
    used = [f for f in FEATURES if f not in args.fixed]
    x = np.array([[e.get(f, 0.0) for f in used] for e in evidence])
    y = np.array([1.0 if r["answerable"] else 0.0 for r in rows])

    def fitted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        w = fit(x, y, args.penalty)
        w[-1] += args.favour_answering
        if args.max_false_refusal is not None:
            # the bias that refuses at most this share of the answerable questions in-sample
            scores = np.sort(np.hstack([x[y == 1], np.ones((int(y.sum()), 1))]) @ w)
            allowed = int(args.max_false_refusal * len(scores))
            w[-1] += max(0.0, -scores[allowed] + 1e-3)
        return w

    w = fitted(x, y)
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        loo.append(np.r_[x[i], 1.0] @ fitted(x[keep], y[keep]))
    train = np.hstack([x, np.ones((len(x), 1))]) @ w
    print(f"{len(y)} questions: {int(y.sum())} answerable, {int((1 - y).sum())} unanswerable")
    current = np.array([RefusalModel().confidence(e) for e in evidence])
    runs = (("current model", current), ("train", train), ("leave-one-out", np.array(loo)))
    for name, score in runs:
        false_refusal, refusal = rates(score, y)
        print(f"{name + ':':<15} false refusal {false_refusal:.3f}, refusal accuracy {refusal:.3f}")
    # features kept out of the fit keep the weight the model has now
    weights = dict(zip(FEATURES, RefusalModel().weights, strict=True))
    weights.update(zip(used, w[:-1], strict=True))
    print(
        "weights (FEATURES order):",
        "(" + ", ".join(f"{weights.get(f, 0.0):.2f}" for f in FEATURES) + ")",
        f"bias {w[-1]:.3f}",
    )


if __name__ == "__main__":
    main()

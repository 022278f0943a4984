"""How well the refusal evidence tells answerable from unanswerable questions, per source, on
the rows ``train/fit_refusal.py --rows FILE`` collected (the product's retrieval and the
reader's readings of every fit and held-out question):

    .venv/bin/python bench/refusal_separation.py ROWS.json [REFUSAL.json]

Why this exists: a refitted refusal model moves its threshold, so two readers' end-to-end
figures mix how well they separate the questions with where the line falls. The ROC AUC of
the chosen option's margin (the reader's own evidence) and of the refusal model's confidence
(all of it) does not depend on the threshold. Needs scikit-learn (the ``[train]`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.answer.refusal import MODEL_PATH, RefusalModel  # noqa: E402

# answerable and unanswerable questions of one distribution, scored together
SOURCES = {
    "shipped_b": ["shipped_b"],
    "shipped": ["shipped"],
    "reuters_b": ["reuters_b"],
    "reuters": ["reuters"],
    "bbc": ["bbc"],
    "squad-test": ["squad-test", "squad-test-dropped", "squad-test-adversarial"],
    "squad-test-written": ["squad-test-written"],
    "news-test-written": ["news-test-written"],
}


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", type=Path)
    ap.add_argument("model", type=Path, nargs="?", default=MODEL_PATH)
    args = ap.parse_args(argv)
    rows = json.loads(args.rows.read_text())
    model = RefusalModel.load(args.model)
    print(f"{'source':<18} {'answerable':>10} {'not':>5} {'margin AUC':>11} {'confidence AUC':>15}")
    for name, members in SOURCES.items():
        sel = [r for r in rows if r["source"] in members and r["options"]]
        labels = [int(r["answerable"]) for r in sel]
        if len(set(labels)) < 2:
            continue
        chosen = [max(r["options"], key=lambda o: model.choose(o["features"])) for r in sel]
        margin = roc_auc_score(labels, [o["features"]["margin"] for o in chosen])
        confidence = roc_auc_score(labels, [model.confidence(o["features"]) for o in chosen])
        print(
            f"{name:<18} {sum(labels):>10} {len(labels) - sum(labels):>5} "
            f"{margin:>11.3f} {confidence:>15.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

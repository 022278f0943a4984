"""The reader alone, on the SQuAD articles it was never trained on: how well it finds the
short answer when given the passage that holds it, and how well its margin tells that
passage from another one of the same article.

Why this exists: ``make eval`` scores the whole answerer (retrieval, choice, refusal), where a
better or worse reader is mixed with everything else. Comparing two reader models (a
retrained one against the shipped one, say) needs the reader's own figures, on the same
questions, in one run:

    .venv/bin/python bench/eval_reader.py [MODEL_DIR ...]   # default: the shipped reader

For each of the 12 held-out articles (calibration and test, ``qa.eval.squad.squad_split``),
up to 70 seeded questions: the article's paragraphs are cut into the product's passages, the
passage holding a gold answer is read (span EM / F1 against SQuAD's answers, the official
normalisation), and so is a random passage of the same article holding none; the margin AUC
is the share of (answer passage, other passage) pairs the margin orders right.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "train"))

from train_reader import chunk  # noqa: E402

from qa.answer.reader import MODEL_DIR, Reader  # noqa: E402
from qa.eval.evaluate import exact_match, normalize, token_f1  # noqa: E402
from qa.eval.squad import SQUAD_DIR, squad_split  # noqa: E402

PER_ARTICLE = 70
SEED = 0


def evaluate(model_dir: Path) -> dict:
    from tokenizers import Tokenizer

    reader = Reader(threads=2, model_dir=model_dir)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) - 2 for e in tok.encode_batch(texts)]

    split = squad_split()
    titles = split["test"] | split["calibration"]
    data = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())["data"]
    rng = random.Random(SEED)
    ems, f1s, pos, neg = [], [], [], []
    began = time.perf_counter()
    for article in data:
        if article["title"] not in titles:
            continue
        questions = []
        for para in article["paragraphs"]:
            ctx = para["context"]
            passages = [ctx[s:e] for s, e in chunk(ctx, count)]
            questions += [(q, passages) for q in para["qas"]]
        rng.shuffle(questions)
        every = [p for _, ps in questions for p in ps]
        for q, passages in questions[:PER_ARTICLE]:
            golds = [a["text"] for a in q["answers"]]

            def holds(p: str, golds: list[str] = golds) -> bool:
                return any(normalize(g) in normalize(p) for g in golds)

            own = [p for p in passages if holds(p)]
            if not own:
                continue
            other = rng.choice([p for p in every if not holds(p)])
            hit, miss = reader.read(q["question"], [own[0], other])
            span = own[0][hit.start : hit.end]
            ems.append(exact_match(span, golds))
            f1s.append(token_f1(span, golds))
            pos.append(hit.margin)
            neg.append(miss.margin)
    p, n = np.array(pos), np.array(neg)
    return {
        "questions": len(ems),
        "em": round(100 * float(np.mean(ems)), 1),
        "f1": round(100 * float(np.mean(f1s)), 1),
        "margin_auc": round(float(np.mean(p[:, None] > n[None, :])), 3),
        "seconds": round(time.perf_counter() - began, 1),
    }


def main(argv: list[str] | None = None) -> int:
    dirs = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [MODEL_DIR]
    print(f"{'reader':<40} {'questions':>9} {'EM':>6} {'F1':>6} {'margin AUC':>10} {'s':>6}")
    for d in dirs:
        r = evaluate(d)
        print(
            f"{d!s:<40} {r['questions']:>9} {r['em']:>6} {r['f1']:>6} "
            f"{r['margin_auc']:>10} {r['seconds']:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

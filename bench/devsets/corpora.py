"""The development corpora: fixed, seeded selections of Reuters-21578 and BBC News articles,
read in place from ``../shared/bench-data`` (research-only data: the project never copies the
article text in; only our own questions over them live here).

``python bench/devsets/corpora.py reuters OUT_DIR`` writes the selection as one ``.jsonl``
article file that ``qa index`` reads; the question files beside this module (written by a
separate session that never saw the system) name their evidence by that article ``id`` and
offsets, and ``dev_questions`` turns them into gold files.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "bench-data" / "news"
SEED = 14
_WRAP = re.compile(r"(?<!\n)\n(?![ \t\n])")  # Reuters hard-wraps lines inside a paragraph
_INDENT = re.compile(r"\n[ \t]+")


def reflow(body: str) -> str:
    """Reuters bodies wrap at ~65 columns and open paragraphs with an indent: join the
    wrapped lines and turn each indented line start into a paragraph break."""
    text = _WRAP.sub(" ", body.replace("\r", ""))
    text = _INDENT.sub("\n\n", text)
    text = re.sub(r"\s*\bReuter\s*$", "", text)  # the wire's sign-off
    return re.sub(r"[ \t]+", " ", text).strip()


def reuters_articles(n: int = 200) -> list[dict]:
    """``n`` news stories (800-4,000 characters of body, not a table), seeded sample."""
    rows = []
    with (DATA / "reuters21578.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            body = r.get("body") or ""
            if not 800 <= len(body) <= 4000 or r.get("text_type") != "NORM":
                continue
            paragraphs = reflow(body).split("\n\n")
            if sum(c.isdigit() for c in body) > 0.08 * len(body) or min(map(len, paragraphs)) < 40:
                continue  # tables of figures, lists
            rows.append(r)
    picked = sorted(random.Random(SEED).sample(rows, n), key=lambda r: r["newid"])
    return [
        {
            "id": f"reuters-{r['newid']}",
            "title": (r.get("title") or "").strip().title() or reflow(r["body"])[:60],
            "text": reflow(r["body"]),
            "source": "Reuters",
            "published": r.get("date", "")[:11],
        }
        for r in picked
    ]


def bbc_articles(n: int = 200) -> list[dict]:
    """``n`` BBC News stories, seeded sample across the five categories."""
    with (DATA / "bbc_news_2225.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    picked = sorted(random.Random(SEED).sample(rows, n), key=lambda r: r["id"])
    return [
        {"id": f"bbc-{r['id']}", "title": r["title"], "text": r["text"], "source": "BBC News"}
        for r in picked
    ]


def _squad() -> tuple[list[dict], list[dict]]:
    squad = DATA.parent / "squad"
    v1 = json.loads((squad / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    v2 = json.loads((squad / "dev-v2.0-cs224n-half.json").read_text(encoding="utf-8"))["data"]
    return v1, v2


def squad_articles() -> list[dict]:
    """Every SQuAD v1.1 dev paragraph as an article (the 2.0 half's are the same texts)."""
    v1, _ = _squad()
    return [
        {
            "id": f"squad-{a}-{p}",
            "title": article["title"].replace("_", " "),
            "text": para["context"],
            "source": "SQuAD",
        }
        for a, article in enumerate(v1)
        for p, para in enumerate(article["paragraphs"])
    ]


def squad_heldout_questions(answerable: int = 600, unanswerable: int = 300) -> list[dict]:
    """A seeded sample of the questions of the *test* held-out SQuAD articles (never seen in
    training the reader or fitting the refusal model) in the gold-file format: v1.1's
    answerable ones, with the sentence holding the answer as evidence, and the 2.0 half's
    unanswerable ones. Every answerer is scored on the same file, the old rules included."""
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    from qa.eval.squad import squad_split
    from qa.ingest.chunking import sentence_spans

    test = squad_split(DATA.parent / "squad")["test"]
    v1, v2 = _squad()
    rng = random.Random(SEED)
    yes, no = [], []
    for article in v1:
        if article["title"] not in test:
            continue
        for para in article["paragraphs"]:
            ctx = para["context"]
            spans = sentence_spans(ctx)
            for q in para["qas"]:
                a = q["answers"][0]
                s, e = a["answer_start"], a["answer_start"] + len(a["text"])
                inside = [(x, y) for x, y in spans if x <= s and e <= y]
                if not inside:
                    continue
                x, y = inside[0]
                yes.append(
                    {
                        "id": q["id"],
                        "question": q["question"],
                        "answers": list(dict.fromkeys(g["text"] for g in q["answers"])),
                        "evidence": [ctx[x:y]],
                        "type": "squad",
                    }
                )
    for article in v2:
        if article["title"] not in test:
            continue
        for para in article["paragraphs"]:
            for q in para["qas"]:
                if q.get("is_impossible"):
                    no.append(
                        {
                            "id": q["id"],
                            "question": q["question"],
                            "answers": [],
                            "evidence": [],
                            "type": "unanswerable",
                            "unanswerable": True,
                        }
                    )
    picked = rng.sample(yes, min(answerable, len(yes))) + rng.sample(no, min(unanswerable, len(no)))
    return sorted(picked, key=lambda q: q["id"])


CORPORA = {"reuters": reuters_articles, "bbc": bbc_articles, "squad": squad_articles}


def write(name: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for article in CORPORA[name]():
            f.write(json.dumps(article, ensure_ascii=False) + "\n")
    return path


def dev_questions(name: str, out: Path) -> Path:
    """A development question file (``reuters_a``, ``reuters_b``, ``bbc``, ``bbc_b``) in the
    gold-file format. The files here point at their evidence by article and offsets into the text
    ``write`` produces, so that no article text is kept in the repository; the quoted
    evidence is filled in from ``../shared`` here."""
    corpus = "bbc" if name.startswith("bbc") else "reuters"
    texts = {a["id"]: a["text"] for a in CORPORA[corpus]()}
    with (HERE / f"{name}.jsonl").open(encoding="utf-8") as f, out.open("w") as w:
        for line in f:
            q = json.loads(line)
            q["evidence"] = [texts[e["article"]][e["start"] : e["end"]] for e in q["evidence"]]
            w.write(json.dumps(q, ensure_ascii=False) + "\n")
    return out


def shipped_half(held_out: bool, out: Path) -> Path:
    """The held-out (even-numbered) or fitted (odd) half of ``shipped.jsonl``, the questions
    over the shipped articles; ``train/fit_refusal.py`` splits it the same way."""
    with (HERE / "shipped.jsonl").open(encoding="utf-8") as f, out.open("w") as w:
        for line in f:
            if (int(json.loads(line)["id"][2:]) % 2 == 0) == held_out:
                w.write(line)
    return out


def write_questions(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for q in squad_heldout_questions():
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    if sys.argv[1] in ("reuters_a", "reuters_b", "bbc", "bbc_b"):
        print(dev_questions(sys.argv[1], Path(sys.argv[2])))
    elif sys.argv[1] == "squad-questions":
        print(write_questions(Path(sys.argv[2])))
    else:
        print(write(sys.argv[1], Path(sys.argv[2])))

"""Merge the helper sessions' written news articles (``out_*.jsonl``, see ``PROMPT_4.md``)
into ``news_written.jsonl``: keeps well-formed articles; of their questions, keeps those of a
known kind whose answer (for an answerable one) occurs in the text verbatim, and drops
exact duplicates and the questions the writers flagged in their reports as possibly wrong.

Run: ``.venv/bin/python train/data/merge_news.py FOLDER`` (``/work/para5``, outside the
repository).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "news_written.jsonl"
# (article id, a phrase of the question) the writers flagged
FLAGGED = [
    ("3-11", "digital subscribers"),
    ("3-01", "recovered so far"),
    ("4-19", "staying in the shelters"),
    ("6-16", "Who bought"),
    ("6-20", "top-scored"),
    ("5-11", "heading"),
    ("5-16", "stop following"),
    ("2-16", "net profit or loss"),
    ("0-09", "strike at Marula"),
    ("11-22", "no-confidence vote before"),
    ("10-10", "homes were demolished"),
    ("9-08", "main opposition party hold"),
    ("8-16", "households in Sri Lanka"),
    ("8-17", "unbuilt projects"),
    ("13-08", "chytrid fungus first detected"),
    ("12-27", "Harvest at Ubud"),
]


def clean(article: dict, shard: str) -> dict | None:
    """The article with its good questions, or None when malformed."""
    text, aid = article.get("text"), str(article.get("aid", ""))
    if not isinstance(text, str) or len(text.split()) < 120 or not aid.startswith(f"{shard}-"):
        return None
    kept, seen = [], set()
    for q in article.get("questions", []):
        question = str(q.get("question", "")).strip()
        kind = q.get("kind")
        if (
            not question
            or question in seen
            or any(aid == a and phrase in question for a, phrase in FLAGGED)
        ):
            continue
        if kind == "answerable" and q.get("answer") and q["answer"] in text:
            kept.append({"question": question, "answer": q["answer"]})
        elif kind == "unanswerable":
            kept.append({"question": question, "tactic": q.get("tactic", "missing-detail")})
        else:
            continue
        seen.add(question)
    keys = ("aid", "beat", "title")
    return {**{k: article.get(k) for k in keys}, "text": text, "questions": kept}


def main(folder: str) -> int:
    rows, dropped = [], 0
    for path in sorted(Path(folder).glob("out_*.jsonl")):
        shard = path.stem.split("_")[1]
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = clean(json.loads(line), shard)
            except (ValueError, AttributeError):
                row = None
            if row is None:
                dropped += 1
            else:
                rows.append(row)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    qs = [q for r in rows for q in r["questions"]]
    answerable = sum("answer" in q for q in qs)
    print(
        f"{len(rows)} articles ({dropped} dropped), {answerable} answerable and "
        f"{len(qs) - answerable} unanswerable questions -> {OUT.name}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))

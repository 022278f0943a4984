"""Merge the helper sessions' written unanswerable questions (``out_*.jsonl``, see
``PROMPT.md``) into ``squad_unanswerable.jsonl``: keeps well-formed lines whose paragraph
exists, drops exact duplicates, questions identical to one of the paragraph's own
(answerable) SQuAD questions, and the lines the writing sessions themselves flagged as
possibly answerable or ill-formed in their reports.

Run: ``.venv/bin/python train/data/merge_written.py FOLDER_WITH_OUT_FILES``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from qa.eval.squad import SQUAD_DIR  # noqa: E402

V1 = SQUAD_DIR / "dev-v1.1.json"
OUT = Path(__file__).with_name("squad_unanswerable.jsonl")

# (paragraph, a phrase of the question) and (file, line numbers) the writers flagged
FLAGGED = [
    ("Martin_Luther#34", "Karlstadt"),
    ("Martin_Luther#46", "Bainton"),
    ("Martin_Luther#28", "Here I stand"),
    ("Teacher#30", "chemistry teacher"),
    ("American_Broadcasting_Company#78", "Jennings"),
]
FLAGGED_LINES = {"out_6.jsonl": {41, 44, 100, 176, 180, 238, 246}}


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def main(folder: Path) -> int:
    own: dict[str, set[str]] = {}
    for a in json.loads(V1.read_text(encoding="utf-8"))["data"]:
        for i, p in enumerate(a["paragraphs"]):
            own[f"{a['title']}#{i}"] = {_norm(q["question"]) for q in p["qas"]}
    kept, seen, dropped, bad = [], set(), 0, 0
    for path in sorted(folder.glob("out_*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if number in FLAGGED_LINES.get(path.name, ()):
                dropped += 1
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            question = " ".join(str(row.get("question", "")).split())
            pid = row.get("pid")
            key = (pid, _norm(question))
            if pid not in own or not question or key in seen:
                bad += 1
                continue
            if key[1] in own[pid] or any(pid == p and w in question for p, w in FLAGGED):
                dropped += 1
                continue
            seen.add(key)
            kept.append({"pid": pid, "question": question, "tactic": row.get("tactic", "")})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), "utf-8")
    print(f"{len(kept)} kept, {dropped} dropped, {bad} malformed or duplicate -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))

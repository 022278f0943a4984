"""Merge the helper sessions' written questions (``out_*.jsonl``, see ``PROMPT.md`` and
``PROMPT_2.md``) into one file of this folder: keeps well-formed lines whose paragraph
exists (and, for an answerable one, whose answer is in the paragraph verbatim), drops exact
duplicates, questions identical to one of the paragraph's own SQuAD questions, and the
lines the writing sessions themselves flagged as possibly wrong or ill-formed in their
reports.

Run: ``.venv/bin/python train/data/merge_written.py OUT_NAME FOLDER_OR_OUT_FILE ...``
(``squad_unanswerable.jsonl`` from the first batch's folder, ``squad_written_2.jsonl`` from
the second's and third's; of the fourth, ``squad_written_3.jsonl`` from the training
articles' shards and ``squad_heldout_written.jsonl`` from the held-out articles').
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
# by output file: (paragraph, a phrase of the question) and (file, line numbers) the
# writers flagged
FLAGGED = {
    "squad_unanswerable.jsonl": [
        ("Martin_Luther#34", "Karlstadt"),
        ("Martin_Luther#46", "Bainton"),
        ("Martin_Luther#28", "Here I stand"),
        ("Teacher#30", "chemistry teacher"),
        ("American_Broadcasting_Company#78", "Jennings"),
    ],
    "squad_written_2.jsonl": [
        ("Teacher#17", "paddle"),
        ("Teacher#24", "Sudbury proponents"),
        ("Martin_Luther#70", "Swiss cities"),
        ("American_Broadcasting_Company#73", "theme park"),
        ("American_Broadcasting_Company#75", "never preempted"),
        ("Newcastle_upon_Tyne#2", "never visited"),
        ("Victoria_and_Albert_Museum#49", "absent"),
        ("Victoria_and_Albert_Museum#54", "absent"),
        ("Southern_California#36", "Chivas USA"),
        ("Sky_(United_Kingdom)#12", "successfully received"),
        ("Martin_Luther#92", "Mansfeld count opposed"),
        ("Southern_California#22", "exceeds five million"),
        ("Civil_disobedience#9", "Christian Bay"),
        ("Construction#17", "complete design"),
        ("Intergovernmental_Panel_on_Climate_Change#5", "smallest number"),
        ("Prime_number#21", "minimum possible period"),
        ("Nikola_Tesla#73", "lose weight"),
        ("Nikola_Tesla#68", "maximum number of patents"),
        ("Apollo_program#24", "direct ascent"),
        ("Fresno,_California#19", "northwest"),
        ("French_and_Indian_War#37", "1757 campaign"),
        ("Harvard_University#22", "never managed to top"),
        ("French_and_Indian_War#28", "fail to strengthen"),
        ("Immune_system#4", "In plants"),
        ("Computational_complexity_theory#7", "graph isomorphism"),
        ("Computational_complexity_theory#33", "inefficient algorithms"),
        ("French_and_Indian_War#6", "official declaration of war"),
        ("European_Union_law#2", "1957"),
        ("Steam_engine#9", "dominant source of power"),
    ],
    "squad_written_3.jsonl": [
        ("Warsaw#7", "rooms for surgery"),  # answer "10": "10-floor" comes first
        ("American_Broadcasting_Company#54", "Duel"),
        ("Newcastle_upon_Tyne#22", "bairn"),
        ("Geology#1", "asthenosphere"),
        ("American_Broadcasting_Company#43", "overtake"),
        ("Teacher#20", "originate"),
        ("Martin_Luther#33", "Little Horn"),
        ("Huguenot#26", "massacre"),
        ("Southern_California#16", "snowfall"),
        ("American_Broadcasting_Company#96", "Start Here"),
        ("Harvard_University#3", "printing press"),
        ("Steam_engine#37", "separate condenser"),
        ("1973_oil_crisis#7", "settlement"),
        ("1973_oil_crisis#2", "float the pound"),
    ],
    "squad_heldout_written.jsonl": [
        ("Normans#10", "Fatimid"),
        ("Economic_inequality#21", "scored worst"),
        ("University_of_Chicago#24", "Student Government"),
        ("Imperialism#25", "Vietnam"),
        ("Imperialism#32", "free trade"),
        ("Packet_switching#9", "AppleTalk"),
        ("Islamism#5", "how much money"),
        ("Kenya#14", "current president"),
    ],
}
FLAGGED_LINES = {"squad_unanswerable.jsonl": {"out_6.jsonl": {41, 44, 100, 176, 180, 238, 246}}}


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def main(name: str, folders: list[Path]) -> int:
    """Merge the ``out_*.jsonl`` files of these folders (or these files) into ``name``."""
    out = Path(__file__).with_name(name)
    flagged, flagged_lines = FLAGGED.get(name, []), FLAGGED_LINES.get(name, {})
    own: dict[str, set[str]] = {}
    context: dict[str, str] = {}
    for a in json.loads(V1.read_text(encoding="utf-8"))["data"]:
        for i, p in enumerate(a["paragraphs"]):
            own[f"{a['title']}#{i}"] = {_norm(q["question"]) for q in p["qas"]}
            context[f"{a['title']}#{i}"] = p["context"]
    kept, seen, dropped, bad = [], set(), 0, 0
    paths = [p for f in folders for p in (sorted(f.glob("out_*.jsonl")) if f.is_dir() else [f])]
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if number in flagged_lines.get(path.name, ()):
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
            answer = row.get("answer") if row.get("kind") == "answerable" else None
            if pid not in own or not question or key in seen:
                bad += 1
                continue
            if answer is not None and (not isinstance(answer, str) or answer not in context[pid]):
                bad += 1  # an answer must be a span of the paragraph, verbatim
                continue
            if key[1] in own[pid] or any(pid == p and w in question for p, w in flagged):
                dropped += 1
                continue
            seen.add(key)
            if answer is None:
                kept.append({"pid": pid, "question": question, "tactic": row.get("tactic", "")})
            else:
                kept.append({"pid": pid, "question": question, "answer": answer})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), "utf-8")
    print(f"{len(kept)} kept, {dropped} dropped, {bad} malformed or duplicate -> {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: merge_written.py OUT_NAME FOLDER_OR_OUT_FILE ...")
    raise SystemExit(main(sys.argv[1], [Path(a) for a in sys.argv[2:]]))

"""The written news articles of ``train/data/news_written.jsonl`` (see that folder's
README): short fictional wire stories written for this project, each with answerable
paraphrased questions and unanswerable ones (a detail the story leaves out, a near-topic
question). Why: SQuAD is encyclopedia text, while the product reads news (datelines,
attributed quotes, officials and figures), and its largest losses were on news.

Split by shard, as the writers worked (16 shards of up to 30 stories, two rounds of 8): two
shards (6 and 14) are a source of the refusal fit (``news-written``), two (7 and 15) are held
out for figures (``news-test-written``), the other twelve train the reader.
"""

from __future__ import annotations

import json
from pathlib import Path

NEWS_WRITTEN = Path(__file__).resolve().parent / "data" / "news_written.jsonl"
PARTS = {
    "train": (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13),
    "calibration": (6, 14),
    "test": (7, 15),
}


def part_of(aid: str) -> str:
    """The part an article belongs to, by the shard in its id (``"<shard>-<n>"``)."""
    shard = int(aid.split("-", 1)[0])
    return next(part for part, shards in PARTS.items() if shard in shards)


def read_news(part: str | None = None, path: Path = NEWS_WRITTEN) -> list[dict]:
    """The articles (``{"aid", "beat", "title", "text", "questions"}``) of one part, or all;
    none when the file is absent (training then runs on SQuAD alone)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if part is None or part_of(r["aid"]) == part]

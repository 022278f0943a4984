"""SQuAD v1.1 / v2.0 files as an outside benchmark: every paragraph becomes an article,
every question a gold item whose evidence is its own paragraph."""

from __future__ import annotations

import json
import random
from pathlib import Path

from llama_index.core.schema import Document

from qa.errors import QAError
from qa.eval.evaluate import GoldItem
from qa.ingest.reading import make_document

SQUAD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "bench-data" / "squad"
SPLIT_SEED = 14


def squad_split(squad_dir: Path = SQUAD_DIR, seed: int = SPLIT_SEED) -> dict[str, set[str]]:
    """Article titles of the SQuAD dev files, split for the trained answerer: ``train`` (the
    reader learns from them), ``calibration`` (the refusal model is fitted on them) and
    ``test`` (figures only). Held out: 6 of the 16 SQuAD 2.0-half articles (for the SQuAD
    2.0 figures) and 6 articles only in v1.1, half of each to calibration. Seeded, so the
    training scripts and ``qa eval --heldout`` agree."""
    v1 = [a["title"] for a in json.loads((squad_dir / "dev-v1.1.json").read_text())["data"]]
    v2 = [
        a["title"]
        for a in json.loads((squad_dir / "dev-v2.0-cs224n-half.json").read_text())["data"]
    ]
    rng = random.Random(seed)
    held_v2 = rng.sample(sorted(v2), 6)
    held_v1 = rng.sample(sorted(set(v1) - set(v2)), 6)
    held = set(held_v2) | set(held_v1)
    return {
        "train": set(v1) - held,
        "calibration": set(held_v2[:3]) | set(held_v1[:3]),
        "test": set(held_v2[3:]) | set(held_v1[3:]),
    }


def paragraph_id(article: int, paragraph: int) -> str:
    """The document id of a SQuAD paragraph: its article's and its own position in the file,
    so that questions from elsewhere (the written ones of ``train/data``) can point at it."""
    return f"squad-{article}-{paragraph}"


def load_squad(
    path: Path, limit: int | None, seed: int, titles: set[str] | None = None
) -> tuple[list[Document], list[GoldItem], str]:
    """(paragraph documents, a seeded sample of questions, the file's version). With
    ``titles``, only those articles' questions are asked (every paragraph is indexed)."""
    if not path.is_file():
        raise QAError(f"SQuAD file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        articles = data["data"]
        version = str(data.get("version", "?"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise QAError(f"{path} is not a SQuAD JSON file (expected {{'data': [...]}})") from None
    docs: list[Document] = []
    items: list[GoldItem] = []
    try:
        for a, article in enumerate(articles):
            raw_title = str(article.get("title", f"article {a}"))
            title = raw_title.replace("_", " ")
            for p, para in enumerate(article["paragraphs"]):
                pid = paragraph_id(a, p)
                docs.append(
                    make_document(
                        pid, para["context"], title=title, path=pid, root=str(path), source="SQuAD"
                    )
                )
                if titles is not None and raw_title not in titles:
                    continue
                for qa in para["qas"]:
                    impossible = bool(qa.get("is_impossible", False))
                    answers = list(dict.fromkeys(x["text"] for x in qa.get("answers", [])))
                    items.append(
                        GoldItem(
                            id=str(qa["id"]),
                            question=qa["question"],
                            answers=[] if impossible else answers,
                            evidence=[],
                            type="unanswerable" if impossible else "squad",
                            unanswerable=impossible,
                            evidence_article=pid,
                            title=raw_title,
                        )
                    )
    except (KeyError, TypeError, AttributeError) as exc:
        raise QAError(f"{path}: unexpected SQuAD structure (missing {exc})") from None
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return docs, items, version

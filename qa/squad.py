"""SQuAD v1.1 / v2.0 files as an outside benchmark: every paragraph becomes an article,
every question a gold item whose evidence is its own paragraph."""

from __future__ import annotations

import json
import random
from pathlib import Path

from llama_index.core.schema import Document

from qa.errors import QAError
from qa.evaluate import GoldItem
from qa.ingest import make_document


def load_squad(
    path: Path, limit: int | None, seed: int
) -> tuple[list[Document], list[GoldItem], str]:
    """(paragraph documents, a seeded sample of questions, the file's version)."""
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
            title = str(article.get("title", f"article {a}")).replace("_", " ")
            for p, para in enumerate(article["paragraphs"]):
                pid = f"squad-{a}-{p}"
                docs.append(
                    make_document(
                        pid, para["context"], title=title, path=pid, root=str(path), source="SQuAD"
                    )
                )
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
                        )
                    )
    except (KeyError, TypeError, AttributeError) as exc:
        raise QAError(f"{path}: unexpected SQuAD structure (missing {exc})") from None
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return docs, items, version

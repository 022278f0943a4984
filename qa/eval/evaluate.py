"""Evaluation: run a gold question set through exactly the pipeline the chat uses and score
retrieval, answers, citations and refusals; optionally beside baselines.

Gold file (JSONL, one question a line):
``{"id", "question", "answers": [str], "evidence": [str], "type", "unanswerable"?, "history"?}``.
A passage *supports* a question when it contains one of its evidence snippets; matching
ignores case, whitespace runs, curly versus straight quotes and dash kinds. SQuAD questions
(``qa.eval.squad``) instead name their own paragraph as evidence (``evidence_article``).
"""

from __future__ import annotations

import json
import re
import string
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import QAError

_DASHES = re.compile(r"[\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d]")
_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u00a0": " ",
    }
)

METRIC_KEYS = (
    "hit_at_k",
    "mrr",
    "answer_accuracy",
    "citation_precision",
    "citation_recall",
    "refusal_accuracy",
    "false_refusal_rate",
    "latency_ms_p50",
    "latency_ms_p95",
    "n_questions",
    "n_answerable",
    "n_unanswerable",
)
#: SQuAD 2.0's own figures, for an answerer that reports its short answer (``answer_span``):
#: exact match and token F1 of the span against the gold answers (best over them), over all
#: questions, the answerable ones (HasAns) and the unanswerable ones (NoAns: 1 if refused).
SQUAD_KEYS = ("em", "f1", "has_ans_em", "has_ans_f1", "no_ans_acc")
TARGETS = {
    "hit_at_k": [">=", 0.95],
    "answer_accuracy": [">=", 0.90],
    "citation_precision": [">=", 0.90],
    "refusal_accuracy": [">=", 0.80],
    "false_refusal_rate": ["<=", 0.05],
}


def normalize(text: str) -> str:
    """Case, whitespace, quote and dash differences removed (the matching rule)."""
    return _SPACE.sub(" ", _DASHES.sub("-", text.translate(_QUOTES))).strip().lower()


@dataclass
class GoldItem:
    id: str
    question: str
    answers: list[str]
    evidence: list[str]
    type: str
    unanswerable: bool = False
    history: list[dict] = field(default_factory=list)
    evidence_article: str | None = None  # SQuAD: the question's own paragraph
    title: str | None = None  # SQuAD: the question's article

    def supported_by(self, passage_text: str, article_id: str) -> bool:
        if self.evidence_article is not None:
            return article_id == self.evidence_article
        text = normalize(passage_text)
        return any(normalize(e) in text for e in self.evidence)

    def answered_by(self, answer: str) -> bool:
        text = normalize(answer)
        return any(normalize(a) in text for a in self.answers if a.strip())


# The official SQuAD evaluation's normalisation and scores (evaluate-v2.0.py), restated: the
# script is not a package, and these ten lines are all of it that is needed.
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def squad_normalize(text: str) -> list[str]:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return _ARTICLES.sub(" ", text).split()


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    pred = squad_normalize(prediction)
    best = 0.0
    for gold in golds:
        ref = squad_normalize(gold)
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def _parse_item(obj: object) -> GoldItem:
    """One gold line, or ValueError saying what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "question", "type"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string")
    for key in ("answers", "evidence"):
        if not isinstance(obj.get(key), list) or not all(isinstance(x, str) for x in obj[key]):
            raise ValueError(f"'{key}' must be a list of strings")
    unanswerable = obj.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise ValueError("'unanswerable' must be true or false")
    if unanswerable and (obj["answers"] or obj["evidence"]):
        raise ValueError("an unanswerable question has empty 'answers' and 'evidence'")
    if not unanswerable and not (obj["answers"] and obj["evidence"]):
        raise ValueError("an answerable question needs 'answers' and 'evidence'")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(t, dict)
        and t.get("role") in ("user", "assistant")
        and isinstance(t.get("content"), str)
        for t in history
    ):
        raise ValueError("'history' must be a list of {role: user|assistant, content: str}")
    return GoldItem(
        obj["id"],
        obj["question"],
        obj["answers"],
        obj["evidence"],
        obj["type"],
        unanswerable,
        history,
    )


def read_gold(
    path: Path, corpus_texts: Sequence[str] | None = None
) -> tuple[list[GoldItem], list[str]]:
    """Items and the problems found, each naming its line. Evidence is checked against
    ``corpus_texts`` when given."""
    if not path.is_file():
        raise QAError(f"gold file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise QAError(f"gold file {path} is not UTF-8 text") from None
    corpus = [normalize(t) for t in corpus_texts] if corpus_texts is not None else None
    items, problems, seen = [], [], set()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            item = _parse_item(json.loads(line))
        except ValueError as exc:
            reason = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            problems.append(f"{where}: {reason}")
            continue
        if item.id in seen:
            problems.append(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        if corpus is not None:
            for snippet in item.evidence:
                if not any(normalize(snippet) in text for text in corpus):
                    problems.append(f"{where}: evidence not found in the corpus: {snippet[:80]!r}")
        items.append(item)
    return items, problems


# -- scoring -------------------------------------------------------------------------------
def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def score(
    items: Sequence[GoldItem],
    results: Sequence[dict],
    latencies: Sequence[float],
    answers: bool = True,
) -> dict[str, Any]:
    """Metrics and the per-question table for answers in the engine's JSON shape.
    ``answers=False`` for retrieval-only systems: answer metrics are null."""
    per_question = []
    has_em, has_f1, no_ans = [], [], []
    spans = answers and any("answer_span" in r for r in results)
    hits, rr, correct, refused_ok, false_ref = [], [], [], [], []
    cite_ok, cite_recall = [], []
    for item, res, ms in zip(items, results, latencies, strict=True):
        hit_rank = next(
            (r["rank"] for r in res["retrieved"] if item.supported_by(r["text"], r["article_id"])),
            None,
        )
        refused = bool(res.get("refused"))
        row = {
            "id": item.id,
            "question": item.question,
            "answer": res.get("answer"),
            "refused": refused if answers else None,
            "hit_rank": hit_rank,
            "correct": None,
            "citations_ok": None,
            "latency_ms": round(ms, 2),
            "type": item.type,
            "unanswerable": item.unanswerable,
            "failure": None,
        }
        if spans:
            span = (res.get("answer_span") or {}).get("text", "") if not refused else ""
            row["span"] = span if not refused else None
            if item.unanswerable:
                no_ans.append(float(refused))
            else:
                has_em.append(exact_match(span, item.answers) if span else 0.0)
                has_f1.append(token_f1(span, item.answers) if span else 0.0)
        if item.unanswerable:
            if answers:
                refused_ok.append(refused)
                row["correct"] = refused
                if not refused:
                    row["failure"] = "answered an unanswerable question"
        else:
            hits.append(hit_rank is not None)
            rr.append(1.0 / hit_rank if hit_rank else 0.0)
            if answers:
                is_correct = not refused and item.answered_by(res.get("answer") or "")
                correct.append(is_correct)
                false_ref.append(refused)
                supporting = [
                    item.supported_by(c["text"], c["article_id"]) for c in res["citations"]
                ]
                cite_ok += [
                    s or item.answered_by(c["text"])
                    for s, c in zip(supporting, res["citations"], strict=True)
                ]
                row["correct"] = is_correct
                row["citations_ok"] = any(supporting)
                if is_correct:
                    cite_recall.append(any(supporting))
                if refused:
                    row["failure"] = "false refusal" + ("" if hit_rank else " (missed retrieval)")
                elif not is_correct:
                    row["failure"] = "wrong answer" + ("" if hit_rank else " (missed retrieval)")
            elif hit_rank is None:
                row["failure"] = "missed retrieval"
        per_question.append(row)
    lat = np.asarray(latencies, dtype=float)
    metrics = {
        "hit_at_k": _share(hits),
        "mrr": round(float(np.mean(rr)), 4) if rr else None,
        "answer_accuracy": _share(correct) if answers else None,
        "citation_precision": _share(cite_ok) if answers else None,
        "citation_recall": _share(cite_recall) if answers else None,
        "refusal_accuracy": _share(refused_ok) if answers else None,
        "false_refusal_rate": _share(false_ref) if answers else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "n_questions": len(items),
        "n_answerable": sum(not i.unanswerable for i in items),
        "n_unanswerable": sum(i.unanswerable for i in items),
    }
    if spans:
        every = len(has_em) + len(no_ans)

        def mean(xs: list[float]) -> float | None:
            return round(float(np.mean(xs)), 4) if xs else None

        metrics |= {
            "em": round((sum(has_em) + sum(no_ans)) / every, 4) if every else None,
            "f1": round((sum(has_f1) + sum(no_ans)) / every, 4) if every else None,
            "has_ans_em": mean(has_em),
            "has_ans_f1": mean(has_f1),
            "no_ans_acc": mean(no_ans),
        }
    return {"metrics": metrics, "per_question": per_question}


def run(
    items: Sequence[GoldItem],
    ask: Callable[[GoldItem], dict],
    *,
    answers: bool = True,
    progress: bool = True,
    desc: str = "evaluating",
) -> dict[str, Any]:
    """Ask every question (timed) and score the results."""
    from tqdm import tqdm

    results, latencies = [], []
    for item in tqdm(items, desc=desc, unit="q", disable=not progress, dynamic_ncols=True):
        t0 = time.perf_counter()
        results.append(ask(item))
        latencies.append((time.perf_counter() - t0) * 1000)
    return score(items, results, latencies, answers=answers)


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _format_metric(key: str, value: object) -> str:
    if value is None:
        return "n/a"
    if key.startswith("latency"):
        return f"{value:.1f} ms"
    if key.startswith("n_"):
        return str(value)
    return f"{value:.3f}"


def format_eval(result: dict[str, Any]) -> str:
    """Metrics side by side (ours first), then what failed and why."""
    columns = [("hybrid (ours)", result["metrics"])] + [
        (c["name"], c["metrics"]) for c in result.get("compare", []) if c["name"] != "hybrid (ours)"
    ]
    targets = result.get("targets", {})
    header = ["metric", *[name for name, _ in columns]] + (["target"] if targets else [])
    rows = [header]
    for key in METRIC_KEYS:
        row = [key, *[_format_metric(key, m.get(key)) for _, m in columns]]
        if targets:
            op, bound = targets.get(key, ("", None))
            row.append(f"{op} {bound}" if bound is not None else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [result["title"], ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    failed = [q for q in result["per_question"] if q["failure"]]
    lines += ["", f"{len(failed)} of {len(result['per_question'])} questions failed"]
    for q in failed[:40]:
        lines.append(f"  {q['id']:>10}  {q['failure']:<38}  {q['question'][:70]}")
    if len(failed) > 40:
        lines.append(f"  … {len(failed) - 40} more (see --json / --report)")
    return "\n".join(lines)

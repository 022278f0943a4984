"""Evaluation: gold-file validation, the matching rule, the metrics, and `qa eval` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.errors import QAError
from qa.eval.evaluate import GoldItem, normalize, read_gold, score
from tests.conftest import CORPUS, ROOT, run_qa

GOLD = ROOT / "corpus" / "gold.jsonl"


def _corpus_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))]


def test_shipped_gold_set_is_valid_and_big_enough():
    items, problems = read_gold(GOLD, _corpus_texts())
    assert problems == []  # every evidence snippet is in corpus/ verbatim (modulo the rule)
    answerable = [i for i in items if not i.unanswerable]
    assert len(items) >= 60
    assert sum(i.unanswerable for i in items) >= 10
    assert sum(bool(i.history) for i in items) >= 6
    texts = [normalize(t) for t in _corpus_texts()]
    for item in answerable:
        for snippet in item.evidence:
            assert any(normalize(snippet) in t for t in texts), (item.id, snippet)


def test_matching_ignores_case_space_quotes_and_dashes():
    assert normalize("China’s  “Silk Road” – belt") == normalize('china\'s "silk road" - belt')
    item = GoldItem("x", "q?", ["38 billion cubic meters"], ["Russia’s state-owned Gazprom"], "t")
    assert item.supported_by("…RUSSIA'S   state–owned gazprom…", "a")
    assert item.answered_by("It is 38 Billion  cubic meters [1].")


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_bad_lines_are_named(tmp_path):
    good = {"id": "a", "question": "q?", "answers": ["x"], "evidence": ["CICA"], "type": "t"}
    gold = _write(
        tmp_path / "g.jsonl",
        [
            good,
            "{not json",
            {**good, "id": "b", "answers": "x"},
            {**good, "id": "c", "evidence": ["a sentence that is in no article"]},
            {**good, "id": "a"},
            {
                "id": "d",
                "question": "q?",
                "answers": ["x"],
                "evidence": [],
                "type": "t",
                "unanswerable": True,
            },
        ],
    )
    _, problems = read_gold(gold, _corpus_texts())
    assert problems == [
        "g.jsonl line 2: not valid JSON",
        "g.jsonl line 3: 'answers' must be a list of strings",
        "g.jsonl line 4: evidence not found in the corpus: 'a sentence that is in no article'",
        "g.jsonl line 5: duplicate id 'a'",
        "g.jsonl line 6: an unanswerable question has empty 'answers' and 'evidence'",
    ]
    with pytest.raises(QAError, match="does not exist"):
        read_gold(tmp_path / "missing.jsonl")


def _answer(text, refused=False, cited=(), retrieved=()):
    return {
        "answer": text,
        "refused": refused,
        "citations": [{"text": t, "article_id": "a"} for t in cited],
        "retrieved": [
            {"text": t, "article_id": "a", "rank": i + 1} for i, t in enumerate(retrieved)
        ],
    }


def test_metrics_on_a_known_case():
    items = [
        GoldItem("1", "q1", ["38 billion"], ["provide China with 38 billion"], "numeric"),
        GoldItem("2", "q2", ["1992"], ["initiative in 1992"], "date"),
        GoldItem("3", "q3", ["Varyag"], ["cruiser Varyag"], "name"),
        GoldItem("4", "q4", [], [], "unanswerable", unanswerable=True),
        GoldItem("5", "q5", [], [], "unanswerable", unanswerable=True),
    ]
    results = [
        # right, cites the supporting passage found at rank 2
        _answer(
            "38 billion [1]",
            cited=["will provide China with 38 billion cubic"],
            retrieved=["other", "will provide China with 38 billion cubic"],
        ),
        # wrong answer, one wrong citation; the evidence was retrieved at rank 1
        _answer("in 2014 [1]", cited=["nothing useful"], retrieved=["its initiative in 1992"]),
        # refused although answerable, and retrieval missed
        _answer("The articles…", refused=True, retrieved=["nothing"]),
        _answer("The articles…", refused=True),  # correctly refused
        _answer("something [1]", cited=["x"]),  # answered an unanswerable one
    ]
    out = score(items, results, [10.0, 20.0, 30.0, 40.0, 50.0])
    m = out["metrics"]
    assert m["hit_at_k"] == round(2 / 3, 4)
    assert m["mrr"] == round((0.5 + 1.0 + 0.0) / 3, 4)
    assert m["answer_accuracy"] == round(1 / 3, 4)
    assert m["citation_precision"] == 0.5  # two citations on answerable questions, one good
    assert m["citation_recall"] == 1.0
    assert m["refusal_accuracy"] == 0.5
    assert m["false_refusal_rate"] == round(1 / 3, 4)
    assert m["latency_ms_p50"] == 30.0
    assert (m["n_questions"], m["n_answerable"], m["n_unanswerable"]) == (5, 3, 2)
    failures = [q["failure"] for q in out["per_question"]]
    assert failures == [
        None,
        "wrong answer",
        "false refusal (missed retrieval)",
        None,
        "answered an unanswerable question",
    ]


def test_empty_and_unanswerable_only_sets_give_nulls():
    empty = score([], [], [])["metrics"]
    assert empty["hit_at_k"] is None and empty["latency_ms_p50"] is None
    assert empty["n_questions"] == 0
    only = score(
        [GoldItem("1", "q", [], [], "u", unanswerable=True)], [_answer("x", refused=True)], [5.0]
    )["metrics"]
    assert only["refusal_accuracy"] == 1.0
    assert only["hit_at_k"] is None and only["answer_accuracy"] is None
    assert only["citation_precision"] is None and only["false_refusal_rate"] is None


def test_qa_eval_end_to_end(tmp_path):
    gold = _write(
        tmp_path / "mini.jsonl",
        [
            {
                "id": "m1",
                "question": "How many member nations does CICA have?",
                "answers": ["26"],
                "evidence": ["composed of 26 member nations"],
                "type": "numeric",
            },
            {
                "id": "m2",
                "question": "Who won the 2014 World Cup?",
                "answers": [],
                "evidence": [],
                "type": "unanswerable",
                "unanswerable": True,
            },
            {
                "id": "m3",
                "question": "How much is it worth?",
                "answers": ["$400 billion"],
                "evidence": ["the deal is worth $400 billion"],
                "type": "follow-up",
                "history": [
                    {"role": "user", "content": "What gas deal did Russia sign?"},
                    {"role": "assistant", "content": "A 30-year contract [1]."},
                ],
            },
        ],
    )
    out, report = tmp_path / "r.json", tmp_path / "r.md"
    env = {"QA_INDEX_DIR": str(tmp_path / "index")}
    proc = run_qa(
        "eval",
        str(gold),
        "--compare",
        "--quiet",
        "--json",
        str(out),
        "--report",
        str(report),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["metrics"]["n_questions"] == 3
    assert result["metrics"]["hit_at_k"] == 1.0
    assert result["metrics"]["refusal_accuracy"] == 1.0
    assert [c["name"] for c in result["compare"]] == [
        "hybrid (ours)",
        "bm25 alone",
        "dense alone",
        "LlamaIndex default",
    ]
    assert result["compare"][3]["metrics"]["answer_accuracy"] is None
    assert result["config"]["retriever"] == "hybrid" and result["config"]["git_revision"]
    assert {q["id"] for q in result["per_question"]} == {"m1", "m2", "m3"}
    assert "hybrid (ours)" in proc.stdout and "LlamaIndex default" in proc.stdout
    assert report.is_file() and (tmp_path / "r-img").is_dir()


def test_qa_eval_bad_input(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", ["{oops"])
    env = {"QA_INDEX_DIR": str(tmp_path / "index")}
    proc = run_qa("eval", str(bad), env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: bad.jsonl line 1: not valid JSON"
    check = run_qa("eval", str(bad), "--check", env=env)
    assert check.returncode == 2 and "line 1" in check.stdout
    assert run_qa("eval", "--check", env=env).returncode == 0
    missing = run_qa("eval", "--squad", str(tmp_path / "nope.json"), env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    notsquad = _write(tmp_path / "x.json", ['{"hello": 1}'])
    proc = run_qa("eval", "--squad", str(notsquad), env=env)
    assert proc.returncode == 2 and "not a SQuAD JSON file" in proc.stderr


def test_squad_sample_end_to_end(tmp_path):
    squad = {
        "version": "v2.0",
        "data": [
            {
                "title": "Gas_deal",
                "paragraphs": [
                    {
                        "context": "Gazprom will supply China with 38 billion cubic meters "
                        "of gas a year.",
                        "qas": [
                            {
                                "id": "s1",
                                "question": "How much gas will Gazprom supply to China?",
                                "answers": [
                                    {"text": "38 billion cubic meters", "answer_start": 31}
                                ],
                            },
                            {
                                "id": "s2",
                                "question": "Who won the 1998 World Cup?",
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    },
                    {
                        "context": "The naval exercise took place in the East China Sea in May.",
                        "qas": [
                            {
                                "id": "s3",
                                "question": "Where did the naval exercise take place?",
                                "answers": [{"text": "East China Sea", "answer_start": 33}],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad))
    out = tmp_path / "s.json"
    proc = run_qa(
        "eval",
        "--squad",
        str(path),
        "--limit",
        "3",
        "--quiet",
        "--json",
        str(out),
        env={"QA_INDEX_DIR": str(tmp_path / "unused")},
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())["metrics"]
    assert (m["n_answerable"], m["n_unanswerable"]) == (2, 1)
    assert m["hit_at_k"] == 1.0
    assert not (tmp_path / "unused").exists()  # SQuAD runs in a temporary index

"""The evaluation report: Markdown tables, charts, escaping, and the command line's errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qa.eval.report import main, md_escape, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PIPE_QUESTION = "Who said | and why?\nA second line"


def _metrics(**overrides: object) -> dict:
    metrics = {
        "hit_at_k": 0.96,
        "mrr": 0.85,
        "answer_accuracy": 0.875,
        "citation_precision": 0.93,
        "citation_recall": 0.9,
        "refusal_accuracy": 0.5,
        "false_refusal_rate": 0.04,
        "latency_ms_p50": 12.34,
        "latency_ms_p95": 30.06,
        "n_questions": 5,
        "n_answerable": 3,
        "n_unanswerable": 2,
    }
    metrics.update(overrides)
    return metrics


def _question(i: int, **overrides: object) -> dict:
    row = {
        "id": f"g{i:03}",
        "question": f"Question number {i}?",
        "answer": f"Answer {i}.",
        "refused": False,
        "hit_rank": 1,
        "correct": True,
        "citations_ok": True,
        "latency_ms": 10.0 + i,
        "type": "date",
        "unanswerable": False,
        "failure": None,
    }
    row.update(overrides)
    return row


CONFIG = {
    "embedder": "minilm|chunk=128|v3",
    "retriever": "hybrid",
    "answerer": "extractive",
    "top_k": 5,
    "corpus": "corpus/articles",
    "git_revision": "abc1234",
}


def gold_result() -> dict:
    """With baselines and targets: hit@k meets its target, answer accuracy does not."""
    ours = _metrics()
    return {
        "title": "Gold set (corpus/gold.jsonl)",
        "metrics": ours,
        "per_question": [
            _question(1),
            _question(
                2,
                question=PIPE_QUESTION,
                answer="x" * 500,
                correct=False,
                failure="wrong answer",
                type="name",
            ),
            _question(
                3,
                hit_rank=None,
                correct=False,
                refused=True,
                answer="I can't tell.",
                failure="false refusal (missed retrieval)",
            ),
            _question(
                4, unanswerable=True, hit_rank=None, correct=True, refused=True, type="unanswerable"
            ),
            _question(
                5,
                unanswerable=True,
                hit_rank=None,
                correct=False,
                refused=False,
                type="unanswerable",
                failure="answered an unanswerable question",
            ),
        ],
        "config": CONFIG,
        "compare": [
            {"name": "hybrid (ours)", "metrics": ours, "config": CONFIG},
            {
                "name": "bm25 alone",
                "metrics": _metrics(hit_at_k=0.9),
                "config": {**CONFIG, "retriever": "bm25"},
            },
            {
                "name": "LlamaIndex default",
                "metrics": _metrics(
                    answer_accuracy=None,
                    citation_precision=None,
                    citation_recall=None,
                    refusal_accuracy=None,
                    false_refusal_rate=None,
                ),
                "config": {**CONFIG, "retriever": "llama-index", "answerer": None},
            },
        ],
        "targets": {"hit_at_k": [">=", 0.95], "answer_accuracy": [">=", 0.90]},
    }


def empty_result() -> dict:
    """No baselines, no targets, no questions, every metric null."""
    return {
        "title": "SQuAD v1.1 dev, 0 questions, seed 0",
        "metrics": dict.fromkeys(_metrics()),
        "per_question": [],
        "config": {**CONFIG, "corpus": "dev-v1.1.json"},
    }


def _section(md: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n")
    rest = md[start + len(heading) + 1 :]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[: stop.start()] if stop else rest


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def _cells(row: str) -> int:
    """Cells in a table row: pipes not escaped by a backslash, less the two at the ends."""
    unescaped = re.findall(r"(?<!\\)(?:\\\\)*\|", row)
    return len(unescaped) - 1


@pytest.fixture
def report(tmp_path) -> tuple[Path, str]:
    out = tmp_path / "docs" / "eval.md"
    path = write_report([gold_result(), empty_result()], out, command="make eval")
    return path, path.read_text(encoding="utf-8")


def test_report_sections_and_metrics_table(report):
    path, md = report
    assert path.name == "eval.md"
    assert md.startswith("# Evaluation report\n")
    assert "Produced by: `make eval`" in md
    assert "## Summary" in md
    assert "## Gold set (corpus/gold.jsonl)" in md
    assert "## SQuAD v1.1 dev, 0 questions, seed 0" in md
    assert "retriever `hybrid`" in md and "git revision `abc1234`" in md

    gold = _section(md, "## Gold set (corpus/gold.jsonl)")
    table = _table_rows(_section(gold, "### Metrics"))
    assert table[0] == (
        "| metric | hybrid (ours) | bm25 alone | LlamaIndex default | target | met? |"
    )
    assert len(table) == 2 + 12  # header, alignment, one row per metric
    assert "| hit@k (`hit_at_k`) | 0.960 | 0.900 | 0.960 | ≥ 0.950 | ✓ |" in table
    assert "| answer accuracy (`answer_accuracy`) | 0.875 | 0.875 | n/a | ≥ 0.900 | ✗ |" in table
    assert "| latency p50 (`latency_ms_p50`) | 12.3 ms | 12.3 ms | 12.3 ms |  |  |" in table
    assert "| questions (`n_questions`) | 5 | 5 | 5 |  |  |" in table
    assert "- bm25 alone: retriever `bm25`" in gold


def test_summary_gives_our_key_figures(report):
    _, md = report
    summary = _section(md, "## Summary")
    lines = [line for line in summary.splitlines() if line.startswith("- ")]
    assert len(lines) == 2
    assert "hit@k 0.960" in lines[0] and "latency p50 12.3 ms" in lines[0]
    assert "targets met: 1 of 2" in lines[0]
    assert "hit@k n/a" in lines[1]


def test_result_without_compare_has_one_column_and_no_target(report):
    _, md = report
    squad = _section(md, "## SQuAD v1.1 dev, 0 questions, seed 0")
    table = _table_rows(_section(squad, "### Metrics"))
    assert table[0] == "| metric | ours |"
    assert all(row.endswith("| n/a |") for row in table[2:])
    assert "met?" not in squad
    assert "No per-question results." in squad
    assert "_No rate metric to chart" in squad and "_No per-question latencies" in squad


def test_charts_are_png_files_linked_relatively(report):
    path, md = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 2  # the empty result has nothing to draw
    assert all(link.startswith("eval-img/") for link in links)
    for link in links:
        png = path.parent / link
        assert png.is_file()
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (path.parent / "eval-img").iterdir()) == sorted(
        Path(link).name for link in links
    )


def test_failed_questions_table_escapes_pipes_and_newlines(report):
    _, md = report
    failed = _section(md, "### Failed questions (3 of 5)")
    rows = _table_rows(failed)
    assert len(rows) == 2 + 3  # header, alignment, three failures: the "|" added no row
    assert all(_cells(row) == 6 for row in rows)
    pipe_row = next(row for row in rows if row.startswith("| g002 "))
    assert "Who said \\| and why? A second line" in pipe_row
    assert "x" * 119 + "…" in pipe_row and "x" * 121 not in pipe_row  # answer truncated
    assert "| n/a |" in next(row for row in rows if row.startswith("| g003 "))  # no hit rank


def test_table_renders_as_one_row_per_question(report):
    """A real GFM renderer agrees: the escaped "|" stays inside its cell."""
    markdown_it = pytest.importorskip("markdown_it")
    _, md = report
    failed = _section(md, "### Failed questions (3 of 5)")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(failed)
    assert html.count("<tr>") == 1 + 3
    assert html.count("<td") == 3 * 6
    assert "Who said | and why?" in html


def test_by_type_breakdown(report):
    _, md = report
    rows = _table_rows(_section(md, "### By question type"))
    assert rows[0] == "| type | n | answer accuracy | refusal rate (unanswerable) | failed |"
    assert "| date | 2 | 0.500 (1/2) | n/a | 1 |" in rows
    assert "| unanswerable | 2 | n/a | 0.500 (1/2) | 1 |" in rows
    assert "| name | 1 | 0.000 (0/1) | n/a | 1 |" in rows


def test_more_than_forty_failures_are_counted_not_listed(tmp_path):
    result = {
        "title": "Many failures",
        "metrics": _metrics(n_questions=45),
        "per_question": [_question(i, correct=False, failure="wrong answer") for i in range(45)],
    }
    md = write_report([result], tmp_path / "r.md").read_text(encoding="utf-8")
    assert len(_table_rows(_section(md, "### Failed questions (45 of 45)"))) == 2 + 40
    assert "… and 5 more failed questions not shown." in md
    assert (tmp_path / "r-img").is_dir()


def test_rewriting_replaces_old_charts_only(tmp_path):
    out = tmp_path / "eval.md"
    write_report([gold_result()], out)
    mine = tmp_path / "eval-img" / "notes.txt"
    mine.write_text("keep me")
    renamed = {**gold_result(), "title": "Renamed"}
    write_report([renamed], out)
    names = sorted(p.name for p in (tmp_path / "eval-img").iterdir())
    assert names == ["1-renamed-latency.png", "1-renamed-rates.png", "notes.txt"]


def test_md_escape():
    assert md_escape("a|b\nc\r\nd\te") == "a\\|b c d e"
    assert md_escape("<b>$5</b> *x* `y`") == "\\<b\\>\\$5\\</b\\> \\*x\\* \\`y\\`"


def test_main_writes_report_from_files(tmp_path, capsys):
    one = tmp_path / "gold.json"
    one.write_text(json.dumps(gold_result()))
    both = tmp_path / "both.json"
    both.write_text(json.dumps([empty_result(), gold_result()]))
    out = tmp_path / "docs" / "eval.md"
    assert main([str(one), str(both), "--out", str(out), "--command", "make eval"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    md = out.read_text(encoding="utf-8")
    assert md.count("## Gold set (corpus/gold.jsonl)") == 2
    assert "Produced by: `make eval`" in md


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        (json.dumps({"title": "x", "per_question": []}), 'no "metrics"'),
        (json.dumps([{"metrics": {}}, {"title": "second"}]), 'result 2: no "metrics"'),
        (json.dumps([]), "no result"),
        (json.dumps({"metrics": {}, "targets": {"mrr": ["~", 1]}}), "target for 'mrr'"),
    ],
)
def test_main_invalid_input_is_one_error_line(tmp_path, capsys, content, message):
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "eval.md"
    assert main([str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert message in captured.err
    assert not out.exists()


def test_main_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["result.json"])  # no --out
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_import_is_cheap_and_cli_has_no_traceback(tmp_path):
    code = "import sys, qa.eval.report; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False"
    missing = tmp_path / "missing.json"
    done = subprocess.run(
        [sys.executable, "-m", "qa.eval.report", str(missing), "--out", str(tmp_path / "e.md")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: {missing}: no such file\n"

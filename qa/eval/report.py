"""Evaluation results (the JSON ``qa eval --json`` writes) as a Markdown report with PNG charts,
for ``docs/eval.md``: a figure in the docs should be reproducible from a JSON file by one
command, not copied by hand from a terminal.

    python -m qa.eval.report RESULT.json [RESULT.json ...] --out docs/eval.md \
        [--command "make eval"]

The charts go to a folder beside the report, ``<out stem>-img/`` (``docs/eval-img/``), and are
linked with relative paths so the report renders both on GitHub and from a checkout.
matplotlib is imported only when a chart is drawn, so that ``import qa.eval.report`` (and so
``qa eval`` without ``--report``) costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from qa.errors import QAError
from qa.eval.charts import (
    COUNT_KEYS,
    LABELS,
    LATENCY_KEYS,
    METRIC_ORDER,
    OURS,
    RATE_KEYS,
    config_columns,
    latency_chart,
    num,
    rate_chart,
    result_title,
    truncate,
)

#: What the headline line shows for our configuration, in this order.
HEADLINE_KEYS = (
    "hit_at_k",
    "answer_accuracy",
    "citation_precision",
    "refusal_accuracy",
    "false_refusal_rate",
    "latency_ms_p50",
)

MAX_FAILED_ROWS = 40
ANSWER_CHARS = 120
QUESTION_CHARS = 200

_OPS = {
    ">=": (lambda v, b: v >= b, "≥"),
    "<=": (lambda v, b: v <= b, "≤"),
    ">": (lambda v, b: v > b, ">"),
    "<": (lambda v, b: v < b, "<"),
    "==": (lambda v, b: v == b, "="),
}
# Characters that Markdown (GitHub flavour: tables, math, strikethrough, HTML) would interpret.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$&])")
# Charts this module wrote earlier: removed before writing new ones, so that a renamed title
# does not leave orphan images in docs/. Nothing else in the folder is touched.
_OUR_PNG = re.compile(r"^\d+-[a-z0-9-]*-(rates|latency)\.png$")


class ReportError(QAError):
    """The results given cannot be reported (no metrics, a malformed target...).

    A ``QAError``, so that any surface (``qa eval --report``, ``python -m qa.eval.report``) prints
    it as one line, never a traceback.
    """


# -- small formatting helpers -------------------------------------------------------------
def md_escape(text: object) -> str:
    """``text`` safe inside a Markdown table cell or heading: line breaks and tabs become
    single spaces (a newline would end the table row) and characters Markdown would
    interpret (``|`` above all, which would split the cell) are backslash-escaped."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _code(value: object) -> str:
    """An inline code span that survives backticks inside the value."""
    text = " ".join(str(value).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_metric(key: str, value: object) -> str:
    """Rates as 0.xxx, latencies as milliseconds with one decimal, counts as integers,
    null as "n/a"."""
    if value is None:
        return "n/a"
    number = num(value)
    if number is None:
        return md_escape(value)
    if key in LATENCY_KEYS or key.startswith("latency"):
        return f"{number:.1f} ms"
    if (
        key in COUNT_KEYS
        or key.startswith("n_")
        or (isinstance(value, int) and key not in RATE_KEYS)
    ):
        return str(round(number))
    return f"{number:.3f}"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "result"


# -- validation ----------------------------------------------------------------------------
def _check_result(result: object, where: str) -> dict[str, Any]:
    """The result if it has what every section needs; otherwise a ReportError naming it.
    Optional parts (compare, targets, per_question, config) are checked only for shape."""
    if not isinstance(result, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(result).__name__}")
    if not isinstance(result.get("metrics"), dict):
        raise ReportError(f'{where}: no "metrics" object')
    per_question = result.get("per_question") or []
    if not isinstance(per_question, list) or not all(isinstance(q, dict) for q in per_question):
        raise ReportError(f'{where}: "per_question" must be a list of objects')
    compare = result.get("compare") or []
    if not isinstance(compare, list) or not all(
        isinstance(c, dict) and isinstance(c.get("metrics"), dict) for c in compare
    ):
        raise ReportError(f'{where}: "compare" must be a list of {{"name", "metrics"}} objects')
    targets = result.get("targets") or {}
    if not isinstance(targets, dict):
        raise ReportError(f'{where}: "targets" must be an object')
    for key, target in targets.items():
        if (
            not isinstance(target, list | tuple)
            or len(target) != 2
            or target[0] not in _OPS
            or num(target[1]) is None
        ):
            ops = ", ".join(_OPS)
            raise ReportError(f"{where}: target for {key!r} must be [op, number], op one of {ops}")
    if result.get("config") is not None and not isinstance(result["config"], dict):
        raise ReportError(f'{where}: "config" must be an object')
    return result


# -- the pieces of a section ---------------------------------------------------------------
def _metric_keys(columns: Sequence[tuple[str, Mapping[str, Any]]], targets: Mapping) -> list[str]:
    """The known metrics in their usual order, then any others a result carries (so a new
    metric in ``qa eval`` shows up before this module learns its name)."""
    extra: list[str] = []
    for _, metrics in columns:
        extra += [k for k in metrics if k not in METRIC_ORDER and k not in extra]
    extra += [k for k in targets if k not in METRIC_ORDER and k not in extra]
    return [*METRIC_ORDER, *extra]


def _target_cell(key: str, target: Sequence[Any]) -> str:
    op, bound = target
    return f"{_OPS[op][1]} {format_metric(key, bound)}"


def _met(value: object, target: Sequence[Any]) -> bool | None:
    number = num(value)
    if number is None:
        return None
    return bool(_OPS[target[0]][0](number, float(target[1])))


def _metrics_table(result: Mapping[str, Any]) -> list[str]:
    columns = config_columns(result)
    targets = result.get("targets") or {}
    ours = result["metrics"]
    header = ["metric", *(md_escape(name) for name, _ in columns)]
    align = [":--", *("--:" for _ in columns)]
    if targets:
        header += ["target", "met?"]
        align += ["--:", ":-:"]
    lines = [_row(header), _row(align)]
    for key in _metric_keys(columns, targets):
        label = f"{md_escape(LABELS.get(key, key))} ({_code(key)})" if key in LABELS else _code(key)
        row = [label, *(format_metric(key, metrics.get(key)) for _, metrics in columns)]
        if targets:
            if key in targets:
                met = _met(ours.get(key), targets[key])
                row += [_target_cell(key, targets[key]), {True: "✓", False: "✗"}.get(met, "n/a")]
            else:
                row += ["", ""]
        lines.append(_row(row))
    return lines


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _config_text(config: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> str:
    """``key `value`, ...``; with ``base``, only what differs from it."""
    parts = []
    for key, value in config.items():
        if base is not None and base.get(key) == value:
            continue
        shown = "none" if value is None else _code(value)
        parts.append(f"{md_escape(str(key).replace('_', ' '))} {shown}")
    return ", ".join(parts)


def _headline(result: Mapping[str, Any], index: int) -> str:
    metrics = result["metrics"]
    figures = [f"{LABELS[k]} {format_metric(k, metrics.get(k))}" for k in HEADLINE_KEYS]
    n = metrics.get("n_questions")
    if n is None:
        n = len(result.get("per_question") or [])
    title = result_title(result, index)
    count = "" if f"{n} questions" in title else f" ({n} questions)"  # qa eval titles say it
    line = f"- **{md_escape(title)}**{count}: " + ", ".join(figures)
    targets = result.get("targets") or {}
    if targets:
        verdicts = [_met(metrics.get(k), t) for k, t in targets.items()]
        known = [v for v in verdicts if v is not None]
        line += f"; targets met: {sum(known)} of {len(targets)}"
        if len(known) < len(targets):
            line += f" ({len(targets) - len(known)} not measured)"
    return line + "."


def _failed_table(per_question: Sequence[Mapping[str, Any]]) -> list[str]:
    failed = [q for q in per_question if q.get("failure")]
    lines = [f"### Failed questions ({len(failed)} of {len(per_question)})", ""]
    if not failed:
        return [*lines, "No failed questions." if per_question else "No per-question results."]
    lines += [
        _row(["id", "type", "failure", "question", "answer", "hit rank"]),
        _row(["---", "---", "---", "---", "---", "--:"]),
    ]
    for q in failed[:MAX_FAILED_ROWS]:
        answer = q.get("answer")
        hit_rank = q.get("hit_rank")
        cells = [
            md_escape(q.get("id", "")),
            md_escape(q.get("type") or ""),
            md_escape(q.get("failure")),
            md_escape(truncate(str(q.get("question") or ""), QUESTION_CHARS)),
            "n/a" if answer is None else md_escape(truncate(str(answer), ANSWER_CHARS)),
            "n/a" if hit_rank is None else md_escape(hit_rank),
        ]
        lines.append(_row(cells))
    if len(failed) > MAX_FAILED_ROWS:
        more = len(failed) - MAX_FAILED_ROWS
        lines += ["", f"… and {more} more failed question{'s' if more > 1 else ''} not shown."]
    return lines


def _share_cell(flags: Sequence[bool]) -> str:
    if not flags:
        return "n/a"
    return f"{sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)})"


def _type_table(per_question: Sequence[Mapping[str, Any]]) -> list[str]:
    """Answer accuracy over a type's answerable questions and refusal rate over its
    unanswerable ones: the two are different populations, so each gets its own column."""
    lines = ["### By question type", ""]
    if not per_question:
        return [*lines, "No per-question results."]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for q in per_question:
        groups.setdefault(str(q.get("type") or "(none)"), []).append(q)
    lines += [
        _row(["type", "n", "answer accuracy", "refusal rate (unanswerable)", "failed"]),
        _row(["---", "--:", "--:", "--:", "--:"]),
    ]
    for name, qs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        answerable = [q for q in qs if not q.get("unanswerable")]
        unanswerable = [q for q in qs if q.get("unanswerable")]
        correct = [bool(q["correct"]) for q in answerable if q.get("correct") is not None]
        refused = [bool(q["refused"]) for q in unanswerable if q.get("refused") is not None]
        failed = sum(1 for q in qs if q.get("failure"))
        cells = [md_escape(name), str(len(qs)), _share_cell(correct), _share_cell(refused)]
        lines.append(_row([*cells, str(failed)]))
    return lines


# -- the report ----------------------------------------------------------------------------
def _section(result: Mapping[str, Any], index: int, img_dir: Path, img_ref: str) -> list[str]:
    title = result_title(result, index)
    lines = [f"## {md_escape(title)}", ""]
    config = result.get("config") or {}
    if config:
        lines += [f"Configuration: {_config_text(config)}.", ""]
    lines += ["### Metrics", "", *_metrics_table(result), ""]
    others = [c for c in result.get("compare") or [] if c.get("name") != OURS]
    if others:
        lines += ["Compared configurations (what differs from ours):", ""]
        for c in others:
            diff = _config_text(c.get("config") or {}, base=config) or "same configuration"
            lines.append(f"- {md_escape(c.get('name') or '')}: {diff}")
        lines.append("")

    stem = f"{index}-{_slug(title)}"
    img_dir.mkdir(parents=True, exist_ok=True)
    rates = f"{stem}-rates.png"
    if rate_chart(result, img_dir / rates):
        lines += [f"![Rate metrics per configuration: {md_escape(title)}]({img_ref}/{rates})", ""]
    else:
        lines += ["_No rate metric to chart (all are null)._", ""]
    latency = f"{stem}-latency.png"
    if latency_chart(result, img_dir / latency):
        lines += [f"![Latency per question: {md_escape(title)}]({img_ref}/{latency})", ""]
    else:
        lines += ["_No per-question latencies to chart._", ""]

    per_question = result.get("per_question") or []
    lines += [*_failed_table(per_question), "", *_type_table(per_question), ""]
    return lines


def write_report(results: list[dict], out: Path, *, command: str | None = None) -> Path:
    """Write the Markdown report ``out`` and its charts in ``<out stem>-img/`` beside it;
    returns ``out``. Raises ReportError for a result that cannot be reported, before
    anything is written."""
    out = Path(out)
    results = [_check_result(r, f"result {i}") for i, r in enumerate(results, 1)]
    if not results:
        raise ReportError("no results to report")
    img_dir = out.parent / f"{out.stem}-img"
    img_ref = quote(img_dir.name)
    if img_dir.is_dir():
        for old in img_dir.iterdir():
            if _OUR_PNG.match(old.name):
                old.unlink()

    lines = ["# Evaluation report", ""]
    if command:
        lines += [f"Produced by: {_code(command)}", ""]
    lines += ["## Summary", ""]
    lines += [_headline(r, i) for i, r in enumerate(results, 1)]
    lines.append("")
    for i, result in enumerate(results, 1):
        lines += _section(result, i, img_dir, img_ref)
    if img_dir.is_dir() and not any(img_dir.iterdir()):
        img_dir.rmdir()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a report
    return out


# -- command line --------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error of ``qa``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def read_results(path: Path) -> list[dict]:
    """The results in one JSON file: one result object or a list of them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ReportError(f"{path}: an empty list, no result in it")
    for i, item in enumerate(items, 1):
        _check_result(item, str(path) if len(items) == 1 else f"{path}, result {i}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qa.eval.report``: exit 0 and the report's path, or 2 and one ``error:`` line."""
    parser = _Parser(
        prog="python -m qa.eval.report",
        description="Markdown report with charts from `qa eval --json` results.",
    )
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="qa eval JSON output")
    parser.add_argument("--out", required=True, metavar="OUT.md", help="e.g. docs/eval.md")
    parser.add_argument("--command", help='shown as "Produced by:" at the top')
    args = parser.parse_args(argv)
    try:
        results = [r for name in args.results for r in read_results(Path(name))]
        path = write_report(results, Path(args.out), command=args.command)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # last resort, as in qa.cli: one line, never a traceback
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

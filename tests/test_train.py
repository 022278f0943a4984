"""The training scripts run end to end on a tiny sample (seconds, not a real training): the
reader is fine-tuned, exported to int8 ONNX and read back; the refusal model is fitted on
the product's own retrieval and loads."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from qa.answer.reader import Reader
from qa.answer.refusal import FEATURES, RefusalModel
from tests.conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_reader_training_runs_on_a_tiny_sample(tmp_path):
    out = tmp_path / "reader"
    news = str(ROOT / "train" / "data" / "news_written.jsonl")
    done = _run("train/train_reader.py", "--tiny", "--out", str(out), "--news", news)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "training.json").read_text())
    assert meta["examples"] == 8 and meta["steps"] >= 1
    assert not set(meta["train_articles"]) & set(meta["test_articles"])
    (reading,) = Reader(threads=1, model_dir=out).read("Who?", ["Ann Lee wrote it."])
    assert 0 <= reading.start <= reading.end <= len("Ann Lee wrote it.")
    assert math.isfinite(reading.margin)


def test_refusal_fit_runs_on_a_tiny_sample(tmp_path):
    out = tmp_path / "refusal.json"
    done = _run("train/fit_refusal.py", "--tiny", "--out", str(out), "--work", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    model = RefusalModel.load(out)
    assert model.names == FEATURES
    assert math.isfinite(model.confidence(dict.fromkeys(FEATURES, 0.5)))
    report = json.loads(out.read_text())["report_cv"]
    assert {"squad", "squad-dropped", "shipped"} <= set(report)
    # the choice among passages weighs named evidence features, one weight each
    assert model.choice_names and set(model.choice_names) <= set(FEATURES)
    assert len(model.choice) == len(model.choice_names)
    assert math.isfinite(model.choose(dict.fromkeys(FEATURES, 0.5)))


def _train_reader_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_reader", ROOT / "train" / "train_reader.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shared_normalisation_compares_a_questions_passages():
    """The shared loss is low when the answer's start and end outscore every context token of
    the question's other passages, and rises when another passage's tokens outscore them;
    a question without an answering passage adds nothing."""
    import torch

    shared_norm_loss = _train_reader_module().shared_norm_loss
    ctx = [False, True, True, True]
    batch = [
        {"group": "q1", "start": 1, "end": 2, "context": ctx},
        {"group": "q1", "start": 0, "end": 0, "context": ctx},
        {"group": "q2", "start": 0, "end": 0, "context": ctx},
    ]
    start, end = torch.zeros(3, 4), torch.zeros(3, 4)
    start[0, 1] = end[0, 2] = 10.0
    assert float(shared_norm_loss(start, end, batch)) < 0.01
    # the non-answering passage of q1 now outscores the answer
    worse_start, worse_end = start.clone(), end.clone()
    worse_start[1, 3] = worse_end[1, 3] = 12.0
    assert float(shared_norm_loss(worse_start, worse_end, batch)) > 1.0
    # q2 has no answering passage: its passage doesn't count
    other_start, other_end = start.clone(), end.clone()
    other_start[2, 3] = other_end[2, 3] = 50.0
    same = float(shared_norm_loss(start, end, batch))
    assert float(shared_norm_loss(other_start, other_end, batch)) == same
    assert float(shared_norm_loss(start[2:], end[2:], [batch[2]])) == 0.0


def test_written_questions_read_their_own_paragraph(tmp_path):
    """A written unanswerable question becomes a no-answer example on a passage of the
    paragraph it was written for; a written answerable one an answer example there, its span
    the answer verbatim; a row whose answer is not in the paragraph is skipped
    (``train/data/*.jsonl``)."""
    import random

    from transformers import AutoTokenizer

    module = _train_reader_module()
    v1 = json.loads(module.V1.read_text())["data"]
    title = sorted(module.squad_split()["train"])[0]
    context = next(a for a in v1 if a["title"] == title)["paragraphs"][1]["context"]
    path = tmp_path / "written.jsonl"
    # on the paragraph's topic, as written ones are (its passage is found by keyword search)
    question = f"Who first wrote that {' '.join(context.split()[:10])}?"
    answer = " ".join(context.split()[3:6])
    asked = "Which words come fourth to sixth in the paragraph?"
    rows = [
        {"pid": f"{title}#1", "question": question, "tactic": "negation"},
        {"pid": f"{title}#1", "question": asked, "answer": answer},
        {"pid": f"{title}#1", "question": "Not there?", "answer": "no such words xyzzy"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = module.read_written([path])
    assert [r["question"] for r in written[f"{title}#1"]] == [question, asked, "Not there?"]
    tokenizer = AutoTokenizer.from_pretrained(module._model_dir())
    examples = module.build_examples({title}, tokenizer, random.Random(0), written)
    mine = [e for e in examples if e["q"] == question]
    assert len(mine) == 1 and mine[0]["a"] is None and mine[0]["p"] in context
    found = [e for e in examples if e["q"] == asked and e["a"] is not None]
    assert len(found) == 1
    start, end = found[0]["a"]
    assert found[0]["p"][start:end] == answer and found[0]["p"] in context
    assert not any(e["q"] == "Not there?" for e in examples)
    # the answer is taken where it stands as whole words, not inside another word
    (entry,) = module._written_qas("It is not now: no.", [{"question": "?", "answer": "no"}], "k")
    assert entry["answers"][0]["answer_start"] == len("It is not now: ")
    without = module.build_examples({title}, tokenizer, random.Random(0))
    assert not any(e["q"] in (question, asked) for e in without)


def test_written_questions_of_held_out_articles_point_at_their_paragraph(tmp_path):
    """The refusal fit asks the held-out articles' written questions with their own paragraph
    as evidence, the same document id ``load_squad`` gives it; other articles' are left out."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_refusal", ROOT / "train/fit_refusal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from qa.eval.squad import load_squad

    docs, _, _ = load_squad(module.SQUAD / "dev-v1.1.json", None, 0)
    title = sorted(module.squad_split()["calibration"])[0]
    other = sorted(module.squad_split()["train"])[0]
    path = tmp_path / "written.jsonl"
    rows = [
        {"pid": f"{title}#2", "question": "Who else?", "tactic": "missing-detail"},
        {"pid": f"{title}#3", "question": "Which one?", "answer": "x"},
        {"pid": f"{other}#0", "question": "Not this one?", "tactic": "negation"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = module.written_items(path, {title})
    assert [(i.question, i.unanswerable, i.answers) for i in items] == [
        ("Who else?", True, []),
        ("Which one?", False, ["x"]),
    ]
    text = {d.doc_id: d.text for d in docs}
    v1 = json.loads((module.SQUAD / "dev-v1.1.json").read_text())["data"]
    paragraphs = next(a for a in v1 if a["title"] == title)["paragraphs"]
    assert text[items[0].evidence_article] == paragraphs[2]["context"]
    assert text[items[1].evidence_article] == paragraphs[3]["context"]


def test_written_news_stories_train_on_their_own_text(tmp_path):
    """A written news story's answerable question becomes an answer example on the story's
    passage holding the answer, verbatim; its unanswerable ones no-answer examples on its own
    passages; the stories' parts (train, calibration, test) never share a story, so the reader
    never trains on the fit's or the figures' stories (``train/written_news.py``)."""
    import random

    from transformers import AutoTokenizer

    from train.written_news import PARTS, part_of, read_news

    module = _train_reader_module()
    words = " ".join(f"Word{k} said." for k in range(60))
    text = f"LIMA, May 2 - The council voted 12 to 3 on Monday. {words}\n\nMayor Ana Ruiz said so."
    story = {
        "aid": "0-01",
        "beat": "politics",
        "title": "t",
        "text": text,
        "questions": [
            {"question": "Who is the mayor of Lima?", "answer": "Ana Ruiz"},
            {"question": "Who chairs the Lima council?", "tactic": "missing-detail"},
            {"question": "What did the council vote on?", "answer": "not in the text"},
        ],
    }
    path = tmp_path / "news.jsonl"
    path.write_text(json.dumps(story) + "\n" + json.dumps({**story, "aid": "7-00"}) + "\n")
    assert [a["aid"] for a in read_news("train", path)] == ["0-01"]
    assert [a["aid"] for a in read_news("test", path)] == ["7-00"]
    assert read_news("train", tmp_path / "absent.jsonl") == []
    shards = [s for part in PARTS.values() for s in part]
    assert len(shards) == len(set(shards)) and part_of("6-03") == "calibration"
    tokenizer = AutoTokenizer.from_pretrained(module._model_dir())
    groups = module.news_groups(read_news("train", path))
    examples = module.group_examples(groups, tokenizer, random.Random(0))
    (found,) = [e for e in examples if e["q"] == "Who is the mayor of Lima?" and e["a"]]
    assert found["p"][found["a"][0] : found["a"][1]] == "Ana Ruiz" and found["p"] in text
    (none,) = [e for e in examples if e["q"] == "Who chairs the Lima council?"]
    assert none["a"] is None and none["p"] in text
    assert not any(e["q"] == "What did the council vote on?" for e in examples)

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
    done = _run("train/train_reader.py", "--tiny", "--out", str(out))
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

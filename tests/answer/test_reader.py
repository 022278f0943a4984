"""The reader and the refusal model as shipped in the package (no index needed), and the
rendering of the short answer."""

from __future__ import annotations

import json
import socket

import pytest

from qa.answer.reader import MODEL_DIR, Reader
from qa.answer.refusal import FEATURES, MODEL_PATH, RefusalModel
from qa.answer.render import closest, emphasise

SCHRADER = (
    "Exorcist: The Beginning was made twice. The film, directed by Paul Schrader, was "
    "shelved by the producers, who hired Renny Harlin to shoot a new version."
)
CAMPBELL = (
    "Darren Campbell won the European title in Budapest in 1998 and took Olympic silver in "
    "Sydney two years later."
)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader(threads=1)


def test_the_models_ship_inside_the_package():
    onnx = MODEL_DIR / "reader.onnx"
    assert onnx.is_file() and onnx.stat().st_size < 30 * 1024 * 1024
    assert (MODEL_DIR / "tokenizer.json").is_file()
    assert (MODEL_DIR.parent / "MODEL_CARD.md").is_file()
    model = RefusalModel.load(MODEL_PATH)
    assert set(model.names) <= set(FEATURES) and len(model.weights) == len(model.names)
    assert set(model.choice_names) <= set(FEATURES) and len(model.choice) == len(model.choice_names)


def test_a_refusal_model_whose_choice_weights_dont_match_its_names_is_rejected(tmp_path):
    data = json.loads(MODEL_PATH.read_text())
    data["choice"] = data["choice"][:-1]
    broken = tmp_path / "refusal.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="differ in number"):
        RefusalModel.load(broken)


def test_the_reader_runs_with_no_network(monkeypatch):
    """Loading and reading must not reach for a hub: any connection attempt fails here."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    r = Reader(threads=1)
    (reading,) = r.read("Who directed the shelved version?", [SCHRADER])
    assert SCHRADER[reading.start : reading.end]


@pytest.mark.parametrize(
    ("question", "passage", "expected"),
    [
        ("Who directed the version the producers shelved?", SCHRADER, "Paul Schrader"),
        ("In which city did Darren Campbell win his European title?", CAMPBELL, "Budapest"),
    ],
)
def test_the_reader_finds_the_short_answer(reader, question, passage, expected):
    (reading,) = reader.read(question, [passage])
    assert passage[reading.start : reading.end] == expected
    assert reading.margin > 0  # it prefers the span to "no answer here"


def test_a_passage_without_the_answer_scores_lower_than_one_with_it(reader):
    unrelated = "The central bank left interest rates unchanged at 4.75% on Thursday."
    with_answer, without = reader.read("Who directed the shelved version?", [SCHRADER, unrelated])
    assert with_answer.margin > without.margin


def test_reading_no_passages_reads_nothing(reader):
    assert reader.read("anything?", []) == []


def test_emphasise_marks_the_span_once_and_leaves_refusals_alone():
    result = {
        "answer": "The film, directed by Paul Schrader, was shelved. [1]",
        "refused": False,
        "answer_span": {"text": "Paul  Schrader", "passage_id": "p", "start": 0, "end": 1},
    }
    assert emphasise(result) == "The film, directed by **Paul Schrader**, was shelved. [1]"
    assert emphasise(result, "<b>", "</b>").count("<b>") == 1
    refused = {"answer": "No.", "refused": True, "answer_span": None, "retrieved": [1, 2, 3, 4]}
    assert emphasise(refused) == "No."
    assert closest(refused) == [1, 2, 3]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_passage_reads_the_same_whatever_is_read_beside_it(threads):
    """The model is dynamically quantised (an int8 scale per input tensor): read in one
    batch, a passage's scores would shift with its batch mates and with how many passages
    are read. Each passage is read on its own, with one thread or several."""
    reader = Reader(threads=threads)
    question = "Who directed the version of Exorcist: The Beginning that was shelved?"
    others = [CAMPBELL, "The producers hired Renny Harlin. " * 12, "Budapest hosted it."]
    alone = reader.read(question, [SCHRADER])[0]
    for beside in (others[:1], others, others[::-1]):
        assert reader.read(question, [SCHRADER, *beside])[0] == alone
        assert reader.read(question, [*beside, SCHRADER])[-1] == alone

"""The extractive reader: a span-prediction model run by onnxruntime over the retrieved
passages, finding in each the short answer to the question, or none.

The model (``qa/models/reader/``, trained by ``train/train_reader.py``; see its model card)
is all-MiniLM-L6-v2 fine-tuned SQuAD-2 style: for every token a start and an end logit, and
the [CLS] position standing for "no answer in this passage". It reads each passage
separately, so its scores are comparable across passages only up to each passage's own
no-answer score: a reading keeps both, and the answerer normalises them across passages.

Span decoding (best start/end pair with start <= end within ``max_span`` tokens) is written
here: it is twenty lines of numpy, and transformers' pipeline would need PyTorch at run time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODEL_DIR = Path(__file__).parents[1] / "models" / "reader"
MAX_LEN = 256  # question + passage tokens, as trained


@dataclass(frozen=True)
class Reading:
    """The reader's view of one passage: the best span (character offsets into the passage
    text) and its score, against the passage's no-answer score."""

    start: int
    end: int
    span_score: float  # start logit + end logit of the best span
    null_score: float  # the same at [CLS]: "no answer here"
    start_lse: float  # log-sum-exp of the passage's start logits (for normalising)
    end_lse: float

    @property
    def margin(self) -> float:
        """How much the passage prefers its best span over no answer."""
        return self.span_score - self.null_score


class Reader:
    """Reads (question, passages) with the shipped int8 ONNX model. Thread-safe.

    Each passage is run on its own, not in one padded batch: the model is dynamically
    quantised, and its activations' int8 scale is taken from the whole input tensor, so in a
    batch a passage's reading would depend on which other passages were retrieved beside it
    (reading 8 passages instead of 10 changed a held-out set's answers by that alone). Alone,
    a passage always reads the same, and with no padding it costs no more; ``threads``
    passages are read at once."""

    def __init__(self, threads: int = 1, model_dir: Path = MODEL_DIR, max_span: int = 30) -> None:
        onnx_path = model_dir / "reader.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"the reader model {onnx_path} is missing from the package")
        self.model_dir = model_dir
        self.max_span = max_span
        # loaded here, once, not on first use: two first questions at once would load twice
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one passage is too small to split over cores
        opts.inter_op_num_threads = 1
        self._pool = ThreadPoolExecutor(threads, "reader") if threads > 1 else None
        # no busy-waiting between ops: a server runs several sessions at once on few cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_LEN, strategy="only_second")

    def read(self, question: str, passages: list[str]) -> list[Reading]:
        """One reading per passage, in order."""
        encodings = self._tokenizer.encode_batch([(question, p) for p in passages])
        if self._pool is None or len(encodings) < 2:
            return [self._read_one(e) for e in encodings]
        return list(self._pool.map(self._read_one, encodings))

    def _read_one(self, enc) -> Reading:
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        starts, ends = self._session.run(None, feed)
        return self._decode(enc, starts[0], ends[0])

    def _decode(self, enc, start_logits: np.ndarray, end_logits: np.ndarray) -> Reading:
        context = np.array([sid == 1 for sid in enc.sequence_ids], dtype=bool)
        null = float(start_logits[0] + end_logits[0])
        s_ctx = np.where(context, start_logits, -np.inf)
        e_ctx = np.where(context, end_logits, -np.inf)
        # every (start, end) pair with 0 <= end - start < max_span: a banded sum matrix
        pair = s_ctx[:, None] + e_ctx[None, :]
        n = len(s_ctx)
        band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(
            np.ones((n, n), dtype=bool), self.max_span
        )
        pair = np.where(band, pair, -np.inf)
        best = int(np.argmax(pair))
        i, j = divmod(best, n)
        score = float(pair[i, j])
        if not np.isfinite(score):  # a passage with no tokens left after truncation
            return Reading(0, 0, -1e4, null, null, null)
        return Reading(
            start=enc.offsets[i][0],
            end=enc.offsets[j][1],
            span_score=score,
            null_score=null,
            start_lse=float(np.logaddexp.reduce(s_ctx[context])),
            end_lse=float(np.logaddexp.reduce(e_ctx[context])),
        )

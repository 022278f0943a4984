"""The int8 ONNX embedder against vectors of the reference fp32 sentence-transformers model."""

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "reference_vectors.json").read_text())


def test_matches_reference_model(embedder):
    ours = embedder.embed(REFERENCE["texts"])
    ref = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    cosines = (ours * ref).sum(axis=1)
    # int8 weights: not bit-identical, but every vector points the same way
    assert cosines.min() > 0.99, cosines


def test_similarities_preserved(embedder):
    ours = embedder.embed(REFERENCE["texts"])
    ref = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    upper = np.triu_indices(len(ref), k=1)
    assert np.corrcoef((ours @ ours.T)[upper], (ref @ ref.T)[upper])[0, 1] > 0.995


def test_vectors_are_normalised_and_batch_independent(embedder):
    texts = REFERENCE["texts"]
    batched = embedder.embed(texts)
    single = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batched, single, atol=1e-4)


def test_llama_index_interface(embedder):
    vec = embedder.get_query_embedding("gas deal")
    assert len(vec) == 384
    assert embedder.get_text_embedding_batch(["a", "b"])[1] == embedder.get_text_embedding("b")


def test_passage_pass_gives_sentence_vectors(embedder):
    text = "Russia will supply gas. The drill took place in May."
    spans = [(0, 23), (24, len(text))]
    passages, sentences = embedder.embed_passages([text], [spans])
    assert np.allclose(passages[0], embedder.embed([text])[0], atol=1e-4)
    assert sentences[0].shape == (2, 384)
    gas = embedder.embed(["natural gas supply"])[0]
    assert sentences[0][0] @ gas > sentences[0][1] @ gas

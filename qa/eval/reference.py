"""The reference peer for ``qa eval --compare``: LlamaIndex's out-of-the-box pipeline,
``VectorStoreIndex.from_documents`` with its default splitter (SentenceSplitter, 1024-token
chunks, 200 overlap) and its default in-memory vector store, with our embedder (so the
comparison is about the pipeline, not the model). It retrieves; it has no answerer without
an LLM, so only retrieval metrics are compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import Document


class LlamaIndexReference:
    def __init__(self, documents: Sequence[Document], embedder: BaseEmbedding, top_k: int):
        # a plain document, titled, as a reader such as SimpleDirectoryReader would give it
        docs = [
            Document(id_=d.doc_id, text=d.text, metadata={"title": d.metadata.get("title", "")})
            for d in documents
        ]
        self.index = VectorStoreIndex.from_documents(docs, embed_model=embedder)
        # the default retriever, asked for as many passages as ours so hit@k compares
        self.retriever = self.index.as_retriever(similarity_top_k=top_k)

    def ask(self, question: str) -> dict:
        """Retrieval in the engine's answer shape (no answer, no citations)."""
        nodes = self.retriever.retrieve(question)
        return {
            "answer": None,
            "refused": False,
            "citations": [],
            "retrieved": [
                {
                    "passage_id": n.node.node_id,
                    "article_id": n.node.ref_doc_id,
                    "text": n.node.get_content(),
                    "score": float(n.score or 0.0),
                    "rank": i + 1,
                }
                for i, n in enumerate(nodes)
            ],
        }

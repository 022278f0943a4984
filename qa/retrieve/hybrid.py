"""Retrieval: dense (Chroma), keyword (BM25) and their reciprocal-rank fusion, as llama-index
retrievers, so that they compose with the rest of llama-index (query engines, evaluators).
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa.ingest.text import query_terms
from qa.retrieve.keyword import KeywordIndex
from qa.store.chroma import Store, StoredPassage
from qa.store.embedding import MiniLMEmbedding


class PassageTable:
    """The stored passages held in memory: the keyword index and id lookups need them."""

    def __init__(self, passages: Sequence[StoredPassage]) -> None:
        self.passages = list(passages)
        self.by_id = {p.passage_id: p for p in self.passages}
        self.keyword = KeywordIndex(
            [p.text for p in self.passages], [p.passage_id for p in self.passages]
        )

    def node(self, passage_id: str, score: float) -> NodeWithScore:
        p = self.by_id[passage_id]
        node = TextNode(
            id_=p.passage_id,
            text=p.text,
            start_char_idx=p.start,
            end_char_idx=p.end,
            metadata={"article_id": p.article_id, "sentences": p.sentences},
        )
        return NodeWithScore(node=node, score=score)


class DenseRetriever(BaseRetriever):
    """Nearest passages by cosine similarity of MiniLM vectors, from Chroma."""

    def __init__(self, store: Store, table: PassageTable, embedder: MiniLMEmbedding, n: int):
        super().__init__()
        self._store, self._table, self._embedder, self._n = store, table, embedder, n

    def _hits(self, vector) -> list[tuple[str, float]]:
        return self._store.query(vector, self._n)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        vector = query_bundle.embedding or self._embedder.get_query_embedding(
            query_bundle.query_str
        )
        return [
            self._table.node(pid, s) for pid, s in self._hits(vector) if pid in self._table.by_id
        ]


class KeywordRetriever(BaseRetriever):
    """BM25 over the same passages, on stemmed content terms."""

    def __init__(self, table: PassageTable, n: int):
        super().__init__()
        self._table, self._n = table, n

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._table.keyword.search(query_terms(query_bundle.query_str), self._n)
        return [self._table.node(self._table.passages[i].passage_id, s) for i, s in hits]


class HybridRetriever(BaseRetriever):
    """Reciprocal rank fusion (Cormack et al. 2009) of the dense and keyword rankings.

    Written here rather than using llama-index's ``QueryFusionRetriever`` because that one
    resolves an LLM for query generation and runs its retrievers through asyncio; fusing two
    ranked lists is a few lines and keeps a question's latency to the two lookups.
    """

    def __init__(self, retrievers: Sequence[BaseRetriever], k: int = 60, top_n: int = 5):
        super().__init__()
        self._retrievers, self._k, self._top_n = list(retrievers), k, top_n

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        fused: dict[str, float] = {}
        nodes: dict[str, NodeWithScore] = {}
        for retriever in self._retrievers:
            for rank, hit in enumerate(retriever.retrieve(query_bundle)):
                pid = hit.node.node_id
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (self._k + rank + 1)
                nodes.setdefault(pid, hit)
        best = sorted(fused, key=lambda pid: -fused[pid])[: self._top_n]
        return [NodeWithScore(node=nodes[pid].node, score=fused[pid]) for pid in best]

"""Incremental indexing: read the corpus, diff it against the store, write only the change.

An article is identified by its path (and, in ``.jsonl``, its id or title); its content
hash says whether it changed. Unchanged articles cost nothing, an edited one has its
passages replaced, a deleted one has its passages removed, and leftovers of an interrupted
run (passages whose article record was never written) are cleaned up first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_index.core.schema import Document, TextNode
from tqdm import tqdm

from qa.chunking import parse_sentence_spans, split_document
from qa.embedding import MiniLMEmbedding
from qa.errors import QAError
from qa.ingest import Skipped, read_corpus
from qa.settings import Settings
from qa.store import Store, write_lock
from qa.vocab import TermAccumulator


def index_fingerprint(settings: Settings) -> str:
    """What the stored vectors and spans depend on; a mismatch means rebuild."""
    return (
        f"{MiniLMEmbedding.fingerprint()}|chunk={settings.chunk_tokens}"
        f"|overlap={settings.chunk_overlap_sentences}|v2"
    )


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    passages_written: int = 0
    passages_total: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        why = "; ".join(f"{s.path}: {s.reason}" for s in self.skipped[:5])
        if len(self.skipped) > 5:
            why += f"; … {len(self.skipped) - 5} more"
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped"
            + (f" ({why})" if why else "")
            + f"; {self.passages_total} passages in the index ({self.seconds:.1f} s)"
        )


def _batches(
    docs: Sequence[Document], nodes_of, limit: int
) -> Iterator[list[tuple[Document, list[TextNode]]]]:
    """Articles grouped until ``limit`` passages: one model pass and one commit each."""
    batch, size = [], 0
    for doc in docs:
        nodes = nodes_of(doc)
        batch.append((doc, nodes))
        size += len(nodes)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def embed_and_write(
    store: Store,
    embedder: MiniLMEmbedding,
    batch: list[tuple[Document, list[TextNode]]],
) -> int:
    """Embed one batch of articles (one model pass) and write it; returns passages written.

    Term vectors are merged before the article records are written, so an interrupted run
    at worst counts a batch's terms twice (averages barely move), never loses them."""
    nodes = [n for _, ns in batch for n in ns]
    spans = [parse_sentence_spans(n.metadata["sentences"]) for n in nodes]
    sink = TermAccumulator()
    passage_vecs, sentence_vecs = embedder.embed_passages([n.text for n in nodes], spans, sink.add)
    store.merge_terms(sink.sums, sink.counts)
    passages, sentences, articles = [], [], []
    k = 0
    for doc, ns in batch:
        first = k
        for node in ns:
            meta = dict(node.metadata, content_hash=doc.metadata["content_hash"])
            meta["n_sentences"] = len(spans[k])
            passages.append((node.node_id, node.text, meta, passage_vecs[k]))
            for i, (s, e) in enumerate(spans[k]):
                sentences.append(
                    (
                        f"{node.node_id}:{i}",
                        {
                            "article_id": doc.doc_id,
                            "passage_id": node.node_id,
                            "start": node.start_char_idx + s,
                            "end": node.start_char_idx + e,
                        },
                        sentence_vecs[k][i],
                    )
                )
            k += 1
        vec = passage_vecs[first:k].mean(axis=0) if k > first else np.ones(passage_vecs.shape[1])
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        meta = dict(doc.metadata, passages=k - first)
        articles.append((doc.doc_id, doc.text, meta, vec.astype(np.float32)))
    store.write(articles, passages, sentences)
    return len(nodes)


def index_corpus(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    rebuild: bool = False,
    embedder: MiniLMEmbedding | None = None,
    progress: bool = True,
) -> IndexReport:
    """Bring the index in line with the articles under ``paths`` (default: the corpus)."""
    started = time.perf_counter()
    roots = [Path(p) for p in (paths or [settings.corpus_dir])]
    for root in roots:
        if not root.exists():
            raise QAError(f"corpus path {root} does not exist")
    docs, skipped = read_corpus(roots, settings.corpus_dir)
    if not docs and not skipped:
        raise QAError(f"no article files found in {', '.join(map(str, roots))}")
    embedder = embedder or MiniLMEmbedding(settings.onnx_threads, settings.embed_batch_size)
    report = IndexReport(skipped=skipped)

    with write_lock(settings):
        if rebuild:
            Store.drop(settings)
        store = Store(settings, index_fingerprint(settings), create=True)
        committed = store.committed_articles()

        # leftovers of an interrupted run: passages whose article was never committed
        orphans = sorted(store.passage_article_ids() - committed.keys())
        if orphans:
            store.delete_articles(orphans)

        dir_roots = {str(r.resolve()) for r in roots if r.is_dir()}
        present = {d.doc_id for d in docs}
        report.removed = sorted(
            aid
            for aid, meta in committed.items()
            if meta.get("root") in dir_roots and aid not in present
        )
        to_write = []
        for doc in docs:
            old = committed.get(doc.doc_id)
            if old is None:
                report.added.append(doc.doc_id)
                to_write.append(doc)
            elif old.get("content_hash") != doc.metadata["content_hash"]:
                report.updated.append(doc.doc_id)
                to_write.append(doc)
            else:
                report.unchanged.append(doc.doc_id)
        store.delete_articles(report.removed + report.updated)

        def nodes_of(doc: Document) -> list[TextNode]:
            return split_document(
                doc, embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap_sentences
            )

        bar = tqdm(
            total=len(to_write),
            unit="article",
            desc="indexing",
            file=sys.stderr,
            disable=not progress or not to_write,
            dynamic_ncols=True,
        )
        with bar:
            for batch in _batches(to_write, nodes_of, settings.index_batch):
                report.passages_written += embed_and_write(store, embedder, batch)
                bar.update(len(batch))
                bar.set_postfix(passages=report.passages_written)
        report.passages_total = store.count()
    report.seconds = time.perf_counter() - started
    return report

"""Incremental indexing: read the corpus, diff it against the store, write only the change.

An article is identified by its path (and, in ``.jsonl``, its id or title); its content
hash says whether it changed. Unchanged articles cost nothing, an edited one has its
passages replaced, a deleted one has its passages removed, and leftovers of an interrupted
run (passages whose article record was never written) are cleaned up first.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_index.core.schema import Document, TextNode
from tqdm import tqdm

from qa.errors import QAError
from qa.ingest.chunking import parse_sentence_spans, split_document
from qa.ingest.reading import Skipped, read_corpus
from qa.settings import Settings
from qa.store.chroma import (
    Store,
    drop_stale_builds,
    encode_sentence_vectors,
    live_sources,
    new_build_id,
)
from qa.store.embedding import MiniLMEmbedding
from qa.store.locking import write_lock


def index_fingerprint(settings: Settings) -> str:
    """What the stored vectors and spans depend on; a mismatch means rebuild."""
    return (
        f"{MiniLMEmbedding.fingerprint()}|chunk={settings.chunk_tokens}"
        f"|overlap={settings.chunk_overlap_sentences}|v4"
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

    def as_dict(self) -> dict[str, list]:
        """What changed, per article id, and the files skipped and why (the upload API)."""
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [{"file": s.path, "reason": s.reason} for s in self.skipped],
        }

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


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run a generator in a background thread, ``depth`` items ahead.

    Chunking (sentence splitting, token counting) is Python and holds the GIL, while
    onnxruntime releases it: preparing the next batch during the current model pass uses
    the time the model leaves. Exceptions reach the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, name="qa-chunker", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


Row = tuple  # (id, [document,] metadata, vector), as Store.write takes them


@dataclass
class EmbeddedBatch:
    articles: list[Row]
    passages: list[Row]


def embed_batch(
    embedder: MiniLMEmbedding, batch: list[tuple[Document, list[TextNode]]]
) -> EmbeddedBatch:
    """One model pass over a batch of articles' passages: passage and sentence vectors, as
    rows ready for the store (sentence vectors inside their passage's metadata)."""
    nodes = [n for _, ns in batch for n in ns]
    spans = [parse_sentence_spans(n.metadata["sentences"]) for n in nodes]
    passage_vecs, sentence_vecs = embedder.embed_passages([n.text for n in nodes], spans)
    out = EmbeddedBatch([], [])
    k = 0
    for doc, ns in batch:
        first = k
        for node in ns:
            meta = dict(node.metadata, content_hash=doc.metadata["content_hash"])
            meta.update(encode_sentence_vectors(sentence_vecs[k]))
            out.passages.append((node.node_id, node.text, meta, passage_vecs[k]))
            k += 1
        vec = passage_vecs[first:k].mean(axis=0) if k > first else np.ones(passage_vecs.shape[1])
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        meta = dict(doc.metadata, passages=k - first)
        out.articles.append((doc.doc_id, doc.text, meta, vec.astype(np.float32)))
    return out


class BatchWriter:
    """Writes embedded batches while the next one is being embedded, and commits.

    Passages go to the store in a background thread (one task in flight, so memory
    stays bounded). Article records, the commit markers, are held back and written every
    ``commit_every`` passages, by the same thread after the passages before them: a crash
    loses at most that much work, which the next run redoes. (A commit in the model's
    thread stalled the model ~1 s each on Reuters.)
    """

    def __init__(self, store: Store, commit_every: int) -> None:
        self.store = store
        self.commit_every = commit_every
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-writer")
        self._inflight: Future | None = None
        self._articles: list[Row] = []
        self._uncommitted = 0

    def _wait(self) -> None:
        if self._inflight is not None:
            self._inflight.result()
            self._inflight = None

    def add(self, batch: EmbeddedBatch) -> None:
        self._wait()
        self._inflight = self._pool.submit(self.store.write, [], batch.passages)
        self._articles += batch.articles
        self._uncommitted += len(batch.passages)
        if self._uncommitted >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        """Queue a commit of everything added so far (``finish`` waits for it)."""
        self._wait()
        articles = self._articles
        self._articles, self._uncommitted = [], 0
        self._inflight = self._pool.submit(self.store.write, articles, [])

    def finish(self) -> None:
        """Commit the rest and wait until it is written (errors are raised here)."""
        self.commit()
        self._wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def index_corpus(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    rebuild: bool = False,
    embedder: MiniLMEmbedding | None = None,
    progress: bool = True,
    sources: Sequence[Path] | None = None,
) -> IndexReport:
    """Bring the index in line with the articles under ``paths``: by default the sources
    the index recorded, or the corpus folder for a new index. The paths are recorded as the
    index's sources (``sources``, if given, instead: the server records its corpus folder
    for the files uploaded into it)."""
    if paths:
        roots = [Path(p) for p in paths]
    else:
        recorded = live_sources(settings)
        roots = [Path(p) for p in recorded] or [Path(settings.corpus_dir)]
        for root in roots:
            if recorded and not root.exists():
                raise QAError(
                    f"{root}, which this index was built from, no longer exists: "
                    "name the folders to index (`qa index --rebuild PATH ...`)"
                )
    for root in roots:
        if not root.exists():
            raise QAError(f"corpus path {root} does not exist")
    # the folders are read holding the writers' lock: a snapshot taken before it would
    # count an article uploaded meanwhile (by a server, while this waited) as gone
    with write_lock(settings, _waiting(progress)):
        docs, skipped = read_corpus(roots, settings.corpus_dir)
        if not docs and not skipped:
            raise QAError(f"no article files found in {', '.join(map(str, roots))}")
        return _index_locked(
            settings,
            docs,
            skipped,
            corpus_scope(roots),
            rebuild=rebuild,
            embedder=embedder,
            progress=progress,
            sources=list(sources) if sources is not None else roots,
        )


def corpus_scope(roots: Sequence[Path]) -> set[str]:
    """What indexing ``roots`` speaks for: each folder, and each file (``file_key``). An
    indexed article in this scope that the roots no longer hold has left the corpus."""
    scope = {str(r.resolve()) for r in roots if r.is_dir()}
    scope |= {file_key(str(r.resolve().parent), r.name) for r in roots if r.is_file()}
    return scope


def in_scope(meta: dict, scope: set[str] | frozenset[str]) -> bool:
    root = meta.get("root", "")
    return root in scope or file_key(root, meta.get("path", "")) in scope


def file_key(root: str, path: str) -> str:
    """The file an article came from, as ``root`` + ``path`` without a ``.jsonl`` line number:
    indexing one file removes the articles that file no longer holds."""
    name, _, line = path.rpartition(":")
    return f"{root}\0{name if name and line.isdigit() else path}"


def index_documents(
    settings: Settings,
    docs: Sequence[Document],
    skipped: Sequence[Skipped] = (),
    scope: set[str] | frozenset[str] = frozenset(),
    *,
    rebuild: bool = False,
    embedder: MiniLMEmbedding | None = None,
    progress: bool = True,
    sources: Sequence[Path] = (),
) -> IndexReport:
    """Index ``docs``; committed articles that are not among ``docs`` and whose ``root``
    folder, or whose file (``file_key``), is in ``scope`` are removed (they left the corpus).

    A rebuild writes a new build beside the live index, which keeps serving meanwhile, and
    switches to it at the end (see ``qa.store.chroma``); an interrupted rebuild leaves the live
    index as it was, and its partial build is dropped by the next run. ``sources`` are
    recorded with the index (replacing the recorded ones on a rebuild).
    """
    with write_lock(settings, _waiting(progress)):
        return _index_locked(
            settings,
            docs,
            skipped,
            scope,
            rebuild=rebuild,
            embedder=embedder,
            progress=progress,
            sources=sources,
        )


def _waiting(progress: bool) -> str | None:
    return "waiting for another process writing the index to finish…" if progress else None


def _index_locked(
    settings: Settings,
    docs: Sequence[Document],
    skipped: Sequence[Skipped],
    scope: set[str] | frozenset[str],
    *,
    rebuild: bool,
    embedder: MiniLMEmbedding | None,
    progress: bool,
    sources: Sequence[Path],
) -> IndexReport:
    """``index_documents`` for a caller holding the writers' lock."""
    started = time.perf_counter()
    embedder = embedder or MiniLMEmbedding(settings.onnx_threads, settings.embed_batch_size)
    report = IndexReport(skipped=list(skipped))
    drop_stale_builds(settings)
    fingerprint = index_fingerprint(settings)
    store = Store(settings, fingerprint, create=True, build=new_build_id() if rebuild else None)
    committed = store.committed_articles()

    # leftovers of an interrupted run: passages whose article was never committed
    orphans = sorted(store.passage_article_ids() - committed.keys())
    if orphans:
        store.delete_articles(orphans)

    present = {d.doc_id for d in docs}
    report.removed = sorted(
        aid for aid, meta in committed.items() if aid not in present and in_scope(meta, scope)
    )
    to_write = []
    # the same text under two names is indexed once; the other is reported as skipped
    owner = {
        m.get("content_hash"): aid for aid, m in committed.items() if aid not in report.removed
    }
    for doc in docs:
        first = owner.setdefault(doc.metadata["content_hash"], doc.doc_id)
        if first != doc.doc_id:
            report.skipped.append(Skipped(doc.metadata["path"], f"same text as {first}"))
            if doc.doc_id in committed:
                report.removed.append(doc.doc_id)
            continue
        old = committed.get(doc.doc_id)
        if old is None:
            report.added.append(doc.doc_id)
            to_write.append(doc)
        elif old.get("content_hash") != doc.metadata["content_hash"]:
            report.updated.append(doc.doc_id)
            to_write.append(doc)
        else:
            report.unchanged.append(doc.doc_id)
    report.removed.sort()
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
    writer = BatchWriter(store, settings.index_commit_passages)
    try:
        with bar:
            for batch in prefetch(_batches(to_write, nodes_of, settings.index_batch)):
                embedded = embed_batch(embedder, batch)
                writer.add(embedded)
                report.passages_written += len(embedded.passages)
                bar.update(len(batch))
                bar.set_postfix(passages=report.passages_written)
            writer.finish()
    finally:
        writer.close()
    report.passages_total = store.count()
    if rebuild:
        store.switch_to(sources)
    elif sources:
        store.add_sources(sources)
    report.seconds = time.perf_counter() - started
    return report

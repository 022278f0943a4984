"""The persisted index: Chroma collections, embedded on disk or on a Chroma server.

- ``<prefix>_passages``: one record a passage: our vector, the passage text, and metadata
  (article id, exact span, sentence spans, and the sentences' vectors, from the same model
  pass, for the answerer). The collection's metadata holds the fingerprint of the embedder
  and chunking settings, so an index built differently is refused, never silently mixed.
- ``<prefix>_articles``: one record an article (full text, title, source, date, content
  hash), written *last* when an article is indexed. It is the commit marker: passages of an
  article with no article record, or with a stale hash, are leftovers of an interrupted run,
  and the next ``qa index`` deletes and rewrites them. That is what makes kill -9 safe.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from filelock import FileLock, Timeout

from qa.embedding import DIM
from qa.errors import Busy, QAError
from qa.settings import Settings

_FINGERPRINT_KEY = "qa_fingerprint"
_GENERATION_KEY = "qa_generation"
KINDS = ("passages", "articles", "terms")
# Sentence vectors used to be a collection of their own, searched by similarity. It cost a
# third of a large corpus's indexing time and most of a large index's resident memory (its
# HNSW graph: ~5 records a passage) for no retrieval gain (SQuAD v1.1, 1,000 questions: hit@5
# 0.920 with it, 0.923 without). They now travel in their passage's metadata, read only for
# the passages a question retrieved. ``drop`` still removes the old collection.
_LEGACY_KINDS = ("sentences",)
_SENTENCE_VECTORS = "sentence_vectors"  # metadata key: float16, base64, sentence order
_BATCH = 4000  # below Chroma's max batch size (5461 in 1.x)


@dataclass(frozen=True)
class StoredPassage:
    passage_id: str
    article_id: str
    text: str
    start: int
    end: int
    sentences: str  # encoded sentence spans, see qa.chunking


def _client(settings: Settings, create: bool):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise QAError(
                f"QA_CHROMA_URL must look like http://host:port, got {settings.chroma_url!r}"
            )
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:
            raise QAError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {exc}"
            ) from None
    path = settings.index_dir / "chroma"
    if not create and not (path / "chroma.sqlite3").is_file():
        raise QAError(f"no index at {settings.index_dir}/: run `qa index` first")
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except QAError:
        raise
    except Exception as exc:
        raise QAError(
            f"the index at {settings.index_dir}/ is unreadable ({type(exc).__name__}): "
            "run `qa index --rebuild`"
        ) from None


class Store:
    """Reads and writes the three collections. ``create=False`` for read-only surfaces."""

    def __init__(self, settings: Settings, fingerprint: str, create: bool = False) -> None:
        self.settings = settings
        self.fingerprint = fingerprint
        self._client = _client(settings, create)
        names = [f"{settings.collection_prefix}_{k}" for k in KINDS]
        try:
            if create:

                def make(name: str, metadata: dict | None = None, **hnsw):
                    return self._client.get_or_create_collection(
                        name,
                        metadata=metadata,
                        embedding_function=None,
                        configuration={"hnsw": {"space": "cosine", **hnsw}},
                    )

                self.passages = make(names[0], {_FINGERPRINT_KEY: fingerprint})
                self.articles = make(names[1])
                self.terms = make(names[2], space="l2")
            else:
                self.passages, self.articles, self.terms = (
                    self._client.get_collection(n, embedding_function=None) for n in names
                )
        except QAError:
            raise
        except Exception as exc:
            if not create and "does not exist" in str(exc).lower():
                raise QAError(f"no index at {self.where}: run `qa index` first") from None
            raise QAError(
                f"the index at {self.where} is unreadable ({type(exc).__name__}: {exc}): "
                "run `qa index --rebuild`"
            ) from None
        found = (self.passages.metadata or {}).get(_FINGERPRINT_KEY)
        if found != fingerprint:
            raise QAError(
                f"the index at {self.where} was built with other embedder or chunking settings "
                f"({found} vs {fingerprint}): run `qa index --rebuild`"
            )

    @property
    def where(self) -> str:
        return self.settings.chroma_url or f"{self.settings.index_dir}/"

    # -- maintenance ----------------------------------------------------------------------
    @classmethod
    def drop(cls, settings: Settings) -> None:
        """Delete the collections (``qa index --rebuild``)."""
        client = _client(settings, create=True)
        for kind in KINDS + _LEGACY_KINDS:
            with contextlib.suppress(Exception):
                client.delete_collection(f"{settings.collection_prefix}_{kind}")
        if not settings.chroma_url:
            (Path(settings.index_dir) / "terms.npz").unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------------
    def committed_articles(self) -> dict[str, dict]:
        """Article id -> metadata (without the text) of every fully indexed article, read in
        pages: one response with every article's text cost ~290 MB on Reuters."""
        return {
            aid: {k: v for k, v in meta.items() if k != "text"}
            for aid, meta in _paged(self.articles)
        }

    def listing(self) -> dict:
        """What is indexed: ``{"articles": [{article_id, title, source, published, passages}],
        "passages": int}`` (``qa list --json`` and the API)."""
        articles = [
            {
                "article_id": aid,
                "title": m.get("title"),
                "source": m.get("source") or None,
                "published": m.get("published") or None,
                "passages": m.get("passages", 0),
            }
            for aid, m in sorted(self.committed_articles().items())
        ]
        return {"articles": articles, "passages": self.count()}

    def passage_article_ids(self) -> set[str]:
        return {p.article_id for p in self.iter_passages()}

    def count(self) -> int:
        return self.passages.count()

    def iter_passages(self) -> Iterator[StoredPassage]:
        """Every passage, paged so that a large store is never read in one response."""
        for pid, meta in _paged(self.passages):
            yield StoredPassage(
                pid, meta["article_id"], meta["text"], meta["start"], meta["end"], meta["sentences"]
            )

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(passage id, cosine similarity), best first."""
        n = min(n, self.passages.count())
        if n <= 0:
            return []
        got = self.passages.query(query_embeddings=[vector], n_results=n, include=["distances"])
        return [(pid, 1.0 - d) for pid, d in zip(got["ids"][0], got["distances"][0], strict=True)]

    def sentence_vectors(self, passage_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Passage id -> array of its sentence vectors (in sentence order)."""
        ids = list(dict.fromkeys(passage_ids))
        if not ids:
            return {}
        got = self.passages.get(ids=ids, include=["metadatas"])
        out = {}
        for pid, meta in zip(got["ids"], got["metadatas"], strict=True):
            encoded = meta.get(_SENTENCE_VECTORS)
            if encoded:
                out[pid] = _decode_vector(encoded).reshape(-1, DIM)
        return out

    def delete_articles(self, article_ids: list[str]) -> None:
        """Remove articles and everything derived from them; the article record goes last."""
        for i in range(0, len(article_ids), 500):
            chunk = article_ids[i : i + 500]
            self.passages.delete(where={"article_id": {"$in": chunk}})
            self.articles.delete(ids=chunk)
        if article_ids:
            self.touch()

    def write(
        self,
        articles: list[tuple[str, str, dict, np.ndarray]],
        passages: list[tuple[str, str, dict, np.ndarray]],
    ) -> None:
        """Write passages, then article records (the commit markers).

        Each tuple is (id, text, metadata, vector). Upserts, so a retry after a crash
        overwrites rather than duplicates. Texts are kept in the metadata (key ``text``), not
        as Chroma documents: the embedded store full-text-indexes documents, which doubled
        the cost of a write, and search here is by vector and by our own BM25.
        """
        for coll, rows in ((self.passages, passages), (self.articles, articles)):
            for i in range(0, len(rows), _BATCH):
                part = rows[i : i + _BATCH]
                coll.upsert(
                    ids=[r[0] for r in part],
                    metadatas=[{**r[2], "text": r[1]} for r in part],
                    embeddings=np.stack([r[3] for r in part]),
                )

        if articles:
            self.touch()

    # -- change detection across processes ----------------------------------------------------
    # Every process keeps the passage table, BM25 and term vectors in memory. When another
    # process (a `qa index`, another app worker sharing a Chroma server) commits or deletes
    # articles it writes a new random token into the articles collection's metadata; engines
    # compare it before each question and reload when it changed.
    def touch(self) -> None:
        self.articles.modify(metadata={_GENERATION_KEY: uuid.uuid4().hex})

    def generation(self) -> str:
        name = f"{self.settings.collection_prefix}_articles"
        try:
            fresh = self._client.get_collection(name, embedding_function=None)
        except Exception:
            return ""
        return str((fresh.metadata or {}).get(_GENERATION_KEY, ""))

    def article_text(self, article_id: str) -> str | None:
        got = self.articles.get(ids=[article_id], include=["metadatas"])
        return got["metadatas"][0]["text"] if got["ids"] else None

    # -- term vectors (see qa.vocab) ----------------------------------------------------------
    # The term table is read whole and never searched by similarity, but every Chroma
    # collection indexes its vectors and full-text-indexes its documents: with 384-d vectors
    # the table cost as much time as the model itself, and as documents about as much again.
    # So each term record gets a 1-d placeholder vector (spread over [0, 1) so the graph
    # stays well-formed) and its real vector travels in the metadata, float16 in base64.
    #
    # On a local index the table is one file beside the Chroma store instead
    # (``terms.npz``, replaced atomically): even metadata upserts of ~10k terms took 2 s, a
    # tenth of the whole indexing run. On a Chroma server it stays in the store, so every
    # process sharing the server sees it.
    @property
    def _terms_file(self) -> Path | None:
        return None if self.settings.chroma_url else Path(self.settings.index_dir) / "terms.npz"

    def merge_terms(self, sums: dict[str, np.ndarray], counts: dict[str, int]) -> None:
        """Fold new occurrences into the stored per-term averages."""
        if self._terms_file is not None:
            self._merge_terms_file(self._terms_file, sums, counts)
            return
        ids = sorted(sums)
        for i in range(0, len(ids), _BATCH):
            part = ids[i : i + _BATCH]
            old = self.terms.get(ids=part, include=["metadatas"])
            prev = {
                t: (_decode_vector(m["vector"]), int(m["count"]))
                for t, m in zip(old["ids"], old["metadatas"], strict=True)
            }
            metas = []
            for t in part:
                total, n = sums[t], counts[t]
                if t in prev:
                    total = total + prev[t][0] * prev[t][1]
                    n += prev[t][1]
                metas.append({"count": n, "vector": _encode_vector(total / n)})
            self.terms.upsert(
                ids=part,
                metadatas=metas,
                embeddings=np.array([[_placeholder(t)] for t in part], dtype=np.float32),
            )

    @staticmethod
    def _read_terms_file(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
        if not path.is_file():
            return [], np.zeros((0, DIM), dtype=np.float32), np.zeros(0, dtype=np.int64)
        with np.load(path, allow_pickle=False) as data:
            return list(data["terms"]), data["vectors"].astype(np.float32), data["counts"]

    def _merge_terms_file(
        self, path: Path, sums: dict[str, np.ndarray], counts: dict[str, int]
    ) -> None:
        terms, vectors, old_counts = self._read_terms_file(path)
        index = {t: i for i, t in enumerate(terms)}
        new = [t for t in sums if t not in index]
        totals = vectors * old_counts[:, None]
        totals = np.vstack([totals, np.zeros((len(new), totals.shape[1]), dtype=np.float32)])
        all_counts = np.concatenate([old_counts, np.zeros(len(new), dtype=np.int64)])
        for t in new:
            index[t] = len(terms)
            terms.append(t)
        for t, vec in sums.items():
            totals[index[t]] += vec
            all_counts[index[t]] += counts[t]
        means = totals / np.maximum(all_counts, 1)[:, None]
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, terms=np.array(terms), vectors=means.astype(np.float16), counts=all_counts)
        tmp.replace(path)


def _paged(collection, page: int = 1000) -> Iterator[tuple[str, dict]]:
    """(id, metadata) of every record, read ``page`` records at a time."""
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=page, offset=offset)
        yield from zip(got["ids"], got["metadatas"], strict=True)
        if len(got["ids"]) < page:
            return
        offset += page


def encode_sentence_vectors(vectors: np.ndarray) -> dict[str, str]:
    """The metadata entry holding a passage's sentence vectors (float16 is ample for the
    answerer's cosine comparisons and halves the record)."""
    return {_SENTENCE_VECTORS: _encode_vector(vectors)}


def _encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f2").tobytes()).decode("ascii")


def _decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)


def _placeholder(term: str) -> float:
    return int(hashlib.sha1(term.encode()).hexdigest()[:8], 16) / 2**32


@contextlib.contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time on a local index; a second ``qa index`` fails at once."""
    if settings.chroma_url:
        yield
        return
    Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(Path(settings.index_dir) / "index.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise Busy(
            f"the index at {settings.index_dir}/ is locked by another process "
            "(a running `qa index`?): wait for it to finish"
        ) from None
    try:
        yield
    finally:
        lock.release()

"""The persisted index: Chroma collections, embedded on disk or on a Chroma server.

- ``<prefix>_passages``: one record a passage: our vector, the passage text, and metadata
  (article id, exact span, sentence spans, and the sentences' vectors, from the same model
  pass, for the answerer). The collection's metadata holds the fingerprint of the embedder
  and chunking settings, so an index built differently is refused, never silently mixed.
- ``<prefix>_articles``: one record an article (full text, title, source, date, content
  hash), written *last* when an article is indexed. It is the commit marker: passages of an
  article with no article record, or with a stale hash, are leftovers of an interrupted run,
  and the next ``qa index`` deletes and rewrites them. That is what makes kill -9 safe.
- ``<prefix>_index``: no records; its metadata says which *build* of the two collections
  above is live, and which folders and files the index was built from (``sources``).

Builds and the alias: the two collections of a build are named ``<prefix>_<kind>_<build>``.
``qa index --rebuild`` writes a new build beside the live one, then points the alias at it
in one metadata write and drops the old build, the way search engines swap an index alias:
a serving process keeps answering from the old build until it sees the switch, and one
whose collections vanish mid-question (``IndexGone``) reloads and asks again. An index
written before builds existed has unsuffixed names (build ``""``) and is read as it is.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from qa.errors import Busy, QAError
from qa.settings import Settings
from qa.store.embedding import DIM

_FINGERPRINT_KEY = "qa_fingerprint"
_GENERATION_KEY = "qa_generation"
KINDS = ("passages", "articles")
# Collections older indexes also had, dropped with their build: sentence vectors (now in
# their passage's metadata: a collection of their own cost a third of the indexing time for
# no retrieval gain) and term vectors (read only by the rule-based answerer, now gone).
_LEGACY_KINDS = ("terms", "sentences")
_ALIAS = "index"  # collection ``<prefix>_index``: the live build and the sources
_SENTENCE_VECTORS = "sentence_vectors"  # metadata key: float16, base64, sentence order
_BATCH = 4000  # below Chroma's max batch size (5461 in 1.x)


@dataclass(frozen=True)
class StoredPassage:
    passage_id: str
    article_id: str
    text: str
    start: int
    end: int
    sentences: str  # encoded sentence spans, see qa.ingest.chunking


def client_for(settings: Settings, create: bool):
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
    # Two processes opening a new store at once (the first `qa index` while a server or a
    # `qa ask` polls for it) both run chromadb's schema migrations on the one SQLite file,
    # and the loser fails with an InternalError: measured, 1 first index in 8 failed so
    # with a reader polling. It is transient, so try again a few times; chromadb caches a
    # client's system per path before starting it, so the failed one is dropped first.
    # A store that stays unreadable still gets the one-line error.
    from chromadb.api.shared_system_client import SharedSystemClient

    error: Exception | None = None
    for delay in (0.0, 0.2, 0.4, 0.6, 0.8):
        time.sleep(delay)
        try:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except Exception as exc:
            # private in chromadb 1.x; getattr so a rename can't turn this into a crash
            getattr(SharedSystemClient, "_identifier_to_system", {}).pop(str(path), None)
            error = exc
    raise QAError(
        f"the index at {settings.index_dir}/ is unreadable ({type(error).__name__}): "
        "run `qa index --rebuild`"
    ) from None


class IndexGone(Busy):
    """The collections this process was reading were dropped: another process rebuilt the
    index and switched to the new build. The engine reloads and asks again."""


def _gone_is_retryable(method):
    """Turn Chroma's "collection does not exist" during a read into ``IndexGone``, and so any
    other Chroma error once the alias names another build: a ``chroma run`` server whose
    collections are dropped mid-query can fail it with an internal error instead (seen once in
    CI's rebuild-under-load test as an HTTP 500). A generator's reads happen while it is
    iterated, after the call has returned, so its wrapper iterates inside the ``try``."""

    def gone(self) -> IndexGone:
        return IndexGone(f"the index at {self.where} was replaced while reading it: ask again")

    def retryable(self, exc: Exception) -> bool:
        from chromadb.errors import ChromaError

        return is_not_found(exc) or (isinstance(exc, ChromaError) and self.replaced())

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def iterating(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except Exception as exc:
                if retryable(self, exc):
                    raise gone(self) from None
                raise

        return iterating

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if retryable(self, exc):
                raise gone(self) from None
            raise

    return wrapper


def is_not_found(exc: Exception) -> bool:
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError) or "does not exist" in str(exc).lower()


def new_build_id() -> str:
    return f"b{uuid.uuid4().hex[:12]}"


def _names(prefix: str, build: str) -> list[str]:
    return [f"{prefix}_{k}" + (f"_{build}" if build else "") for k in KINDS]


class Store:
    """Reads and writes one build's collections. ``create=False`` for read-only surfaces;
    ``build`` names a build other than the live one (a rebuild writing beside it)."""

    def __init__(
        self,
        settings: Settings,
        fingerprint: str,
        create: bool = False,
        build: str | None = None,
    ) -> None:
        self.settings = settings
        self.fingerprint = fingerprint
        self._client = client_for(settings, create)
        prefix = settings.collection_prefix
        beside = build is not None
        try:
            live = _read_alias(self._client, prefix)
            if build is None:
                if live is not None:
                    build = live.get("build", "")
                elif _exists(self._client, _names(prefix, "")[0]):
                    build = ""  # an index from before builds: read in place
                elif create:
                    build = new_build_id()
                else:
                    raise QAError(f"no index at {self.where}: run `qa index` first")
            self.build = build
            names = _names(prefix, build)
            if create:

                def make(name: str, metadata: dict | None = None):
                    return self._client.get_or_create_collection(
                        name,
                        metadata=metadata,
                        embedding_function=None,
                        configuration={"hnsw": {"space": "cosine"}},
                    )

                self.passages = make(names[0], {_FINGERPRINT_KEY: fingerprint})
                self.articles = make(names[1])
                if live is None and not beside:
                    # a new index (or one from before builds): this build is the live one
                    _write_alias(self._client, prefix, build, [])
            else:
                self.passages, self.articles = (
                    self._client.get_collection(n, embedding_function=None) for n in names
                )
        except QAError:
            raise
        except Exception as exc:
            if not create and is_not_found(exc):
                raise IndexGone(f"the index at {self.where} was replaced: ask again") from None
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

    # -- builds, the alias and the sources ---------------------------------------------------
    def sources(self) -> list[str]:
        """The folders and files this index was built from (absolute paths)."""
        return recorded_sources(self._client, self.settings.collection_prefix)

    def add_sources(self, paths: Iterable[Path]) -> None:
        """Record more sources (``qa index PATH`` on an existing index), on the live build."""
        old = self.sources()
        new = old + [p for p in (str(Path(x).resolve()) for x in paths) if p not in old]
        if new != old:
            _write_alias(self._client, self.settings.collection_prefix, self.build, new)

    def switch_to(self, sources: Iterable[Path]) -> None:
        """Make this build the live one, recording ``sources``, then drop every other build:
        the rebuild's last step. Serving processes see the switch at their next question."""
        prefix = self.settings.collection_prefix
        paths = list(dict.fromkeys(str(Path(x).resolve()) for x in sources))
        _write_alias(self._client, prefix, self.build, paths)
        drop_builds(self._client, prefix, keep=self.build)

    # -- reading ----------------------------------------------------------------------------
    # -- reading ----------------------------------------------------------------------------
    @_gone_is_retryable
    def committed_articles(self) -> dict[str, dict]:
        """Article id -> metadata (without the text) of every fully indexed article, read in
        pages: one response with every article's text cost ~290 MB on Reuters."""
        return {
            aid: {k: v for k, v in meta.items() if k != "text"}
            for aid, meta in _paged(self.articles)
        }

    def listing(self) -> dict:
        """What is indexed: ``{"articles": [{article_id, title, source, published, passages}],
        "passages": int, "sources": [path]}`` (``qa list --json`` and the API)."""
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
        return {"articles": articles, "passages": self.count(), "sources": self.sources()}

    def passage_article_ids(self) -> set[str]:
        return {p.article_id for p in self.iter_passages()}

    @_gone_is_retryable
    def count(self) -> int:
        return self.passages.count()

    @_gone_is_retryable
    def article_count(self) -> int:
        return self.articles.count()

    @_gone_is_retryable
    def iter_passages(self) -> Iterator[StoredPassage]:
        """Every passage, paged so that a large store is never read in one response."""
        for pid, meta in _paged(self.passages):
            yield StoredPassage(
                pid, meta["article_id"], meta["text"], meta["start"], meta["end"], meta["sentences"]
            )

    @_gone_is_retryable
    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(passage id, cosine similarity), best first."""
        n = min(n, self.passages.count())
        if n <= 0:
            return []
        got = self.passages.query(query_embeddings=[vector], n_results=n, include=["distances"])
        return [(pid, 1.0 - d) for pid, d in zip(got["ids"][0], got["distances"][0], strict=True)]

    @_gone_is_retryable
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
    # Every process keeps the passage table and BM25 in memory. When another process (a
    # `qa index`, another app worker sharing a Chroma server) commits or deletes articles it
    # writes a new random token into the articles collection's metadata, and a rebuild
    # switches the alias to a new build; engines compare both before each question and
    # reload when either changed.
    def touch(self) -> None:
        self.articles.modify(metadata={_GENERATION_KEY: uuid.uuid4().hex})

    def replaced(self) -> bool:
        """Whether the alias now names another build than the one this store reads (a
        rebuild elsewhere switched builds)."""
        try:
            live = _read_alias(self._client, self.settings.collection_prefix)
        except Exception:
            return False
        return live is not None and live.get("build", self.build) != self.build

    def generation(self) -> str:
        prefix = self.settings.collection_prefix
        try:
            live = _read_alias(self._client, prefix)
            build = self.build if live is None else live.get("build", "")
            fresh = self._client.get_collection(_names(prefix, build)[1], embedding_function=None)
        except Exception:
            return ""
        return f"{build}:{(fresh.metadata or {}).get(_GENERATION_KEY, '')}"

    @_gone_is_retryable
    def article_text(self, article_id: str) -> str | None:
        got = self.articles.get(ids=[article_id], include=["metadatas"])
        return got["metadatas"][0]["text"] if got["ids"] else None


def _exists(client, name: str) -> bool:
    try:
        client.get_collection(name, embedding_function=None)
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def _read_alias(client, prefix: str) -> dict | None:
    """The alias collection's metadata, or None when the index has none (new, or older
    than builds)."""
    try:
        alias = client.get_collection(f"{prefix}_{_ALIAS}", embedding_function=None)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return dict(alias.metadata or {})


def _write_alias(client, prefix: str, build: str, sources: list[str]) -> None:
    """One metadata write (Chroma replaces a collection's metadata whole): the switch."""
    meta = {"build": build, "sources": json.dumps(sources), "switched": time.time()}
    alias = client.get_or_create_collection(f"{prefix}_{_ALIAS}", embedding_function=None)
    alias.modify(metadata=meta)


def recorded_sources(client, prefix: str) -> list[str]:
    meta = _read_alias(client, prefix) or {}
    try:
        found = json.loads(meta.get("sources") or "[]")
    except ValueError:
        return []
    return [str(x) for x in found if isinstance(x, str)]


def live_sources(settings: Settings) -> list[str]:
    """The recorded sources of the index ``settings`` point at; [] when there is no index
    yet (or it is older than recorded sources)."""
    if not settings.chroma_url and not (settings.index_dir / "chroma" / "chroma.sqlite3").is_file():
        return []
    return recorded_sources(client_for(settings, create=False), settings.collection_prefix)


def drop_builds(client, prefix: str, keep: str) -> list[str]:
    """Delete every build's collections but ``keep``'s, including those of an index from
    before builds and of a rebuild that was interrupted. Call it holding the write lock: a
    rebuild in progress is a build that isn't live yet."""
    kinds = "|".join(KINDS + _LEGACY_KINDS)
    pattern = re.compile(rf"^{re.escape(prefix)}_(?:{kinds})(?:_(b[0-9a-f]{{12}}))?$")
    dropped = []
    for coll in client.list_collections():
        name = coll if isinstance(coll, str) else coll.name
        m = pattern.match(name)
        if m and (m.group(1) or "") != keep:
            with contextlib.suppress(Exception):  # already gone: another cleanup was first
                client.delete_collection(name)
                dropped.append(name)
    return dropped


def drop_stale_builds(settings: Settings) -> None:
    """Collections of builds that are not live (an interrupted rebuild's), and the term
    vectors file older local indexes kept beside the store."""
    client = client_for(settings, create=True)
    live = _read_alias(client, settings.collection_prefix)
    if live is not None:
        drop_builds(client, settings.collection_prefix, keep=live.get("build", ""))
    if not settings.chroma_url:
        (Path(settings.index_dir) / "terms.npz").unlink(missing_ok=True)


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

"""One engine behind every surface of the server: the web chat, the REST API and the
OpenAI-compatible endpoint share this object, so there is one index and one embedder in
memory and one limit on how many questions are answered at once.

It also owns the corpus changes a client can make (upload, delete): the file goes into the
corpus folder, so that a later ``qa index`` agrees with what the server did, the index is
updated incrementally and the engine reloaded; questions keep being answered meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qa import __version__
from qa.engine import Engine
from qa.errors import Busy, NotFound, QAError, TooLarge, Unsupported
from qa.ingest.reading import slug
from qa.serve.inputs import validate_history, validate_question
from qa.settings import Settings
from qa.store.chroma import IndexGone, Store
from qa.store.embedding import MiniLMEmbedding
from qa.store.indexer import IndexReport, index_corpus, index_fingerprint
from qa.store.locking import write_lock

# what the upload panel and POST /api/articles take (PDF stays a `qa index` format)
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_WAIT_FOR_SLOT_S = 30.0


def safe_filename(name: str) -> str:
    """The last path component of ``name`` with only ``[A-Za-z0-9._-]``: an upload can never
    name a file outside the corpus folder (no ``..``, no separators, no hidden files)."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, suffix = _SAFE_NAME.sub("-", base).strip("-.").rpartition(".")
    if not dot:
        stem, suffix = suffix, ""
    stem = stem.strip("-.")[:100]
    if not stem:
        raise QAError(f"invalid file name {name!r}")
    return f"{stem}.{suffix[:10]}" if suffix else stem


def _write_replacing(path: Path, data: bytes) -> None:
    """Write a new file at ``path`` through a temporary file and a rename: a symlink planted
    at that name is replaced, never followed out of the corpus folder, and a reader never
    sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.upload")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def prepare_index(settings: Settings, embedder: MiniLMEmbedding | None = None) -> None:
    """Index the corpus folder if the index has no articles yet."""
    store = Store(settings, index_fingerprint(settings), create=True)
    if not store.articles.count() and Path(settings.corpus_dir).is_dir():
        index_corpus(settings, None, embedder=embedder, progress=False)


class QAService:
    """The server's engine, its answer slots, and the corpus changes made through it."""

    def __init__(self, settings: Settings, embedder: MiniLMEmbedding | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or MiniLMEmbedding(
            settings.onnx_threads, settings.embed_batch_size
        )
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._writing = threading.Lock()
        self.engine: Engine | None = None
        self._load()

    # -- state ------------------------------------------------------------------------------
    def _store(self) -> Store:
        return Store(self.settings, index_fingerprint(self.settings), create=True)

    def _load(self) -> None:
        """Load the engine; an index that is empty (every article deleted) leaves it None."""
        try:
            if self.engine is None:
                self.engine = Engine(self.settings, self.embedder)
            else:
                self.engine.reload()
        except QAError as exc:
            if "is empty" not in str(exc):
                raise
            self.engine = None

    @classmethod
    def start(cls, settings: Settings, embedder: MiniLMEmbedding | None = None) -> QAService:
        """The service, after indexing the corpus if the index has no articles yet (a fresh
        checkout runs ``python app.py`` and gets answers)."""
        embedder = embedder or MiniLMEmbedding(settings.onnx_threads, settings.embed_batch_size)
        prepare_index(settings, embedder)
        return cls(settings, embedder)

    # -- questions --------------------------------------------------------------------------
    def ask(self, question: object, history: object = None, top_k: object = None) -> dict[str, Any]:
        """The engine's JSON answer, within the shared limit on concurrent questions."""
        *_, result = self.stream(question, history, top_k, pieces=False)
        return result

    def stream(
        self, question: object, history: object = None, top_k: object = None, pieces: bool = True
    ) -> Iterator[str | dict[str, Any]]:
        """Pieces of the answer, then the JSON answer (a dict). Bad input, an empty index and
        a full house raise here, before the first piece, so that a surface can still answer
        with an error status; the answer slot is held until the stream ends or is dropped."""
        question = validate_question(question, self.settings.max_question_chars)
        history = validate_history(history)
        if self.engine is None:
            self._load()  # another process sharing the store may have added articles since
        engine = self.engine
        if engine is None:
            raise Busy("the index holds no articles: upload some first")
        if not self._slots.acquire(timeout=_WAIT_FOR_SLOT_S):
            raise Busy("the server is answering too many questions; try again shortly")
        slot = _Slot(self._slots)
        try:
            events = engine.answer_events(question, history, top_k, stream=pieces)
        except BaseException:
            slot.release()
            raise
        held = _holding(events, slot)
        # a stream dropped before its first piece never runs its finally: release then too
        weakref.finalize(held, slot.release)
        return held

    def examples(self, n: int = 4) -> list[str]:
        """Questions for the empty chat screen: the first ones of the gold set beside the
        corpus (the shipped corpus has one), else questions built from article titles."""
        gold = Path(self.settings.corpus_dir).parent / "gold.jsonl"
        found: list[str] = []
        if gold.is_file():
            import json

            for line in gold.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if (
                    isinstance(item, dict)
                    and item.get("answers")
                    and not item.get("history")
                    and isinstance(item.get("question"), str)
                ):
                    found.append(item["question"])
        if not found:
            titles = [a["title"] for a in self.articles()["articles"] if a.get("title")]
            found = [f"What does the article “{t}” report?" for t in titles]
        # spread over the set rather than the first few (which are often on one article)
        step = max(1, len(found) // n)
        return found[::step][:n]

    # -- the corpus -------------------------------------------------------------------------
    def articles(self) -> dict[str, Any]:
        try:
            return self._store().listing()
        except IndexGone:  # a rebuild elsewhere switched builds between two reads
            return self._store().listing()

    def health(self) -> dict[str, Any]:
        """Counts only (two count calls): probes call this often, so it doesn't list articles."""

        def counts(store: Store) -> tuple[int, int]:
            return store.article_count(), store.count()

        if self.engine is not None:
            articles, passages = self.engine.on_live_index(lambda state: counts(state.store))
        else:
            articles, passages = counts(self._store())
        return {
            "status": "ok",
            "ready": self.engine is not None,
            "articles": articles,
            "passages": passages,
            "version": __version__,
        }

    def add_files(self, files: Sequence[tuple[str, bytes]]) -> IndexReport:
        """Save uploads into the corpus folder and index them. Files of a type the corpus
        can't read are refused before anything is written (``Unsupported``)."""
        if not files:
            raise QAError("no files were sent (form field 'files')")
        named: list[tuple[str, bytes]] = []
        for name, data in files:
            safe = safe_filename(name)
            if not safe.lower().endswith(UPLOAD_SUFFIXES):
                raise Unsupported(
                    f"{name!r}: unsupported file type; send {', '.join(UPLOAD_SUFFIXES)}"
                )
            if len(data) > self.settings.max_upload_bytes:
                raise TooLarge(f"{name!r} is over {self.settings.max_upload_bytes} bytes")
            named.append((safe, data))
        corpus = Path(self.settings.corpus_dir)
        corpus.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            paths, new = [], set()
            for safe, data in named:
                path = corpus / safe
                if not path.exists() and not path.is_symlink():
                    new.add(safe)
                _write_replacing(path, data)
                paths.append(path)
            # the corpus folder, not each file, is what the index records as its source
            result = index_corpus(
                self.settings, paths, embedder=self.embedder, progress=False, sources=[corpus]
            )
            # a new file that gave no article (unreadable, empty) is not left in the corpus
            kept = {s.path.partition(":")[0] for s in result.skipped if "same text" in s.reason}
            indexed = set(result.added + result.updated + result.unchanged)
            for safe in new - kept:
                if not any(a == slug(safe) or a.startswith(f"{slug(safe)}--") for a in indexed):
                    (corpus / safe).unlink(missing_ok=True)
            self._load()
        return result

    def delete_article(self, article_id: str) -> dict[str, Any]:
        """Remove an article from the index and its text from the corpus folder: its file, or
        its line of a ``.jsonl`` file (blanked, so the other lines keep their numbers)."""
        with self._exclusive():
            meta = self._store().committed_articles().get(article_id)
            if meta is None:
                raise NotFound(f"no article with id {article_id!r}")
            file_removed = self._remove_source(meta)
            with write_lock(self.settings):
                self._store().delete_articles([article_id])
            self._load()
        return {"deleted": article_id, "file_removed": file_removed}

    def _remove_source(self, meta: dict) -> str | None:
        corpus = Path(self.settings.corpus_dir).resolve()
        if meta.get("root") != str(corpus):
            return None  # indexed from elsewhere with `qa index PATH`: that file is not ours
        rel, _, line = str(meta.get("path", "")).rpartition(":")
        if not (rel and line.isdigit()):
            rel, line = str(meta.get("path", "")), ""
        path = (corpus / rel).resolve()
        if not path.is_relative_to(corpus) or not path.is_file():
            return None
        if line:
            lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
            index = int(line) - 1
            if 0 <= index < len(lines):
                lines[index] = "\n"
            if any(x.strip() for x in lines):
                path.write_text("".join(lines), encoding="utf-8")
                return f"{rel}:{line}"
        path.unlink()
        return rel

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One corpus change at a time in this server; a second one waits its turn."""
        if not self._writing.acquire(timeout=_WAIT_FOR_SLOT_S * 4):
            raise Busy("another upload or delete is still running; try again shortly")
        try:
            yield
        finally:
            self._writing.release()


class _Slot:
    """One taken answer slot, released exactly once."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._slots.release()


def _holding(events: Iterator, slot: _Slot) -> Iterator:
    try:
        yield from events
    finally:
        slot.release()

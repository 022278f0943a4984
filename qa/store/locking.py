"""The writers' lock: one process at a time writes an index, whichever surface it comes
from (``qa index``, ``qa doctor --fix``, an upload or a delete through the server), and
whether the processes share a local index or a Chroma server.

Readers never take it: they read the live build (see ``qa.store.chroma``), which a writer changes
only by committing articles or by switching the alias to a finished build.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from qa.errors import Busy
from qa.settings import Settings
from qa.store.chroma import client_for, is_not_found

_LOCK = "lock"  # collection ``<prefix>_lock``: the writers' lock on a Chroma server


@contextlib.contextmanager
def write_lock(settings: Settings, waiting: str | None = None) -> Iterator[None]:
    """One writer at a time, across processes: every ``qa index``, upload and delete holds
    it. A second writer waits up to ``QA_LOCK_WAIT_S`` for the first to finish (printing
    ``waiting`` once to stderr, if given), then fails with ``Busy``. On a local index the
    lock is a file beside the store; on a Chroma server, which processes on several machines
    share, it lives in the server itself (``ChromaLock``)."""
    if settings.chroma_url:
        lock = ChromaLock(client_for(settings, create=True), settings.collection_prefix)
        with lock.held(settings.lock_wait_s, waiting, settings.chroma_url):
            yield
        return
    Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(str(Path(settings.index_dir) / "index.lock"))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        if waiting:
            print(waiting, file=sys.stderr, flush=True)
        try:
            file_lock.acquire(timeout=settings.lock_wait_s)
        except Timeout:
            raise Busy(_busy(f"{settings.index_dir}/", settings.lock_wait_s)) from None
    try:
        yield
    finally:
        file_lock.release()


def _busy(where: str, waited: float) -> str:
    return (
        f"the index at {where} is being written by another process (a `qa index`, an upload); "
        f"waited {waited:g} s: try again when it has finished"
    )


class ChromaLock:
    """A lock every process sharing a Chroma server respects: the collection
    ``<prefix>_lock`` exists while someone writes.

    Written by hand because Chroma has no lock and no compare-and-set; creating a
    collection is the one atomic test-and-set it offers (a second create of the same name
    fails). The holder refreshes a heartbeat in the lock's metadata every few seconds, so a
    holder that died (kill -9, a lost machine) is recognised when its heartbeat stops
    changing for ``stale_s`` of the waiter's own clock (no clocks are compared across
    machines), and its lock is deleted. Two waiters breaking the same dead lock at once both
    delete it, and only one create wins.
    """

    beat_s = 2.0
    stale_s = 30.0

    def __init__(self, client, prefix: str) -> None:
        self._client = client
        self._name = f"{prefix}_{_LOCK}"
        self._me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _try_create(self) -> bool:
        try:
            self._client.create_collection(
                self._name, metadata=self._meta(), embedding_function=None
            )
        except Exception as exc:
            if "exist" in str(exc).lower():
                return False
            raise
        return True

    def _meta(self) -> dict:
        return {"holder": self._me, "beat": uuid.uuid4().hex}

    def _holder(self) -> dict | None:
        try:
            return dict(self._client.get_collection(self._name).metadata or {})
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    @contextlib.contextmanager
    def held(self, wait_s: float, waiting: str | None, where: str) -> Iterator[None]:
        deadline = time.monotonic() + wait_s
        seen: tuple[str, str] | None = None  # (holder, beat) last seen, and since when
        seen_at = time.monotonic()
        told = False
        while not self._try_create():
            holder = self._holder()
            now = time.monotonic()
            if holder is not None:
                state = (str(holder.get("holder")), str(holder.get("beat")))
                if state != seen:
                    seen, seen_at = state, now
                elif now - seen_at > self.stale_s and self._holder() == holder:
                    with contextlib.suppress(Exception):  # a dead holder's lock
                        self._client.delete_collection(self._name)
                    continue
            if now > deadline:
                raise Busy(_busy(where, wait_s))
            if waiting and not told:
                print(waiting, file=sys.stderr, flush=True)
                told = True
            time.sleep(0.2)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(stop,), daemon=True, name="qa-lock")
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if (self._holder() or {}).get("holder") == self._me:
                with contextlib.suppress(Exception):
                    self._client.delete_collection(self._name)

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.beat_s):
            with contextlib.suppress(Exception):  # a missed beat only shortens the grace
                self._client.get_collection(self._name).modify(metadata=self._meta())

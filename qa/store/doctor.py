"""``qa doctor``: the index checked against the corpus and against itself.

What can go wrong with an index is what users of similar products report most after
re-indexing: duplicates, passages of deleted articles still answering, articles silently
missing, or vectors from another embedder mixed in. Each is checked here:

- the index was built with this embedder and chunking (else: rebuild, never mixed);
- every article of the index's sources (the folders and files ``qa index`` recorded; the
  corpus folder for an index older than recorded sources) is indexed, with its current text;
- nothing is indexed from those sources that is no longer in them, and they all still exist;
- no orphan passages (of no committed article; sentence vectors live inside their passage's
  record, so they can't be orphaned);
- no duplicate passages (one article span stored twice) and the passage count each article
  record holds matches its passages.

``--fix`` removes orphans and duplicates and brings the index in line with its sources
(a bare ``qa index``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import QAError
from qa.ingest.reading import read_corpus
from qa.settings import Settings
from qa.store.chroma import Store
from qa.store.indexer import corpus_scope, in_scope, index_corpus, index_fingerprint
from qa.store.locking import write_lock


@dataclass
class Diagnosis:
    articles: int = 0
    passages: int = 0
    sources: list[str] = field(default_factory=list)
    lost_sources: list[str] = field(default_factory=list)  # recorded, no longer there
    missing: list[str] = field(default_factory=list)  # in the corpus, not indexed
    stale: list[str] = field(default_factory=list)  # indexed with older text
    gone: list[str] = field(default_factory=list)  # indexed, no longer in the corpus
    orphan_passages: list[str] = field(default_factory=list)
    duplicate_passages: list[str] = field(default_factory=list)
    miscounted: list[str] = field(default_factory=list)  # article record vs its passages

    @property
    def healthy(self) -> bool:
        return not any(
            (
                self.lost_sources,
                self.missing,
                self.stale,
                self.gone,
                self.orphan_passages,
                self.duplicate_passages,
                self.miscounted,
            )
        )

    def lines(self) -> list[str]:
        out = [f"index: {self.articles} articles, {self.passages} passages"]
        if self.sources:
            out.append(f"sources: {', '.join(self.sources)}")
        for label, items in (
            ("sources that no longer exist", self.lost_sources),
            ("not indexed (in the sources)", self.missing),
            ("indexed with older text", self.stale),
            ("indexed but no longer in the sources", self.gone),
            ("orphan passages (no article)", self.orphan_passages),
            ("duplicate passages", self.duplicate_passages),
            ("article records whose passage count is wrong", self.miscounted),
        ):
            if items:
                shown = ", ".join(items[:5]) + (f" … (+{len(items) - 5})" if len(items) > 5 else "")
                out.append(f"{label}: {len(items)}: {shown}")
        out.append("healthy" if self.healthy else "problems found: `qa doctor --fix` repairs them")
        return out


def diagnose(settings: Settings) -> Diagnosis:
    """Everything checked, nothing changed. A fingerprint mismatch or a missing index is a
    ``QAError`` (the store refuses to open it) with the command that fixes it."""
    store = Store(settings, index_fingerprint(settings))
    d = Diagnosis()
    committed = store.committed_articles()
    passages = list(store.iter_passages())
    d.articles, d.passages = len(committed), len(passages)

    recorded = store.sources()
    roots = [Path(p) for p in recorded] or [Path(settings.corpus_dir)]
    d.sources = [str(r) for r in roots]
    d.lost_sources = [str(r) for r in roots if recorded and not r.exists()]
    roots = [r for r in roots if r.exists()]
    if roots:
        docs, _ = read_corpus(roots, Path(settings.corpus_dir))
        present = {doc.doc_id: doc for doc in docs}
        hashes = {m.get("content_hash"): aid for aid, m in committed.items()}
        for aid, doc in present.items():
            meta = committed.get(aid)
            if meta is None:
                if doc.metadata["content_hash"] not in hashes:  # not a known duplicate
                    d.missing.append(aid)
            elif meta.get("content_hash") != doc.metadata["content_hash"]:
                d.stale.append(aid)
        scope = corpus_scope(roots)
        d.gone = sorted(
            aid for aid, m in committed.items() if in_scope(m, scope) and aid not in present
        )

    d.orphan_passages = sorted(p.passage_id for p in passages if p.article_id not in committed)
    spans = Counter((p.article_id, p.start, p.end) for p in passages)
    d.duplicate_passages = sorted(
        p.passage_id for p in passages if spans[(p.article_id, p.start, p.end)] > 1
    )
    per_article: dict[str, int] = defaultdict(int)
    for p in passages:
        per_article[p.article_id] += 1
    d.miscounted = sorted(
        aid
        for aid, m in committed.items()
        if isinstance(m.get("passages"), int) and m["passages"] != per_article.get(aid, 0)
    )
    return d


def repair(settings: Settings, d: Diagnosis) -> list[str]:
    """Fix what ``diagnose`` found; returns what was done, one line each."""
    if d.lost_sources:
        raise QAError(
            f"{', '.join(d.lost_sources)}: recorded as sources of the index but gone; "
            "rebuild from what exists (`qa index --rebuild PATH ...`)"
        )
    done: list[str] = []
    with write_lock(settings, "waiting for another process writing the index to finish…"):
        store = Store(settings, index_fingerprint(settings), create=True)
        broken = sorted(set(d.miscounted) | _articles_of(store, d.duplicate_passages))
        if d.orphan_passages:
            store.passages.delete(ids=d.orphan_passages)
            done.append(f"removed {len(d.orphan_passages)} orphan passages")
        if broken:
            store.delete_articles(broken)  # indexed again below from the sources
            done.append(f"re-indexing {len(broken)} articles with duplicate or miscounted passages")
    if any(Path(p).exists() for p in d.sources):
        report = index_corpus(settings, None, progress=False)
        done.append(f"brought the index in line with its sources: {report.summary()}")
    elif broken:
        raise QAError(f"{settings.corpus_dir} is missing: the removed articles can't be re-read")
    return done


def _articles_of(store: Store, passage_ids: list[str]) -> set[str]:
    if not passage_ids:
        return set()
    got = store.passages.get(ids=passage_ids, include=["metadatas"])
    return {m["article_id"] for m in got["metadatas"]}

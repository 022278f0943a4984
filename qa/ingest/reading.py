"""Reading article files into llama-index ``Document`` objects.

Formats: ``.txt``, ``.md`` (optional YAML front matter), ``.html``/``.htm`` (text only),
``.jsonl`` (one article a line), ``.pdf`` (pypdf). A file that can't be read is reported as
skipped with a reason and the run goes on. Metadata for plain files can come from a sidecar
``articles.json`` in the same folder (``{"articles": [{"file", "title", "source",
"published"}]}``), which is how the shipped corpus keeps its texts verbatim.

The article text stored is exactly what passages and citations are cut from: every
citation span is an offset into ``Document.text``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from llama_index.core.schema import Document

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf")
SIDECAR = "articles.json"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_FRONT_MATTER = re.compile(r"\A---\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.S)


@dataclass(frozen=True)
class Skipped:
    """A file or line that was not ingested, and why (shown in the index summary)."""

    path: str
    reason: str


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def slug(value: str) -> str:
    return _SLUG.sub("-", value).strip("-") or "article"


def make_document(
    article_id: str,
    text: str,
    *,
    title: str,
    path: str,
    root: str,
    source: str | None = None,
    published: str | None = None,
    url: str | None = None,
) -> Document:
    """One article. Metadata values are plain strings so that Chroma can store them."""
    meta = {
        "article_id": article_id,
        "title": title.strip() or article_id,
        "source": (source or "").strip(),
        "published": (published or "").strip(),
        "url": (url or "").strip(),
        "path": path,
        "root": root,
        "content_hash": content_hash(text),
    }
    return Document(id_=article_id, text=text, metadata=meta)


def _read_text(path: Path) -> str:
    """UTF-8 text of a file, or ValueError with the reason it can't be an article."""
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise ValueError("binary content")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not text.strip():
        raise ValueError("empty")
    return text


def _first_line_title(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 150 else None
    return None


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


def _load_sidecar(folder: Path) -> dict[str, dict]:
    sidecar = folder / SIDECAR
    if not sidecar.is_file():
        return {}
    try:
        entries = json.loads(sidecar.read_text("utf-8")).get("articles", [])
        return {e["file"]: e for e in entries if isinstance(e, dict) and "file" in e}
    except (ValueError, AttributeError, TypeError):
        return {}


def _read_markdown(text: str) -> tuple[str, dict]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    body = text[match.end() :]
    return body, meta if isinstance(meta, dict) else {}


def _read_html(text: str) -> tuple[str, dict]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    meta: dict = {}
    if soup.title and soup.title.string:
        meta["title"] = soup.title.string.strip()
    for key, names in (
        ("published", ("article:published_time", "date", "pubdate")),
        ("source", ("og:site_name", "publisher")),
    ):
        for name in names:
            tag = soup.find("meta", attrs={"property": name}) or soup.find(
                "meta", attrs={"name": name}
            )
            if tag and tag.get("content"):
                meta[key] = str(tag["content"])
                break
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in soup.get_text("\n").split("\n"))
    body = "\n".join(ln for ln in lines if ln)
    if "title" not in meta and (h1 := soup.find("h1")):
        meta["title"] = h1.get_text(" ", strip=True)
    return body, meta


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for damaged files
        raise ValueError(f"unreadable PDF ({type(exc).__name__})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise ValueError("PDF has no extractable text")
    return text


def _read_jsonl(path: Path, id_prefix: str, root: str, rel: str) -> Iterator[Document | Skipped]:
    text = _read_text(path)
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{rel}:{lineno}"
        try:
            obj = json.loads(line)
        except ValueError:
            yield Skipped(where, "not valid JSON")
            continue
        if not isinstance(obj, dict):
            yield Skipped(where, "not a JSON object")
            continue
        body, title = obj.get("text"), obj.get("title")
        if not isinstance(body, str) or not body.strip():
            yield Skipped(where, "missing or empty 'text'")
            continue
        if not isinstance(title, str) or not title.strip():
            yield Skipped(where, "missing or empty 'title'")
            continue
        key = obj.get("id") if isinstance(obj.get("id"), str | int) else None
        article_id = f"{id_prefix}--{slug(str(key) if key is not None else title)[:80]}"
        if article_id in seen:
            article_id = f"{article_id}-{lineno}"
        seen.add(article_id)
        yield make_document(
            article_id,
            body,
            title=title,
            path=where,
            root=root,
            source=_as_str(obj.get("source")),
            published=_as_str(obj.get("published")),
            url=_as_str(obj.get("url")),
        )


def read_file(
    path: Path, root: Path, id_prefix: str = "", sidecar: dict[str, dict] | None = None
) -> Iterator[Document | Skipped]:
    """The articles in one file (several for ``.jsonl``), or a ``Skipped`` entry."""
    rel = path.relative_to(root).as_posix() if path != root else path.name
    article_id = slug(f"{id_prefix}{rel}")
    suffix = path.suffix.lower()
    root_s = str(root)
    try:
        if suffix not in SUPPORTED_SUFFIXES:
            yield Skipped(rel, f"unsupported file type '{suffix or path.name}'")
            return
        if suffix == ".jsonl":
            yield from _read_jsonl(path, article_id, root_s, rel)
            return
        meta: dict = {}
        if suffix == ".pdf":
            text = _read_pdf(path)
        else:
            text = _read_text(path)
            if suffix in (".md", ".markdown"):
                text, meta = _read_markdown(text)
            elif suffix in (".html", ".htm"):
                text, meta = _read_html(text)
        if not text.strip():
            raise ValueError("empty")
        side = (sidecar or {}).get(path.name, {})
        meta = {**meta, **{k: v for k, v in side.items() if v}}
        title = _as_str(meta.get("title")) or _first_line_title(text) or path.stem
        yield make_document(
            article_id,
            text,
            title=title,
            path=rel,
            root=root_s,
            source=_as_str(meta.get("source")),
            published=_as_str(meta.get("published") or meta.get("date")),
            url=_as_str(meta.get("url")),
        )
    except (OSError, ValueError) as exc:
        yield Skipped(rel, str(exc) if isinstance(exc, ValueError) else exc.strerror or "error")


def iter_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order, hidden files and the sidecar left out."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel_parts):
            continue
        if path.is_file() and path.name != SIDECAR:
            yield path


def read_corpus(roots: Iterable[Path], default_root: Path) -> tuple[list[Document], list[Skipped]]:
    """All articles under ``roots``. Ids are paths relative to their root; a root other than
    the default corpus folder prefixes its own name so that two roots can't collide."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for root in roots:
        root = root.resolve()
        is_default = root == default_root.resolve()
        prefix = "" if is_default or root.is_file() else f"{root.name}/"
        base = root.parent if root.is_file() else root
        sidecars: dict[Path, dict[str, dict]] = {}
        for path in iter_files(root):
            folder = path.parent
            if folder not in sidecars:
                sidecars[folder] = _load_sidecar(folder)
            for item in read_file(path, base, prefix, sidecars[folder]):
                if isinstance(item, Skipped):
                    skipped.append(item)
                elif item.doc_id in seen:
                    skipped.append(Skipped(item.metadata["path"], "duplicate article id"))
                else:
                    seen.add(item.doc_id)
                    docs.append(item)
    return docs, skipped

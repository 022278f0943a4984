"""The ``qa`` command: index, ask, chat, list.

Every failure a user can cause is one line on stderr and exit code 2; nothing prints a
traceback unless ``QA_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from qa.errors import QAError
from qa.settings import Settings, load_settings


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        index_dir=args.index_dir,
        corpus_dir=args.corpus_dir,
        chroma_url=args.chroma_url,
        top_k=getattr(args, "top_k", None),
    )


def _engine(settings: Settings):
    from qa.engine import Engine

    return Engine(settings)


def format_answer(result: dict[str, Any], width: int = 100) -> str:
    """The answer, then its numbered sources with title, source, date and passage."""
    lines = [textwrap.fill(result["answer"], width)]
    if result["citations"]:
        lines += ["", "Sources:"]
        for c in result["citations"]:
            where = ", ".join(x for x in (c["source"], c["published"]) if x)
            lines.append(f"[{c['n']}] {c['title']}" + (f" — {where}" if where else ""))
            passage = " ".join(c["text"].split())
            lines.append(
                textwrap.fill(passage, width, initial_indent="    ", subsequent_indent="    ")
            )
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> int:
    from qa.indexer import index_corpus

    settings = _settings(args)
    paths = [Path(p) for p in args.paths] or None
    try:
        report = index_corpus(settings, paths, rebuild=args.rebuild, progress=not args.quiet)
    except KeyboardInterrupt:
        print("interrupted: run `qa index` again to complete the index", file=sys.stderr)
        return 130
    print(report.summary())
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from qa.engine import validate_question

    validate_question(args.question, settings.max_question_chars)  # before loading anything
    result = _engine(settings).ask(args.question, top_k=args.top_k)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_answer(result))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    engine = _engine(_settings(args))
    history: list[dict[str, str]] = []
    print("Ask about the articles. /new starts a new conversation, /quit (or Ctrl-D) leaves.")
    while True:
        try:
            question = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            continue
        if question in ("/quit", "/exit"):
            return 0
        if question == "/new":
            history = []
            print("(new conversation)")
            continue
        try:
            result = engine.ask(question, history=history, top_k=args.top_k)
        except QAError as exc:
            print(f"error: {exc}")
            continue
        print("\n" + format_answer(result))
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": result["answer"]},
        ]


def cmd_list(args: argparse.Namespace) -> int:
    from qa.indexer import index_fingerprint
    from qa.store import Store

    settings = _settings(args)
    store = Store(settings, index_fingerprint(settings))
    committed = store.committed_articles()
    listing = {
        "articles": [
            {
                "article_id": aid,
                "title": m.get("title"),
                "source": m.get("source") or None,
                "published": m.get("published") or None,
                "passages": m.get("passages", 0),
            }
            for aid, m in sorted(committed.items())
        ],
        "passages": store.count(),
    }
    if args.json:
        print(json.dumps(listing, ensure_ascii=False))
        return 0
    for a in listing["articles"]:
        meta = ", ".join(x for x in (a["source"], a["published"]) if x)
        print(f"{a['article_id']}  {a['title']}" + (f"  ({meta})" if meta else ""))
        print(f"    {a['passages']} passages")
    print(f"{len(listing['articles'])} articles, {listing['passages']} passages")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"expected 1 to 50, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index-dir", help="where the index lives (QA_INDEX_DIR, default index/)")
    common.add_argument("--corpus-dir", help="default corpus (QA_CORPUS_DIR, corpus/articles/)")
    common.add_argument("--chroma-url", help="use a Chroma server (QA_CHROMA_URL)")

    parser = _Parser(prog="qa", description="Cited question answering over a news corpus.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("index", parents=[common], help="ingest articles into the index")
    p.add_argument("paths", nargs="*", help="files or folders (default: the corpus folder)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", parents=[common], help="answer one question")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--top-k", type=_positive_int, help="passages to answer from (QA_TOP_K)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", parents=[common], help="a conversation in the terminal")
    p.add_argument("--top-k", type=_positive_int)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("list", parents=[common], help="what is indexed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback for the user
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

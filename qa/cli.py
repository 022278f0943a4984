"""The ``qa`` command: index, ask, chat, list, eval, serve.

Every failure a user can cause is one line on stderr and exit code 2; nothing prints a
traceback unless ``QA_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from qa.answer.render import format_answer
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


def _bold() -> tuple[str, str] | None:
    """Terminal bold on a terminal; Markdown ``**`` when the output is piped."""
    return ("\033[1m", "\033[0m") if sys.stdout.isatty() else None


def _print_stream(events) -> dict[str, Any]:
    """Print the answer's pieces as they come; return the final JSON answer."""
    result: dict[str, Any] = {}
    for piece in events:
        if isinstance(piece, dict):
            result = piece
        else:
            print(piece, end="", flush=True)
    print()
    return result


def cmd_index(args: argparse.Namespace) -> int:
    from qa.store.indexer import index_corpus

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
    from qa.serve.inputs import validate_question

    validate_question(args.question, settings.max_question_chars)  # before loading anything
    engine = _engine(settings)
    if args.stream and not args.json:
        result: dict[str, Any] = {}
        result = _print_stream(engine.answer_events(args.question, top_k=args.top_k))
        print(format_answer(result, answer=False))
        return 0
    result = engine.ask(args.question, top_k=args.top_k)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_answer(result, bold=_bold()))
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
            events = engine.answer_events(question, history, top_k=args.top_k)
        except QAError as exc:
            print(f"error: {exc}")
            continue
        print()
        result = _print_stream(events)
        print(format_answer(result, answer=False))
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": result["answer"]},
        ]


def cmd_list(args: argparse.Namespace) -> int:
    from qa.store.chroma import Store
    from qa.store.indexer import index_fingerprint

    settings = _settings(args)
    listing = Store(settings, index_fingerprint(settings)).listing()
    if args.json:
        print(json.dumps(listing, ensure_ascii=False))
        return 0
    for a in listing["articles"]:
        meta = ", ".join(x for x in (a["source"], a["published"]) if x)
        print(f"{a['article_id']}  {a['title']}" + (f"  ({meta})" if meta else ""))
        print(f"    {a['passages']} passages")
    print(f"{len(listing['articles'])} articles, {listing['passages']} passages")
    if listing["sources"]:
        print(f"indexed from: {', '.join(listing['sources'])}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(
        index_dir=args.index_dir,
        corpus_dir=args.corpus_dir,
        chroma_url=args.chroma_url,
        host=args.host,
        port=args.port,
    )
    if args.workers > 1:
        # worker processes read their settings from the environment: pass the flags on
        for key, value in (
            ("QA_INDEX_DIR", args.index_dir),
            ("QA_CORPUS_DIR", args.corpus_dir),
            ("QA_CHROMA_URL", args.chroma_url),
        ):
            if value:
                os.environ[key] = str(value)
    from qa.serve.server import serve

    serve(settings, workers=args.workers)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from qa.store.doctor import diagnose, repair

    settings = _settings(args)
    found = diagnose(settings)
    print("\n".join(found.lines()))
    if found.healthy or not args.fix:
        return 0 if found.healthy else 1
    for line in repair(settings, found):
        print(f"fix: {line}")
    after = diagnose(settings)
    print("\n".join(after.lines()))
    return 0 if after.healthy else 1


def cmd_eval(args: argparse.Namespace) -> int:
    import tempfile

    from qa.engine import Engine
    from qa.eval.evaluate import TARGETS, format_eval, git_revision, read_gold, run
    from qa.ingest.reading import read_corpus
    from qa.store.embedding import MiniLMEmbedding
    from qa.store.indexer import index_corpus, index_documents, index_fingerprint

    settings = _settings(args)
    top_k = args.top_k or settings.top_k
    progress = not args.quiet
    tmp = None
    if args.squad:
        from qa.eval.squad import load_squad, squad_split

        titles = None
        if args.heldout:
            try:
                titles = squad_split(Path(args.squad).parent)["test"]
            except (OSError, ValueError, KeyError):
                raise QAError(
                    "--heldout needs the SQuAD v1.1 and 2.0-half dev files side by side"
                ) from None
        docs, items, version = load_squad(Path(args.squad), args.limit, args.seed, titles)
        title = (
            f"SQuAD {version} ({Path(args.squad).name}"
            f"{', held-out test articles' if args.heldout else ''}): "
            f"{len(items)} questions, seed {args.seed}"
        )
        corpus = str(args.squad)
    else:
        gold = Path(args.gold)
        docs, _ = read_corpus([settings.corpus_dir], settings.corpus_dir)
        items, problems = read_gold(gold, [d.text for d in docs])
        if args.check:
            for problem in problems:
                print(problem)
            print(f"{gold}: {len(items)} questions, {len(problems)} problems")
            return 2 if problems else 0
        if problems:
            more = (
                f" (and {len(problems) - 1} more: see `qa eval --check`)"
                if len(problems) > 1
                else ""
            )
            raise QAError(problems[0] + more)
        if args.limit is not None and args.limit < len(items):
            import random

            items = random.Random(args.seed).sample(items, args.limit)
        title = f"Gold set ({gold}): {len(items)} questions"
        corpus = str(settings.corpus_dir)

    embedder = MiniLMEmbedding(settings.onnx_threads, settings.embed_batch_size)
    try:
        if args.squad:
            tmp = tempfile.TemporaryDirectory(prefix="qa-squad-")
            settings = settings.model_copy(update={"index_dir": Path(tmp.name), "chroma_url": None})
            index_documents(settings, docs, embedder=embedder, progress=progress)
        else:
            # built if it isn't; the corpus folder named, whatever else the index holds
            index_corpus(
                settings, [Path(settings.corpus_dir)], embedder=embedder, progress=progress
            )

        def config(retriever: str) -> dict[str, Any]:
            return {
                "embedder": index_fingerprint(settings),
                "retriever": retriever,
                "answerer": f"llm ({settings.llm_model})" if settings.use_llm else "extractive",
                "top_k": top_k,
                "corpus": corpus,
                "git_revision": git_revision(),
            }

        runs = []
        for name in ["hybrid", *(["bm25", "dense"] if args.compare else [])]:
            engine = Engine(settings, embedder=embedder, retriever=name)
            scored = run(
                items,
                lambda item, e=engine: e.ask(item.question, history=item.history, top_k=top_k),
                progress=progress,
                desc=name,
            )
            runs.append(
                ("hybrid (ours)" if name == "hybrid" else f"{name} alone", scored, config(name))
            )
        if args.compare:
            from qa.eval.reference import LlamaIndexReference

            reference = LlamaIndexReference(docs, embedder, top_k)
            scored = run(
                items,
                lambda item: reference.ask(item.question),
                answers=False,
                progress=progress,
                desc="llamaindex",
            )
            cfg = config("llama-index VectorStoreIndex defaults (SentenceSplitter 1024/200)")
            cfg["answerer"] = None
            runs.append(("LlamaIndex default", scored, cfg))
    finally:
        if tmp is not None:
            tmp.cleanup()

    _, ours, ours_config = runs[0]
    result: dict[str, Any] = {"title": title, **ours, "config": ours_config}
    if args.compare:
        result["compare"] = [{"name": n, "metrics": r["metrics"], "config": c} for n, r, c in runs]
    if not args.squad:
        result["targets"] = TARGETS
    print(format_eval(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    if args.report:
        from qa.eval.report import write_report

        path = write_report([result], Path(args.report), command="qa " + " ".join(sys.argv[1:]))
        print(f"report: {path}")
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"expected 1 to 50, got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index-dir", help="where the index lives (QA_INDEX_DIR, default index/)")
    common.add_argument("--corpus-dir", help="default corpus (QA_CORPUS_DIR, corpus/articles/)")
    common.add_argument("--chroma-url", help="use a Chroma server (QA_CHROMA_URL)")

    parser = _Parser(prog="qa", description="Cited question answering over a news corpus.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("index", parents=[common], help="ingest articles into the index")
    p.add_argument(
        "paths",
        nargs="*",
        help="files or folders (default: those the index was built from; for a new index, "
        "the corpus folder)",
    )
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", parents=[common], help="answer one question")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--stream", action="store_true", help="print the answer as it is written")
    p.add_argument("--top-k", type=_positive_int, help="passages to answer from (QA_TOP_K)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", parents=[common], help="a conversation in the terminal")
    p.add_argument("--top-k", type=_positive_int)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", parents=[common], help="score the pipeline on gold questions")
    p.add_argument("gold", nargs="?", default="corpus/gold.jsonl", help="gold JSONL file")
    p.add_argument("--squad", help="a SQuAD v1.1/v2.0 JSON file instead of a gold file")
    p.add_argument(
        "--heldout",
        action="store_true",
        help="with --squad: only the articles the trained answerer never saw (qa.eval.squad)",
    )
    p.add_argument("--limit", type=_count, help="a seeded sample of this many questions")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (0)")
    p.add_argument("--top-k", type=_positive_int, help="passages per question (QA_TOP_K)")
    p.add_argument(
        "--compare",
        action="store_true",
        help="also BM25 alone, dense alone and LlamaIndex's default pipeline",
    )
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write all results")
    p.add_argument("--report", metavar="OUT.md", help="write a Markdown report with charts")
    p.add_argument("--check", action="store_true", help="only validate the gold file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", parents=[common], help="the web chat and HTTP API")
    p.add_argument("--host", help="address to bind (QA_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port (QA_PORT, default 7860)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="app processes sharing a Chroma server (needs QA_CHROMA_URL; default 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("doctor", parents=[common], help="check the index against the corpus")
    p.add_argument("--fix", action="store_true", help="repair what was found")
    p.set_defaults(func=cmd_doctor)

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

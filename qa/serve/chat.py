"""The web chat at ``/``: a conversation with streamed, cited answers, and a panel that lists
the indexed articles and takes uploads.

Safety rule of this module: every piece of article text (answer sentences, titles, sources,
passages, file names in reports) goes through ``html.escape`` before it reaches the page.
The chat renders the HTML built here (sources with ``<mark>`` highlights), and Gradio's
sanitizer is only a second line of defence: an article containing ``<script>`` shows the
literal text ``<script>`` and runs nothing.

Every chat message is one HTML block with no blank line, so the Markdown renderer passes it
through untouched: ``*``, ``_`` or ``$$`` in an article can't turn into emphasis or LaTeX.

For scripts, the same answers are on Gradio's API as ``/ask`` (``gradio_client``)::

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict("How much gas?", api_name="/ask")

which returns the engine's JSON answer (``answer``, ``refused``, ``citations``...), the same
as ``POST /api/ask``. A bad question raises ``gradio_client`` ``AppError`` with the one-line
message. The chat's own events are private: their inputs and outputs are page state.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from qa.answer.render import closest, emphasise
from qa.errors import QAError
from qa.serve.service import UPLOAD_SUFFIXES, QAService

log = logging.getLogger(__name__)

_BOLD = re.compile(r"\*\*(.+?)\*\*")
NOT_IN_ARTICLES = "Not in the articles: the articles in the corpus don't answer this."
# The extractive answer exists whole; a short pause between pieces makes the streaming
# visible (and matches how an LLM answer would arrive) without slowing anyone down much.
_STREAM_PAUSE_S = 0.02
_MARKER = re.compile(r"\[(\d+)\]")
_BREAK = re.compile(r"[ \t\r\f\v]*\n\s*")

_TOGGLE_PANEL_JS = "() => { document.querySelector('#qa-panel .toggle-button')?.click(); }"

Chat = list[dict[str, Any]]  # what gr.Chatbot holds: {role, content: HTML}
Turns = list[dict[str, str]]  # what QAService.ask takes as history: {role, content: text}

# Gradio 6.31 ships SourceSansPro-SemiBold.woff2 as a 5 kB stub holding a few glyphs, so
# every weight-600 text mixed Source Sans capitals with a fallback font ("corpus QA" with a
# small "A"). The first rule serves the complete Bold file (also in the wheel) for 600.
UI_CSS = """
@font-face { font-family: "Source Sans Pro"; font-weight: 600; font-style: normal;
  src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2"); }
.qa-header { align-items: center; gap: 6px; flex-wrap: nowrap; }
.qa-brand { margin: 0; font-size: 1.25rem; font-weight: 600; line-height: 1.3; }
.qa-tagline { margin: 2px 0 0; opacity: .75; font-size: .9rem; }
.qa-answer, .qa-question { white-space: normal; overflow-wrap: anywhere; }
.qa-ref { font-weight: 600; color: var(--color-accent); white-space: nowrap; }
.qa-refusal { font-style: italic; }
.qa-notice { margin-top: 6px; font-size: .8rem; opacity: .75; font-style: italic; }
.qa-error { color: var(--error-text-color, #b91c1c); }
.qa-sources { margin-top: 10px; display: flex; flex-direction: column; gap: 8px; }
.qa-sources-label { font-size: .75rem; text-transform: uppercase; letter-spacing: .05em;
  opacity: .7; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 10px; background: var(--background-fill-secondary); min-width: 0; }
.qa-source-head { display: flex; flex-wrap: wrap; gap: 2px 8px; align-items: baseline; }
.qa-source-title { font-weight: 600; font-size: .95rem; overflow-wrap: anywhere; }
.qa-source-meta { font-size: .8rem; opacity: .75; overflow-wrap: break-word; }
.qa-passage { margin-top: 6px; font-size: .88rem; line-height: 1.45;
  overflow-wrap: anywhere; }
.qa-passage mark { background: #fde68a; color: #1f2937; border-radius: 2px;
  padding: 0 1px; }
.qa-articles { font-size: .9rem; }
.qa-articles ul { list-style: none; padding: 0; margin: 6px 0 0; }
.qa-articles li { padding: 6px 0; border-bottom: 1px solid var(--border-color-primary);
  overflow-wrap: anywhere; }
.qa-article-title { font-weight: 600; }
.qa-article-meta { font-size: .8rem; opacity: .75; overflow-wrap: break-word; }
.qa-report { font-size: .85rem; overflow-wrap: anywhere; }
.qa-report ul { margin: 4px 0; padding-left: 1.1em; }
@media (max-width: 640px) {
  .qa-brand { font-size: 1.05rem; }
  .qa-tagline { display: none; }
  .qa-passage { font-size: .85rem; }
  .qa-source { padding: 6px 8px; }
}
"""


# -- HTML, always from escaped text ---------------------------------------------------------
def _esc(text: object) -> str:
    """Escaped text with its line breaks kept as ``<br>`` and never a raw newline (so that the
    message stays one HTML block to the Markdown renderer)."""
    return _BREAK.sub("<br>", html.escape(str(text), quote=True))


def _answer_html(text: str, streaming: bool = False) -> str:
    """The answer sentences, escaped, with each ``[n]`` marker styled (still reading ``[n]``)
    and the short answer, written ``**`` in the text, in bold (a ``**`` still waiting for its
    pair while streaming is not shown). ``qa-streaming`` marks a message still arriving (the
    tests wait for it to go)."""
    if text.count("**") % 2:
        head, _, tail = text.rpartition("**")
        text = head + tail
    body = _MARKER.sub(r'<span class="qa-ref">[\1]</span>', _esc(text))
    body = _BOLD.sub(r'<strong class="qa-span">\1</strong>', body)
    kind = "qa-answer qa-streaming" if streaming else "qa-answer"
    return f'<div class="{kind}">{body}</div>'


def _highlighted(text: str, start: int, spans: Sequence[Sequence[int]]) -> str:
    """The passage text, escaped, with the cited sentences in ``<mark>``. ``spans`` are
    article offsets (the frame of ``start``), as the engine reports them."""
    ranges = sorted(
        (max(0, s - start), min(len(text), e - start))
        for s, e in spans
        if e - start > 0 and s - start < len(text)
    )
    out, pos = [], 0
    for s, e in ranges:
        s = max(s, pos)
        if e <= s:
            continue
        out += [_esc(text[pos:s]), "<mark>", _esc(text[s:e]), "</mark>"]
        pos = e
    out.append(_esc(text[pos:]))
    return "".join(out)


def _cards(label: str, cards: Sequence[tuple[str, str]], kind: str = "qa-sources") -> str:
    """A labelled list of passage cards, each (escaped head HTML, escaped passage HTML)."""
    if not cards:
        return ""
    body = "".join(
        f'<div class="qa-source"><div class="qa-source-head">{head}</div>'
        f'<div class="qa-passage">{passage}</div></div>'
        for head, passage in cards
    )
    return f'<div class="{kind}"><div class="qa-sources-label">{label}</div>{body}</div>'


def _title(item: dict[str, Any]) -> str:
    return (
        f'<span class="qa-source-title">{_esc(item.get("title") or item.get("article_id"))}</span>'
    )


def sources_html(citations: Sequence[dict[str, Any]]) -> str:
    """One card per cited passage: ``[n]``, title, source, date, and the passage."""
    cards = []
    for c in citations:
        meta = " · ".join(_esc(x) for x in (c.get("source"), c.get("published")) if x)
        spans = c.get("highlights") or []
        passage = _highlighted(c.get("text") or "", int(c.get("start") or 0), spans)
        head = (
            f'<span class="qa-ref">[{int(c["n"])}]</span>{_title(c)}'
            f'<span class="qa-source-meta">{meta}</span>'
        )
        cards.append((head, passage))
    return _cards("Sources", cards)


def closest_html(result: dict[str, Any]) -> str:
    """Under a refusal: the closest passages, so that a user can still read on."""
    cards = [(_title(r), _esc(r.get("text") or "")) for r in closest(result)]
    return _cards("Closest passages", cards, "qa-sources qa-closest")


def answer_message(result: dict[str, Any]) -> str:
    """The final chat message for an engine answer: the answer (its short answer in bold)
    and its sources, or the plain refusal and the closest passages."""
    notice = result.get("notice")
    note = f'<div class="qa-notice">Note: {_esc(notice)}.</div>' if notice else ""
    if result.get("refused"):
        text = NOT_IN_ARTICLES if result.get("answerer") != "llm" else result["answer"]
        return f'<div class="qa-answer qa-refusal">{_esc(text)}</div>{note}' + closest_html(result)
    return _answer_html(emphasise(result)) + note + sources_html(result.get("citations") or [])


def _question_message(question: str) -> str:
    return f'<div class="qa-question">{_esc(question)}</div>'


def _error_message(message: str) -> str:
    return f'<div class="qa-answer qa-error">error: {_esc(message)}</div>'


def articles_html(listing: dict[str, Any]) -> str:
    """The indexed articles as an escaped list (titles and sources are article text)."""
    items = listing.get("articles") or []
    if not items:
        return '<div class="qa-articles"><p>No articles indexed yet: upload some below.</p></div>'
    rows = []
    for a in items:
        n = int(a.get("passages") or 0)
        meta = [a.get("source"), a.get("published"), f"{n} passage{'s' if n != 1 else ''}"]
        rows.append(
            f'<li title="{_esc(a.get("article_id"))}">'
            f'<div class="qa-article-title">{_esc(a.get("title") or a.get("article_id"))}</div>'
            f'<div class="qa-article-meta">{" · ".join(_esc(x) for x in meta if x)}</div>'
            "</li>"
        )
    count = f"{len(items)} article{'s' if len(items) != 1 else ''}"
    return (
        f'<div class="qa-articles"><div>{count} · {listing.get("passages", 0)} passages</div>'
        f"<ul>{''.join(rows)}</ul></div>"
    )


def report_html(report: dict[str, Any]) -> str:
    """What an upload did, in words: which articles were added or updated, which files were
    skipped and why."""
    parts = []
    for key, label in (
        ("added", "Added"),
        ("updated", "Updated"),
        ("unchanged", "Unchanged"),
        ("removed", "Removed"),
    ):
        if report.get(key):
            parts.append(f"<li>{label}: {', '.join(_esc(x) for x in report[key])}</li>")
    for s in report.get("skipped") or []:
        parts.append(f"<li>Skipped {_esc(s.get('file'))}: {_esc(s.get('reason'))}</li>")
    if not parts:
        parts.append("<li>Nothing changed.</li>")
    return f'<div class="qa-report"><ul>{"".join(parts)}</ul></div>'


# -- the app ---------------------------------------------------------------------------------
def build_ui(service: QAService) -> gr.Blocks:
    """The chat and the articles panel, on ``service`` (shared with the REST API)."""

    def respond(message: str, chat: Chat | None, turns: Turns | None) -> Iterator[tuple]:
        """Show the question at once, then stream the answer, then add its sources. The
        history state keeps plain text turns (no HTML) for the follow-up rewriting."""
        chat, turns = list(chat or []), list(turns or [])
        question = (message or "").strip()
        if not question:
            yield gr.skip(), chat, turns
            return
        chat.append({"role": "user", "content": _question_message(question)})
        yield "", chat, turns
        chat.append({"role": "assistant", "content": _answer_html("", streaming=True)})
        shown, result = "", None
        try:
            for piece in service.stream(question, turns):
                if isinstance(piece, dict):
                    result = piece
                    continue
                shown += piece
                chat[-1] = {"role": "assistant", "content": _answer_html(shown, streaming=True)}
                yield "", chat, turns
                time.sleep(_STREAM_PAUSE_S)
        except QAError as exc:
            chat[-1] = {"role": "assistant", "content": _error_message(str(exc))}
            yield "", chat, turns
            return
        except Exception:
            log.exception("the chat could not answer %r", question)
            msg = "the question could not be answered (see the server log)"
            chat[-1] = {"role": "assistant", "content": _error_message(msg)}
            yield "", chat, turns
            return
        if result is None:
            return
        chat[-1] = {"role": "assistant", "content": answer_message(result)}
        turns += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": result["answer"]},
        ]
        yield "", chat, turns

    def respond_example(chat: Chat | None, turns: Turns | None, evt: gr.SelectData):
        """An example question clicked on the empty screen is asked like a typed one."""
        value = evt.value if isinstance(evt.value, dict) else {"text": evt.value}
        yield from respond(str(value.get("text") or ""), chat, turns)

    def new_chat() -> tuple[Chat, Turns, str]:
        return [], [], ""

    def refresh() -> tuple[str, Any]:
        """On page load: the current article list (uploads may have come through the REST
        API meanwhile) and example questions about the current corpus."""
        try:
            listing = service.articles()
            examples = [{"text": q} for q in service.examples()]
        except QAError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip()
        return articles_html(listing), gr.update(examples=examples or None)

    def upload(paths: list[str] | str | None) -> tuple[Any, str, str]:
        """Index the uploaded files at once (answerable without a restart) and say what
        happened; problems are a warning, never a traceback."""
        if not paths:
            return gr.skip(), gr.skip(), gr.skip()
        if isinstance(paths, str):
            paths = [paths]
        try:
            files = [(Path(p).name, Path(p).read_bytes()) for p in paths]
            report = service.add_files(files).as_dict()
        except QAError as exc:
            gr.Warning(str(exc))
            return None, articles_html(service.articles()), _error_message(str(exc))
        except OSError as exc:
            log.exception("upload failed")
            gr.Warning(f"the upload could not be read: {exc.strerror or exc}")
            return None, gr.skip(), gr.skip()
        done = len(report["added"]) + len(report["updated"])
        if done:
            gr.Info(f"indexed {done} article{'s' if done != 1 else ''}")
        elif report["skipped"]:
            gr.Warning("nothing was indexed: see the report under the upload")
        return None, articles_html(service.articles()), report_html(report)

    def ask(question: str, history: list[dict] | None = None) -> dict[str, Any]:
        """The engine's JSON answer to ``question`` (``history``: earlier
        ``{role, content}`` turns), as ``POST /api/ask`` gives it."""
        try:
            return service.ask(question, history)
        except QAError as exc:
            raise gr.Error(str(exc)) from None

    limit = service.settings.max_concurrent
    try:
        first_listing = articles_html(service.articles())
        first_examples = [{"text": q} for q in service.examples()]
    except QAError:
        first_listing, first_examples = articles_html({}), []

    with gr.Blocks(title="corpus QA", fill_height=True) as ui:
        turns = gr.State([])
        with gr.Sidebar(label="Articles", open=False, position="right", elem_id="qa-panel"):
            gr.Markdown("### Articles")
            listing = gr.HTML(first_listing, elem_id="qa-article-list")
            files = gr.File(
                label="Add articles (" + " ".join(UPLOAD_SUFFIXES) + ")",
                file_count="multiple",
                file_types=list(UPLOAD_SUFFIXES),
                type="filepath",
                elem_id="qa-upload",
            )
            report = gr.HTML("", elem_id="qa-upload-report")
        with gr.Row(elem_classes="qa-header"):
            gr.HTML(
                '<div class="qa-brand">corpus QA</div><div class="qa-tagline">Answers from '
                "the indexed news articles, with their sources.</div>"
            )
            panel_btn = gr.Button(
                "Articles", size="sm", scale=0, min_width=80, elem_id="qa-articles-btn"
            )
            clear = gr.Button("New chat", size="sm", scale=0, min_width=90, elem_id="qa-new")
        chat = gr.Chatbot(
            show_label=False,
            elem_id="qa-chat",
            scale=1,
            height=200,
            examples=first_examples or None,
            placeholder="Ask a question about the articles, or start from an example.",
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            buttons=[],
            feedback_options=None,
            layout="bubble",
        )
        question = gr.Textbox(
            show_label=False,
            placeholder="Ask about the articles…",
            submit_btn=True,
            lines=1,
            max_lines=6,
            autofocus=True,
            elem_id="qa-question",
        )

        chat_io = {"outputs": [question, chat, turns], "api_visibility": "private"}
        question.submit(respond, [question, chat, turns], concurrency_limit=limit, **chat_io)
        chat.example_select(respond_example, [chat, turns], concurrency_limit=limit, **chat_io)
        # the panel's own toggle is a small chevron at the window's edge; this names it
        panel_btn.click(None, js=_TOGGLE_PANEL_JS)
        clear.click(new_chat, None, [chat, turns, question], api_visibility="private", queue=False)
        chat.clear(lambda: [], None, turns, api_visibility="private", queue=False)
        files.upload(
            upload, files, [files, listing, report], api_visibility="private", concurrency_limit=1
        )
        ui.load(refresh, None, [listing, chat], api_visibility="private")
        gr.api(ask, api_name="ask", concurrency_limit=limit)
    return ui

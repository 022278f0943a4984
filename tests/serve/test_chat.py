"""The web chat at ``/``, tested as a user and a script meet it: a real server (uvicorn on a
free loopback port, the real index and embedder) driven by a real browser (Debian's
chromium through Playwright) and by ``gradio_client``. No mocks.

The server works on a copy of the shipped corpus and a temporary index; uploads made by
the tests go there. Screenshots land in each test's ``tmp_path``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa.serve.chat import NOT_IN_ARTICLES, articles_html, sources_html
from qa.serve.server import create_app
from qa.serve.service import QAService
from qa.settings import load_settings
from tests.conftest import CORPUS, live_server
from tests.fake_llm import fake_llm

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GAS_Q = "How much gas will Russia supply to China each year?"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
MAX_QUESTION = 300  # small, so the over-long question test types little

# an uploaded article that tries every way in: markup in title, source and body
EVIL_MD = """---
title: "Zorblat festival <script>window.__pwned=1</script> report <b>bold</b>"
source: "<img src=x onerror=\\"window.__pwned=1\\"> Wire"
published: "2024-01-02"
---
The Zorblat festival in Quenville draws 4,321 visitors every spring \
<script>window.__pwned=1</script> according to its organisers.

Organisers said <img src=x onerror="window.__pwned=1"> the Zorblat festival began in 1911 \
with a parade of *painted* goats and $$x^2$$ lanterns.
"""


def _serve(tmp_path_factory, embedder, **settings) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("ui")
    corpus = root / "articles"
    shutil.copytree(CORPUS, corpus)
    settings = load_settings(
        index_dir=root / "index", corpus_dir=corpus, max_question_chars=MAX_QUESTION, **settings
    )
    service = QAService.start(settings, embedder)
    with live_server(create_app(settings, service)) as url:
        yield SimpleNamespace(url=f"{url}/", service=service, corpus=corpus)


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder) -> Iterator[SimpleNamespace]:
    """The whole app (API and chat) on a private corpus copy, served by uvicorn in a thread."""
    yield from _serve(tmp_path_factory, embedder)


@pytest.fixture(scope="module")
def live_llm(tmp_path_factory, embedder) -> Iterator[SimpleNamespace]:
    """The same, answering through a scripted OpenAI-protocol server (tests/fake_llm.py)."""
    with fake_llm() as llm:
        for served in _serve(tmp_path_factory, embedder, llm_base_url=llm.url, llm_timeout=5):
            served.llm = llm
            yield served


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium; the browser tests are skipped (with the reason) when it can't run."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}: the browser tests need Debian's chromium")
    from playwright.sync_api import Error, sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
    except Error as exc:
        pw.stop()
        pytest.skip(f"playwright could not launch {CHROMIUM}: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    pw.stop()


def _open(browser, live, viewport: dict | None = None):
    page = browser.new_page(viewport=viewport or DESKTOP)
    page.set_default_timeout(20_000)
    page.goto(live.url)
    page.wait_for_selector("#qa-question textarea")
    return page


def _ask(page, question: str, watch_stream: bool = False) -> tuple:
    """Type ``question``, send it and wait for the finished reply (streaming done): the
    last reply's locator and, with ``watch_stream``, the partial texts seen meanwhile."""
    finished = "#qa-chat .qa-answer:not(.qa-streaming)"
    before = page.locator(finished).count()
    if watch_stream:
        page.evaluate(
            """() => {
              window.__partials = [];
              new MutationObserver(() => {
                const s = document.querySelector('#qa-chat .qa-streaming');
                if (s && !window.__partials.includes(s.textContent))
                  window.__partials.push(s.textContent);
              }).observe(document.querySelector('#qa-chat'),
                         {subtree: true, childList: true, characterData: true});
            }"""
        )
    page.fill("#qa-question textarea", question)
    page.press("#qa-question textarea", "Enter")
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length > n "
        "&& !document.querySelector('#qa-chat .qa-streaming')",
        arg=[finished, before],
    )
    partials = page.evaluate("() => window.__partials || []") if watch_stream else []
    return page.locator(finished).last, partials


def _text(s: str) -> str:
    return " ".join(s.split())


# -- the HTML builders, on their own ---------------------------------------------------------
def test_sources_escape_text_and_mark_cited_sentences():
    passage = "Intro <b>x</b>. The cited one & more. Tail."
    start = 1000  # the passage begins at character 1000 of its article
    s = passage.index("The cited")
    e = passage.index(" Tail")
    html = sources_html(
        [
            {
                "n": 1,
                "title": "<script>alert(1)</script>",
                "source": 'A "wire"',
                "published": "2024-01-02",
                "text": passage,
                "start": start,
                "highlights": [[start + s, start + e]],
            }
        ]
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "Intro &lt;b&gt;x&lt;/b&gt;." in html
    assert "<mark>The cited one &amp; more.</mark> Tail." in html
    assert "A &quot;wire&quot; · 2024-01-02" in html
    listing = articles_html(
        {"articles": [{"article_id": "a", "title": "<img src=x>", "passages": 1}], "passages": 1}
    )
    assert "<img" not in listing and "&lt;img src=x&gt;" in listing and "1 passage<" in listing


# -- the chat in a browser -------------------------------------------------------------------
def test_chat_streams_a_cited_answer_with_its_sources(browser, live, tmp_path):
    page = _open(browser, live)
    # the empty screen offers example questions about the corpus
    shown = page.locator("#qa-chat button.example").all_inner_texts()
    assert [_text(t) for t in shown] == live.service.examples()
    reply, partials = _ask(page, GAS_Q, watch_stream=True)
    expected = live.service.ask(GAS_Q)
    assert "38 billion" in expected["answer"]  # the shipped corpus still answers this

    answer = _text(reply.inner_text())
    assert answer == _text(expected["answer"])
    assert "[1]" in answer and "38 billion cubic meters" in answer
    assert len(partials) >= 2, f"the answer arrived in one piece: {partials}"
    assert all(answer.startswith(_text(p)) for p in partials)
    # the short answer itself is in bold
    span = expected["answer_span"]["text"]
    bold = reply.locator("strong.qa-span")
    assert bold.count() == 1 and _text(bold.inner_text()) == _text(span)

    sources = page.locator("#qa-chat .qa-sources").last
    assert sources.is_visible()
    cited = expected["citations"][0]
    assert cited["title"] in sources.inner_text()
    assert cited["published"] in sources.inner_text()
    mark = sources.locator("mark").first
    assert mark.is_visible() and "38 billion" in mark.inner_text()
    # the user's question is shown too
    assert page.locator("#qa-chat .qa-question").last.inner_text() == GAS_Q
    page.screenshot(path=tmp_path / "chat.png")
    page.close()

    phone = _open(browser, live, PHONE)
    _ask(phone, GAS_Q)
    assert phone.locator("#qa-chat .qa-sources mark").first.is_visible()
    wide = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"the page is {wide}px wider than a phone screen"
    phone.screenshot(path=tmp_path / "chat-phone.png")
    phone.close()


def test_follow_up_uses_the_conversation_and_new_chat_forgets_it(browser, live):
    first = live.service.ask(GAS_Q)
    follow = "And who signed it?"
    turns = [
        {"role": "user", "content": GAS_Q},
        {"role": "assistant", "content": first["answer"]},
    ]

    def shown(result: dict) -> str:  # a refusal reads "Not in the articles: ..."
        return _text(NOT_IN_ARTICLES if result["refused"] else result["answer"])

    with_history = shown(live.service.ask(follow, turns))
    alone = shown(live.service.ask(follow))
    assert with_history != alone  # else this test could not tell the two apart

    page = _open(browser, live)
    _ask(page, GAS_Q)
    reply, _ = _ask(page, follow)
    assert _text(reply.inner_text()) == with_history

    page.click("#qa-new")
    page.wait_for_function("() => !document.querySelector('#qa-chat .qa-answer')")
    reply, _ = _ask(page, follow)
    assert _text(reply.inner_text()) == alone
    assert page.locator("#qa-chat .qa-question").count() == 1
    page.close()


def test_refusal_and_bad_input_read_plainly(browser, live, tmp_path):
    page = _open(browser, live)
    reply, _ = _ask(page, "Who won the 2018 FIFA World Cup final in Moscow?")
    assert _text(reply.inner_text()) == NOT_IN_ARTICLES
    assert "qa-refusal" in (reply.get_attribute("class") or "")
    # no sources, but the closest passages, so that the user can read on
    assert page.locator("#qa-chat .qa-sources:not(.qa-closest)").count() == 0
    closest = page.locator("#qa-chat .qa-closest").last
    assert closest.is_visible() and "closest passages" in closest.inner_text().lower()
    assert closest.locator(".qa-source").count() == 3

    reply, _ = _ask(page, "x" * (MAX_QUESTION + 1))
    text = reply.inner_text()
    assert text.startswith("error: ") and f"the limit is {MAX_QUESTION}" in text
    assert "Traceback" not in page.content()
    page.screenshot(path=tmp_path / "refusal.png")
    page.close()


def test_example_question_is_asked_when_clicked(browser, live):
    examples = live.service.examples()
    assert examples
    page = _open(browser, live)
    page.get_by_text(examples[0], exact=True).click()
    page.wait_for_function("() => document.querySelector('#qa-chat .qa-answer:not(.qa-streaming)')")
    assert page.locator("#qa-chat .qa-question").first.inner_text() == examples[0]
    page.close()


def test_upload_through_the_panel_is_answerable_at_once(browser, live, tmp_path):
    good = tmp_path / "quenville.txt"
    good.write_text(
        "Quenville lantern festival draws record crowds\n\n"
        "The lantern festival in Quenville drew 7,654 visitors this spring, its organisers "
        "said. The festival has been held every April since 1911.\n",
        encoding="utf-8",
    )
    empty = tmp_path / "blank.md"
    empty.write_text("   \n", encoding="utf-8")

    page = _open(browser, live)
    page.click("#qa-articles-btn")  # opens the articles panel
    panel_list = page.locator("#qa-article-list")
    panel_list.wait_for(state="visible")
    count = len(live.service.articles()["articles"])
    assert panel_list.inner_text().startswith(f"{count} articles")
    page.set_input_files("#qa-upload input[type=file]", [str(good), str(empty)])
    report = page.locator("#qa-upload-report .qa-report")
    report.wait_for(timeout=60_000)
    assert "Added: quenville.txt" in report.inner_text()
    assert "Skipped blank.md" in report.inner_text()
    page.wait_for_function(
        "() => document.querySelector('#qa-article-list').innerText.includes('Quenville')"
    )
    assert "Quenville lantern festival draws record crowds" in panel_list.inner_text()
    page.screenshot(path=tmp_path / "panel.png")

    page.click("#qa-articles-btn")  # closes it again
    reply, _ = _ask(page, "How many visitors did the Quenville lantern festival draw?")
    assert "7,654" in reply.inner_text()
    assert "Quenville lantern festival" in page.locator("#qa-chat .qa-sources").last.inner_text()
    page.close()


def test_article_markup_is_shown_as_text_and_never_runs(browser, live, tmp_path):
    report = live.service.add_files([("zorblat.md", EVIL_MD.encode())]).as_dict()
    assert report["added"], report

    page = _open(browser, live)
    page.on("dialog", lambda d: d.dismiss())
    reply, _ = _ask(page, "How many visitors does the Zorblat festival draw every spring?")
    assert "4,321" in reply.inner_text()
    assert "<script>window.__pwned=1</script>" in reply.inner_text()  # as text
    sources = page.locator("#qa-chat .qa-sources").last
    text = sources.inner_text()
    assert "Zorblat festival <script>window.__pwned=1</script> report <b>bold</b>" in text
    assert '<img src=x onerror="window.__pwned=1"> Wire' in text
    assert "*painted* goats and $$x^2$$ lanterns" in text  # no Markdown, no LaTeX either
    page.click("#qa-articles-btn")
    page.wait_for_function(
        "() => document.querySelector('#qa-article-list').innerText.includes('Zorblat')"
    )
    assert "<script>window.__pwned=1</script>" in page.locator("#qa-article-list").inner_text()
    # the examples on a fresh page are built from titles here (no gold set beside the copy)
    fresh = _open(browser, live)
    expected = [_text(q) for q in live.service.examples()]
    # the page's load event refreshes the examples after the first paint: wait for it
    fresh.wait_for_function(
        f"() => document.querySelectorAll('#qa-chat button.example').length == {len(expected)}"
    )
    examples = [_text(t) for t in fresh.locator("#qa-chat button.example").all_inner_texts()]
    # shown exactly as written (markup as text), whichever titles the examples came from
    assert examples == expected
    assert fresh.evaluate("() => typeof window.__pwned") == "undefined"
    assert fresh.locator("#qa-chat script, #qa-chat b").count() == 0
    fresh.close()
    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    found = page.evaluate(
        """() => ({
          scripts: document.querySelectorAll('#qa-chat script, #qa-article-list script').length,
          imgs: document.querySelectorAll('#qa-chat img, #qa-article-list img').length,
          bold: document.querySelectorAll('#qa-chat b, #qa-article-list b').length,
          onerror: document.querySelectorAll('[onerror]').length,
        })"""
    )
    assert found == {"scripts": 0, "imgs": 0, "bold": 0, "onerror": 0}
    page.screenshot(path=tmp_path / "escaped.png", full_page=True)
    page.close()


# -- the API for scripts ---------------------------------------------------------------------
def test_gradio_client_asks_through_the_chat_api(live):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(live.url, verbose=False)
    assert "/ask" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    result = client.predict(GAS_Q, None, api_name="/ask")
    assert "38 billion" in result["answer"] and not result["refused"]
    assert result["citations"][0]["n"] == 1

    history = [
        {"role": "user", "content": GAS_Q},
        {"role": "assistant", "content": result["answer"]},
    ]
    follow = client.predict("And who signed it?", history, api_name="/ask")
    assert follow["answer"] == live.service.ask("And who signed it?", history)["answer"]

    with pytest.raises(AppError, match="the question is empty"):
        client.predict("   ", None, api_name="/ask")


def test_llm_answer_streams_in_the_chat_with_verified_citations(browser, live_llm, tmp_path):
    """With an LLM configured, the chat streams its answer sentence by sentence, shows only
    verified markers, and says so plainly when it fell back to the extractive answer."""
    llm = live_llm.llm
    page = _open(browser, live_llm)
    llm.set({"reply": "The passages do not answer this."})
    reply, _ = _ask(page, GAS_Q)
    assert _text(reply.inner_text()) == "The passages do not answer this."
    prompt = llm.requests[-1]["body"]["messages"][1]["content"]
    n = next(
        int(block.split('"')[1])
        for block in prompt.split("<passage n=")[1:]
        if "38 billion cubic meters" in block
    )
    llm.set(
        {
            "reply": f"Russia will supply 38 billion cubic meters of gas a year [{n}][8]. "
            f"Deliveries begin in 2018 [{n}].",
            "pause": 0.05,
        }
    )
    reply, partials = _ask(page, GAS_Q, watch_stream=True)
    text = _text(reply.inner_text())
    first = "Russia will supply 38 billion cubic meters of gas a year [1]."
    assert text.startswith(f"{first} Deliveries begin in 2018 [1].")
    assert "[8]" not in text and "[2]" not in text
    assert any("[1]" in p and "2018" not in p for p in partials)  # the first sentence came alone
    sources = page.locator("#qa-chat .qa-sources").last
    assert "38 billion" in sources.locator("mark").first.inner_text()
    page.screenshot(path=str(tmp_path / "llm.png"))

    llm.set({"status": 500})
    reply, _ = _ask(page, GAS_Q)
    notice = page.locator("#qa-chat .qa-notice").last.inner_text()
    assert "the LLM returned an error (500)" in notice
    assert "38 billion cubic meters" in reply.inner_text()
    page.close()

"""The HTTP API against a real uvicorn server on loopback: REST routes, the OpenAI-compatible
endpoint through the official ``openai`` client, auth, limits and every bad input."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from qa.serve.server import create_app
from qa.serve.service import QAService
from qa.settings import Settings, load_settings
from qa.store.indexer import index_corpus
from tests.conftest import CORPUS, live_server

GAS_Q = "How much gas will Russia supply to China each year?"
KEY = "test-key-0123456789"

# an article with a fact the shipped corpus does not have
HAMSTER = (
    "Tallinn zoo opens a hamster museum\n\n"
    "The Tallinn zoo opened a museum dedicated to hamsters on 3 March 2014. "
    "The museum's founder, Kaja Pruul, said it holds 417 stuffed hamsters collected over forty "
    "years. Visitors can also see a hamster wheel built in 1911.\n"
)
HAMSTER_Q = "How many stuffed hamsters does the Tallinn hamster museum hold?"


@dataclass
class Running:
    url: str
    settings: Settings
    service: QAService

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)


@pytest.fixture(scope="module")
def api(tmp_path_factory, embedder) -> Running:
    """The whole app (API and web chat) over a private copy of the corpus."""
    root = tmp_path_factory.mktemp("api")
    shutil.copytree(CORPUS, root / "articles")
    settings = load_settings(index_dir=root / "index", corpus_dir=root / "articles")
    index_corpus(settings, embedder=embedder, progress=False)
    service = QAService(settings, embedder)
    with live_server(create_app(settings, service)) as url:
        yield Running(url, settings, service)


@pytest.fixture(scope="module")
def locked_api(engine, embedder) -> Running:
    """The shipped index served with QA_API_KEY set (read-only use)."""
    settings = load_settings(
        index_dir=engine.settings.index_dir, corpus_dir=engine.settings.corpus_dir, api_key=KEY
    )
    service = QAService(settings, embedder)
    with live_server(create_app(settings, service)) as url:
        yield Running(url, settings, service)


def _error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "\n" not in body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]["message"]


# -- /api ------------------------------------------------------------------------------------


def test_health_reports_index(api: Running) -> None:
    with api.client() as c:
        body = c.get("/api/health").json()
    assert body["ready"] is True
    assert body["articles"] == 2
    assert body["passages"] > 10
    assert body["version"]


def test_ask_returns_engine_json_with_citation(api: Running) -> None:
    with api.client() as c:
        r = c.post("/api/ask", json={"question": GAS_Q})
    assert r.status_code == 200
    body = r.json()
    assert "38 billion cubic meters" in body["answer"]
    assert body["refused"] is False
    assert "[1]" in body["answer"]
    cited = body["citations"][0]
    assert "38 billion cubic meters" in cited["text"]
    assert cited["title"] and cited["article_id"]


def test_ask_with_history_resolves_follow_up(api: Running) -> None:
    history = [
        {"role": "user", "content": "What naval exercise did Putin and Xi launch on May 20?"},
        {"role": "assistant", "content": "Joint Sea-2014, a naval exercise in the East China Sea."},
    ]
    with api.client() as c:
        alone = c.post("/api/ask", json={"question": "How many operations did it simulate?"})
        follow = c.post(
            "/api/ask",
            json={"question": "How many operations did it simulate?", "history": history},
        )
    assert follow.status_code == 200
    assert "nine operations" in follow.json()["answer"]
    assert "naval exercise" in follow.json()["query"]  # the history went into the search
    assert alone.json()["query"] == "How many operations did it simulate?"


def test_top_k_limits_retrieved(api: Running) -> None:
    with api.client() as c:
        body = c.post("/api/ask", json={"question": GAS_Q, "top_k": 2}).json()
    assert len(body["retrieved"]) == 2


def test_upload_ask_delete_refuse(api: Running) -> None:
    corpus = Path(api.settings.corpus_dir)
    with api.client() as c:
        before = c.post("/api/ask", json={"question": HAMSTER_Q}).json()
        assert before["refused"] is True
        assert before["citations"] == [] and before["retrieved"]  # the closest passages
        chat = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": HAMSTER_Q}]}
        ).json()
        assert "Closest passages:" in chat["choices"][0]["message"]["content"]

        r = c.post(
            "/api/articles",
            files=[("files", ("hamster museum.txt", HAMSTER.encode(), "text/plain"))],
        )
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["added"] == ["hamster-museum.txt"]
        assert (corpus / "hamster-museum.txt").read_text() == HAMSTER

        listed = c.get("/api/articles").json()["articles"]
        assert "hamster-museum.txt" in {a["article_id"] for a in listed}

        answer = c.post("/api/ask", json={"question": HAMSTER_Q}).json()
        assert answer["refused"] is False
        assert "417" in answer["answer"]
        assert answer["citations"][0]["article_id"] == "hamster-museum.txt"
        assert answer["citations"][0]["title"] == "Tallinn zoo opens a hamster museum"

        again = c.post(
            "/api/articles",
            files=[("files", ("hamster museum.txt", HAMSTER.encode(), "text/plain"))],
        ).json()
        assert again["unchanged"] == ["hamster-museum.txt"] and not again["added"]

        gone = c.delete("/api/articles/hamster-museum.txt")
        assert gone.status_code == 200
        assert not (corpus / "hamster-museum.txt").exists()
        after = c.post("/api/ask", json={"question": HAMSTER_Q}).json()
        assert after["refused"] is True
        assert c.get("/api/health").json()["articles"] == 2


def test_upload_jsonl_and_delete_one_line(api: Running) -> None:
    lines = (
        '{"id": "a", "title": "Hamsters", "text": "' + HAMSTER.replace("\n", " ") + '"}\n'
        '{"id": "b", "title": "Moles", "text": "A mole society in Tartu counts 88 members."}\n'
    )
    with api.client() as c:
        report = c.post("/api/articles", files={"files": ("pets.jsonl", lines.encode())}).json()
        assert sorted(report["added"]) == ["pets.jsonl--a", "pets.jsonl--b"]
        assert c.delete("/api/articles/pets.jsonl--a").status_code == 200
        ids = {a["article_id"] for a in c.get("/api/articles").json()["articles"]}
        assert "pets.jsonl--b" in ids and "pets.jsonl--a" not in ids
        kept = (Path(api.settings.corpus_dir) / "pets.jsonl").read_text()
        assert "Moles" in kept and "Hamsters" not in kept
        assert c.delete("/api/articles/pets.jsonl--b").status_code == 200
    assert not (Path(api.settings.corpus_dir) / "pets.jsonl").exists()


def test_upload_filename_cannot_escape_corpus(api: Running) -> None:
    corpus = Path(api.settings.corpus_dir)
    outside = corpus.parent / "escaped.txt"
    with api.client() as c:
        r = c.post("/api/articles", files={"files": ("../escaped.txt", HAMSTER.encode())})
        assert r.status_code == 200
        assert r.json()["added"] == ["escaped.txt"]
        assert not outside.exists()
        assert (corpus / "escaped.txt").exists()
        c.delete("/api/articles/escaped.txt")


def test_upload_that_gives_no_article_is_reported_and_not_kept(api: Running) -> None:
    with api.client() as c:
        r = c.post("/api/articles", files={"files": ("empty.md", b"   \n")})
    assert r.status_code == 200
    assert r.json()["skipped"] == [{"file": "empty.md", "reason": "empty"}]
    assert not (Path(api.settings.corpus_dir) / "empty.md").exists()


# -- /v1 through the official openai client ------------------------------------------------


def test_openai_client_plain(api: Running) -> None:
    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["corpus-qa"]
    done = client.chat.completions.create(
        model="corpus-qa", messages=[{"role": "user", "content": GAS_Q}]
    )
    content = done.choices[0].message.content
    assert "38 billion cubic meters" in content and "[1]" in content
    assert "Sources:" in content
    citations = done.model_extra["citations"]
    assert citations[0]["n"] == 1 and "38 billion" in citations[0]["text"]
    span = done.model_extra["answer_span"]["text"]
    assert f"**{' '.join(span.split())}**" in content  # the short answer in bold


def test_openai_client_streaming(api: Running) -> None:
    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="corpus-qa",
        messages=[
            {"role": "system", "content": "Answer from the articles."},
            {"role": "user", "content": "What naval exercise did Putin and Xi launch on May 20?"},
            {"role": "assistant", "content": "Joint Sea-2014.\n\nSources:\n[1] **x**"},
            {"role": "user", "content": "How many operations did it simulate?"},
        ],
        stream=True,
    )
    chunks = list(stream)
    assert len(chunks) > 3  # streamed in pieces
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "**" in text  # the short answer in bold, streamed as Markdown
    text = text.replace("**", "")
    assert "nine operations" in text and "[1]" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    citations = chunks[-1].model_extra["citations"]
    assert citations and "nine operations" in citations[0]["text"]
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])


def test_openai_raw_stream_ends_with_done(api: Running) -> None:
    body = {"messages": [{"role": "user", "content": GAS_Q}], "stream": True}
    with api.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert '"citations"' in events[-2]


# -- auth ----------------------------------------------------------------------------------


def test_auth_required_when_key_set(locked_api: Running) -> None:
    good = {"Authorization": f"Bearer {KEY}"}
    with locked_api.client() as c:
        assert c.get("/api/health").status_code == 200  # health stays open
        for method, path, kw in [
            ("POST", "/api/ask", {"json": {"question": GAS_Q}}),
            ("GET", "/api/articles", {}),
            ("DELETE", "/api/articles/x", {}),
            ("GET", "/v1/models", {}),
            ("POST", "/v1/chat/completions", {"json": {"messages": []}}),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                r = c.request(method, path, headers=headers, **kw)
                assert r.status_code == 401, (method, path, headers)
                assert "API key" in _error(r)
                assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/api/ask", json={"question": GAS_Q}, headers=good).status_code == 200
        assert c.get("/api/articles", headers=good).status_code == 200
        assert c.get("/v1/models", headers=good).status_code == 200

    client = openai.OpenAI(base_url=f"{locked_api.url}/v1", api_key=KEY, max_retries=0)
    done = client.chat.completions.create(
        model="corpus-qa", messages=[{"role": "user", "content": GAS_Q}]
    )
    assert "38 billion" in done.choices[0].message.content
    wrong = openai.OpenAI(base_url=f"{locked_api.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_no_auth_without_key(api: Running) -> None:
    assert api.settings.api_key is None
    with api.client() as c:
        assert c.get("/api/articles").status_code == 200
        assert c.get("/v1/models").status_code == 200


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kw", "status"),
    [
        (
            "POST",
            "/api/ask",
            {"content": b'{"question": ', "headers": {"content-type": "application/json"}},
            422,
        ),
        ("POST", "/api/ask", {"content": b"question=x"}, 422),
        ("POST", "/api/ask", {"json": {"question": 5}}, 422),
        ("POST", "/api/ask", {"json": {}}, 422),
        ("POST", "/api/ask", {"json": ["question"]}, 422),
        ("POST", "/api/ask", {"json": {"question": ""}}, 422),
        ("POST", "/api/ask", {"json": {"question": "   "}}, 422),
        ("POST", "/api/ask", {"json": {"question": "x" * 4001}}, 422),
        ("POST", "/api/ask", {"json": {"question": "q", "top_k": 0}}, 422),
        ("POST", "/api/ask", {"json": {"question": "q", "top_k": "many"}}, 422),
        ("POST", "/api/ask", {"json": {"question": "q", "history": "no"}}, 422),
        ("POST", "/api/ask", {"json": {"question": "q", "history": [{"role": "x"}]}}, 422),
        ("POST", "/api/ask", {"json": {"question": "q", "extra": 1}}, 422),
        ("POST", "/api/ask", {"json": {"question": "x" * 1_100_000}}, 413),
        ("GET", "/api/ask", {}, 405),
        ("GET", "/api/nothing-here", {}, 404),
        ("DELETE", "/api/articles/no-such-article", {}, 404),
        ("POST", "/api/articles", {"files": {"files": ("evil.exe", b"MZ")}}, 415),
        ("POST", "/api/articles", {"files": {"files": ("data.json", b"{}")}}, 415),
        ("POST", "/api/articles", {"files": {"other": ("a.txt", b"text")}}, 422),
        ("POST", "/api/articles", {"json": {"files": "a.txt"}}, 422),
        ("POST", "/api/articles", {"files": {"files": ("a.txt", b"x" * 21_000_000)}}, 413),
        ("POST", "/v1/chat/completions", {"json": {"messages": []}}, 422),
        ("POST", "/v1/chat/completions", {"json": {"messages": "hi"}}, 422),
        ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user"}]}}, 422),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"messages": [{"role": "assistant", "content": "x"}]}},
            422,
        ),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"messages": [{"role": "bot", "content": "x"}]}},
            422,
        ),
        ("POST", "/v1/completions", {"json": {"prompt": "x"}}, 404),
    ],
)
def test_bad_input_gets_status_and_json_error(api: Running, method, path, kw, status) -> None:
    with api.client() as c:
        r = c.request(method, path, **kw)
    assert r.status_code == status, r.text[:300]
    _error(r)


def test_chunked_body_over_limit_is_413(api: Running) -> None:
    """No Content-Length: the limit is enforced as the body streams in."""

    def body():
        for _ in range(40):
            yield b"x" * 65536

    with api.client() as c:
        r = c.post("/api/ask", content=body(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    _error(r)


def test_index_with_no_articles_answers_503_not_500(tmp_path, embedder) -> None:
    corpus = tmp_path / "articles"
    corpus.mkdir()
    (corpus / "one.txt").write_text(HAMSTER)
    settings = load_settings(index_dir=tmp_path / "index", corpus_dir=corpus)
    service = QAService.start(settings, embedder)
    with live_server(create_app(settings, service)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/health").json()["articles"] == 1
        assert c.delete("/api/articles/one.txt").status_code == 200
        health = c.get("/api/health").json()
        assert health["ready"] is False and health["articles"] == 0
        r = c.post("/api/ask", json={"question": HAMSTER_Q})
        assert r.status_code == 503
        assert "no articles" in _error(r)
        c.post("/api/articles", files={"files": ("one.txt", HAMSTER.encode())})
        assert c.post("/api/ask", json={"question": HAMSTER_Q}).json()["refused"] is False


# -- access and secrets --------------------------------------------------------------------


def test_every_route_but_health_needs_the_key(locked_api: Running) -> None:
    """Enumerate the app's own routes, so that a route added later can't be forgotten."""
    schema = httpx.get(f"{locked_api.url}/openapi.json").json()
    routes = [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        if path.startswith(("/api/", "/v1/"))
        for method in methods
    ]
    assert len(routes) == 7, routes
    with locked_api.client() as c:
        for method, path in routes:
            url = path.replace("{article_id}", "some-article")
            for headers in ({}, {"Authorization": "Bearer not-the-key"}):
                r = c.request(method, url, headers=headers)
                expected = 200 if path == "/api/health" else 401
                assert r.status_code == expected, (method, path, headers, r.status_code)
                assert KEY not in r.text


def test_cors_is_off_unless_configured(api: Running, engine, embedder) -> None:
    origin = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    with api.client() as c:
        r = c.options("/api/ask", headers=origin)
        assert "access-control-allow-origin" not in r.headers
        r = c.post("/api/ask", json={"question": GAS_Q}, headers={"Origin": origin["Origin"]})
        assert "access-control-allow-origin" not in r.headers
    settings = load_settings(
        index_dir=engine.settings.index_dir,
        corpus_dir=engine.settings.corpus_dir,
        cors_origins="https://elsewhere.example",
    )
    with live_server(create_app(settings, QAService(settings, embedder))) as url:
        r = httpx.options(f"{url}/api/ask", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"


def test_upload_replaces_a_planted_symlink_instead_of_following_it(api: Running) -> None:
    corpus = Path(api.settings.corpus_dir)
    outside = corpus.parent / "outside-target.txt"
    outside.write_text("do not touch")
    (corpus / "trap.txt").symlink_to(outside)
    with api.client() as c:
        r = c.post("/api/articles", files={"files": ("trap.txt", HAMSTER.encode())})
        assert r.status_code == 200, r.text
        assert outside.read_text() == "do not touch"
        assert not (corpus / "trap.txt").is_symlink()
        assert (corpus / "trap.txt").read_text() == HAMSTER
        c.delete("/api/articles/trap.txt")
    for name in ("/etc/passwd.txt", "C:\\\\evil\\\\x.txt", "..\\\\..\\\\x.txt"):
        with api.client() as c:
            r = c.post("/api/articles", files={"files": (name, HAMSTER.encode())})
            assert r.status_code == 200
            (added,) = r.json()["added"] or r.json()["unchanged"] or ["?"]
            assert "/" not in added and "\\\\" not in added
            assert (corpus / added).exists()
            c.delete(f"/api/articles/{added}")


def test_keys_never_appear_in_errors_or_logs(locked_api: Running, caplog) -> None:
    with locked_api.client() as c:
        responses = [
            c.post("/api/ask", json={"question": ""}, headers={"Authorization": f"Bearer {KEY}"}),
            c.post("/api/ask", json={"question": 1}, headers={"Authorization": f"Bearer {KEY}x"}),
            c.get("/api/nothing", headers={"Authorization": f"Bearer {KEY}"}),
        ]
    for r in responses:
        assert KEY not in r.text
    assert KEY not in caplog.text
    assert KEY not in repr(locked_api.settings)

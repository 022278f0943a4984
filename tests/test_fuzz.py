"""Bad input, fuzzed: hypothesis-generated files for ingestion, schemathesis against our own
OpenAPI schema on the real server, and hypothesis-generated bodies for /v1/chat/completions.

Required: nothing crashes, no 5xx, every rejection a 4xx with a one-line JSON error. Each
test records how many inputs it tried and how many failed; the counts are printed at the
end of the run (``fuzz:`` lines of the pytest summary).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.chunking import split_document
from qa.ingest import Skipped, read_file
from qa.server import create_app
from qa.service import QAService
from qa.settings import load_settings
from tests.conftest import CORPUS, FUZZ_KEY, live_server

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _record(request, name: str, tried: int, failed: int) -> None:
    request.config.stash.setdefault(FUZZ_KEY, {})[name] = (tried, failed)


# -- ingestion -------------------------------------------------------------------------------
_contents = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 200_000).map(lambda n: b"x" * n),  # one enormous line
    st.integers(1, 3000).map(lambda n: (b"<div>" * n) + b"deep" + (b"</div>" * n)),
    st.lists(_json, max_size=5).map(lambda xs: "\n".join(json.dumps(x) for x in xs).encode()),
    st.just(b""),
    st.just(b"\x00\x01\x02binary"),
)


def test_ingestion_never_crashes(tmp_path_factory, embedder, request) -> None:
    tried = failed = 0
    folder = tmp_path_factory.mktemp("fuzz-ingest")

    @FUZZ
    @given(data=_contents, suffix=st.sampled_from([".txt", ".md", ".html", ".jsonl", ".pdf"]))
    def check(data: bytes, suffix: str) -> None:
        nonlocal tried, failed
        tried += 1
        path = folder / f"article{suffix}"
        path.write_bytes(data)
        try:
            for item in read_file(path, folder):
                if isinstance(item, Skipped):
                    assert item.reason and "\n" not in item.reason
                    continue
                for node in split_document(item, embedder.count_tokens, 128, 1):
                    assert item.text[node.start_char_idx : node.end_char_idx] == node.text
        except BaseException:
            failed += 1
            raise

    try:
        check()
    finally:
        _record(request, "ingestion (files of every kind)", tried, failed)


# -- the HTTP API ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("fuzz-api")
    shutil.copytree(CORPUS, root / "articles")
    settings_ = load_settings(index_dir=root / "index", corpus_dir=root / "articles")
    service = QAService.start(settings_, embedder)
    with live_server(create_app(settings_, service)) as url:
        yield url


def _check_response(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        message = body["error"]["message"]
        assert isinstance(message, str) and "\n" not in message and "Traceback" not in r.text


def test_chat_completions_bodies(fuzz_server, request) -> None:
    tried = failed = 0
    message = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "x"]) | _json},
        optional={"content": st.text(max_size=200) | _json},
    )
    bodies = st.one_of(
        _json,
        st.fixed_dictionaries(
            {"messages": st.lists(message, max_size=4) | _json},
            optional={"stream": _json | st.booleans(), "model": _json, "top_k": _json},
        ),
    )

    with httpx.Client(base_url=fuzz_server, timeout=60) as client:

        @FUZZ
        @given(body=bodies)
        def check(body) -> None:
            nonlocal tried, failed
            tried += 1
            try:
                r = client.post("/v1/chat/completions", json=body)
                _check_response(r)
            except BaseException:
                failed += 1
                raise

        try:
            check()
        finally:
            _record(request, "/v1/chat/completions bodies", tried, failed)


def test_openapi_schema_with_schemathesis(fuzz_server, request) -> None:
    import schemathesis
    from hypothesis import given as hgiven

    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    tried = failed = 0
    failures: list[str] = []

    def fuzz(op) -> None:
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @hgiven(case=op.as_strategy())
        def check(case) -> None:
            nonlocal tried, failed
            tried += 1
            response = case.call(base_url=fuzz_server, timeout=60)
            ok = response.status_code < 500
            if ok and response.status_code >= 400:
                try:
                    ok = "\n" not in response.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    ok = False
            if not ok:
                failed += 1
                failures.append(f"{op.label}: {response.status_code} {response.text[:200]}")
                raise AssertionError(failures[-1])

        check()

    try:
        for operation in schema.get_all_operations():
            fuzz(operation.ok())
    finally:
        _record(request, "schemathesis (all operations)", tried, failed)
    assert not failures


def test_no_5xx_on_raw_garbage(fuzz_server, request) -> None:
    tried = failed = 0
    paths = ["/api/ask", "/api/articles", "/v1/chat/completions", "/api/articles/x"]
    with httpx.Client(base_url=fuzz_server, timeout=60) as client:

        @FUZZ
        @given(
            path=st.sampled_from(paths),
            method=st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH"]),
            body=st.binary(max_size=2000),
            ctype=st.sampled_from(
                [
                    "application/json",
                    "multipart/form-data",
                    "text/plain",
                    "multipart/form-data; boundary=x",
                ]
            ),
        )
        def check(path, method, body, ctype) -> None:
            nonlocal tried, failed
            tried += 1
            try:
                r = client.request(method, path, content=body, headers={"content-type": ctype})
                _check_response(r)
            except BaseException:
                failed += 1
                raise

        try:
            check()
        finally:
            _record(request, "raw bodies on every route", tried, failed)
    assert Path(CORPUS).is_dir()

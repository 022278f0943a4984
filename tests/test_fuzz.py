"""Bad input, fuzzed: hypothesis-generated files for ingestion, schemathesis against our own
OpenAPI schema on the real server, and hypothesis-generated bodies for /v1/chat/completions.

Required: nothing crashes, no 5xx, every rejection a 4xx with a one-line JSON error. Each
test records how many inputs it tried and how many failed; the counts are printed at the
end of the run (``fuzz:`` lines of the pytest summary).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.ingest.chunking import split_document
from qa.ingest.reading import Skipped, read_file
from qa.serve.server import create_app
from qa.serve.service import QAService
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


class Tally:
    """Inputs tried and failed for one fuzz target, recorded for the run's summary when the
    ``with`` block ends (also when it ends in a failure)."""

    def __init__(self, request, name: str) -> None:
        self.request, self.name, self.tried, self.failed = request, name, 0, 0

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        stash = self.request.config.stash.setdefault(FUZZ_KEY, {})
        stash[self.name] = (self.tried, self.failed)

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        """One input: counted, and counted as failed if the block raises."""
        self.tried += 1
        try:
            yield
        except BaseException:
            self.failed += 1
            raise


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
    folder = tmp_path_factory.mktemp("fuzz-ingest")
    with Tally(request, "ingestion (files of every kind)") as tally:

        @FUZZ
        @given(data=_contents, suffix=st.sampled_from([".txt", ".md", ".html", ".jsonl", ".pdf"]))
        def check(data: bytes, suffix: str) -> None:
            path = folder / f"article{suffix}"
            path.write_bytes(data)
            with tally.one():
                for item in read_file(path, folder):
                    if isinstance(item, Skipped):
                        assert item.reason and "\n" not in item.reason
                        continue
                    for node in split_document(item, embedder.count_tokens, 128, 1):
                        assert item.text[node.start_char_idx : node.end_char_idx] == node.text

        check()


# -- the HTTP API ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("fuzz-api")
    shutil.copytree(CORPUS, root / "articles")
    settings_ = load_settings(index_dir=root / "index", corpus_dir=root / "articles")
    service = QAService.start(settings_, embedder)
    with live_server(create_app(settings_, service)) as url:
        yield url


def _check_response(r) -> None:
    """No 5xx; a 4xx carries a one-line JSON error (an ``httpx`` or schemathesis response)."""
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        message = body["error"]["message"]
        assert isinstance(message, str) and "\n" not in message and "Traceback" not in r.text


def test_chat_completions_bodies(fuzz_server, request) -> None:
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

    with (
        httpx.Client(base_url=fuzz_server, timeout=60) as client,
        Tally(request, "/v1/chat/completions bodies") as tally,
    ):

        @FUZZ
        @given(body=bodies)
        def check(body) -> None:
            with tally.one():
                _check_response(client.post("/v1/chat/completions", json=body))

        check()


def test_openapi_schema_with_schemathesis(fuzz_server, request) -> None:
    import schemathesis
    from hypothesis import given as hgiven

    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")

    def fuzz(op, tally: Tally) -> None:
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @hgiven(case=op.as_strategy())
        def check(case) -> None:
            with tally.one():
                _check_response(case.call(base_url=fuzz_server, timeout=60))

        check()

    with Tally(request, "schemathesis (all operations)") as tally:
        for operation in schema.get_all_operations():
            fuzz(operation.ok(), tally)


def test_no_5xx_on_raw_garbage(fuzz_server, request) -> None:
    paths = ["/api/ask", "/api/articles", "/v1/chat/completions", "/api/articles/x"]
    with (
        httpx.Client(base_url=fuzz_server, timeout=60) as client,
        Tally(request, "raw bodies on every route") as tally,
    ):

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
            with tally.one():
                headers = {"content-type": ctype}
                _check_response(client.request(method, path, content=body, headers=headers))

        check()
    assert Path(CORPUS).is_dir()

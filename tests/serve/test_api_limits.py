"""Oversized request bodies against a real uvicorn server on loopback: every client gets the
413 JSON error, whatever its HTTP library.

The server used to answer 413 before reading the body and then close the connection while the
client was still sending; a client that sends all of its body before reading (``urllib``) then
got a connection reset instead of the answer. So each case runs with ``urllib``, ``httpx`` and
``curl`` in its own process, with bodies well past the limit.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest

from qa.serve.api import DRAIN_BYTES
from qa.serve.server import create_app
from qa.serve.service import QAService
from qa.settings import Settings, load_settings
from tests.conftest import live_server

CURL = "/usr/bin/curl"
MB = 1_000_000
CHUNK = 256 * 1024
QUESTION = "How much gas will Russia supply to China each year?"


@dataclass
class Running:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def server(engine, embedder) -> Iterator[Running]:
    """The whole app (API and web chat) over the shipped index; nothing here writes to it."""
    settings = load_settings(
        index_dir=engine.settings.index_dir, corpus_dir=engine.settings.corpus_dir
    )
    with live_server(create_app(settings, QAService(settings, embedder))) as url:
        yield Running(url, settings)


# -- bodies --------------------------------------------------------------------------------


@cache
def json_body(path: str, size: int) -> bytes:
    """A valid request for ``path`` of exactly ``size`` bytes: one long question."""
    if path == "/api/ask":
        head, tail = b'{"question": "', b'"}'
    else:
        head, tail = b'{"messages": [{"role": "user", "content": "', b'"}]}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    json.loads(body)  # valid JSON: only its size is wrong
    return body


BOUNDARY = "qa-test-boundary-7d1f0c"


@cache
def upload_body(size: int) -> bytes:
    """A multipart form with one ``.txt`` file of ``size`` bytes in the field ``files``."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    return head + b"lorem ipsum\n" * (size // 12) + f"\r\n--{BOUNDARY}--\r\n".encode()


def chunks(body: bytes) -> Iterator[bytes]:
    """The body piece by piece: sent without a Content-Length (chunked)."""
    view = memoryview(body)
    for start in range(0, len(body), CHUNK):
        yield bytes(view[start : start + CHUNK])


# -- clients: each returns (status, body) ---------------------------------------------------


def with_urllib(url: str, body: bytes, content_type: str, chunked: bool = False):
    data = chunks(body) if chunked else body
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def with_httpx(url: str, body: bytes, content_type: str, chunked: bool = False):
    content = chunks(body) if chunked else body
    r = httpx.post(url, content=content, headers={"Content-Type": content_type}, timeout=60)
    return r.status_code, r.content


def with_curl(url: str, body: bytes, content_type: str, chunked: bool = False, expect=True):
    """curl reads the body from stdin. By default it sends ``Expect: 100-continue`` for a body
    this large and waits for the server's word; ``expect=False`` makes it send at once."""
    args = ["-H", f"Content-Type: {content_type}", "--data-binary", "@-"]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    if not expect:
        args += ["-H", "Expect:"]
    return run_curl([*args, url], body)


def run_curl(args: list[str], stdin: bytes | None = None):
    """curl in its own process: (status, body)."""
    command = [CURL, "-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}", *args]
    proc = subprocess.run(command, input=stdin, capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out, _, status = proc.stdout.rpartition(b"\n")
    return int(status), out


def with_curl_no_expect(url: str, body: bytes, content_type: str, chunked: bool = False):
    return with_curl(url, body, content_type, chunked, expect=False)


CLIENTS = {
    "urllib": with_urllib,
    "httpx": with_httpx,
    "curl": with_curl,
    "curl-no-expect": with_curl_no_expect,
}


def assert_413(status: int, body: bytes, limit: int) -> None:
    assert status == 413, body[:300]
    error = json.loads(body)
    assert error == {
        "error": {"message": error["error"]["message"], "type": "request_too_large", "code": 413}
    }
    assert str(limit) in error["error"]["message"]


# -- the cases -----------------------------------------------------------------------------


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("path", ["/api/ask", "/v1/chat/completions"])
@pytest.mark.parametrize("size", [2 * MB, 5 * MB, 50 * MB], ids=["2MB", "5MB", "50MB"])
def test_json_body_over_limit_gets_413(server: Running, client, path, size) -> None:
    body = json_body(path, size)
    status, answer = CLIENTS[client](server.url + path, body, "application/json")
    assert_413(status, answer, server.settings.max_body_bytes)


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("size", [5 * MB, 50 * MB], ids=["5MB", "50MB"])
def test_chunked_json_body_over_limit_gets_413(server: Running, client, size) -> None:
    """No Content-Length: the server finds the body too large only as it streams in."""
    body = json_body("/api/ask", size)
    status, answer = CLIENTS[client](server.url + "/api/ask", body, "application/json", True)
    assert_413(status, answer, server.settings.max_body_bytes)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_upload_over_limit_gets_413(server: Running, client, chunked) -> None:
    body = upload_body(30 * MB)
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    status, answer = CLIENTS[client](server.url + "/api/articles", body, content_type, chunked)
    assert_413(status, answer, server.settings.max_upload_bytes)


def test_curl_form_upload_over_limit_gets_413(server: Running, tmp_path: Path) -> None:
    """curl building the form itself from a file on disk, as a user would type it."""
    big = tmp_path / "big.txt"
    big.write_bytes(b"lorem ipsum\n" * (30 * MB // 12))
    form = ["-F", f"files=@{big};type=text/plain"]
    status, out = run_curl([*form, server.url + "/api/articles"])
    assert_413(status, out, server.settings.max_upload_bytes)


def test_connection_is_reused_after_a_drained_413(server: Running) -> None:
    """After a 413 for a body that was read to its end, the same keep-alive connection answers
    the next question: the body was thrown away, not left in the stream."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/api/ask", content=json_body("/api/ask", 5 * MB))
        assert_413(r.status_code, r.content, server.settings.max_body_bytes)
        r = c.post("/api/ask", json={"question": QUESTION})
        assert r.status_code == 200, r.text[:300]
        assert r.json()["refused"] is False


@pytest.mark.parametrize("client", ["urllib", "httpx", "curl"])
def test_body_under_limit_is_answered(server: Running, client) -> None:
    body = json.dumps(
        {"question": QUESTION, "history": [{"role": "user", "content": "x" * 900_000}]}
    )
    status, answer = CLIENTS[client](server.url + "/api/ask", body.encode(), "application/json")
    assert status == 200, answer[:300]
    assert json.loads(answer)["answer"]


def raw_response(url: str, request: bytes) -> bytes:
    """Send ``request`` (headers only: no body follows) on a plain socket; what comes back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection when done
            answer += chunk
    return answer


@pytest.mark.parametrize("expect", [True, False], ids=["expect-100", "past-drain-cap"])
def test_declared_length_answered_without_reading(server: Running, expect) -> None:
    """Told to wait for "100 Continue", a client is answered 413 straight away instead, and
    invited to send nothing; a declared body too long to drain is also answered at once. Both
    times the connection closes, as the response says: it holds a body nobody will read."""
    size = 2 * MB if expect else server.settings.max_body_bytes + DRAIN_BYTES + 1
    head = f"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "Expect: 100-continue\r\n\r\n" if expect else "\r\n"
    answer = raw_response(server.url, head.encode())
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413 "), answer[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert_413(413, body, server.settings.max_body_bytes)

"""A real HTTP server on loopback that speaks OpenAI's chat-completions protocol (plain JSON
and server-sent streaming) with scripted replies: the test double for a paid LLM endpoint.

Each request takes the next entry of ``script`` (the last one repeats). An entry is
``{"reply": str}`` (a completion; streamed in small pieces when the request asks for a
stream), or a failure: ``{"status": 500 | 429, "times": n}``, ``{"sleep": seconds}``,
``{"garbage": True}``. Requests are recorded for the tests to inspect.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeLLM:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = [{"reply": "The passages do not answer this."}]
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._lock = threading.Lock()

    def next_step(self) -> dict[str, Any]:
        with self._lock:
            step = self.script[0]
            times = step.get("times")
            if len(self.script) > 1 and (times is None or times <= 1):
                self.script.pop(0)
            elif times is not None and times > 1:
                self.script[0] = {**step, "times": times - 1}
            return step

    def set(self, *steps: dict[str, Any]) -> None:
        with self._lock:
            self.script = list(steps)
            self.requests.clear()


def _handler(fake: FakeLLM):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, status: int, body: object, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            step = fake.next_step()
            if "sleep" in step:
                time.sleep(step["sleep"])
                step = {"reply": step.get("reply", "Too late [1].")}
            if "status" in step:
                headers = {"Retry-After": "0"} if step["status"] == 429 else None
                self._json(step["status"], {"error": {"message": "scripted"}}, headers)
                return
            if step.get("garbage"):
                data = b"<html>this is not json"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            text = step["reply"]
            usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
            if not body.get("stream"):
                self._json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    },
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()

            def event(payload: object) -> None:
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

            def chunk(delta: dict, finish: str | None = None) -> dict:
                return {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            event(chunk({"role": "assistant", "content": ""}))
            pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
            for i, piece in enumerate(pieces):
                if step.get("break_after") is not None and i == step["break_after"]:
                    self.wfile.flush()
                    self.close_connection = True
                    return
                event(chunk({"content": piece}))
                time.sleep(step.get("pause", 0.005))
            event(chunk({}, "stop"))
            event({**chunk({}), "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()

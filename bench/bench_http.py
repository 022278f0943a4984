"""Benchmark of the HTTP API: answers per second and latency of ``POST /api/ask`` on loopback.

The server is the real thing, ``python app.py`` in its own process over a temporary index of
the shipped corpus (it indexes at start). The load comes from this process: ``concurrency``
asyncio clients over one ``httpx.AsyncClient``, each sending the gold questions in turn and
waiting for each answer before the next (a closed loop, so the rate is what the server
sustains, not what was offered). Targets on a 2-core machine: at least 10 answers/s at 8
clients (the reader reads 10 passages an answer). The client shares the CPUs with the
server, so the figures are conservative.

It only measures and prints; it never asserts timings.

    .venv/bin/python bench/bench_http.py [--requests 400] [--clients 1 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "corpus" / "gold.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions() -> list[str]:
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line]
    return [r["question"] for r in rows if not r.get("history")]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def load(url: str, clients: int, total: int, asked: list[str]) -> dict[str, Any]:
    """``total`` questions from ``clients`` closed-loop clients; latency per answer."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                r = await client.post("/api/ask", json={"question": asked[i % len(asked)]})
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": total,
        "errors": errors,
        "answers_per_s": round((total - errors) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
    }


def start_server(tmp: Path, port: int, corpus: Path | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(tmp / "index"),
        "QA_CORPUS_DIR": str(corpus or REPO / "corpus" / "articles"),
    }
    return subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("w"),  # a file: an unread pipe would stall the server
        text=True,
    )


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = Path(server.stderr.name).read_text()
            raise SystemExit(f"the server exited: {log[-2000:]}")
        try:
            health = httpx.get(f"{url}/api/health", timeout=2).json()
            if health.get("ready"):
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("the server did not become ready")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=400, help="questions per run (400)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrency (1 8)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args(argv)

    asked = questions()
    with tempfile.TemporaryDirectory(prefix="qa-bench-http-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(Path(tmp), port)
        try:
            health = wait_ready(url, server)
            print(
                f"server: app.py on {url}, {health['articles']} articles, "
                f"{health['passages']} passages, {os.cpu_count()} CPUs",
                file=sys.stderr,
            )
            asyncio.run(load(url, 2, 40, asked))  # warm-up: first-call costs out of the way
            runs = [asyncio.run(load(url, c, args.requests, asked)) for c in args.clients]
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        "\nPOST /api/ask on loopback, shipped corpus (target at 8 clients: ≥10/s with the reader)"
    )
    print(
        f"{'clients':>8} {'answers/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>7}"
    )
    for r in runs:
        print(
            f"{r['clients']:>8} {r['answers_per_s']:>10} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['max_ms']:>8} {r['errors']:>7}"
        )
    if args.json:
        args.json.write_text(json.dumps({"http": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

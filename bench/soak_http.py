"""Load and soak of the HTTP API, and an upload under load.

``python app.py`` over the shipped corpus in its own process; 16 closed-loop clients ask the
gold questions for 60 seconds through ``POST /api/ask`` on loopback, while the server's
resident memory is sampled every half second. Halfway, an article is uploaded with 8 of the
clients still asking: the upload must succeed and the new article be answerable as soon as
the upload returns. Printed: answers, errors, p50/p95/p99, RSS at start and end and its
trend (least-squares slope over the second half of the run, MB per minute).

It asserts nothing and prints its figures; the README's reliability section quotes them.

    .venv/bin/python bench/soak_http.py [--clients 16] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import free_port, percentile, questions, start_server, wait_ready

ARTICLE = (
    "Narva river ferry\n\nThe Narva river ferry carried 6,281 cyclists in the summer of 2014, "
    "its operator said.\n"
)
ARTICLE_Q = "How many cyclists did the Narva river ferry carry in the summer of 2014?"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    n = len(samples)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    cov = sum((t - mx) * (v - my) for t, v in samples)
    return cov / var * 60 if var else float("nan")


async def soak(url: str, pid: int, clients: int, seconds: float) -> dict:
    asked = questions()
    latencies: list[float] = []
    errors: list[str] = []
    rss: list[tuple[float, float]] = []
    upload: dict = {}
    started = time.monotonic()
    stop_at = started + seconds
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/ask", json={"question": asked[i % len(asked)]})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies.append((time.perf_counter() - t0) * 1000)
                i += clients

        async def sampler() -> None:
            while time.monotonic() < stop_at:
                rss.append((time.monotonic() - started, rss_mb(pid)))
                await asyncio.sleep(0.5)

        async def uploader() -> None:
            await asyncio.sleep(seconds / 2)
            t0 = time.perf_counter()
            r = await client.post("/api/articles", files={"files": ("narva.txt", ARTICLE.encode())})
            upload["status"] = r.status_code
            upload["seconds"] = round(time.perf_counter() - t0, 2)
            answer = (await client.post("/api/ask", json={"question": ARTICLE_Q})).json()
            upload["answerable"] = "6,281" in answer["answer"] and not answer["refused"]
            await client.delete("/api/articles/narva.txt")

        await asyncio.gather(*(worker(k) for k in range(clients)), sampler(), uploader())
        wall = time.monotonic() - started
    second_half = [s for s in rss if s[0] >= seconds / 2]
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "answers": len(latencies) - len(errors),
        "errors": len(errors),
        "first_errors": errors[:3],
        "answers_per_s": round((len(latencies) - len(errors)) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "rss_start_mb": round(rss[0][1], 1) if rss else None,
        "rss_end_mb": round(rss[-1][1], 1) if rss else None,
        "rss_max_mb": round(max(v for _, v in rss), 1) if rss else None,
        "rss_slope_mb_per_min_second_half": round(slope_per_minute(second_half), 2),
        "upload_during_load": upload,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa-soak-") as tmp:
        corpus = Path(tmp) / "articles"
        import shutil

        shutil.copytree(Path(__file__).resolve().parents[1] / "corpus" / "articles", corpus)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(Path(tmp), port, corpus)
        try:
            wait_ready(url, server)
            asyncio.run(soak(url, server.pid, 2, 3))  # warm-up
            result = asyncio.run(soak(url, server.pid, args.clients, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"\nsoak: {result['clients']} clients for {result['seconds']} s against POST /api/ask")
    for key, value in result.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

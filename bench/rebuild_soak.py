"""Questions answered while another process rebuilds the index.

Operators rebuild after an upgrade or a settings change, and a cron job may do it nightly,
while the server keeps taking questions. This runs the real thing: app processes
(``qa serve``) over an index of the shipped corpus, each asked a gold question every
``--every`` seconds by its own client, while ``qa index --rebuild`` runs in another process
over a changed corpus (one article added). Printed: the questions answered during the
rebuild and how many failed (target 0: the rebuild writes a new build beside the live one
and switches over, see ``qa.store.chroma``), and whether each server then answers from the new
corpus (the added article's question cites it).

``--store embedded`` (default): one app on a local index folder. ``--store chroma``: a
``chroma run`` server and ``--apps`` app processes sharing it.

It prints its figures and asserts nothing; ``tests/serve/test_serving_during_rebuild.py``
runs it and checks them.

    .venv/bin/python bench/rebuild_soak.py [--store embedded|chroma] [--apps 2]
        [--every 0.3] [--rebuilds 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import free_port, questions

REPO = Path(__file__).resolve().parents[1]
CHROMA = Path(sys.executable).parent / "chroma"
ADDED = (
    "Lake Peipsi ferry\n\nThe Lake Peipsi ferry service carried 7,314 passengers in its first "
    "summer of operation, its operator said in September 2014.\n"
)
ADDED_Q = "How many passengers did the Lake Peipsi ferry carry in its first summer?"
ADDED_ID = "lake-peipsi-ferry.txt"


def wait_for(url: str, proc: subprocess.Popen, log: Path, ready: bool, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[:4]} exited: {log.read_text()[-2000:]}")
        try:
            got = httpx.get(url, timeout=2)
            if got.status_code == 200 and (not ready or got.json().get("ready")):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not become ready")


class Asker(threading.Thread):
    """Asks one server a question every ``every`` seconds until stopped; records
    (started, ended, HTTP status or error) for each."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.log: list[tuple[float, float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        asked = questions()
        with httpx.Client(timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    r = client.post(f"{self.url}/api/ask", json={"question": asked[i % len(asked)]})
                    outcome = str(r.status_code)
                    if r.status_code != 200:
                        outcome += f" {r.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                self.log.append((began, time.monotonic(), outcome))
                i += 1
                self.stop.wait(max(0.0, self.every - (time.monotonic() - began)))


def run(store: str, apps: int, every: float, rebuilds: int, work: Path) -> dict:
    corpus = work / "articles"
    shutil.copytree(REPO / "corpus" / "articles", corpus)
    env = {**os.environ, "QA_CORPUS_DIR": str(corpus), "QA_INDEX_DIR": str(work / "index")}
    env["QA_THREADS"] = "1"
    procs: list[subprocess.Popen] = []
    try:
        if store == "chroma":
            port = free_port()
            log = work / "chroma.log"
            procs.append(
                subprocess.Popen(
                    [str(CHROMA), "run", "--path", str(work / "chroma"), "--port", str(port)],
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
                )
            )
            env["QA_CHROMA_URL"] = f"http://127.0.0.1:{port}"
            wait_for(f"{env['QA_CHROMA_URL']}/api/v2/heartbeat", procs[-1], log, ready=False)
        else:
            apps = 1  # the embedded store belongs to one serving process
        qa = [sys.executable, "-m", "qa.cli"]
        subprocess.run([*qa, "index", "--quiet"], env=env, check=True, cwd=REPO)
        urls = []
        for k in range(apps):
            port = free_port()
            log = work / f"app-{k}.log"
            procs.append(
                subprocess.Popen(
                    [*qa, "serve", "--port", str(port)],
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
            wait_for(f"{urls[-1]}/api/health", procs[-1], log, ready=True)

        askers = [Asker(u, every) for u in urls]
        for a in askers:
            a.start()
        time.sleep(3 * every)
        (corpus / ADDED_ID).write_text(ADDED, encoding="utf-8")
        windows = []
        for _ in range(rebuilds):
            began = time.monotonic()
            done = subprocess.run(
                [*qa, "index", "--rebuild", "--quiet"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            windows.append((began, time.monotonic()))
            if done.returncode != 0:
                raise SystemExit(f"qa index --rebuild failed: {done.stderr.strip()}")
        time.sleep(3 * every)
        for a in askers:
            a.stop.set()
        for a in askers:
            a.join()

        during = [
            e for a in askers for e in a.log if any(e[1] >= b0 and e[0] <= b1 for b0, b1 in windows)
        ]
        failed = [e[2] for a in askers for e in a.log if not e[2].startswith("200")]
        # a server switches at its next question; one asked while another thread of it is
        # still reloading is answered from the old build, so look for a few seconds
        found, switched_s = [], []
        for u in urls:
            began, got, ok = time.monotonic(), {}, False
            while not ok and time.monotonic() - began < 15:
                got = httpx.post(f"{u}/api/ask", json={"question": ADDED_Q}, timeout=60).json()
                ok = ADDED_ID in [c.get("article_id") for c in got.get("citations", [])]
                if not ok:
                    time.sleep(0.5)
            if not ok:
                print(f"{u}: {json.dumps(got)[:600]}", file=sys.stderr)
            found.append(ok)
            switched_s.append(round(time.monotonic() - began, 2))
        return {
            "store": store,
            "apps": apps,
            "every_s": every,
            "rebuild_s": [round(b1 - b0, 2) for b0, b1 in windows],
            "asked": sum(len(a.log) for a in askers),
            "answered_during_rebuild": sum(1 for e in during if e[2].startswith("200")),
            "failed": len(failed),
            "failures": failed[:5],
            "new_corpus_answered": found,
            "new_corpus_after_s": switched_s,
        }
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", choices=["embedded", "chroma"], default="embedded")
    p.add_argument("--apps", type=int, default=2, help="app processes (chroma store only)")
    p.add_argument("--every", type=float, default=0.3, help="seconds between questions")
    p.add_argument("--rebuilds", type=int, default=1, help="rebuilds in a row")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa-rebuild-") as tmp:
        r = run(args.store, args.apps, args.every, args.rebuilds, Path(tmp))
    print(
        f"rebuild under load ({r['store']} store, {r['apps']} app process(es), a question "
        f"every {r['every_s']} s each): rebuild took {', '.join(map(str, r['rebuild_s']))} s; "
        f"{r['answered_during_rebuild']} questions answered during the rebuild, "
        f"{r['failed']} failed of {r['asked']} asked (target 0); "
        f"new corpus answered after: {r['new_corpus_answered']}"
    )
    for f in r["failures"]:
        print(f"  failure: {f}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

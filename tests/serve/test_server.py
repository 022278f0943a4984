"""The server as users start it: ``python app.py`` / ``qa serve`` in their own process, with
no network but loopback; its flags and settings errors; and the web chat's login."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from qa.serve.server import create_app
from qa.serve.service import QAService
from qa.settings import load_settings
from tests.conftest import CORPUS, ROOT, live_server, run_qa


def _can_isolate() -> bool:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0 and shutil.which("ip") is not None


def test_app_serves_offline_from_a_fresh_index(tmp_path) -> None:
    """``python app.py`` in a network namespace with only loopback up: it indexes the empty
    index, serves the chat page and answers; nothing is fetched from outside at any point."""
    if not _can_isolate():
        pytest.skip("unshare -n or ip is not available here")
    port = 7871
    script = f"""
ip link set lo up
{sys.executable} {ROOT / "app.py"} --port {port} &
pid=$!
for i in $(seq 1 600); do
  {sys.executable} -c "import httpx; httpx.get('http://127.0.0.1:{port}/api/health')" \
    2>/dev/null && break
  sleep 0.2
done
{sys.executable} - <<'EOF'
import json, httpx
base = "http://127.0.0.1:{port}"
page = httpx.get(base + "/", timeout=30)
question = {{"question": "How many member nations does CICA have?"}}
answer = httpx.post(base + "/api/ask", json=question, timeout=60).json()
print(json.dumps({{"page": page.status_code, "html": "<html" in page.text,
                  "health": httpx.get(base + "/api/health").json(), "answer": answer["answer"]}}))
EOF
kill $pid
"""
    proc = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "QA_INDEX_DIR": str(tmp_path / "index"), "QA_CORPUS_DIR": str(CORPUS)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["page"] == 200 and out["html"]
    assert out["health"]["ready"] and out["health"]["articles"] == 2
    assert "26 member nations" in out["answer"]
    assert f"http://127.0.0.1:{port}/" in proc.stdout  # binds loopback unless told otherwise


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--port", "abc"], {}, "expected a port number"),
        (["serve", "--port", "70000"], {}, "expected a port number"),
        (["serve"], {"QA_PORT": "x"}, "QA_PORT"),
        (["serve"], {"QA_UI_USER": "ann"}, "QA_UI_USER and QA_UI_PASSWORD"),
        (["serve"], {"QA_MAX_CONCURRENT": "0"}, "QA_MAX_CONCURRENT"),
    ],
)
def test_serve_bad_settings_one_line(args, env, message) -> None:
    proc = run_qa(*args, env=env)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_app_py_passes_flags_to_serve() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--port", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--port" in proc.stderr and "Traceback" not in proc.stderr


def test_ui_login_when_configured(engine, embedder) -> None:
    settings = load_settings(
        index_dir=engine.settings.index_dir,
        corpus_dir=engine.settings.corpus_dir,
        ui_user="ann",
        ui_password="correct horse",
    )
    app = create_app(settings, QAService(settings, embedder))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/config").status_code == 401  # the chat's config needs a login
        assert c.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
        assert c.post("/login", data={"username": "ann", "password": "correct horse"}).is_success
        assert c.get("/config").status_code == 200
        # the REST API is governed by QA_API_KEY, not the UI login
        assert httpx.get(f"{url}/api/health").status_code == 200

"""A server keeps answering while another process rebuilds its index: the real processes of
``bench/rebuild_soak.py`` (app processes asked a question every 0.3 s, ``qa index
--rebuild`` over a changed corpus in another), on a local index and on a ``chroma run``
server shared by two app processes. Every answer is HTTP 200, and afterwards each server
answers from the new corpus without a restart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.store.test_chroma_server import CHROMA


@pytest.mark.parametrize("store", ["embedded", "chroma"])
def test_every_question_during_a_rebuild_is_answered(store, tmp_path) -> None:
    if store == "chroma" and not CHROMA.exists():
        pytest.skip(f"no chroma command at {CHROMA}")
    out = tmp_path / "soak.json"
    args = ["--store", store, "--apps", "2", "--every", "0.3", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rebuild_soak.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["failed"] == 0, got["failures"]  # the first few, with their status and body
    assert got["answered_during_rebuild"] >= 3, got  # the rebuild really ran under questions
    assert got["new_corpus_answered"] == [True] * got["apps"], got

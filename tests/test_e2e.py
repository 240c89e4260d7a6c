"""The real server as a subprocess on a free loopback port: build a small index, query it over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOCS, write_jsonl
from tests.server import ROOT, free_port, running_server, server_env

pytestmark = pytest.mark.slow  # starts real servers


def test_server_builds_missing_index_and_answers(tiny_model: str, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    with running_server(tiny_model, tmp_path / "indexes", "e2e", "--build-from", str(corpus)) as server:
        base = server.url
        assert (tmp_path / "indexes" / "e2e" / "manifest.json").is_file()
        r = httpx.post(f"{base}/search", json={"query": "hot drinks", "k": 2}, timeout=10)
        assert r.status_code == 200 and len(r.json()["hits"]) == 2 and r.json()["index"] == "e2e"
        r = httpx.post(f"{base}/similarity", json={"source": "tea", "targets": ["tea", "football"]}, timeout=10)
        assert r.status_code == 200 and r.json()["scores"][0] == pytest.approx(1.0, abs=1e-5)
        r = httpx.post(f"{base}/search", json={"query": " "}, timeout=10, headers={"x-request-id": "req-42"})
        assert r.status_code == 422 and "body.query" in r.json()["message"]
        assert r.headers["x-request-id"] == "req-42"
        server.proc.terminate()
        out, _ = server.proc.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal as its exit status
    assert server.proc.returncode in (0, -15)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [e for e in lines if e["logger"] == "simsearch.access"]
    assert {"request_id": "req-42", "status": 422, "path": "/search"}.items() <= access[-1].items()
    assert any("Application shutdown complete" in e["msg"] for e in lines)


def test_server_with_missing_index_exits_with_one_clear_message(tiny_model: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service"],
        env=server_env(tiny_model, tmp_path / "none", "e2e", free_port()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: cannot start: index" in proc.stderr and "does not exist: build it with" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_server_with_invalid_setting_names_it(tiny_model: str, tmp_path: Path) -> None:
    env = {**server_env(tiny_model, tmp_path, "e2e", free_port()), "SIMSEARCH_MAX_PAIRS": "many"}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert (
        proc.returncode == 2
        and "SIMSEARCH_MAX_PAIRS: Input should be a valid integer" in proc.stderr
        and "Traceback" not in proc.stderr
    )

"""The real server as a subprocess on a free loopback port: build a small index, query it over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOCS, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tiny_model: str, index_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SIMSEARCH_BI_MODEL": tiny_model,
        "SIMSEARCH_INDEX_DIR": str(index_dir),
        "SIMSEARCH_INDEX_NAME": "e2e",
        "SIMSEARCH_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
    }


def test_server_builds_missing_index_and_answers(tiny_model: str, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--build-from", str(corpus)],
        env=server_env(tiny_model, tmp_path / "indexes", port),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "server exited"
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready within 120 s"
            time.sleep(0.3)
        assert (tmp_path / "indexes" / "e2e" / "manifest.json").is_file()
        r = httpx.post(f"{base}/search", json={"query": "hot drinks", "k": 2}, timeout=10)
        assert r.status_code == 200 and len(r.json()["hits"]) == 2 and r.json()["index"] == "e2e"
        r = httpx.post(f"{base}/similarity", json={"source": "tea", "targets": ["tea", "football"]}, timeout=10)
        assert r.status_code == 200 and r.json()["scores"][0] == pytest.approx(1.0, abs=1e-5)
        r = httpx.post(f"{base}/search", json={"query": " "}, timeout=10)
        assert r.status_code == 422 and "body.query" in r.json()["message"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal as its exit status
    assert proc.returncode in (0, -15) and "Application shutdown complete" in out


def test_server_with_missing_index_exits_with_one_clear_message(tiny_model: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service"],
        env=server_env(tiny_model, tmp_path / "none", free_port()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: cannot start: index" in proc.stderr and "does not exist: build it with" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_server_with_invalid_setting_names_it(tiny_model: str, tmp_path: Path) -> None:
    env = {**server_env(tiny_model, tmp_path, free_port()), "SIMSEARCH_MAX_PAIRS": "many"}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "max_pairs" in proc.stderr and "Traceback" not in proc.stderr

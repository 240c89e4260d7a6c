"""Start the real server (``python -m service``) as a subprocess on a free loopback port (the benchmarks
and the tests both do)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import ROOT, free_port


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_env(model: str, index_dir: Path, name: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SIMSEARCH_BI_MODEL": model,
        "SIMSEARCH_INDEX_DIR": str(index_dir),
        "SIMSEARCH_INDEX_NAME": name,
        "SIMSEARCH_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


@contextmanager
def running_server(
    model: str, index_dir: Path, name: str, *args: str, timeout: float = 120, **env: str
) -> Iterator[Server]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        env=server_env(model, index_dir, name, port, **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(proc, port)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready within {timeout} s")
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

"""What every benchmark records beside its figures: the machine, the versions, the parameters."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from simsearch.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent  # the repository
RESULTS = ROOT / "bench" / "results"
PACKAGES = [
    "simsearch",
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "numpy",
    "scikit-learn",
    "fastapi",
    "uvicorn",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": versions,
    }


def model_label(path: str) -> str:
    """A model folder as the results name it, without this machine's paths: the part after site-packages for a
    packaged model, otherwise the folder's name."""
    return path.rsplit("site-packages/", 1)[-1] if "site-packages/" in path else Path(path).name


def write_result(name: str, payload: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {**payload, "environment": environment()})
    return path


def free_port() -> int:
    """A free loopback port for a server the benchmark (or a test) starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

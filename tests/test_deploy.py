"""Deployment, checked where no Docker engine runs: compose.yaml against the Compose Specification, the
Dockerfile through hadolint and a structural reading, and the image's CMD and HEALTHCHECK run as they are
written, outside a container, against a small index."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DOCS, write_jsonl
from tests.server import ROOT, free_port

DOCKERFILE = ROOT / "docker" / "Dockerfile"


def interpolated_compose() -> str:
    """compose.yaml with ${VAR:-default} resolved, as `docker compose` does before validating."""
    text = (ROOT / "compose.yaml").read_text()
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    from compose_spec import PyCompose  # the Compose Specification, as implemented by the compose_spec crate

    return PyCompose.from_yaml(interpolated_compose()).to_dict()


def test_compose_file_follows_the_specification(compose: dict[str, Any]) -> None:
    from compose_spec import PyCompose

    assert set(compose["services"]) >= {
        "init-index",
        "api",
        "build-index",
        "train-bi",
        "train-cross",
        "fit-whitening",
        "fit-cur",
        "rollout",
        "api-replica",
        "lb",
    }
    with pytest.raises(ValueError, match="restartt"):  # the validator does reject what the spec does not know
        PyCompose.from_yaml(interpolated_compose().replace("restart: unless-stopped", "restartt: unless-stopped", 1))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> "ro" or "rw", from the short volume syntax ``source:target[:mode]``."""
    out = {}
    for volume in service["volumes"]:
        parts = volume.split(":")
        out[parts[1]] = parts[2] if len(parts) > 2 else "rw"
    return out


def test_api_service(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["restart"] == "unless-stopped" and "python" in str(api["healthcheck"]["test"])
    assert api["deploy"]["resources"]["limits"]["cpus"] and api["deploy"]["resources"]["limits"]["memory"]
    volumes = mounts(api)
    # the writer: its write log, lexical working copy and compacted builds live in the index volume
    assert volumes["/indexes"] == "rw" and volumes["/models"] == "ro"
    assert api["environment"].get("SIMSEARCH_READ_ONLY", "false") == "false"
    assert api["env_file"][0]["required"] is False  # an optional .env
    assert api["depends_on"]["init-index"]["condition"] == "service_completed_successfully"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert "command" not in api  # it runs the image's CMD, the README's serve command


def test_retrain_and_scale_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for job in ("build-index", "train-bi", "train-cross", "fit-whitening", "fit-cur", "rollback", "rollout"):
        assert services[job]["profiles"] == ["retrain"] and services[job]["restart"] == "no"
    volumes = mounts(services["build-index"])
    assert volumes["/indexes"] == volumes["/models"] == "rw" and volumes["/data"] == "ro"
    assert services["rollout"]["command"][:4] == ["python", "-m", "service.admin", "reload"]
    replica = services["api-replica"]
    assert replica["deploy"]["replicas"] >= 2 and services["lb"]["profiles"] == ["scale"]
    assert replica["environment"]["SIMSEARCH_READ_ONLY"] == "true"  # replicas never write documents
    nginx = (ROOT / "docker" / "nginx.conf").read_text()
    assert "server api-replica:8000" in nginx and "server api:8000" in nginx
    # writes and admin calls go to the writer, everything else round-robin to the replicas
    assert "~^(PUT|DELETE|POST|PATCH):/documents writer;" in nginx and "~^[A-Z]+:/admin/ writer;" in nginx


def test_compose_commands_name_real_modules(compose: dict[str, Any]) -> None:
    import importlib.util

    for name, service in compose["services"].items():
        command = service.get("command")
        if command and command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"


# ---- the Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest))
            current = ""
    return lines


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_structure() -> None:
    steps = dockerfile_instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)  # multi-stage, slim 3.11
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in runs  # CPU-only torch
    assert "HF_HUB_OFFLINE=1 python -m training.export_onnx" in runs  # the packaged model loads offline, exported
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user not in ("root", "0")
    health = next(rest for word, rest in steps if word == "HEALTHCHECK")
    assert '["python", "-m", "service.healthcheck"]' in health
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "indexes", "models", "cache"} <= set(ignore)


def image_cmd() -> list[str]:
    return json.loads([rest for word, rest in dockerfile_instructions() if word == "CMD"][-1])


def test_cmd_is_the_readme_serve_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert shlex.join(image_cmd()).replace("/data/", "$DATA_DIR/") in readme
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m service --build-from $(DATA_DIR)/scifact" in makefile


@pytest.mark.slow
def test_cmd_and_healthcheck_run_outside_a_container(tiny_model: str, tmp_path: Path) -> None:
    """The image's CMD, with /data pointing at a small corpus, builds the index and serves it; the
    HEALTHCHECK command fails before the server is ready and passes after."""
    (tmp_path / "data" / "scifact").mkdir(parents=True)
    write_jsonl(tmp_path / "data" / "scifact" / "corpus.jsonl", DOCS)
    cmd = [
        sys.executable if part == "python" else part.replace("/data", str(tmp_path / "data")) for part in image_cmd()
    ]
    port = free_port()
    env = {
        **os.environ,
        "SIMSEARCH_BI_MODEL": tiny_model,
        "SIMSEARCH_INDEX_DIR": str(tmp_path / "indexes"),
        "SIMSEARCH_PORT": str(port),
        "SIMSEARCH_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
    }
    health = [sys.executable, "-m", "service.healthcheck"]
    assert subprocess.run(health, env=env, cwd=ROOT, capture_output=True, timeout=30).returncode == 1
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(health, env=env, cwd=ROOT, capture_output=True, timeout=30).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert (tmp_path / "indexes" / "scifact" / "manifest.json").is_file()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_admin_reload_command(tiny_model: str, tmp_path: Path, tiny_encoder) -> None:
    from simsearch.index.build import build_index
    from tests.server import running_server

    build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), tiny_encoder, tmp_path / "ix", "r", progress=False)
    with running_server(tiny_model, tmp_path / "ix", "r", SIMSEARCH_ADMIN_KEY="admin-key-0123456789") as server:
        build_index(write_jsonl(tmp_path / "c2.jsonl", DOCS[:3]), tiny_encoder, tmp_path / "ix", "r", progress=False)
        admin = [sys.executable, "-m", "service.admin", "reload", "--url", server.url]
        ok = subprocess.run(
            admin,
            env={**os.environ, "SIMSEARCH_ADMIN_KEY": "admin-key-0123456789"},
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert ok.returncode == 0 and json.loads(ok.stdout)["documents"] == 3
        bad = subprocess.run(
            admin,
            env={**os.environ, "SIMSEARCH_ADMIN_KEY": "nope"},
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert bad.returncode == 1 and "HTTP 401" in bad.stderr  # an unknown key


def test_milvus_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("milvus-etcd", "milvus-minio", "milvus", "milvus-init", "api-milvus"):
        assert services[name]["profiles"] == ["milvus"]
    for name in ("milvus-etcd", "milvus-minio", "milvus", "api-milvus"):
        assert "healthcheck" in services[name], name
    assert services["milvus"]["depends_on"]["milvus-etcd"]["condition"] == "service_healthy"
    api = services["api-milvus"]
    assert api["environment"]["SIMSEARCH_STORE"] == "milvus"
    assert api["environment"]["SIMSEARCH_MILVUS_URI"] == "http://milvus:19530"
    assert api["depends_on"]["milvus-init"]["condition"] == "service_completed_successfully"
    assert services["milvus-init"]["command"][:3] == ["python", "-m", "training.to_milvus"]
    assert {"milvus", "milvus-etcd", "milvus-minio"} <= set(compose["volumes"])

"""Faults and hostile input against the real server: a property-based run over the OpenAPI schema finds
no 5xx, malformed or oversized requests get clean 4xx, slow clients are cut off, a killed build leaves the
previous index loadable."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simsearch.index.layout import staging_folders
from tests.conftest import DOCS, write_jsonl
from tests.server import ROOT, Server, running_server

pytestmark = pytest.mark.slow  # starts servers and kills them


@pytest.fixture(scope="module")
def server(tiny_model: str, built_index: Path) -> Iterator[Server]:
    with running_server(
        tiny_model,
        built_index.parent,
        built_index.name,
        SIMSEARCH_BODY_TIMEOUT_S="1",
        SIMSEARCH_KEEP_ALIVE_S="1",
        SIMSEARCH_MAX_BODY_BYTES="65536",
        SIMSEARCH_MAX_PAIRS="64",
        SIMSEARCH_LOG_LEVEL="warning",
    ) as s:
        yield s


ADMIN_KEY, READ_KEY, WRITE_KEY = "admin-key-0123456789abcdef", "read-key-0123456789abcdef", "write-key-0123456789ab"


def schemathesis(url: str, examples: int, *extra: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    flags = ["--checks", "not_a_server_error", "--max-examples", str(examples), "--seed", "1", "--no-color"]
    return subprocess.run(
        [str(st), "run", f"{url}/openapi.json", *flags, *extra],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )


def metric(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def full_server(tiny_model: str, tiny_cross: str, cur_index: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every feature on: a cross-encoder, an index with CUR arrays and a lexical index, writes, read, write
    and admin keys (a copy of the CUR index, since the run writes to it and compacts it)."""
    import shutil

    root = tmp_path_factory.mktemp("property") / "indexes"
    shutil.copytree(cur_index.parent, root, symlinks=True, ignore=shutil.ignore_patterns("work"))
    with running_server(
        tiny_model,
        root,
        cur_index.name,
        SIMSEARCH_CROSS_MODEL=tiny_cross,
        SIMSEARCH_MAX_RERANK="8",
        SIMSEARCH_API_KEYS=READ_KEY,
        SIMSEARCH_WRITE_KEYS=WRITE_KEY,
        SIMSEARCH_ADMIN_KEY=ADMIN_KEY,
        SIMSEARCH_MAX_BODY_BYTES="65536",
        SIMSEARCH_MAX_PAIRS="64",
        SIMSEARCH_LOG_LEVEL="warning",
    ) as s:
        yield s


def test_schemathesis_finds_no_server_errors(full_server: Server) -> None:
    """Generated requests from the OpenAPI schema (valid and invalid), against a service with every
    feature on: never a 5xx. Authorised with the admin key (which may call everything), so the generated
    requests reach re-ranking, CUR, cross-encoder similarity, writes, compaction and reloads; then once more
    without a key (every route either open or a 401, never a 5xx)."""
    url = full_server.url
    authorised = schemathesis(url, 60, "--header", f"Authorization: Bearer {ADMIN_KEY}")
    assert authorised.returncode == 0, authorised.stdout[-3000:] + authorised.stderr[-2000:]
    anonymous = schemathesis(url, 10)
    assert anonymous.returncode == 0, anonymous.stdout[-3000:] + anonymous.stderr[-2000:]
    # the run did reach the deep paths with valid requests, not only the validators
    assert metric(url, "simsearch_batch_size_count", model="cross") > 0  # rerank, cur or model: cross
    for endpoint in ("/search", "/similarity", "/documents", "/admin/compact", "/admin/reload"):
        ok = sum(metric(url, "simsearch_requests_total", endpoint=endpoint, status=str(c)) for c in (200, 201, 204))
        assert ok > 0, f"no successful {endpoint} request in the property run"
    assert metric(url, "simsearch_requests_total", status="401") > 0
    cases = re.search(r"(\d+) generated, (\d+) passed", authorised.stdout)
    assert cases and int(cases.group(1)) >= 500 and cases.group(1) == cases.group(2), authorised.stdout[-2000:]
    # the service is still whole: the index answers every mode
    for mode in ("dense", "lexical", "hybrid", "rerank", "cur"):
        r = httpx.post(
            f"{url}/search",
            json={"query": "cats", "mode": mode, "k": 3},
            headers={"Authorization": f"Bearer {READ_KEY}"},
            timeout=30,
        )
        assert r.status_code == 200, (mode, r.text[:300])


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"[" * 30_000 + b"]" * 30_000, 422, "body: not valid JSON"),
        (b'{"query": "\xff\xfe"}', 422, "body: not valid JSON"),
        (b'{"query": "\\ud800"}', 422, "body.query: must be valid Unicode"),
        (b'{"query": "x", "k": 1e309}', 422, "body.k"),
        (b'{"query": "x", "k": 100000000000000000000000}', 422, "body.k: Input should be less than or equal to 100"),
        (b'{"query": "x", "k": NaN}', 422, "body"),
        (b"x" * 70_000, 413, "SIMSEARCH_MAX_BODY_BYTES"),
    ],
)
def test_hostile_search_bodies(server: Server, body: bytes, status: int, text: str) -> None:
    r = httpx.post(f"{server.url}/search", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status and text in r.json()["message"], r.text[:300]


def test_thousands_of_pairs(server: Server) -> None:
    r = httpx.post(f"{server.url}/similarity", json={"pairs": [["a", "b"]] * 8000}, timeout=30)
    assert r.status_code == 413  # 8,000 pairs are over the 64 KiB body limit before they are parsed
    r = httpx.post(f"{server.url}/similarity", json={"pairs": [["a", "b"]] * 1000}, timeout=30)
    assert r.status_code == 422 and "1000 pairs; the limit is 64" in r.json()["message"]


def test_slow_body_is_cut_off(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b'POST /search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query"'
        )
        started = time.monotonic()
        reply = b""
        while b"did not arrive" not in reply and (chunk := s.recv(4096)):
            reply += chunk
        assert b" 408 " in reply.split(b"\r\n", 1)[0] and b"did not arrive within 1 s" in reply
        assert time.monotonic() - started < 8


def test_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        started = time.monotonic()
        received = b""
        while chunk := s.recv(4096):  # until the server closes the idle connection
            received += chunk
        assert b"200 OK" in received and received.endswith(b'{"status":"ok"}')
        assert time.monotonic() - started < 8


def test_killed_build_leaves_the_previous_index_loadable(tiny_model: str, tmp_path: Path) -> None:
    from simsearch.index.open import open_index

    root = tmp_path / "indexes"
    small = write_jsonl(tmp_path / "small.jsonl", DOCS)
    build = [
        sys.executable,
        "-m",
        "training.build_index",
        "--index-dir",
        str(root),
        "--name",
        "k",
        "--model",
        tiny_model,
        "--no-progress",
    ]
    subprocess.run([*build, "--corpus", str(small)], check=True, cwd=ROOT, capture_output=True, timeout=300)
    before = open_index(root / "k").manifest.build_id
    big = write_jsonl(tmp_path / "big.jsonl", [{"_id": str(i), "text": f"document {i} " * 20} for i in range(60_000)])
    proc = subprocess.Popen(
        [*build, "--corpus", str(big)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 120
    while not any((p / "docs.sqlite").exists() for p in staging_folders(root, "k")):  # mid-build
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    index = open_index(root / "k")
    assert index.manifest.build_id == before and index.manifest.count == len(DOCS)
    assert list(staging_folders(root, "k"))  # the killed build's leftovers ...
    subprocess.run([*build, "--corpus", str(small)], check=True, cwd=ROOT, capture_output=True, timeout=300)
    assert not list(staging_folders(root, "k"))  # ... are cleared by the next build
    assert json.loads((root / "k" / "manifest.json").read_text())["build_id"] != before

"""What a newcomer met following the docs (each check failed before its fix): ids that could not be read
back, refusals counted as "unmatched", compactions not counted as reloads, parameters a mode ignores,
setting errors naming Python fields, the admin command's exit code and name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from service.app import create_app

WRITE_KEY, ADMIN_KEY = "write-key-0123456789abcdef", "admin-key-0123456789abcdef"
W = {"authorization": f"Bearer {WRITE_KEY}"}
A = {"authorization": f"Bearer {ADMIN_KEY}"}
# (an id holding an escape such as "%2F" is read back by a real server, tests/test_collection_faults.py: the test
# client decodes paths twice)
HOSTILE_IDS = ["docs/readme.md", "a?b", "c#d", "100%", "with space", "ünïcödé/文档", "/leading", "trailing/"]


@pytest.fixture
def http(tmp_path: Path, built_index: Path, settings_for: Any):
    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    with TestClient(create_app(settings_for(index_dir=root, write_keys=WRITE_KEY, admin_key=ADMIN_KEY))) as c:
        yield c


def test_every_id_the_write_api_takes_reads_back_and_deletes(http: TestClient) -> None:
    docs = [{"id": i, "text": f"text of {i}"} for i in HOSTILE_IDS]
    assert http.put("/documents", json={"documents": docs}, headers=W).status_code == 200
    for doc_id in HOSTILE_IDS:
        r = http.get(f"/documents/{quote(doc_id, safe='')}", headers=W)
        assert r.status_code == 200 and r.json()["id"] == doc_id, (doc_id, r.text)
        r = http.get(f"/collections/tiny/documents/{quote(doc_id, safe='')}", headers=W)
        assert r.status_code == 200 and r.json()["id"] == doc_id, doc_id
    assert http.get("/documents/docs/readme.md", headers=W).json()["id"] == "docs/readme.md"  # '/' as it is
    r = http.request("DELETE", "/documents", json={"ids": HOSTILE_IDS}, headers=W)
    assert r.json()["deleted"] == HOSTILE_IDS
    assert all(http.get(f"/documents/{quote(i, safe='')}", headers=W).status_code == 404 for i in HOSTILE_IDS)


def metric(http: TestClient, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = http.get("/metrics", headers=A).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_refusals_are_counted_under_their_endpoint(http: TestClient) -> None:
    http.put("/documents", json={"documents": [{"id": "x", "text": "y"}]})  # 401: no key
    http.put(
        "/documents", json={"documents": [{"id": "x", "text": "y"}]}, headers={"authorization": "Bearer " + "x" * 20}
    )
    http.post("/admin/compact", headers=W)  # 403: a write key is not an admin key
    assert metric(http, "simsearch_requests_total", endpoint="/documents", status="401") == 2
    assert metric(http, "simsearch_requests_total", endpoint="/admin/compact", status="403") == 1
    assert metric(http, "simsearch_requests_total", endpoint="unmatched") == 0


def test_a_compaction_swap_is_counted_as_a_reload(http: TestClient) -> None:
    http.put("/documents", json={"documents": [{"id": "x", "text": "y"}]}, headers=W)
    before = metric(http, "simsearch_index_reloads_total", collection="tiny", outcome="ok")
    assert http.post("/admin/compact", headers=A).status_code == 200
    assert metric(http, "simsearch_index_reloads_total", collection="tiny", outcome="ok") == before + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "dense", "fusion": {"method": "rrf"}}, "body.fusion"),
        ({"mode": "lexical", "rerank_weight": 0.5}, "body.rerank_weight"),
        ({"mode": "hybrid", "k_r": 5}, "body.k_r"),
        ({"mode": "dense", "candidates": "hybrid"}, "body.candidates"),
        ({"mode": "rerank", "candidates": "dense", "fusion": {"method": "rrf"}}, "body.fusion"),
    ],
)
def test_a_parameter_the_mode_does_not_read_is_an_error(http: TestClient, body: dict, field: str) -> None:
    r = http.post("/search", json={"query": "cats", **body})
    assert r.status_code == 422 and r.json()["message"].startswith(f"{field}: "), r.text
    assert "is read by" in r.text or "reads it only" in r.text


def test_setting_errors_name_the_variable(tiny_model: str) -> None:
    env = {**os.environ, "SIMSEARCH_WRITE_KEYS": "short", "SIMSEARCH_BI_MODEL": tiny_model}
    out = subprocess.run(
        [sys.executable, "-m", "training.rollback", "--name", "x"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "SIMSEARCH_WRITE_KEYS: keys must be at least 16" in out.stderr, out.stderr
    assert "write_keys" not in out.stderr


def test_the_admin_command_exits_1_and_names_itself_as_it_is_run() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIMSEARCH_ADMIN_KEY"}
    out = subprocess.run([sys.executable, "-m", "service.admin", "reload"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "SIMSEARCH_ADMIN_KEY" in out.stderr
    usage = subprocess.run([sys.executable, "-m", "service.admin", "--help"], capture_output=True, text=True)
    assert "python -m service.admin" in usage.stdout and "simsearch-admin" not in usage.stdout

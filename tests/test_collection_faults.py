"""Collections under faults: creates and deletes killed with ``kill -9`` at random points leave either no
collection or a complete one, and the service starts over what is left; deleting a collection while 16
clients search it gives them 200 or 404, never a 500; the Python client against a real server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from simsearch.client import Client, SimsearchError
from tests.conftest import DOCS
from tests.server import ROOT, running_server

pytestmark = pytest.mark.slow  # kills processes and starts servers

ADMIN_KEY, WRITE_KEY = "admin-key-0123456789abcdef", "write-key-0123456789abcdef"

# creates and removes collections for ever, every file-system step slowed down so that a kill lands inside
CHURN = """
import os, shutil, sys, time
from pathlib import Path
slow = lambda f: (lambda *a, **k: (time.sleep(0.02), f(*a, **k))[1])
os.replace, os.rename, shutil.rmtree = slow(os.replace), slow(os.rename), slow(shutil.rmtree)
Path.rename, Path.mkdir = slow(Path.rename), slow(Path.mkdir)
from simsearch.api.spec import CollectionSpec
from simsearch.collection.manager import EmbeddedStore
from simsearch.index.build import model_info
from simsearch.models.bi_encoder import BiEncoder
store = EmbeddedStore(Path(sys.argv[1]))
info = model_info(BiEncoder.load(sys.argv[2]), "", "default")
print("ready", flush=True)
i = 0
while True:
    name = f"c{i % 3}"
    if store.exists(name):
        store.remove(name)()
    else:
        store.create(name, CollectionSpec(), info)
    i += 1
"""


def test_create_and_delete_killed_anywhere_leave_nothing_or_a_whole_collection(
    tiny_model: str, built_index: Path, tmp_path: Path, settings_for
) -> None:
    import shutil

    from simsearch.collection.manager import EmbeddedStore

    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    rng = random.Random(0)
    seen = Counter()
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(root), tiny_model],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.1, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        store = EmbeddedStore(root)
        store.recover()  # what the service does first
        assert not list(root.glob(".deleted-*"))
        for name in ("c0", "c1", "c2"):
            if not store.exists(name):
                assert not list(root.glob(f"{name}@*")), f"{name}: builds left without a collection"
                seen["absent"] += 1
                continue
            opened = store.open(name, writable=False)  # complete: every file there, every checksum right
            assert opened.spec is not None and opened.view().count == 0
            opened.close()
            seen["complete"] += 1
        with TestClient(create_app(settings_for(index_dir=root))) as http:  # the service starts over it
            ready = http.get("/ready").json()
            assert ready["ready"] and all(c["state"] == "ready" for c in ready["collections"]), ready
    assert seen["absent"] and seen["complete"]


def create_app(settings):  # imported late: the module's other tests start subprocesses only
    from service.app import create_app as make

    return make(settings)


def private_root(built_index: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(built_index.parent, tmp_path / "indexes", symlinks=True)
    return tmp_path / "indexes"


def test_deleting_a_collection_under_16_searching_clients_is_200_or_404(
    tiny_model: str, built_index: Path, tmp_path: Path
) -> None:
    root = private_root(built_index, tmp_path)
    with running_server(
        tiny_model,
        root,
        built_index.name,
        SIMSEARCH_ADMIN_KEY=ADMIN_KEY,
        SIMSEARCH_WRITE_KEYS=WRITE_KEY,
        SIMSEARCH_LOG_LEVEL="warning",
    ) as server:
        writer = Client(server.url, key=WRITE_KEY)
        writer.create_collection("busy")
        writer.upsert("busy", [{"id": f"{d['_id']}/é", "text": d["text"], "title": d["title"]} for d in DOCS])
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def search() -> None:
            import httpx

            with httpx.Client(base_url=server.url, timeout=30) as http:
                while not stop.is_set():
                    mode = random.choice(["dense", "lexical", "hybrid"])
                    r = http.post("/collections/busy/search", json={"query": "tea coffee", "mode": mode})
                    statuses[r.status_code] += 1

        threads = [threading.Thread(target=search) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        assert Client(server.url, key=ADMIN_KEY).delete_collection("busy").deleted
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert set(statuses) == {200, 404}, statuses
        assert statuses[200] > 16 and statuses[404] > 16
        deadline = time.monotonic() + 10
        while list(root.glob("busy@*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not list(root.glob("busy@*")) and not list(root.glob(".deleted-busy*"))
        with pytest.raises(SimsearchError) as gone:
            writer.search("busy", "tea")
        assert gone.value.status == 404


def test_the_client_drives_a_real_server(tiny_model: str, tiny_cross: str, built_index: Path, tmp_path: Path) -> None:
    """Every operation of Client and AsyncClient against the service as it runs, errors included."""
    import asyncio

    from simsearch.client import AsyncClient

    with running_server(
        tiny_model,
        private_root(built_index, tmp_path),
        built_index.name,
        SIMSEARCH_ADMIN_KEY=ADMIN_KEY,
        SIMSEARCH_WRITE_KEYS=WRITE_KEY,
        SIMSEARCH_CROSS_MODEL=tiny_cross,
        SIMSEARCH_MODELS=json.dumps({"other": tiny_model}),
        SIMSEARCH_LOG_LEVEL="warning",
    ) as server:
        with Client(server.url, key=WRITE_KEY) as c:
            assert c.ready().ready and {m.name for m in c.models().models} >= {"default", "cross", "other", "minilm"}
            assert c.create_collection("client-test", model="other", cross="cross").created
            ids = ["a/b?c#d%e f%2F", "ünï-文档-" + "x" * 200]
            w = c.upsert("client-test", [{"id": ids[0], "text": "tea and coffee"}, {"id": ids[1], "text": "rain"}])
            assert w.inserted == ids
            assert [c.get("client-test", i).id for i in ids] == ids
            hits = c.search("client-test", "coffee", k=1, mode="rerank", k_r=2).hits
            assert hits[0].id == ids[0] or len(hits) == 1
            assert c.search("client-test", "rain", mode="lexical").hits[0].id == ids[1]
            sims = c.similarity([("a cat", "a cat"), ("a cat", "stocks")], model="other")
            assert sims.model == "other" and sims.scores[0] > sims.scores[1]
            assert c.delete("client-test", [ids[1], "absent"]).not_found == ["absent"]
            with pytest.raises(SimsearchError) as bad:
                c.search("client-test", "x", k=500)
            assert bad.value.status == 422 and bad.value.message.startswith("body.k:")
            with pytest.raises(SimsearchError) as missing:
                c.get("client-test", ids[1])
            assert missing.value.status == 404

        async def run() -> None:
            async with AsyncClient(server.url, key=ADMIN_KEY) as a:
                states = {s.name: s.documents for s in await a.list_collections()}
                assert states["client-test"] == 1
                info = await a.get_collection("client-test")
                assert info.spec.model == "other" and info.spec.cross == "cross" and info.live.documents == 1
                assert (await a.compact("client-test")).sequence == 2
                assert (await a.delete_collection("client-test")).deleted
                with pytest.raises(SimsearchError) as gone:
                    await a.get_collection("client-test")
                assert gone.value.status == 404

        asyncio.run(run())

"""Many collections in one service, sharing one model: what a collection costs.

    python -m bench.collections_many [--small] [--duration 10] [--rounds 8]

1. Create: ``PUT /collections/{name}`` ``{}`` on a running service that holds no collection (a first
   create loads the model and is not counted): the latency of each of 20 creates (median) and the
   resident memory (VmRSS) and threads they add, per collection; then what 50 documents written into
   each add (a collection that has taken writes holds a lexical index writer).
2. Memory: 100 collections of 1,000 documents against one collection of the same 100,000 documents, each
   in a service of its own, same settings: VmRSS once every collection has answered a dense, a lexical
   and a hybrid search (the one collection the same number of searches).
3. Latency: search p50 (wrk, ``k`` = 10, dense, SciFact test claims) at c = 1 and c = 16 on one of the
   100 collections while all 100 are loaded, against the same collection (same documents and vectors)
   alone in a service. Both services are up; the one not measured is paused (SIGSTOP) so that neither's
   background work weighs on the other. The two are measured in turn (A B, then B A, ...), ``--rounds``
   times each, after a short warm-up each time; the ratio is of the medians over the rounds, since this
   shared host drifts by more than the effect sought within minutes (the median of the per-round ratios
   and the ratio of the quietest rounds are recorded beside it).
4. Where a collection's memory goes: the FAISS index, the document store, the lexical index, the write
   log and the whole collection of each of the 100, opened in a fresh process per part.

Documents: distinct real short texts from the data folder (SIMSEARCH_DATA_DIR, read in place): the
sentences of the SciFact abstracts, of the MS MARCO passages and of STS-B, the SciFact titles, then LCQMC
questions (Chinese) to make up 100,000; collection ``c000`` holds the first 1,000 SciFact sentences, which
the queries (SciFact claims) fit. Encoded once with the default model and cached under ``cache/`` (a rerun
does not encode again); the builds are written from the vectors (simsearch.index.from_vectors) into a
temporary index folder, so building does not dominate.
Writes bench/results/collections_many.json and .png (``--small``: 5 collections of 200, as
collections_many-small, a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bench.collections import WRITE_KEY, p50
from bench.common import RESULTS, ROOT, write_result
from bench.serve import cpu_seconds, lua_script, measure
from bench.server import Server, running_server
from simsearch.ann.faiss_index import FaissIndex
from simsearch.cli import settings_with
from simsearch.client import Client, SimsearchError
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.write_log import WriteLog
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents
from simsearch.data.pairs import read_pairs
from simsearch.index import layout
from simsearch.index.build import model_info
from simsearch.index.docstore import DocStore
from simsearch.index.from_vectors import build_from_vectors
from simsearch.index.manifest import Manifest
from simsearch.lexical import LexicalIndex
from simsearch.models.bi_encoder import BiEncoder
from simsearch.serving.runtime import load_encoder

CACHE = ROOT / "cache" / "collections_many"
ENCODE_CHUNK = 1024  # texts per call, for the progress bar
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
MIN_CHARS = 20  # shorter pieces of a split abstract are mostly abbreviations split off ("et al.", "Fig.")
MODES = ("dense", "lexical", "hybrid")
CONCURRENCY = (1, 16)
MEASURED = "c000"  # the collection searched for latency: SciFact sentences, as the queries are claims
ENV = {"SIMSEARCH_LOG_LEVEL": "warning", "SIMSEARCH_WRITE_KEYS": WRITE_KEY, "TOKENIZERS_PARALLELISM": "false"}
WRITTEN = 50  # documents written into each created collection (the write path's per-collection cost)
GOALS = {"memory_ratio_100_over_1": 1.3, "latency_ratio_p50_c1": 1.2, "latency_ratio_p50_c16": 1.2}


# ---- the documents and their vectors ----------------------------------------------------------------------


def short_texts(data: Path, n: int) -> tuple[list[str], dict[str, int]]:
    """``n`` distinct short texts, English first (see the docstring), and how many come from each source."""
    sources: dict[str, list[str]] = {"scifact sentences": [], "msmarco sentences": []}
    for folder, key in (("scifact", "scifact sentences"), ("msmarco-dl19", "msmarco sentences")):
        for doc in iter_documents(data / folder / "corpus.jsonl"):
            sources[key] += [s.strip() for s in SENTENCE_END.split(doc.text) if len(s.strip()) >= MIN_CHARS]
    stsb = [read_pairs(data / "stsb-en", split) for split in ("train", "dev", "test")]
    sources["stsb sentences"] = [s for pairs in stsb for s in pairs.a] + [s for pairs in stsb for s in pairs.b]
    sources["scifact titles"] = [d.title for d in iter_documents(data / "scifact" / "corpus.jsonl")]
    chinese = read_pairs(data / "lcqmc", "train").sentences()
    random.Random(0).shuffle(chinese)  # the file is sorted: a seeded sample instead of its first rows
    sources["lcqmc questions"] = chinese
    seen: dict[str, str] = {}
    for source, texts in sources.items():
        for text in texts:
            if len(seen) == n:
                break
            if text.strip() and text not in seen:
                seen[text] = source
    if len(seen) < n:
        raise ValueError(f"only {len(seen)} distinct texts in {data}")
    counts = {source: sum(1 for s in seen.values() if s == source) for source in sources}
    return list(seen), counts


def encoded(texts: list[str], encoder: BiEncoder) -> tuple[np.ndarray, float | None]:
    """The texts' vectors, from the cache when these texts were encoded by this model before; with the
    encoding time when they were encoded now."""
    key = hashlib.sha256(("\n".join(texts) + encoder.sha256).encode()).hexdigest()[:16]
    path = CACHE / f"{len(texts)}-{key}.npy"
    if path.is_file():
        return np.load(path), None
    started = time.perf_counter()
    parts = []
    with tqdm(total=len(texts), desc="encoding", unit="text") as bar:
        for start in range(0, len(texts), ENCODE_CHUNK):
            parts.append(encoder.encode(texts[start : start + ENCODE_CHUNK]))
            bar.update(len(parts[-1]))
    vectors = np.concatenate(parts)
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    os.replace(partial, path)
    return vectors, seconds


def write_builds(
    texts: list[str], vectors: np.ndarray, encoder: BiEncoder, tmp: Path, count: int, size: int
) -> dict[str, Any]:
    """The index folders the services serve: ``many`` (``count`` collections of ``size``), ``one`` (all the
    documents in collection ``all``), ``alone`` (collection ``c000`` by itself) and ``empty``."""
    model = model_info(encoder, "")
    (tmp / "corpus").mkdir()

    def build(root: Path, name: str, lo: int, hi: int, progress: bool = False) -> None:
        corpus = tmp / "corpus" / f"{root.name}-{name}.jsonl"
        with corpus.open("w") as f:
            f.writelines(json.dumps({"_id": f"d{i}", "text": texts[i]}) + "\n" for i in range(lo, hi))
        build_from_vectors(corpus, vectors[lo:hi], model, root, name, progress=progress)
        corpus.unlink()

    started = time.perf_counter()
    for i in tqdm(range(count), desc=f"writing {count} collections", unit="collection"):
        build(tmp / "many", f"c{i:03d}", i * size, (i + 1) * size)
    many_s = time.perf_counter() - started
    build(tmp / "alone", MEASURED, 0, size)
    started = time.perf_counter()
    build(tmp / "one", "all", 0, count * size, progress=True)
    (tmp / "empty").mkdir()
    return {
        "write_s": {"many": round(many_s, 1), "one": round(time.perf_counter() - started, 1)},
        "disk_mb": {name: disk_mb(tmp / name) for name in ("many", "one", "alone")},
    }


def disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20, 1)


# ---- what a service holds ------------------------------------------------------------------------------------


def memory(pid: int) -> dict[str, Any]:
    """The process's resident memory (MB): all of it, anonymous, file-backed (mapped files); its threads by
    name (a cost per collection shows as a name whose count follows the collections)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    mb = {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "RssAnon", "RssFile")}
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            names[(task / "comm").read_text().strip()] += 1
    return {
        "rss_mb": mb["VmRSS"],
        "anon_mb": mb["RssAnon"],
        "file_mb": mb["RssFile"],
        "threads": int(fields["Threads"]),
        "thread_names": dict(names.most_common()),
    }


def search_each(server: Server, names: list[str], queries: list[str]) -> None:
    """One search in each mode on each of ``names`` (a name may repeat)."""
    with Client(server.url) as client:
        for i, name in enumerate(names):
            for j, mode in enumerate(MODES):
                client.search(name, queries[(len(MODES) * i + j) % len(queries)], k=10, mode=mode)


def settled(server: Server) -> dict[str, float]:
    time.sleep(2)  # the background loop's first rounds, a collection's lazy caches
    return memory(server.proc.pid)


def creates(server: Server, n: int, texts: list[str]) -> dict[str, Any]:
    """``n`` empty collections created over HTTP after a first (which loads the model): latency, memory;
    then the memory ``WRITTEN`` documents written into each add (a collection with writes holds more)."""
    no_model = settled(server)
    with Client(server.url, key=WRITE_KEY) as client:
        started = time.perf_counter()
        client.create_collection("first")
        first_s = time.perf_counter() - started
        base = settled(server)
        times = []
        for i in range(n):
            started = time.perf_counter()
            client.create_collection(f"e{i:03d}")
            times.append(time.perf_counter() - started)
        empty = settled(server)
        errors = []
        for i in range(n):
            docs = [{"id": f"w{j}", "text": texts[j]} for j in range(i * WRITTEN, (i + 1) * WRITTEN)]
            try:
                client.upsert(f"e{i:03d}", docs)
            except SimsearchError as exc:  # recorded with the service's log (a bug to report, not to hide)
                errors.append(f"e{i:03d}: {exc}")
    written = settled(server)

    def per_collection(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        return {k: round((b[k] - a[k]) / n, 2) for k in ("rss_mb", "anon_mb", "file_mb", "threads")}

    return {
        "creates": n,
        "create_p50_ms": p50(times),
        "create_ms": [round(1000 * t, 1) for t in times],
        "first_create_s_loads_the_model": round(first_s, 2),
        "per_empty_collection": per_collection(base, empty),
        "documents_written_into_each": WRITTEN,
        "per_written_collection_beyond_empty": per_collection(empty, written),
        "write_errors": errors,
        "service_without_model": no_model,
        "service_with_model_one_empty_collection": base,
        "after_creates": empty,
        "after_writes": written,
    }


def idle_cpu(servers: dict[str, Server], seconds: float = 10) -> dict[str, float]:
    """Each idle service's CPU use (share of one core): its background loop, which visits every collection."""
    before = {k: cpu_seconds(s.proc.pid)["server"] for k, s in servers.items()}
    time.sleep(seconds)
    return {k: round((cpu_seconds(s.proc.pid)["server"] - before[k]) / seconds, 4) for k, s in servers.items()}


def latency(servers: dict[str, Server], queries: list[str], tmp: Path, duration: int, rounds: int) -> dict[str, Any]:
    """p50 of dense search on ``MEASURED`` in each service in turn, the other paused (see the docstring)."""
    script = tmp / "search.lua"
    body: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"/collections/{MEASURED}/search", {"query": q, "k": 10, "mode": "dense"}) for q in queries[:50]
    ]
    script.write_text(lua_script(body))
    out: dict[str, Any] = {}
    try:
        for c in CONCURRENCY:
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
            for r in range(rounds):
                for key in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                    for other, s in servers.items():
                        os.kill(s.proc.pid, signal.SIGCONT if other == key else signal.SIGSTOP)
                    s = servers[key]
                    measure(s.proc.pid, s.port, script, c, 2, None)  # warm-up after the pause
                    rows[key].append(measure(s.proc.pid, s.port, script, c, duration, None))
                    print(json.dumps({"c": c, "round": r, "service": key, **rows[key][-1]}))
            medians = {k: float(np.median([row["p50_ms"] for row in v])) for k, v in rows.items()}
            paired = [a["p50_ms"] / b["p50_ms"] for a, b in zip(rows["among_100"], rows["alone"], strict=True)]
            best = {k: min(row["p50_ms"] for row in v) for k, v in rows.items()}
            out[f"c{c}"] = {
                "p50_ms": medians,
                "ratio_p50": round(medians["among_100"] / medians["alone"], 3),
                # the same question asked two more ways, since other jobs' load comes and goes: each round
                # against the other service's in the same round (adjacent in time), and quietest against quietest
                "ratio_p50_paired_median": round(float(np.median(paired)), 3),
                "ratio_p50_by_round": [round(r, 3) for r in paired],
                "ratio_best_p50": round(best["among_100"] / best["alone"], 3),
                "rounds": rows,
            }
    finally:
        for s in servers.values():
            os.kill(s.proc.pid, signal.SIGCONT)
    return out


def open_part(part: str, root: Path, name: str) -> Any:
    """One part of collection ``name`` under ``root``, opened and read once as a search reads it."""
    folder = (root / name).resolve()
    m = Manifest.read(folder)
    if part == "FAISS index":
        index = FaissIndex.load(folder, m.model.dimension, m.index.params)
        index.search(np.zeros((1, m.model.dimension), dtype=np.float32), 10)
        return index
    if part == "documents (SQLite)":
        store = DocStore(folder / layout.DOCS_FILE)
        store.get(list(range(10)))
        return store
    if part == "lexical index (tantivy)":
        lexical = LexicalIndex(folder / layout.LEXICAL_DIR)
        lexical.searcher().search("cell", 10)
        return lexical
    if part == "write log (SQLite)":
        return WriteLog(layout.write_log(root, name), dimension=m.model.dimension, model_sha256=m.model.sha256)
    collection = EmbeddedCollection.open(root / name)
    view = collection.view()
    view.dense(np.zeros(m.model.dimension, dtype=np.float32), 10)
    view.lexical("cell", 10)
    return collection


def part_cost(part: str, root: Path, names: list[str]) -> dict[str, float]:
    """What holding ``part`` of the collections in ``names`` adds to a fresh process, per collection."""
    first = open_part(part, root, names[0])  # not counted: it loads the libraries (tantivy is imported on use)
    before = memory(os.getpid())
    held = [open_part(part, root, name) for name in names[1:]]
    after = memory(os.getpid())
    del first, held
    n = len(names) - 1
    return {k: round((after[k] - before[k]) / n, 3) for k in ("rss_mb", "anon_mb", "file_mb", "threads")}


PARTS = ("FAISS index", "documents (SQLite)", "lexical index (tantivy)", "write log (SQLite)", "whole collection")


def parts(root: Path, names: list[str]) -> dict[str, dict[str, float]]:
    """Where a collection's memory goes: each part of ``names`` held in a process of its own (memory one
    part frees would otherwise be reused by the next); the whole collection (EmbeddedCollection) last."""
    out = {}
    for part in PARTS:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out[part] = pool.submit(part_cost, part, root, names).result()
    return out


# ---- the run -----------------------------------------------------------------------------------------------


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, mem, create = result["parameters"], result["memory"], result["create"]
    met = {k: "met" if v else "NOT met" for k, v in result["goals_met"].items()}
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1.3, 1.3, 1, 1]})
    labels = [
        f"1 collection\n× {p['per_collection']:,}",
        f"1 collection\n× {p['documents']:,}",
        f"{p['collections']} collections\n× {p['per_collection']:,}",
    ]
    values = [mem["alone"]["rss_mb"], mem["one"]["rss_mb"], mem["many"]["rss_mb"]]
    bars = axes[0].bar(labels, values, color=["#bbb", "#4c72b0", "#dd8452"])
    axes[0].bar_label(bars, fmt="%.0f MB")
    axes[0].axhline(GOALS["memory_ratio_100_over_1"] * values[1], color="k", ls="--", lw=0.8, label="goal: 1.3 × one")
    ratio = result["memory_ratio_100_over_1"]
    axes[0].set_title(
        f"service's resident memory\n{ratio:.2f} × one collection (goal ≤ 1.3: {met['memory_ratio_100_over_1']})"
    )
    axes[0].set_ylabel("MB (VmRSS)")
    axes[0].legend(loc="lower right")
    # what one more collection adds to the service, and the threads it brings
    added = [
        ("created\n(empty)", create["per_empty_collection"]),
        (
            f"{p['per_collection']:,} documents\nbeyond the same\nin one collection",
            {
                "rss_mb": mem["per_collection_beyond_one_mb"],
                "threads": (mem["many"]["threads"] - mem["one"]["threads"]) / (p["collections"] - 1),
            },
        ),
        (
            f"created, then\n{create['documents_written_into_each']} documents\nwritten",
            {
                k: create["per_empty_collection"][k] + create["per_written_collection_beyond_empty"][k]
                for k in ("rss_mb", "threads")
            },
        ),
    ]
    bars = axes[1].bar([a for a, _ in added], [b["rss_mb"] for _, b in added], color=["#bbb", "#dd8452", "#c44e52"])
    axes[1].bar_label(bars, labels=[f"{b['rss_mb']:.1f} MB\n+{b['threads']:.0f} thread(s)" for _, b in added])
    axes[1].set_ylim(0, 1.3 * max(b["rss_mb"] for _, b in added))
    axes[1].set_title("what one more collection adds")
    axes[1].set_ylabel("MB per collection")
    for ax, c in zip(axes[2:], CONCURRENCY, strict=True):
        point = result["latency"][f"c{c}"]
        keys = ["alone", "among_100"]
        bars = ax.bar(
            ["collection alone", f"among {p['collections']}"],
            [point["p50_ms"][k] for k in keys],
            color=["#4c72b0", "#dd8452"],
        )
        ax.bar_label(bars, fmt="%.1f ms", label_type="center", color="white", fontweight="bold")
        ax.axhline(GOALS[f"latency_ratio_p50_c{c}"] * point["p50_ms"]["alone"], color="k", ls="--", lw=0.8)
        ax.legend(handles=ax.lines, labels=["goal: 1.2 × alone"], loc="lower right")
        for x, k in enumerate(keys):
            ax.scatter(
                [x] * len(point["rounds"][k]), [r["p50_ms"] for r in point["rounds"][k]], color="k", s=10, zorder=3
            )
        key = f"latency_ratio_p50_c{c}"
        ax.set_title(f"search p50, c = {c}\n{point['ratio_p50']:.2f} × alone (goal ≤ 1.2: {met[key]})")
        ax.set_ylabel("ms (bars: median of rounds, dots: rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="5 collections of 200 documents: a smoke test")
    p.add_argument("--duration", type=int, default=10, help="seconds per latency point and round")
    p.add_argument("--rounds", type=int, default=8, help="latency rounds of each service, in turn")
    p.add_argument("--creates", type=int, default=20, help="empty collections created for the create figures")
    p.add_argument(
        "--refresh-s",
        type=float,
        help="SIMSEARCH_REFRESH_S of every service (default: the service's): how often its background loop "
        "visits every collection; a large value takes that loop out of the comparison",
    )
    p.add_argument("--result", help="the result's name (default: collections_many, or collections_many-small)")
    args = p.parse_args(argv)
    env = ENV | ({"SIMSEARCH_REFRESH_S": str(args.refresh_s)} if args.refresh_s else {})
    count, size = (5, 200) if args.small else (100, 1000)
    settings = settings_with()
    data = settings.data_dir
    scifact = load_queries(data / "scifact")
    queries = [scifact[q] for q in sorted(load_qrels(data / "scifact", "test"))]
    texts, composition = short_texts(data, count * size)
    encoder = load_encoder(settings)
    vectors, encode_s = encoded(texts, encoder)
    model = settings.bi_model
    result: dict[str, Any] = {}
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as t:  # on disk, as an index folder is (/tmp may be memory)
        tmp = Path(t)
        builds = write_builds(texts, vectors, encoder, tmp, count, size)
        print(json.dumps(builds))
        with running_server(model, tmp / "empty", "", timeout=600, **env) as server:
            result["create"] = creates(server, args.creates, texts)
        if result["create"]["write_errors"] and server.proc.stdout is not None:
            result["create"]["service_log_tail"] = server.proc.stdout.read()[-6000:]
        print(json.dumps({k: v for k, v in result["create"].items() if k != "create_ms"}))
        mem: dict[str, Any] = {"model_no_documents": result["create"]["service_with_model_one_empty_collection"]}
        with running_server(model, tmp / "one", "", timeout=600, **env) as server:
            mem["one_loaded"] = settled(server)
            search_each(server, ["all"] * count, queries)
            mem["one"] = settled(server)
        with (
            running_server(model, tmp / "many", "", timeout=900, **env) as many,
            running_server(model, tmp / "alone", "", timeout=600, **env) as alone,
        ):
            servers = {"among_100": many, "alone": alone}
            mem["many_loaded"] = settled(many)
            search_each(many, [f"c{i:03d}" for i in range(count)], queries)
            mem["many"] = settled(many)
            search_each(alone, [MEASURED], queries)
            mem["alone"] = settled(alone)
            print(json.dumps(mem))
            result["idle_cpu_share_of_a_core"] = idle_cpu(servers)
            print(json.dumps({"idle_cpu_share_of_a_core": result["idle_cpu_share_of_a_core"]}))
            result["latency"] = latency(servers, queries, tmp, args.duration, args.rounds)
            mem["many_after_latency"] = settled(many)
        # the services are stopped: the parts are opened in fresh processes, the whole collection last
        mem["per_collection_parts"] = parts(tmp / "many", [f"c{i:03d}" for i in range(count)])
        print(json.dumps(mem["per_collection_parts"]))
    # beyond the service with one small collection (the same model, the same start): what the other 99
    # collections' documents cost, held as 99 collections or inside one
    base = mem["alone"]["rss_mb"]
    mem["per_collection_beyond_one_mb"] = round((mem["many"]["rss_mb"] - mem["one"]["rss_mb"]) / (count - 1), 2)
    mem["documents_ratio_100_over_1"] = round((mem["many"]["rss_mb"] - base) / (mem["one"]["rss_mb"] - base), 3)
    result = {
        "memory_ratio_100_over_1": round(mem["many"]["rss_mb"] / mem["one"]["rss_mb"], 3),
        "latency_ratio_p50_c1": result["latency"]["c1"]["ratio_p50"],
        "latency_ratio_p50_c16": result["latency"]["c16"]["ratio_p50"],
        **result,
        "memory": mem,
    }
    result["goals"] = {k: f"<= {v}" for k, v in GOALS.items()}
    result["goals_met"] = {k: result[k] <= v for k, v in GOALS.items()}
    result["parameters"] = {
        "collections": count,
        "per_collection": size,
        "documents": count * size,
        "composition": composition,
        "queries": "SciFact test claims (first 50 for the load, cycled)",
        "latency": {"collection": MEASURED, "k": 10, "mode": "dense", "concurrency": list(CONCURRENCY)}
        | {"duration_s": args.duration, "rounds": args.rounds, "warm_up_s": 2, "load": "wrk -t1"},
        "settings": {**env, "SIMSEARCH_INDEX_NAME": "", "SIMSEARCH_WRITE_KEYS": "(one key)"},
        "index": "auto (Flat at these sizes), lexical index (tantivy) in every build",
        "encoding_s": round(encode_s, 1) if encode_s is not None else "cached",
        "builds": builds,
    }
    name = args.result or ("collections_many-small" if args.small else "collections_many")
    plot(result, RESULTS / f"{name}.png")
    path = write_result(name, {"benchmark": "many collections sharing one model (see the docstring)", **result})
    print(json.dumps({k: result[k] for k in (*GOALS, "goals_met")}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

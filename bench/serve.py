"""Load benchmark: this service against a naive baseline (and txtai when it installs), over loopback HTTP.

    python -m bench.serve [--duration 20]

Each system runs as one server process on the SciFact demo index with the same model; wrk drives
``POST /search`` (k = 10) and ``POST /similarity`` (a query and 10 texts) at concurrency 1, 16 and 64,
cycling through SciFact test claims. Also measured in-process, in the same run: the model's batched
encoding throughput and one query's encode + search time, the limits a server can approach.
Needs wrk (Debian: ``apt-get install wrk``).

Interleaved: every server is up for the whole run, and each point (endpoint, concurrency) is measured
``--rounds`` times, the systems in a different order each round, with the raw single-query time measured
again before each round of c = 1; a row holds the median over the rounds (each round's figures kept in
``rounds``). On a shared 2-core host the speed drifts by a few milliseconds within minutes, so figures
measured minutes apart do not compare; figures measured in alternation do.
Writes bench/results/serve.json (rows: system, endpoint, concurrency, qps, p50_ms, p99_ms, errors).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.common import ROOT, free_port, write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.serving.batching import alone_lane
from simsearch.serving.runtime import Runtime, load_runtime

CONCURRENCY = (1, 16, 64)
# this service runs twice: as configured by default (no backend setting: ONNX fp32, exported once by the
# service itself) and with SIMSEARCH_BACKEND=torch (same weights); the raw limits are measured for each
# backend. An older checkout ("baseline") runs on torch, its default then, and is compared with
# "simsearch-torch" so that the comparison measures the code, not the backend. "simsearch-int8": the same
# service on dynamic int8 ONNX.
SYSTEMS = {
    "naive": None,
    "txtai": None,
    "simsearch": "onnx",
    "simsearch-int8": "onnx-int8",
    "simsearch-torch": "torch",
    "baseline": "torch",
}
DEFAULT_SYSTEM = "simsearch"  # started without SIMSEARCH_BACKEND: what `make serve` gives a new user


def lua_script(requests: list[tuple[str, str, dict[str, Any] | None]]) -> str:
    """A wrk script cycling through ``(method, path, JSON body or None)``."""
    entries = ",\n".join(
        f'{{"{m}", [[{path}]], {"[[" + json.dumps(body) + "]]" if body is not None else "nil"}}}'
        for m, path, body in requests
    )
    return f"""
local reqs = {{
{entries}
}}
local i = 0
request = function()
  i = i % #reqs + 1
  local r = reqs[i]
  if r[3] then
    return wrk.format(r[1], r[2], {{["Content-Type"] = "application/json"}}, r[3])
  end
  return wrk.format(r[1], r[2])
end
"""


def requests_for(system: str, endpoint: str, queries: list[str], texts: list[str]) -> list[tuple[str, str, Any]]:
    """The same work in each system's own API: txtai searches with GET and names its fields differently."""
    if system == "txtai":
        if endpoint == "/search":
            return [("GET", f"/search?query={quote(q)}&limit=10", None) for q in queries]
        return [("POST", "/similarity", {"query": q, "texts": texts}) for q in queries]
    if endpoint == "/search":
        return [("POST", "/search", {"query": q, "k": 10}) for q in queries]
    return [("POST", "/similarity", {"source": q, "targets": texts}) for q in queries]


def parse_wrk(out: str) -> dict[str, float]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    pct = {
        m.group(1): ms(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"qps": round(rps, 1), "p50_ms": round(pct["50"], 1), "p99_ms": round(pct["99"], 1), "errors": errors}


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far (Linux /proc): the server process, this process's finished children (wrk), and
    the whole machine's busy and idle time."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    machine = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = machine[3] + machine[4]  # idle + iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "server": (int(fields[11]) + int(fields[12])) / tick,  # utime + stime
        "loadgen": children.ru_utime + children.ru_stime,
        "machine_busy": (sum(machine[:8]) - idle) / tick,
        "machine_idle": idle / tick,
    }


MODEL_METRICS = {  # sample name -> key, for the bi-encoder
    "simsearch_model_seconds_total": "busy",
    "simsearch_batch_size_sum": "texts",
    "simsearch_batch_size_count": "batches",
}


def model_counters(port: int) -> dict[str, float]:
    """This service's bi-encoder counters from /metrics (model seconds, texts, batches)."""
    out = dict.fromkeys(MODEL_METRICS.values(), 0.0)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in MODEL_METRICS and sample.labels.get("model") == "bi-encoder":
                out[MODEL_METRICS[sample.name]] = sample.value
    return out


def where_the_time_goes(
    before: dict[str, float], after: dict[str, float], wall: float, requests: float, streams: int | None
) -> dict[str, float]:
    """CPU per request (server, load generator), the machine's idle share, and for this service the
    model's utilisation and time per text while under load."""
    d = {k: after[k] - before[k] for k in before}
    out = {
        "server_cpu_ms_per_req": round(1000 * d["server"] / max(requests, 1), 2),
        "loadgen_cpu_ms_per_req": round(1000 * d["loadgen"] / max(requests, 1), 2),
        "machine_idle_share": round(d["machine_idle"] / max(d["machine_idle"] + d["machine_busy"], 1e-9), 3),
    }
    if streams and d.get("texts"):
        out["model_busy_share"] = round(d["busy"] / (wall * streams), 3)
        out["model_ms_per_text"] = round(1000 * d["busy"] / d["texts"], 2)
        out["mean_batch"] = round(d["texts"] / d["batches"], 1)
    return out


def start(system: str, port: int, env: dict[str, str], args: argparse.Namespace, tmp: Path) -> subprocess.Popen[bytes]:
    if system == "txtai":  # its own environment (see bench/txtai_index.py), its own index of the same corpus
        config = tmp / "txtai.yml"
        # an `embeddings` key mounts the search and similarity routes; `path` loads the saved index
        config.write_text(f"path: {Path(args.txtai_index).resolve()}\nwritable: false\nembeddings:\n")
        env = {**env, "CONFIG": str(config)}

    def uvicorn(python: str, app: str) -> list[str]:
        flags = ["--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
        return [python, "-m", "uvicorn", app, *flags]

    if system == "txtai":
        cmd = uvicorn(args.txtai_python, "txtai.api:app")
    elif system == "naive":
        cmd = uvicorn(sys.executable, "bench.naive_app:app")
    else:  # this service, on the backend SYSTEMS names
        cmd = [sys.executable, "-m", "service", "--port", str(port)]
    cwd = ROOT
    if system == "baseline":  # this service as another checkout has it (an older commit), same index and venv
        cwd = Path(args.baseline).resolve()
        index_dir = Path(args.baseline_index_dir or ROOT / "indexes").resolve()
        env = {**env, "PYTHONPATH": str(cwd), "SIMSEARCH_INDEX_DIR": str(index_dir)}
    if SYSTEMS[system] and system != DEFAULT_SYSTEM:
        env = {**env, "SIMSEARCH_BACKEND": str(SYSTEMS[system])}
    elif system == DEFAULT_SYSTEM:
        env = {k: v for k, v in env.items() if k != "SIMSEARCH_BACKEND"}
        assert settings_with().backend == SYSTEMS[system], "the default backend changed: update SYSTEMS"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if system == "txtai":
                httpx.get(f"http://127.0.0.1:{port}/search", params={"query": "warm up"}, timeout=5).raise_for_status()
            else:
                httpx.post(f"http://127.0.0.1:{port}/search", json={"query": "warm up"}, timeout=5).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{system} did not start")


def single_query_ms(runtime: Runtime, queries: list[str]) -> float:
    """One query's encode + FAISS search, p50 over 100 queries, on the thread the service runs it on."""
    enc, view = runtime.encoder, runtime.view

    def lone_queries() -> list[float]:
        times = []
        for q in queries[:100]:
            t = time.perf_counter()
            view.dense(enc.encode([q], prefix=runtime.pipeline.query_prefix)[0], 10)
            times.append(time.perf_counter() - t)
        return times

    return round(1000 * float(np.median(alone_lane().submit(lone_queries).result())), 2)


def measure(pid: int, port: int, script: Path, c: int, duration: int, streams: int | None) -> dict[str, Any]:
    """One wrk run at concurrency ``c``, with the server's CPU (and, for this service, model) accounting."""
    before = cpu_seconds(pid) | (model_counters(port) if streams else {})
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}"
    out = subprocess.run(
        ["wrk", "-t1", f"-c{c}", f"-d{duration}s", "--latency", "--timeout", "30s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - started
    after = cpu_seconds(pid) | (model_counters(port) if streams else {})
    row = parse_wrk(out)
    return row | where_the_time_goes(before, after, wall, row["qps"] * wall, streams)


def raw_limits(runtime: Runtime, queries: list[str]) -> dict[str, Any]:
    """In-process: batched encode throughput (one batch at a time on every thread, and two one-thread
    batches at once, as the service's streams run them), and one query's encode + FAISS search (p50)."""
    enc = runtime.encoder
    out: dict[str, Any] = {}
    lane = alone_lane()  # all-thread work runs where the service runs it (simsearch.serving.batching)

    def batched(batch: int) -> float:
        texts = (queries * 4)[: batch * 8]
        enc.encode(texts[:batch], batch_size=batch)
        t = time.perf_counter()
        enc.encode(texts, batch_size=batch)
        return round(len(texts) / (time.perf_counter() - t), 1)

    for batch in (16, 32, 64):
        out[f"batched_encode_texts_per_s_batch{batch}"] = lane.submit(batched, batch).result()
    texts = (queries * 4)[:128]
    threads = max(1, runtime.threads.alone // 2)

    def stream(part: list[str]) -> np.ndarray:
        return enc.encode(part, batch_size=8, threads=threads)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(stream, [texts[:8]] * 2))
        t = time.perf_counter()
        list(pool.map(stream, [texts] * 2))
    out["batched_encode_texts_per_s_2_streams_batch8"] = round(2 * len(texts) / (time.perf_counter() - t), 1)

    out["single_query_encode_search_p50_ms"] = single_query_ms(runtime, queries)
    # the strictest reference: the best of every way of batching measured above
    out["batched_encode_texts_per_s"] = max(v for k, v in out.items() if k.startswith("batched"))
    out["threads"] = {"alone": runtime.threads.alone, "streams": runtime.threads.streams}
    return out


def median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A point's figures: the median over its rounds (errors summed), each round kept."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if key == "errors":
            out[key] = sum(r[key] for r in rounds)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = round(float(np.median([r[key] for r in rounds if key in r])), 2)
        else:
            out[key] = value
    out["rounds"] = rounds
    return out


def summary(
    by: dict[tuple[str, str, int], dict[str, Any]], limits: dict[str, Any], system: str, backend: str
) -> dict[str, Any]:
    """The issue's figures for one system, from the points that were measured (c = 1 and c = 16)."""
    out: dict[str, Any] = {}
    if backend not in limits:
        return out
    raw = limits[backend]
    if (system, "/search", 1) in by and ("naive", "/search", 1) in by:
        lone, naive_lone = by[(system, "/search", 1)], by[("naive", "/search", 1)]
        naive_p50 = [r["p50_ms"] for r in naive_lone["rounds"]]
        singles = raw["single_query_encode_search_p50_ms_rounds"]
        out["search_c1_vs_naive"] = round(lone["qps"] / naive_lone["qps"], 2)
        # paired by round: each round's p50 against the naive app's in that round, and against the raw
        # single query measured just before that round
        diffs = [r["p50_ms"] - n for r, n in zip(lone["rounds"], naive_p50, strict=True)]
        out["search_c1_p50_minus_naive_ms"] = round(float(np.median(diffs)), 1)
        diffs = [r["p50_ms"] - single for r, single in zip(lone["rounds"], singles, strict=True)]
        out["search_c1_p50_minus_raw_single_ms"] = round(float(np.median(diffs)), 1)
        out["search_c1_p50_minus_raw_single_ms_rounds"] = [round(d, 2) for d in diffs]
    if (system, "/search", 16) in by and ("naive", "/search", 16) in by:
        ours, naive = by[(system, "/search", 16)], by[("naive", "/search", 16)]
        one_stream = max(v for k, v in raw.items() if k.startswith("batched_encode_texts_per_s_batch"))
        out |= {
            "search_c16_vs_naive": round(ours["qps"] / naive["qps"], 2),
            "search_c16_vs_raw_batched": round(ours["qps"] / raw["batched_encode_texts_per_s"], 2),
            "search_c16_vs_raw_one_stream": round(ours["qps"] / one_stream, 2),
            # where the gap to the raw figure goes: the model's time per text under HTTP load against the
            # same two streams in-process, and how busy the streams were
            "search_c16_model_ms_per_text": ours.get("model_ms_per_text"),
            "raw_2_streams_ms_per_text": round(
                1000 * raw["threads"]["streams"] / raw["batched_encode_texts_per_s_2_streams_batch8"], 2
            ),
            "search_c16_model_busy_share": ours.get("model_busy_share"),
            # the overhead figure: server CPU per request beyond the model's own time per text
            "search_c16_cpu_beyond_model_ms": (
                round(ours["server_cpu_ms_per_req"] - ours["model_ms_per_text"], 2)
                if "model_ms_per_text" in ours
                else None
            ),
        }
    if (system, "/similarity", 16) in by and ("naive", "/similarity", 16) in by:
        ours_s, naive_s = by[(system, "/similarity", 16)], by[("naive", "/similarity", 16)]
        out["similarity_c16_vs_naive"] = round(ours_s["qps"] / naive_s["qps"], 2)
        out["similarity_c16_vs_raw_batched"] = round(11 * ours_s["qps"] / raw["batched_encode_texts_per_s"], 2)
    return out


def _git_commit_of(folder: str) -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=folder)
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=20, help="seconds per point")
    p.add_argument("--systems", nargs="+", default=[s for s in SYSTEMS if s != "baseline"], choices=list(SYSTEMS))
    p.add_argument("--txtai-python", default="../txtai-venv/bin/python", help="Python of an environment with txtai")
    p.add_argument("--txtai-index", default="cache/txtai-scifact", help="made by bench/txtai_index.py")
    p.add_argument(
        "--baseline",
        help="a checkout of another commit: its service runs as system 'baseline' beside this one (a side-by-side "
        "comparison; writes serve_compare.json instead of serve.json)",
    )
    p.add_argument(
        "--baseline-index-dir", help="the index folder the baseline serves (an older commit may read another format)"
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    p.add_argument("--endpoints", nargs="+", default=["/search", "/similarity"], choices=["/search", "/similarity"])
    p.add_argument("--rounds", type=int, default=3, help="measurements of each point, the systems in turn")
    p.add_argument("--result", help="the result file's name (default: serve, or serve_compare with --baseline)")
    args = p.parse_args(argv)
    if "baseline" in args.systems and not args.baseline:
        p.error("system 'baseline' needs --baseline <checkout>")
    if args.baseline and "baseline" not in args.systems:
        args.systems.append("baseline")
    settings = settings_with()
    data = settings.data_dir / "scifact"
    queries_by_id = load_queries(data)
    queries = [queries_by_id[q] for q in sorted(load_qrels(data, "test"))]
    texts = queries[50:60]
    endpoints = args.endpoints
    backends = sorted({b for s, b in SYSTEMS.items() if b and s in args.systems})
    runtimes = {b: load_runtime(settings_with(backend=b)) for b in backends}
    limits = {b: raw_limits(rt, queries) for b, rt in runtimes.items()}
    print(json.dumps(limits))
    singles: dict[str, list[float]] = {b: [] for b in backends}  # the raw single query, again before each c = 1 round
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIMSEARCH_LOG_LEVEL": "warning", "TOKENIZERS_PARALLELISM": "false"}
    rows: list[dict[str, Any]] = []
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for system in args.systems:
                if system == "txtai" and not (Path(args.txtai_python).is_file() and Path(args.txtai_index).exists()):
                    print(f"skipping txtai: no {args.txtai_python} (see bench/txtai_index.py)")
                    continue
                port = free_port()
                procs[system] = (start(system, port, env, args, Path(tmp)), port)
            for endpoint in endpoints:
                scripts = {system: Path(tmp) / f"{system}-{endpoint.strip('/')}.lua" for system in procs}
                for system, script in scripts.items():
                    script.write_text(lua_script(requests_for(system, endpoint, queries[:50], texts)))
                for c in args.concurrency:
                    measured: dict[str, list[dict[str, Any]]] = {system: [] for system in procs}
                    for r in range(args.rounds):
                        if c == 1 and endpoint == "/search":
                            for b, rt in runtimes.items():
                                singles[b].append(single_query_ms(rt, queries))
                        order = list(procs)[r % len(procs) :] + list(procs)[: r % len(procs)]
                        for system in order:
                            proc, port = procs[system]
                            backend = SYSTEMS[system]  # set for this service only: it has the model counters
                            streams = limits[backend]["threads"]["streams"] if backend else None
                            measured[system].append(measure(proc.pid, port, scripts[system], c, args.duration, streams))
                    for system, rounds in measured.items():
                        row = {"system": system, "endpoint": endpoint, "concurrency": c, **median_row(rounds)}
                        rows.append(row)
                        print(json.dumps({k: v for k, v in row.items() if k != "rounds"}))
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(30)
    for b, rt in runtimes.items():
        if singles[b]:
            limits[b]["single_query_encode_search_p50_ms_rounds"] = singles[b]
            limits[b]["single_query_encode_search_p50_ms"] = round(float(np.median(singles[b])), 2)
        rt.close()
    by = {(r["system"], r["endpoint"], r["concurrency"]): r for r in rows}
    checks = {system: summary(by, limits, system, backend) for system, backend in SYSTEMS.items() if backend}
    checks = {system: c for system, c in checks.items() if c}
    if args.baseline:
        checks["baseline_vs_this"] = {
            f"{e} c{c}": round(by[("simsearch-torch", e, c)]["qps"] / by[("baseline", e, c)]["qps"], 3)
            for e in endpoints
            for c in args.concurrency
            if ("simsearch-torch", e, c) in by and ("baseline", e, c) in by
        }
    path = write_result(
        args.result or ("serve_compare" if args.baseline else "serve"),
        {
            "benchmark": "loopback HTTP load, wrk, one server process each, SciFact index (5,183 documents)",
            "parameters": {
                "duration_s": args.duration,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "baseline": _git_commit_of(args.baseline) if args.baseline else None,
                "search_body": "query (SciFact test claim) + k = 10",
                "similarity_body": "source + 10 targets",
                "simsearch": {
                    "max_batch": settings.max_batch,
                    "max_wait_ms": settings.max_wait_ms,
                    "model_streams": "default (2 on 2 cores)",
                },
                "backends": {s: b for s, b in SYSTEMS.items() if b},
            },
            "targets": {  # issue #15 of the brief (tracker 20)
                "search_c1_p50_minus_naive_ms": "<= 0 (every backend)",
                "search_c1_p50_minus_raw_single_ms": "<= 2 (every backend)",
                "search_c16_vs_naive": ">= 4 (default backend)",
                "search_c16_cpu_beyond_model_ms": "<= 1.5",
            },
            "raw_limits": limits,
            "checks": checks,
            "rows": rows,
            "txtai": "txtai 9.14 API (its default faiss index, built by bench/txtai_index.py), same model and corpus",
        },
    )
    print(json.dumps(checks, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

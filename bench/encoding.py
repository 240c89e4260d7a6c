"""Encoding per core: texts and tokens per second of each backend (torch, ONNX fp32, ONNX int8) at batch 1,
batch 16 and batched by tokens, on short and long texts; agreement with fp32; and nDCG@10 of builds
encoded on each backend.

    python -m bench.encoding [--model NAME] [--backends torch onnx onnx-int8] [--ndcg scifact dl19 long lcqmc]

Short texts: STS-B sentences; long texts: SciFact abstracts (most are longer than the model's window);
passages: those abstracts split into the default 64-token passages.
By tokens: batches of at most BUILD_BATCH_TOKENS padded tokens and the batch size, longest first (what a
build does). Agreement: the mean cosine between each backend's vector and torch fp32's for the same text.
nDCG@10: a collection built and searched by the service's own build and pipeline with the backend (dense):
SciFact and DL19 one vector per document, the long set in 128-token passages, LCQMC with the chinese
analyser. Writes bench/results/encoding.json with a `summary` (see :func:`summarise`; `--resummarise`
recomputes it from the rows) and encoding.png.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from simsearch.api.spec import CollectionSpec, PassageSpec
from simsearch.atomic import atomic_write_json
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.corpus import iter_documents, resolve_corpus
from simsearch.data.pairs_retrieval import pairs_to_beir
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.build import BUILD_BATCH_TOKENS, build_index
from simsearch.models.bi_encoder import BiEncoder
from simsearch.search import DirectModels, SearchPipeline
from simsearch.serving.runtime import job_entry

# every retrieval set the issues measure: SciFact, the DL19 subset, long documents (SciFact abstracts joined
# to about 2,000 tokens, in 128-token passages: bench.passages) and a Chinese duplicate-question set (LCQMC's
# test pairs: bench.chinese; the default model is English-only, so this measures int8's fidelity there)
DEFAULT_SERVE = "simsearch"  # bench.serve's system started with the default backend
BENCHMARKS = {"scifact": "scifact", "dl19": "msmarco-dl19", "long": "scifact", "lcqmc": "lcqmc"}


def short_texts(data: Path, n: int) -> list[str]:
    with gzip.open(data / "stsb-en" / "stsbenchmark.tsv.gz", "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [r[6] for r in rows if len(r) > 7][:n]


def long_texts(data: Path, n: int) -> list[str]:
    corpus, _ = resolve_corpus(data / "scifact")
    return [d.content() for _, d in zip(range(n), iter_documents(corpus, "beir"), strict=False)]


def passage_texts(data: Path, model_path: str, n: int) -> list[str]:
    """SciFact abstracts split as a collection splits them by default (64-token passages, the model's own
    tokenizer): the texts a build of long documents now encodes."""
    from transformers import AutoTokenizer

    from simsearch.api.spec import AUTO_PASSAGE_TOKENS
    from simsearch.text.passages import PassageSplitter

    corpus, _ = resolve_corpus(data / "scifact")
    docs = [d for _, d in zip(range(n), iter_documents(corpus, "beir"), strict=False)]
    splitter = PassageSplitter(AutoTokenizer.from_pretrained(model_path), AUTO_PASSAGE_TOKENS)
    return splitter.split(docs).inputs[:n]


def throughput(model: BiEncoder, texts: list[str], mode: str, repeats: int = 1) -> dict[str, float]:
    lengths = model.token_counts(texts)
    started = time.perf_counter()
    for _ in range(repeats):
        if mode == "batch-1":
            for t in texts[: max(1, len(texts) // 8)]:  # one at a time: a slice is enough to measure
                model.encode([t], batch_size=1)
        elif mode == "batch-16":
            model.encode(texts, batch_size=16)
        elif mode == "batch-32":
            model.encode(texts, batch_size=32)
        else:
            model.encode(texts, max_tokens=BUILD_BATCH_TOKENS, lengths=lengths)
    seconds = (time.perf_counter() - started) / repeats
    done = max(1, len(texts) // 8) if mode == "batch-1" else len(texts)
    tokens = sum(lengths[:done])
    return {"texts_per_s": round(done / seconds, 1), "tokens_per_s": round(tokens / seconds, 1)}


def agreement(reference: np.ndarray, vectors: np.ndarray) -> float:
    return round(float(np.mean(np.sum(reference * vectors, axis=1))), 5)


def prepared(bench: str, data_dir: Path, model: BiEncoder, root: Path) -> tuple[Path, CollectionSpec | None]:
    """The BEIR folder of ``bench`` (made under ``root`` for the derived sets) and its collection spec."""
    data = data_dir / BENCHMARKS[bench]
    if bench == "long":
        from bench.passages import make_long_set

        return make_long_set(data, root / "long-set", model.model.tokenizer), CollectionSpec(
            passages=PassageSpec(tokens=128, overlap=0)
        )
    if bench == "lcqmc":
        pairs_to_beir(data / "test.tsv", root / "lcqmc-set", max_documents=5000)
        return root / "lcqmc-set", CollectionSpec(analyser="chinese")
    return data, None


def ndcg(
    name: str, data: Path, model: BiEncoder, entry: Any, root: Path, spec: CollectionSpec | None
) -> dict[str, float]:
    link = build_index(data, model, root, name, progress=False, model_name="bench", spec=spec)
    c = EmbeddedCollection.open(link, writable=False)
    m = c.index.manifest
    got = evaluate_beir(
        SearchPipeline(query_prefix=entry.query_prefix), c.view(), DirectModels(model), data, progress=False
    )
    c.close()
    return {
        "ndcg@10": round(100 * got["ndcg@10"], 2),
        "build_tokens_per_s": m.tokens_per_s or 0.0,
        "build_seconds": m.build_seconds,
    }


def summarise(rows: list[dict[str, Any]], quality: dict[str, dict[str, Any]], default: str) -> dict[str, Any]:
    """The issue's figures. ``build_tokens_per_s_ratio``: the default backend batched by tokens (as a build
    encodes now) over fp32 ONNX at the old fixed batch of 32 (as a build encoded before), same run, per kind
    of text; ``int8_build_tokens_per_s_ratio`` the same for int8; ``max_ndcg_drop``: fp32 minus int8, the
    largest over the retrieval sets; the int8 gate: every drop at most 0.3."""

    def get(backend: str, kind: str, mode: str) -> float:
        found = [r for r in rows if (r["backend"], r["texts"], r["mode"]) == (backend, kind, mode)]
        return float(found[0]["tokens_per_s"]) if found else 0.0

    def ratio(backend: str) -> dict[str, float]:
        kinds = sorted({r["texts"] for r in rows})
        return {k: round(get(backend, k, "by-tokens") / max(get("onnx", k, "batch-32"), 1e-9), 3) for k in kinds}

    both = {b: q for b, q in quality.items() if {"onnx", "onnx-int8"} <= set(q)}
    drops = {b: round(q["onnx"]["ndcg@10"] - q["onnx-int8"]["ndcg@10"], 2) for b, q in both.items()}

    def latest(system: str) -> dict[str, Any]:
        """The newest bench.serve run (serve*.json, by its date) with this system's checks."""
        runs = []
        for path in RESULTS.glob("serve*.json"):
            payload = json.loads(path.read_text())
            found = payload.get("checks", {}).get(system)
            if found and found.get("search_c16_vs_naive") is not None:
                runs.append((payload.get("environment", {}).get("date", ""), path.name, found))
        if not runs:
            return {}
        _, name, found = max(runs, key=lambda r: (r[0], r[1]))
        return dict(found, run=name)

    checks = {DEFAULT_SERVE: latest(DEFAULT_SERVE), "simsearch-int8": latest("simsearch-int8")}
    return {
        "default_backend": default,
        "build_tokens_per_s_ratio": ratio(default),
        "int8_build_tokens_per_s_ratio": ratio("onnx-int8"),
        "build_tokens_per_s_int8_over_fp32_in_builds": {
            b: round(q["onnx-int8"]["build_tokens_per_s"] / max(q["onnx"]["build_tokens_per_s"], 1e-9), 3)
            for b, q in both.items()
        },
        "ndcg_drop_int8": drops,
        "max_ndcg_drop": max(drops.values()) if drops else None,
        "search_c16_vs_naive": checks.get(DEFAULT_SERVE, {}).get("search_c16_vs_naive"),
        "search_c16_vs_naive_int8": checks.get("simsearch-int8", {}).get("search_c16_vs_naive"),
        "search_c16_runs": {system: c.get("run") for system, c in checks.items()},
        "int8_within_0.3_everywhere": bool(drops) and all(d <= 0.3 for d in drops.values()),
    }


def resummarise(name: str, default: str) -> int:
    """The summary again from a finished run's rows and quality (after a change to what it reports)."""
    path = RESULTS / f"{name}.json"
    payload = json.loads(path.read_text())
    payload["summary"] = summarise(payload["rows"], payload["quality"], default)
    atomic_write_json(path, payload)
    print(json.dumps(payload["summary"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="registry name or folder (default: the registry's default)")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--ndcg", nargs="*", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    p.add_argument("--result", default="encoding")
    p.add_argument("--resummarise", action="store_true", help="recompute the summary of the finished run")
    args = p.parse_args(argv)
    settings = settings_with()
    if args.resummarise:
        return resummarise(args.result, settings.backend)
    name, registry = job_entry(settings, args.model)
    entry = registry.entries[name]
    sets = {"short": short_texts(settings.data_dir, args.texts), "long": long_texts(settings.data_dir, args.texts // 2)}
    sets["passages"] = passage_texts(settings.data_dir, entry.path, args.texts)
    models = {b: BiEncoder.load(entry.path, backend=b) for b in args.backends}
    reference = {k: models["torch"].encode(v) for k, v in sets.items()} if "torch" in models else None
    rows: list[dict[str, Any]] = []
    for backend, model in models.items():
        for kind, texts in sets.items():
            model.encode(texts[:16])  # warm
            for mode in ("batch-1", "batch-16", "batch-32", "by-tokens"):
                row = {"backend": backend, "texts": kind, "mode": mode, **throughput(model, texts, mode)}
                if reference is not None and mode == "by-tokens":
                    row["mean_cosine_to_fp32"] = agreement(reference[kind], model.encode(texts))
                rows.append(row)
                print(json.dumps(row), flush=True)
    quality: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bench in args.ndcg:
            fp32 = models.get("onnx") or next(iter(models.values()))
            data, spec = prepared(bench, settings.data_dir, fp32, Path(tmp))
            for backend in [b for b in args.backends if b != "torch"]:
                quality.setdefault(bench, {})[backend] = ndcg(
                    f"{bench}-{backend}", data, models[backend], entry, Path(tmp), spec
                )
                print(json.dumps({bench: quality[bench]}), flush=True)

    summary = summarise(rows, quality, settings.backend)
    print(json.dumps(summary, indent=2))
    out = write_result(args.result, {"summary": summary, "rows": rows, "quality": quality, "parameters": vars(args)})
    plot(rows, RESULTS / f"{args.result}.png")
    print(f"wrote {out}")
    return 0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("short", "passages", "long") if any(r["texts"] == k for r in rows)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    modes = ["batch-1", "batch-16", "batch-32", "by-tokens"]
    for ax, kind in zip(axes[0], kinds, strict=True):
        backends = sorted({r["backend"] for r in rows})
        x = np.arange(len(modes))
        for i, b in enumerate(backends):
            values = [
                next((r["tokens_per_s"] for r in rows if (r["backend"], r["texts"], r["mode"]) == (b, kind, m)), 0)
                for m in modes
            ]
            ax.bar(x + (i - 1) * 0.27, values, 0.27, label=b)
        ax.set_xticks(x, modes)
        ax.set_title(f"{kind} texts: tokens encoded per second")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())

"""Long documents as passages: no splitting against passages of 64, 128 and 256 tokens, with and without
overlap, on SciFact (71 % of its abstracts are longer than the model's window), on long documents made
from SciFact (abstracts shuffled and joined into documents of 1,500 to 2,000 tokens: the relevant text sits
anywhere, Boytsov et al.'s "far relevant" idea) and on the DL19 subset (short: nothing may get worse).

    python -m bench.passages [--sets scifact long dl19] [--configs none 64 64o16 128 ...] [--cross DIR]

Each configuration is built by the service's own build (simsearch.index.build with the collection's
specification: the same splitting code as writes) and searched by the service's pipeline: dense, lexical,
hybrid (the fusion fitted on the train split where there is one, as a collection does), rerank with
``--cross``. Besides BM25 over whole documents (what a collection uses), BM25 over passages collapsed by
their best passage is measured too. Writes bench/results/passages.json (with the `summary` the issue
names) and passages.png.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bench.common import RESULTS, write_result
from simsearch.api.spec import CollectionSpec, PassageSpec
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents, resolve_corpus
from simsearch.evaluation.fusion_fit import default_fusion_info, fit_fusion
from simsearch.evaluation.metrics import evaluate_run
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.build import build_index, splitter_for
from simsearch.lexical import LexicalIndex, build_lexical
from simsearch.search import DirectModels, Fusion, SearchParams, SearchPipeline
from simsearch.serving.runtime import job_model

SETS = {"scifact": "scifact", "long": "scifact", "dl19": "msmarco-dl19"}
CONFIGS = ["none", "64", "64o16", "128", "128o32", "256", "256o64"]
LONG_TOKENS = (1500, 2000)
SEED = 0


def spec_of(config: str) -> CollectionSpec:
    if config == "none":
        return CollectionSpec(passages="none")
    tokens, _, overlap = config.partition("o")
    return CollectionSpec(passages=PassageSpec(tokens=int(tokens), overlap=int(overlap or 0)))


def make_long_set(scifact: Path, out: Path, tokenizer: Any) -> Path:
    """SciFact's abstracts, shuffled with a fixed seed and joined (title, then text, blank lines between)
    into documents of 1,500 to 2,000 tokens; a document's grade for a claim is its best abstract's."""
    corpus, _ = resolve_corpus(scifact)
    docs = list(iter_documents(corpus, "beir"))
    rng = random.Random(SEED)
    rng.shuffle(docs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    member: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    current: list[str] = []
    size, target = 0, rng.randint(*LONG_TOKENS)
    for doc in docs:
        block = f"{doc.title}. {doc.text}".strip() if doc.title else doc.text
        current.append(block)
        member[doc.id] = f"long-{len(rows)}"
        size += len(tokenizer.tokenize(block))
        if size >= target:
            rows.append({"_id": f"long-{len(rows)}", "text": "\n\n".join(current)})
            current, size, target = [], 0, rng.randint(*LONG_TOKENS)
    if current:
        rows.append({"_id": f"long-{len(rows)}", "text": "\n\n".join(current)})
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    shutil.copy(scifact / "queries.jsonl", out / "queries.jsonl")
    for split in ("train", "test"):
        grades: dict[tuple[str, str], int] = {}
        for q, judged in load_qrels(scifact, split).items():
            for d, g in judged.items():
                key = (q, member[d])
                grades[key] = max(grades.get(key, 0), g)
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for (q, d), g in sorted(grades.items())]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tokens_encoded(texts: list[str], tokenizer: Any, window: int) -> int:
    """Tokens the model reads for these inputs (special tokens in, cut at the window)."""
    total = 0
    for start in range(0, len(texts), 1024):
        ids = tokenizer(texts[start : start + 1024], add_special_tokens=True, truncation=True, max_length=window)
        total += sum(len(row) for row in ids["input_ids"])
    return total


def passage_bm25(collection: EmbeddedCollection, data: Path, work: Path) -> dict[str, float]:
    """BM25 over the passages (each passage a document of the lexical index), a document scored by its
    best passage: the alternative to BM25 over whole documents."""
    index = collection.index
    assert index.passages is not None
    docs = index.store.get(list(range(index.manifest.count)))
    texts = ((row, docs[int(d)].text[int(s) : int(e)]) for row, (d, s, e) in enumerate(index.passages))
    build_lexical(work, texts)
    searcher = LexicalIndex(work).searcher()
    queries, qrels = load_queries(data), load_qrels(data, "test")
    run = {}
    for q in sorted(qrels):
        seen: dict[str, None] = {}
        for row, _ in searcher.search(queries[q], 1000):
            seen.setdefault(docs[int(index.passages[row, 0])].id)
            if len(seen) == 100:
                break
        run[q] = list(seen)
    m = evaluate_run(run, qrels, ndcg_k=10, recall_k=100, mrr_k=10)
    return {"ndcg@10": round(100 * m["ndcg@10"], 2), "recall@100": round(100 * m["recall@100"], 2)}


def measure(name: str, data: Path, config: str, loaded: Any, cross: Any, root: Path, progress: bool) -> dict[str, Any]:
    spec = spec_of(config)
    encoder = loaded.model
    started = time.perf_counter()
    link = build_index(data, encoder, root, f"{name}-{config}", spec=spec, progress=progress, model_name=loaded.name)
    build_s = time.perf_counter() - started
    c = EmbeddedCollection.open(link, writable=False)
    m = c.index.manifest
    corpus, _ = resolve_corpus(data)
    docs = list(iter_documents(corpus, "beir"))
    inputs = splitter_for(encoder, spec, loaded.entry.document_prefix).split(docs, loaded.entry.document_prefix).inputs
    tokens = tokens_encoded(inputs, encoder.model.tokenizer, encoder.max_seq_length)
    encode_s = m.count / m.docs_per_s if m.docs_per_s else build_s
    row: dict[str, Any] = {
        "set": name,
        "config": config,
        "passage_tokens": None if config == "none" else spec.passages.tokens,  # type: ignore[union-attr]
        "overlap_tokens": 0 if config == "none" else spec.passages.overlap,  # type: ignore[union-attr]
        "documents": m.count,
        "passages": c.index.vectors,
        "passages_per_document": round(c.index.vectors / m.count, 2),
        "over_window": m.passages.over_window if m.passages else None,
        "index_bytes": folder_bytes(c.index.path),
        "build_seconds": round(build_s, 1),
        "encode_seconds": round(encode_s, 1),
        "tokens_encoded": tokens,
        "tokens_per_s": round(tokens / encode_s, 1),
    }
    pipeline = SearchPipeline(query_prefix=loaded.entry.query_prefix, cross_query=cross.clip if cross else None)
    models = DirectModels(encoder, cross)
    view = c.view()
    fusion = default_fusion_info()
    if (data / "qrels" / "train.tsv").is_file():  # as a collection measures it
        fusion = fit_fusion(view, models, data, split="train", query_prefix=loaded.entry.query_prefix, progress=False)
    row["fusion"] = {"method": fusion.method, "alpha": fusion.alpha, "chosen_on": fusion.chosen_on}
    chosen = Fusion(fusion.method, fusion.alpha if fusion.alpha is not None else 0.5, fusion.rrf_k)  # type: ignore[arg-type]
    modes: dict[str, SearchParams] = {
        "dense": SearchParams(mode="dense"),
        "lexical": SearchParams(mode="lexical"),
        "hybrid": SearchParams(mode="hybrid", fusion=chosen),
    }
    if cross is not None:
        modes["rerank"] = SearchParams(mode="rerank", candidates="hybrid", fusion=chosen, k_r=100)
    for mode, params in modes.items():
        got = evaluate_beir(pipeline, view, models, data, split="test", params=params, progress=progress)
        row[mode] = {
            "ndcg@10": round(100 * got["ndcg@10"], 2),
            "recall@100": round(100 * got["recall@100"], 2),
            "p50_ms": got["p50_ms_per_query"],
        }
    if c.index.passages is not None:
        with tempfile.TemporaryDirectory() as work:
            row["lexical_passages"] = passage_bm25(c, data, Path(work) / "lexical")
    c.close()
    return row


def summarise(rows: list[dict[str, Any]], default: str) -> dict[str, Any]:
    def get(name: str, config: str, mode: str) -> float | None:
        found = [r for r in rows if r["set"] == name and r["config"] == config]
        return found[0][mode]["ndcg@10"] if found and mode in found[0] else None

    out: dict[str, Any] = {"default": default}
    long_default, long_none = get("long", default, "dense"), get("long", "none", "dense")
    if long_default is not None and long_none:
        out["long_default_over_unsplit"] = round(long_default / long_none, 3)
    out["scifact_dense"] = get("scifact", default, "dense")
    out["scifact_hybrid"] = get("scifact", default, "hybrid")
    dl_default, dl_none = get("dl19", default, "dense"), get("dl19", "none", "dense")
    if dl_default is not None and dl_none is not None:
        out["dl19_delta"] = round(dl_default - dl_none, 2)
    speed: dict[str, dict[str, float]] = {r["set"]: {} for r in rows}
    for r in rows:
        speed[r["set"]][r["config"]] = r["tokens_per_s"]
    out["tokens_per_s_default_over_unsplit"] = {
        s: round(v[default] / v["none"], 3) for s, v in speed.items() if default in v and "none" in v
    }
    if any("rerank" in r for r in rows):  # the cross-encoder over hybrid's top 100: first window or best passage
        out["rerank"] = {r["set"]: {} for r in rows if "rerank" in r}
        for r in rows:
            if "rerank" in r:
                out["rerank"][r["set"]][r["config"]] = r["rerank"]["ndcg@10"]
    goals = {
        "long_at_least_1.6x": out.get("long_default_over_unsplit", 0) >= 1.6,
        "scifact_dense_at_least_67": (out["scifact_dense"] or 0) >= 67.0,
        "scifact_hybrid_at_least_74.5": (out["scifact_hybrid"] or 0) >= 74.5,
        "dl19_within_0.3": abs(out.get("dl19_delta", 99)) <= 0.3,
        "tokens_per_s_not_lower": all(v >= 0.97 for v in out["tokens_per_s_default_over_unsplit"].values()),
    }
    out["goals"] = goals
    return out


def choose_default(rows: list[dict[str, Any]]) -> str:
    """The configuration with the best dense nDCG@10 averaged over SciFact and the long set, among those
    within 0.3 of unsplit on DL19 (none when nothing else qualifies)."""
    configs = sorted({r["config"] for r in rows})
    by = {(r["set"], r["config"]): r["dense"]["ndcg@10"] for r in rows}

    def ok(config: str) -> bool:
        base, got = by.get(("dl19", "none")), by.get(("dl19", config))
        return base is None or got is None or got >= base - 0.3

    scored = [
        (np.mean([by[(s, c)] for s in ("scifact", "long") if (s, c) in by]), c)
        for c in configs
        if c != "none" and ok(c) and any((s, c) in by for s in ("scifact", "long"))
    ]
    return max(scored)[1] if scored else "none"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        own = [r for r in rows if r["set"] == name]
        x = np.arange(len(own))
        for i, mode in enumerate(("dense", "lexical", "hybrid")):
            ax.bar(x + (i - 1) * 0.27, [r[mode]["ndcg@10"] for r in own], 0.27, label=mode)
        ax.set_xticks(x, [r["config"] for r in own], rotation=30)
        ax.set_title({"scifact": "SciFact", "long": "long documents (SciFact joined)", "dl19": "DL19 subset"}[name])
        ax.set_ylabel("nDCG@10")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(loc="lower left")
    fig.suptitle("Passages of N tokens (oM: M tokens of overlap) against one vector per document")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--cross", help="a cross-encoder (registry name or folder) for rerank")
    p.add_argument("--cross-backend", choices=["torch", "onnx", "onnx-int8"], help="its runtime (default: torch)")
    p.add_argument("--model", help="bi-encoder: registry name or folder (default: the registry's default)")
    p.add_argument("--result", default="passages")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = settings_with()
    loaded = job_model(settings, args.model)
    cross = None
    if args.cross:
        from simsearch.models.cross_encoder import CrossScorer

        cross = CrossScorer.load(args.cross, backend=args.cross_backend or "torch")
    progress = not args.no_progress
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "indexes"
        for name in args.sets:
            data = settings.data_dir / SETS[name]
            if name == "long":
                data = make_long_set(data, Path(tmp) / "long", loaded.model.model.tokenizer)
            for config in tqdm(args.configs, desc=name, unit="config", disable=not progress):
                row = measure(name, data, config, loaded, cross, root, progress=False)
                rows.append(row)
                print(
                    json.dumps(
                        {k: row[k] for k in ("set", "config", "passages_per_document", "tokens_per_s")}
                        | {m: row[m]["ndcg@10"] for m in ("dense", "lexical", "hybrid")}
                    ),
                    flush=True,
                )
            shutil.rmtree(root, ignore_errors=True)
    default = choose_default(rows)
    summary = summarise(rows, default)
    print(json.dumps(summary, indent=2))
    out = write_result(
        args.result,
        {
            "summary": summary,
            "rows": rows,
            "parameters": {
                "model": loaded.name,
                "cross": args.cross,
                "cross_backend": args.cross_backend,
                "configs": args.configs,
                "long_tokens": LONG_TOKENS,
                "seed": SEED,
            },
        },
    )
    plot(rows, RESULTS / f"{args.result}.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

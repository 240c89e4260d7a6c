"""Chinese collections: which analyser, which model, what fine-tuning adds, measured as retrieval.

    python -m bench.chinese [--sets lcqmc atec pawsx] [--train-limit 5000]

Each set is a duplicate-question retrieval set made from its test pairs (simsearch.data.pairs_retrieval:
queries are the first sentences of positive pairs, the corpus their second sentences and both sentences of
negative pairs). Rows:
- lexical: the analysers (english, standard, and the chinese candidates: jieba words in search mode,
  single characters, bigrams, jieba words and single characters) against an independent BM25 (bm25s over
  jieba tokens, and over characters) on the same corpus;
- dense: all-MiniLM-L6-v2, multilingual-e5-small, and e5-small fine-tuned on the set's train split with
  CoSENT and with Sentence-BERT's softmax loss (training.train_bi; E5's "query: " on both sides: the task
  is symmetric), each built and searched by the service's own build and pipeline;
- hybrid: the chinese analyser with each e5, fused as a collection fuses (fitted on the set's own train
  judgments).
nDCG@10, Recall@100, index size and build time. Writes bench/results/chinese.json (with a `summary` of one
boolean per goal and set) and chinese.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from bench.training_runs import train_or_reuse
from simsearch.api.spec import CollectionSpec
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents, resolve_corpus
from simsearch.data.pairs_retrieval import pairs_to_beir
from simsearch.evaluation.fusion_fit import fit_fusion
from simsearch.evaluation.metrics import evaluate_run
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.build import build_index
from simsearch.lexical import LexicalIndex, build_lexical
from simsearch.models.registry import ModelEntry
from simsearch.search import DirectModels, Fusion, SearchParams, SearchPipeline
from simsearch.serving.runtime import job_model
from simsearch.text import analysers
from training.recipe import TrainConfig

SETS = ["lcqmc", "atec", "pawsx"]
LEXICAL = ["english", "standard", *(f"chinese:{s}" for s in analysers.SEGMENTERS)]
E5 = "models/e5-small"
E5_PREFIX = "query: "  # symmetric: a question against questions
LR = 5e-5
TRAIN_LIMIT = 2000


def score(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    m = evaluate_run(run, qrels, ndcg_k=10, recall_k=100)
    return {"ndcg@10": round(100 * m["ndcg@10"], 2), "recall@100": round(100 * m["recall@100"], 2)}


def lexical_rows(data: Path, work: Path) -> dict[str, dict[str, float]]:
    corpus, _ = resolve_corpus(data)
    docs = list(iter_documents(corpus, "beir"))
    queries, qrels = load_queries(data), load_qrels(data, "test")
    out = {}
    for name in LEXICAL:
        if name.startswith("chinese:"):
            analysers.ANALYSERS[name] = analysers.chinese_with(name.split(":", 1)[1])
        folder = work / name.replace(":", "-").replace("+", "-")
        started = time.perf_counter()
        build_lexical(folder, ((i, d.content()) for i, d in enumerate(docs)), name)
        index = LexicalIndex(folder, analyser_name=name)
        searcher = index.searcher()
        run = {q: [docs[k].id for k, _ in searcher.search(queries[q], 100)] for q in qrels}
        out[name] = {**score(run, qrels), "build_seconds": round(time.perf_counter() - started, 2)}
        index.close()
    out.update(independent_bm25(docs, queries, qrels))
    return out


def independent_bm25(docs: list[Any], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """bm25s (its own BM25, k1 = 1.5, b = 0.75 by default) over jieba tokens and over characters."""
    import bm25s
    import rjieba

    tokenisers = {
        "bm25s:jieba": lambda t: [w for w in rjieba.cut_for_search(t) if w.strip()],
        "bm25s:characters": lambda t: [c for c in t if not c.isspace()],
    }
    out = {}
    ids = [q for q in qrels]
    for name, tokenise in tokenisers.items():
        retriever = bm25s.BM25()
        retriever.index([tokenise(d.content()) for d in docs], show_progress=False)
        found, _ = retriever.retrieve([tokenise(queries[q]) for q in ids], k=min(100, len(docs)), show_progress=False)
        run = {q: [docs[int(i)].id for i in row] for q, row in zip(ids, found, strict=True)}
        out[name] = score(run, qrels)
    return out


def train(set_name: str, loss: str, args: argparse.Namespace, data_dir: Path) -> str:
    cfg = TrainConfig(
        kind="bi",
        loss=loss,
        base_model=E5,
        data=data_dir / set_name,
        output=Path("models/bench/chinese"),
        name=f"e5-{loss}-{set_name}"
        + ("" if args.lr == LR else f"-lr{args.lr:g}")
        + ("" if args.train_limit == TRAIN_LIMIT else f"-n{args.train_limit}"),
        epochs=1.0,
        batch_size=32,
        lr=args.lr,
        max_length=64,
        train_limit=args.train_limit,
        dev_limit=500,
        test_limit=500,
        evals=3,
        text_prefix=E5_PREFIX,
        freeze_embeddings=True,
    )
    train_or_reuse(cfg)
    return str(cfg.output / (cfg.name or ""))


def dense_rows(set_name: str, data: Path, models: dict[str, str], root: Path, settings: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    registry = {
        name: ModelEntry(
            path=path,
            query_prefix=E5_PREFIX if "e5" in name else "",
            document_prefix=E5_PREFIX if "e5" in name else "",
            languages=["*"],
        )
        for name, path in models.items()
    }
    with_models = settings.model_copy(update={"models": {**settings.models, **registry}})
    for name in models:
        loaded = job_model(with_models, name)
        started = time.perf_counter()
        spec = CollectionSpec(model=name, analyser="chinese")
        link = build_index(
            data,
            loaded.model,
            root,
            f"{set_name}-{name}",
            spec=spec,
            model_name=name,
            progress=False,
            document_prefix=loaded.entry.document_prefix,
            query_prefix=loaded.entry.query_prefix,
        )
        build_s = time.perf_counter() - started
        c = EmbeddedCollection.open(link, writable=False)
        view, direct = c.view(), DirectModels(loaded.model)
        pipeline = SearchPipeline(query_prefix=loaded.entry.query_prefix)
        got = evaluate_beir(pipeline, view, direct, data, params=SearchParams(mode="dense"), progress=False)
        row = {
            "ndcg@10": round(100 * got["ndcg@10"], 2),
            "recall@100": round(100 * got["recall@100"], 2),
            "index_bytes": sum(p.stat().st_size for p in c.index.path.rglob("*") if p.is_file()),
            "build_seconds": round(build_s, 1),
        }
        if name != "minilm":  # hybrid: the chinese analyser with this model, fused as a collection fuses
            info = fit_fusion(view, direct, data, split="train", query_prefix=loaded.entry.query_prefix, progress=False)
            fusion = Fusion(info.method, info.alpha if info.alpha is not None else 0.5, info.rrf_k)  # type: ignore[arg-type]
            hybrid = evaluate_beir(
                pipeline, view, direct, data, params=SearchParams(mode="hybrid", fusion=fusion), progress=False
            )
            lexical = evaluate_beir(pipeline, view, direct, data, params=SearchParams(mode="lexical"), progress=False)
            row["hybrid"] = {"ndcg@10": round(100 * hybrid["ndcg@10"], 2), "fusion": info.method, "alpha": info.alpha}
            row["lexical_in_collection"] = round(100 * lexical["ndcg@10"], 2)
        out[name] = row
        c.close()
    return out


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    chosen = f"chinese:{analysers.CHINESE}"
    out: dict[str, Any] = {}
    gains = []
    for set_name, row in rows.items():
        lex, dense = row["lexical"], row["dense"]
        best_independent = max(lex["bm25s:jieba"]["ndcg@10"], lex["bm25s:characters"]["ndcg@10"])
        out[f"analyser_within_1_{set_name}"] = lex[chosen]["ndcg@10"] >= best_independent - 1.0
        if "e5-cosent" in dense:
            out[f"cosent_above_e5_{set_name}"] = dense["e5-cosent"]["ndcg@10"] > dense["e5"]["ndcg@10"]
        best = "e5-cosent" if "e5-cosent" in dense else "e5"
        hybrid = dense[best]["hybrid"]["ndcg@10"]
        gains.append(hybrid - max(dense[best]["ndcg@10"], dense[best]["lexical_in_collection"]))
    out["hybrid_plus_1_average"] = bool(np.mean(gains) >= 1.0) if gains else False
    out["hybrid_gain_average"] = round(float(np.mean(gains)), 2) if gains else None
    return out


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    names = list(rows)
    x = np.arange(len(names))
    lexical = ["english", "standard", f"chinese:{analysers.CHINESE}", "bm25s:jieba", "bm25s:characters"]
    for i, lex in enumerate(lexical):
        axes[0].bar(x + (i - 2) * 0.16, [rows[n]["lexical"][lex]["ndcg@10"] for n in names], 0.16, label=lex)
    axes[0].set_title("Lexical: the analysers against an independent BM25")
    dense = [m for m in ("minilm", "e5", "e5-softmax", "e5-cosent") if all(m in rows[n]["dense"] for n in names)]
    for i, m in enumerate(dense):
        axes[1].bar(x + (i - 1.5) * 0.18, [rows[n]["dense"][m]["ndcg@10"] for n in names], 0.18, label=m)
    axes[1].set_title("Dense: the models, fine-tuned on each set's pairs or not")
    for ax in axes:
        ax.set_xticks(x, names)
        ax.set_ylabel("nDCG@10 (test)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", choices=SETS, default=SETS)
    p.add_argument("--train-limit", type=int, default=TRAIN_LIMIT, help="training pairs per fine-tuning run")
    p.add_argument("--max-queries", type=int, default=500)
    p.add_argument("--max-documents", type=int, default=5000, help="corpus size (answers plus distractors)")
    p.add_argument("--no-training", action="store_true", help="the untuned models only")
    p.add_argument("--losses", nargs="+", choices=["cosent", "softmax"], default=["cosent", "softmax"])
    p.add_argument("--lr", type=float, default=LR, help="fine-tuning learning rate")
    p.add_argument("--result", default="chinese")
    args = p.parse_args(argv)
    settings = settings_with()
    if not Path(E5, "config.json").is_file():
        raise SystemExit("error: models/e5-small is missing: run `make e5`")
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for set_name in args.sets:
            data = Path(tmp) / set_name
            counts = pairs_to_beir(
                settings.data_dir / set_name / "test.tsv",
                data,
                max_queries=args.max_queries,
                max_documents=args.max_documents,
            )
            models = {"minilm": str(job_model(settings).entry.path), "e5": E5}
            if not args.no_training:
                for loss in args.losses:
                    models[f"e5-{loss}"] = train(set_name, loss, args, settings.data_dir)
            rows[set_name] = {
                "sizes": counts,
                "lexical": lexical_rows(data, Path(tmp) / f"lex-{set_name}"),
                "dense": dense_rows(set_name, data, models, Path(tmp) / "indexes", settings),
            }
            print(json.dumps({set_name: rows[set_name]}, indent=1), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=2))
    out = write_result(
        args.result,
        {
            "summary": summary,
            "rows": rows,
            "parameters": {
                "train_limit": args.train_limit,
                "lr": args.lr,
                "losses": args.losses,
                "max_queries": args.max_queries,
                "chosen": analysers.CHINESE,
            },
        },
    )
    plot(rows, RESULTS / f"{args.result}.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

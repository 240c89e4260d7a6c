"""Whitening: STS-B test Spearman and SciFact nDCG@10 against β, γ and k, for three encoders.

    python -m bench.whitening

Encoders: the mean of all-MiniLM-L6-v2's input token embeddings (a representation never trained for
similarity: where BERT-whitening's published gain lives), all-MiniLM-L6-v2 as shipped, and the
CoSENT-trained model from ``bench.cosent_stsb_en`` (when it exists). For each: no whitening, then
β = γ = 1 and β = γ = 0 at k = d, 256, 128, 64. Fitted on the paper's "target" setting for STS-B (the
test sentences themselves, no labels) and on the corpus for SciFact. ``index_bytes`` and ``search_ms`` are
those of a FAISS flat index over the 5,183 SciFact documents at that k (one query at a time).
Embeddings are cached under cache/whitening/. Writes bench/results/whitening.json and whitening.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import RESULTS, write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents
from simsearch.data.pairs import read_pairs
from simsearch.evaluation.sts import ndcg_from_vectors, sts_spearman
from simsearch.models.files import default_bi_model, model_hash
from simsearch.whitening.estimator import Whitening

CACHE = Path("cache") / "whitening"
COSENT_MODEL = Path("models/bench/stsb-en/bi-cosent")
KS = (None, 256, 128, 64)
PUBLISHED = {
    "BERT-base first-last-avg, STS-B test": 59.04,
    "+ BERT-flow (target)": 70.72,
    "+ BERT-whitening-256 (target)": 71.43,
}


def token_embedding_mean() -> Any:
    """all-MiniLM-L6-v2's input token embeddings, averaged: no attention, no similarity training."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    base = SentenceTransformer(default_bi_model(), device="cpu")
    bert: Any = base[0].model
    weights = bert.embeddings.word_embeddings.weight.detach()
    return SentenceTransformer(modules=[StaticEmbedding(base.tokenizer, embedding_weights=weights)], device="cpu")


def cached(key: str, texts: list[str], model: Any) -> np.ndarray:
    path = CACHE / f"{key}.npy"
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if len(vectors) == len(texts):
            return vectors
    vectors = np.asarray(model.encode(texts, batch_size=32, show_progress_bar=True), dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def flat_index_cost(docs: np.ndarray, queries: np.ndarray) -> tuple[int, float]:
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    size = len(faiss.serialize_index(index))
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(np.ascontiguousarray(q[None], dtype=np.float32), 10)
        times.append(time.perf_counter() - t0)
    return size, round(1000 * float(np.median(times)), 4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-cosent", action="store_true", help="leave out the CoSENT-trained model")
    args = p.parse_args(argv)
    data = settings_with().data_dir
    from sentence_transformers import SentenceTransformer

    encoders: dict[str, tuple[str, Any]] = {
        "token-embedding-mean": ("tokmean", token_embedding_mean()),
        "all-MiniLM-L6-v2": (
            model_hash(default_bi_model())[:12],
            SentenceTransformer(default_bi_model(), device="cpu"),
        ),
    }
    if COSENT_MODEL.is_dir() and not args.skip_cosent:
        encoders["MiniLM + CoSENT (STS-B train)"] = (
            model_hash(str(COSENT_MODEL))[:12],
            SentenceTransformer(str(COSENT_MODEL), device="cpu"),
        )
    sts = read_pairs(data / "stsb-en", "test")
    sts_sentences = sts.sentences()
    row_of = {t: i for i, t in enumerate(sts_sentences)}
    docs = list(iter_documents(data / "scifact"))
    doc_texts, doc_ids = [d.content() for d in docs], [d.id for d in docs]
    qrels = load_qrels(data / "scifact", "test")
    queries = load_queries(data / "scifact")
    qids = sorted(qrels)
    rows: list[dict[str, Any]] = []
    for name, (key, model) in encoders.items():
        s = cached(f"{key}-stsb-test", sts_sentences, model)
        d = cached(f"{key}-scifact-corpus", doc_texts, model)
        q = cached(f"{key}-scifact-queries", [queries[i] for i in qids], model)
        dim = s.shape[1]
        points: list[tuple[float | None, float | None, int]] = [(None, None, dim)]
        points += [(b, g, k or dim) for b, g in ((1.0, 1.0), (0.0, 0.0)) for k in KS if (k or dim) <= dim]
        for beta, gamma, k in points:
            if beta is None or gamma is None:
                ts, td, tq = s, d, q
            else:
                try:
                    w_sts = Whitening(beta, gamma, k).fit(s)
                    w_doc = Whitening(beta, gamma, k).fit(d)
                except ValueError as exc:  # k above the numerical rank: the estimator refuses, we report it
                    rows.append(
                        {
                            "encoder": name,
                            "beta": beta,
                            "gamma": gamma,
                            "k": k,
                            "stsb_test_spearman": None,
                            "scifact_ndcg@10": None,
                            "index_bytes": None,
                            "search_ms": None,
                            "error": str(exc),
                        }
                    )
                    print(json.dumps(rows[-1]))
                    continue
                ts, td, tq = w_sts.transform(s), w_doc.transform(d), w_doc.transform(q)
            a = ts[[row_of[t] for t in sts.a]]
            b = ts[[row_of[t] for t in sts.b]]
            td_n = td / np.maximum(np.linalg.norm(td, axis=1, keepdims=True), 1e-12)
            tq_n = tq / np.maximum(np.linalg.norm(tq, axis=1, keepdims=True), 1e-12)
            size, ms = flat_index_cost(td_n, tq_n)
            row = {
                "encoder": name,
                "beta": beta,
                "gamma": gamma,
                "k": k,
                "stsb_test_spearman": round(sts_spearman(a, b, sts.scores), 2),
                "scifact_ndcg@10": round(ndcg_from_vectors(td_n, doc_ids, tq_n, qids, qrels), 2),
                "index_bytes": size,
                "search_ms": ms,
            }
            rows.append(row)
            print(json.dumps(row))
    plot(rows, RESULTS / "whitening.png")
    path = write_result(
        "whitening",
        {
            "benchmark": "whitening against beta, gamma, k",
            "fit": {
                "stsb": "STS-B test sentences, no labels (the paper's 'target' setting)",
                "scifact": "the 5,183 SciFact abstracts (title + text, 256 tokens)",
            },
            "rows": rows,
            "published": PUBLISHED,
        },
    )
    print(f"wrote {path}")
    return 0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in (
        (axes[0], "stsb_test_spearman", "STS-B test Spearman x100"),
        (axes[1], "scifact_ndcg@10", "SciFact nDCG@10 x100"),
    ):
        for i, encoder in enumerate(dict.fromkeys(r["encoder"] for r in rows)):
            color = f"C{i}"
            base = next(r for r in rows if r["encoder"] == encoder and r["beta"] is None)
            ax.axhline(base[metric], color=color, ls=":", lw=1)
            for (beta, gamma), style in (((1.0, 1.0), "-o"), ((0.0, 0.0), "--s")):
                pts = sorted(
                    (r["k"], r[metric])
                    for r in rows
                    if r["encoder"] == encoder and r["beta"] == beta and r["gamma"] == gamma and r[metric] is not None
                )
                ax.plot(
                    [k for k, _ in pts], [v for _, v in pts], style, color=color, ms=4, label=f"{encoder}, β=γ={beta:g}"
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (dimensions kept)")
        ax.set_title(title + "  (dotted: no whitening)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

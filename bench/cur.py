"""CUR (ANNCUR) against dense retrieve-then-re-rank at equal cross-encoder budgets, on two corpora.

    python -m bench.cur [--corpora stsb scifact] [--queries 50] [--k-q 50]
        [--scifact-cross <model>] [--stsb-cross <model>] [--max-length 128] [--max-items N] [--result NAME]

Ground truth: the exact cross-encoder scores of ``--queries`` held-apart test queries against the whole
corpus. For budgets of 50, 100, 200 and 500 calls it reports Top-k-Recall (k = 1, 10, 50: the share of
the exact top k that the method returns) for ``rerank`` (dense top B re-scored), ``cur-random`` and
``cur-kmeans`` (k_i anchor calls + the top B - k_i approximate items re-scored), ``adacur`` (the adaptive
multi-round variant) and ``union`` (rerank and cur-kmeans candidates together: it spends up to 2B calls,
reported in ``calls``), the measured query latency of each mode, the offline cost, and the hub check: the
hubness of the exact scorer and of the bi-encoder over the same test queries × corpus, with the items most
often in a query's top 10 (the check that found the first STS-B scorer's off-topic "hub" sentences).

Corpora: (a) the 15,357 unique sentences of STS-B less the held-apart queries, scored by the STS-B
cross-encoder of ``bench.cosent_stsb_en`` or the one ``--stsb-cross`` names; (b) the 5,183 SciFact abstracts,
scored by a cross-encoder trained here on SciFact's train qrels with dense hard negatives
(``training.mine_pairs`` + ``training.train_cross``), or the one ``--scifact-cross`` names (e.g.
bench.reranker's). Score matrices are cached under cache/cur/, keyed by the model's hash, and resume when
interrupted. Writes bench/results/cur.json and cur.png (cur-smoke.* with ``--max-items``; ``--result`` names
them).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from bench.training_runs import MODELS, train_or_reuse
from simsearch.ann import create_index
from simsearch.cli import settings_with
from simsearch.cur import CURApproximation, adaptive_cur, matrix_key, rows_done, score_matrix
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import Document, iter_documents
from simsearch.data.pairs import read_pairs
from simsearch.evaluation.metrics import ndcg_at_k
from simsearch.index.cur_arrays import CurColumns
from simsearch.index.docstore import InMemoryStore
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.cross_encoder import CrossScorer
from simsearch.search import DirectModels, IndexView, SearchParams, SearchPipeline, run_sync
from training.recipe import TrainConfig

CACHE = Path("cache") / "cur"
BUDGETS = (50, 100, 200, 500)
KS = (1, 10, 50)


def split_budget(budget: int, k_q: int) -> tuple[int, int]:
    """(k_i, k_r): half the budget on anchors, at most k_q of them (k_i <= k_q), the rest re-ranked."""
    k_i = min(budget // 2, k_q)
    return k_i, budget - k_i


def recall(found: set[int], exact_top: np.ndarray) -> float:
    return len(found.intersection(exact_top.tolist())) / len(exact_top)


def top_by_exact(candidates: list[int], truth_row: np.ndarray, k: int) -> set[int]:
    """The method's top k: its candidates ranked by their exact scores (all of them were scored)."""
    ranked = sorted(set(candidates), key=lambda p: -truth_row[p])
    return set(ranked[:k])


# ---- the corpora --------------------------------------------------------------------------------------


def stsb_corpus(data: Path, n_queries: int, k_q: int, seed: int, cross: str | None = None) -> dict[str, Any]:
    sentences: list[str] = []
    for split in ("train", "dev", "test"):
        pairs = read_pairs(data / "stsb-en", split)
        sentences += pairs.a + pairs.b
    unique = list(dict.fromkeys(sentences))
    random.Random(seed).shuffle(unique)
    test, anchors, items = unique[:n_queries], unique[n_queries : n_queries + k_q], unique[n_queries + k_q :]
    cross = cross or str(MODELS / "stsb-en" / "cross-cosent")
    report = Path(cross) / "report.json"  # the training job's report, when the model came from one
    quality = {"stsb_test_spearman": json.loads(report.read_text())["test_spearman"]} if report.is_file() else {}
    return {
        "name": "stsb",
        "items": items,
        "test_queries": test,
        "anchor_queries": anchors,
        "cross": cross,
        "qrels": None,
        "cross_quality": quality,
        "max_length": 128,  # STS-B pairs are short: hardly any is cut
        "description": f"{len(items)} unique STS-B sentences; {n_queries} held-apart sentences as queries",
    }


def scifact_cross(data: Path) -> str:
    """The SciFact cross-encoder, through the train-cross job: the STS-B cross-encoder fine-tuned with
    CoSENT on SciFact's train qrels, with dense hard negatives (ranks 4 to 7) and random ones.

    Trained from a fresh head instead, on hard negatives alone, it learned little more than the label
    prior in the budget here (dev Spearman 10, re-ranking far below dense retrieval)."""
    pairs = CACHE / "scifact-train-pairs-v2.tsv"
    if not pairs.is_file():
        from training.mine_pairs import main as mine

        mine(
            [
                "--data",
                str(data / "scifact"),
                "--split",
                "train",
                "--index",
                "scifact",
                "--negatives",
                "4",
                "--skip",
                "3",
                "--random-negatives",
                "3",
                "--dev-fraction",
                "0.1",
                "--out",
                str(pairs),
            ]
        )
    cfg = TrainConfig(
        kind="cross",
        loss="cosent",
        base_model=str(MODELS / "stsb-en" / "cross-cosent"),
        train=pairs,
        dev=pairs.with_name(pairs.stem + "-dev.tsv"),
        output=MODELS / "scifact",
        name="cross-v2",
        epochs=1,
        batch_size=16,
        lr=3e-5,
        max_length=128,
        evals=4,
        progress=False,
    )
    train_or_reuse(cfg)
    return str(MODELS / "scifact" / "cross-v2")


def scifact_corpus(data: Path, n_queries: int, k_q: int, seed: int, cross: str | None = None) -> dict[str, Any]:
    docs = list(iter_documents(data / "scifact"))
    queries = load_queries(data / "scifact")
    test_qrels = load_qrels(data / "scifact", "test")
    train_ids = sorted(load_qrels(data / "scifact", "train"))
    test_ids = random.Random(seed).sample(sorted(test_qrels), n_queries)
    anchor_ids = random.Random(seed).sample(train_ids, k_q)
    doc_pos = {d.id: i for i, d in enumerate(docs)}
    return {
        "name": "scifact",
        "items": [d.content() for d in docs],
        "test_queries": [queries[q] for q in test_ids],
        "anchor_queries": [queries[q] for q in anchor_ids],
        "cross": cross or scifact_cross(data),
        "max_length": 64,  # abstracts are long: 64 tokens keeps 518k exact scores to about an hour
        "qrels": [{doc_pos[d]: g for d, g in test_qrels[q].items() if d in doc_pos} for q in test_ids],
        "description": f"{len(docs)} SciFact abstracts (title + text); {n_queries} test claims as queries, "
        f"anchor queries from the train claims",
    }


# ---- one corpus ---------------------------------------------------------------------------------------


class LookupScorer:
    """The cross-encoder as the pipeline sees it, answered from the exact score matrices already computed
    (every pair of a test or anchor query with an item is in them), so the benchmark runs the search
    pipeline the service runs at no extra model cost. Counts the pairs it is asked for."""

    def __init__(self, queries: list[str], items: list[str], matrix: np.ndarray) -> None:
        self.query_row = {q: i for i, q in enumerate(queries)}
        self.item_col: dict[str, int] = {}
        for j, t in enumerate(items):
            self.item_col.setdefault(t, j)  # a repeated text has the same score as its first copy
        self.matrix = matrix
        self.pairs = 0

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.pairs += len(pairs)
        return np.array([self.matrix[self.query_row[q], self.item_col[t]] for q, t in pairs], dtype=np.float32)


class MemoEncoder:
    """The bi-encoder with each query encoded once across the budgets."""

    def __init__(self, encoder: BiEncoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.encoder.encode(missing), strict=True))
        return np.stack([self.cache[t] for t in texts])


def corpus_view(name: str, items: list[str], item_vectors: np.ndarray, cur: CURApproximation | None) -> IndexView:
    """The corpus as the search pipeline reads an index: exact dense search, documents, CUR columns."""
    dense = create_index("faiss", item_vectors.shape[1], {"factory": "Flat"})
    dense.add(item_vectors)
    docs = InMemoryStore([Document(id=str(i), text=t) for i, t in enumerate(items)])
    return IndexView(name, dense, docs, CurColumns.from_estimator(cur) if cur is not None else None)


def pipeline_candidates(
    view: IndexView, models: DirectModels, queries: list[str], mode: str, budget: int, k_r: int
) -> tuple[list[list[int]], float]:
    """Each query's candidates (every item the cross-encoder scored, best first) and the mean calls."""
    pipeline = SearchPipeline()
    found, calls = [], []
    for q in queries:
        result = run_sync(pipeline.search(view, models, q, SearchParams(k=budget, mode=mode, k_r=k_r)))  # type: ignore[arg-type]
        found.append([int(h.id) for h in result.hits])
        calls.append(result.cross_encoder_calls)
    return found, float(np.mean(calls))


def run_corpus(c: dict[str, Any], args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    name, items = c["name"], c["items"]
    cross = CrossScorer.load(c["cross"], backend=args.backend, batch_size=64, threads=None)
    cross.model.max_seq_length = min(cross.max_seq_length, args.max_length or c["max_length"])
    key = f"{cross.sha256}-{args.backend}-{cross.max_seq_length}"
    folder = CACHE / name / f"{cross.sha256[:12]}-{args.backend}-L{cross.max_seq_length}"
    # rows already scored for these very inputs (a record of other inputs, e.g. a --max-items run, is redone)
    before = rows_done(folder / "truth.npy", matrix_key(key, c["test_queries"], items)) + rows_done(
        folder / "R.npy", matrix_key(key, c["anchor_queries"], items)
    )
    t0 = time.perf_counter()
    truth = score_matrix(cross.score, c["test_queries"], items, folder / "truth.npy", model_key=key)
    R = score_matrix(cross.score, c["anchor_queries"], items, folder / "R.npy", model_key=key)
    scored = max(0, len(truth) + len(R) - before) * len(items)  # pairs this run scored (resumed: the rest)
    offline = {
        "calls": int(R.size),
        "truth_calls": int(truth.size),
        "minutes_this_run": round((time.perf_counter() - t0) / 60, 1),
        "pairs_this_run": scored,
    }
    # the scoring speed of the last run that scored pairs (a cached run scores none)
    timing_file = folder / "timing.json"
    shape = [len(c["test_queries"]), len(c["anchor_queries"]), len(items)]
    if scored >= 10_000:
        pairs_per_s = scored / (time.perf_counter() - t0)
        timing_file.write_text(
            json.dumps(
                {"shape": shape, "pairs_per_s": round(pairs_per_s, 1), "R_minutes": round(R.size / pairs_per_s / 60, 1)}
            )
        )
    if timing_file.is_file() and json.loads(timing_file.read_text()).get("shape") == shape:
        offline.update({k: v for k, v in json.loads(timing_file.read_text()).items() if k != "shape"})

    # the dense side: the demo's bi-encoder over the same items
    encoder = BiEncoder.load(settings_with().bi_model, batch_size=64)
    item_vectors = cached_vectors(encoder, items, CACHE / name / f"dense-{encoder.sha256[:12]}.npy")
    models = DirectModels(MemoEncoder(encoder), LookupScorer(c["test_queries"], items, truth))
    fits: dict[tuple[str, int], CURApproximation] = {}
    cutoffs = {}
    for sel in ("random", "kmeans"):
        for k_i in sorted({split_budget(b, args.k_q)[0] for b in BUDGETS}):
            cur = CURApproximation(
                n_anchors=k_i, selection=sel, rcond="cv" if args.rcond is None else args.rcond, random_state=args.seed
            ).fit(R, embeddings=item_vectors)
            fits[(sel, k_i)] = cur
            cutoffs[f"{sel}-k{k_i}"] = {
                "rcond": cur.rcond_,
                "rank": cur.rank_,
                "held_out_recall@10": {str(g): round(v, 3) for g, v in cur.cv_scores_.items()},
            }

    rows: list[dict[str, Any]] = []
    queries = c["test_queries"]
    dense_view = corpus_view(name, items, item_vectors, None)
    first = fits[("kmeans", split_budget(BUDGETS[0], args.k_q)[0])]
    for budget in BUDGETS:
        k_i, k_r = split_budget(budget, args.k_q)
        found: dict[str, list[list[int]]] = {}
        calls: dict[str, float] = {}
        # rerank and cur through the search pipeline, as the service runs them
        found["rerank"], calls["rerank"] = pipeline_candidates(dense_view, models, queries, "rerank", budget, budget)
        for sel in ("random", "kmeans"):
            view = corpus_view(name, items, item_vectors, fits[(sel, k_i)])
            found[f"cur-{sel}"], calls[f"cur-{sel}"] = pipeline_candidates(view, models, queries, "cur", budget, k_r)
        # ADACUR and the union are compositions the benchmark makes, not service modes
        found["adacur"] = [
            adaptive_cur(truth[qi].__getitem__, R, first.anchors_, budget, rounds=args.rounds, rcond=first.rcond_)[
                0
            ].tolist()
            for qi in range(len(queries))
        ]
        found["union"] = [sorted(set(a) | set(b)) for a, b in zip(found["rerank"], found["cur-kmeans"], strict=True)]
        for method in ("adacur", "union"):
            calls[method] = float(np.mean([len(set(cs)) for cs in found[method]]))
        for method, cands in found.items():
            for k in KS:
                exact_tops = [np.argsort(-truth[qi])[:k] for qi in range(len(cands))]
                r = np.mean([recall(top_by_exact(cs, truth[qi], k), exact_tops[qi]) for qi, cs in enumerate(cands)])
                rows.append(
                    {
                        "corpus": name,
                        "method": method,
                        "budget": budget,
                        "k": k,
                        "top_k_recall": round(float(r), 4),
                        "calls": round(calls[method], 1),
                        "k_i": k_i if method.startswith("cur") else None,
                    }
                )
    hubs = hub_check(truth, encoder.encode(queries) @ item_vectors.T, items)
    latency = measure_latency(c, cross, encoder, item_vectors, fits, args)
    for row in rows:
        row["ms_per_query"] = latency.get((row["method"], row["budget"]))
    quality = scorer_quality(c, models, dense_view)
    return rows, {
        "corpus": c["description"],
        "cross_encoder": {
            "path": c["cross"],
            "sha256": cross.sha256,
            "backend": args.backend,
            "max_seq_length": cross.max_seq_length,
            **c.get("cross_quality", {}),
            **quality,
        },
        "offline": offline,
        "hubs": hubs,
        "cut_offs": cutoffs,
        "method": "rerank and cur-* run simsearch.search.SearchPipeline with the exact scores looked up",
    }


def hub_check(truth: np.ndarray, dense: np.ndarray, items: list[str], k: int = 10) -> dict[str, Any]:
    """Hubness of the exact cross-encoder and of the bi-encoder over the same test queries × items
    (``bench.hubs.hubness``): the check that found the STS-B scorer's off-topic "hub" sentences, now in every
    run. With the three items most often in a query's top k, and how often one item is a query's top 1."""
    from bench.hubs import hubness

    out = {}
    for scorer, matrix in (("cross_encoder", truth), ("bi_encoder", dense)):
        h = hubness(matrix, k)
        occurrence = np.asarray(h.pop("k_occurrence"))
        out[scorer] = {
            "k": k,
            **h,
            "max_top1_occurrence": hubness(matrix, 1)["max_k_occurrence"],
            "most_frequent": [
                {"item": items[i][:160], f"n_{k}": int(occurrence[i])}
                for i in np.argsort(-occurrence, kind="stable")[:3]
            ],
        }
    return out


def cached_vectors(encoder: BiEncoder, texts: list[str], path: Path) -> np.ndarray:
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if len(vectors) == len(texts):
            return vectors
    vectors = encoder.encode(texts, progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def scorer_quality(c: dict[str, Any], models: DirectModels, dense_view: IndexView) -> dict[str, Any]:
    """For SciFact: nDCG@10 of the exact cross-encoder over the whole corpus, of dense, and of dense
    top 100 re-ranked (through the pipeline), on the test queries, so the scorer approximated is known to
    be a real one."""
    if c["qrels"] is None:
        return {}
    scorer = models.cross
    assert isinstance(scorer, LookupScorer)
    dense, _ = pipeline_candidates(dense_view, models, c["test_queries"], "dense", 10, 0)
    rerank, _ = pipeline_candidates(dense_view, models, c["test_queries"], "rerank", 10, 100)
    full = [np.argsort(-scorer.matrix[scorer.query_row[q]])[:10].tolist() for q in c["test_queries"]]
    out = {}
    for label, rankings in (
        ("ndcg@10_cross_encoder_full_corpus", full),
        ("ndcg@10_dense", dense),
        ("ndcg@10_rerank_top100", rerank),
    ):
        scores = [
            ndcg_at_k([str(p) for p in r], {str(d): g for d, g in q.items()}, 10)
            for r, q in zip(rankings, c["qrels"], strict=True)
        ]
        out[label] = round(100 * float(np.mean(scores)), 2)
    return out


def measure_latency(
    c: dict[str, Any],
    cross: CrossScorer,
    encoder: BiEncoder,
    item_vectors: np.ndarray,
    fits: dict[tuple[str, int], CURApproximation],
    args: argparse.Namespace,
) -> dict[tuple[str, int], float]:
    """Wall time of one search per mode and budget through the pipeline with the real models (encoding,
    ANN search, document reads, cross-encoder calls); the median over ``--latency-queries`` queries."""
    items, out = c["items"], {}
    queries = c["test_queries"][: args.latency_queries]
    models = DirectModels(encoder, cross)
    pipeline = SearchPipeline()
    for budget in BUDGETS:
        k_i, k_r = split_budget(budget, args.k_q)
        views = {
            "rerank": (corpus_view(c["name"], items, item_vectors, None), budget),
            "cur-kmeans": (corpus_view(c["name"], items, item_vectors, fits[("kmeans", k_i)]), k_r),
        }
        for method, (view, depth) in views.items():
            mode = "rerank" if method == "rerank" else "cur"
            times = []
            for q in queries:
                t0 = time.perf_counter()
                run_sync(pipeline.search(view, models, q, SearchParams(k=10, mode=mode, k_r=depth)))  # type: ignore[arg-type]
                times.append(time.perf_counter() - t0)
            out[(method, budget)] = round(1000 * float(np.median(times)), 1)
        out[("cur-random", budget)] = out[("cur-kmeans", budget)]  # the same work, other anchors
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    fig, axes = plt.subplots(len(corpora), len(KS), figsize=(4 * len(KS), 3.4 * len(corpora)), squeeze=False)
    for i, corpus in enumerate(corpora):
        for j, k in enumerate(KS):
            ax = axes[i][j]
            for method in ("rerank", "cur-random", "cur-kmeans", "adacur", "union"):
                pts = [
                    (r["budget"], r["top_k_recall"])
                    for r in rows
                    if r["corpus"] == corpus and r["method"] == method and r["k"] == k
                ]
                ax.plot(
                    [b for b, _ in pts],
                    [v for _, v in pts],
                    marker="o",
                    ms=3,
                    label=method,
                    ls="--" if method == "union" else "-",
                )
            ax.set_xscale("log")
            ax.set_xticks(BUDGETS, [str(b) for b in BUDGETS])
            ax.set_xticks([], minor=True)  # no log-scale minor labels over the budgets
            ax.set_title(f"{corpus}: Top-{k}-Recall")
            ax.set_xlabel("cross-encoder calls per query")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["stsb", "scifact"], choices=["stsb", "scifact"])
    p.add_argument("--queries", type=int, default=50, help="held-apart test queries per corpus")
    p.add_argument("--k-q", type=int, default=50, help="anchor queries")
    p.add_argument("--rounds", type=int, default=4, help="ADACUR rounds")
    p.add_argument("--rcond", type=float, help="rank cut-off; default: chosen on held-out anchor queries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        default="onnx-int8",
        choices=["torch", "onnx", "onnx-int8"],
        help="runtime of the cross-encoder being approximated (default: %(default)s, for speed)",
    )
    p.add_argument(
        "--max-length", type=int, help="cross-encoder tokens per pair (default: 128 for STS-B, 64 for SciFact)"
    )
    p.add_argument(
        "--scifact-cross",
        help="the SciFact cross-encoder to approximate (default: the one scifact_cross trains; e.g. a re-ranker "
        "from bench.reranker, models/bench/scifact/reranker-t1000-L128-cosent-teacher)",
    )
    p.add_argument("--stsb-cross", help="the STS-B cross-encoder to approximate (default: bench.cosent_stsb_en's)")
    p.add_argument("--latency-queries", type=int, default=10)
    p.add_argument("--max-items", type=int, help="cut each corpus to this many items (a quick smoke run)")
    p.add_argument("--result", help="name of the result files (default: cur, or cur-smoke with --max-items)")
    args = p.parse_args(argv)
    data = settings_with().data_dir
    build = {"stsb": stsb_corpus, "scifact": scifact_corpus}
    result_name = args.result or ("cur-smoke" if args.max_items else "cur")
    previous = RESULTS / f"{result_name}.json"
    # one corpus at a time: a run merges into the results of the other corpus instead of erasing them
    earlier = json.loads(previous.read_text()) if previous.is_file() else {"corpora": {}, "rows": []}
    rows = [r for r in earlier["rows"] if r["corpus"] not in args.corpora]
    corpora = {k: v for k, v in earlier["corpora"].items() if k not in args.corpora}
    for name in args.corpora:
        c = build[name](data, args.queries, args.k_q, args.seed, getattr(args, f"{name}_cross"))
        if args.max_items:
            c["items"] = c["items"][: args.max_items]
            c["description"] = f"cut to the first {len(c['items'])} items (--max-items) of: {c['description']}"
            c["qrels"] = (
                None if c["qrels"] is None else [{d: g for d, g in q.items() if d < args.max_items} for q in c["qrels"]]
            )
        corpus_rows, info = run_corpus(c, args)
        rows += corpus_rows
        corpora[name] = {
            **info,
            "parameters": {
                "queries": args.queries,
                "k_q": args.k_q,
                "max_length": args.max_length or c["max_length"],
                "backend": args.backend,
                "rounds": args.rounds,
                "seed": args.seed,
            },
        }
        print(json.dumps(info, indent=2))
        plot(rows, RESULTS / f"{result_name}.png")
        path = write_result(
            result_name,
            {
                "benchmark": "Top-k-Recall of the exact cross-encoder's top k at equal cross-encoder budgets",
                "parameters": {
                    "budgets": BUDGETS,
                    "ks": KS,
                    "budget_split": "k_i = min(B/2, k_q) anchor calls, k_r = B - k_i re-ranked",
                    "adacur": {"rounds": args.rounds, "first_anchors": "the k-means anchors of the 50-call budget"},
                    "rcond": args.rcond or "chosen per anchor set by 5-fold validation on the anchor queries",
                },
                "corpora": corpora,
                "rows": rows,
            },
        )
    for r in rows:
        if r["k"] == 10:
            print(r)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

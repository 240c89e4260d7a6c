"""Fit the CUR approximation of a cross-encoder over an index (ANNCUR) and publish it with the index.

    python -m training.fit_cur --index scifact --cross models/ce-scifact \
        --queries ../shared/data/scifact --queries-split train --k-q 100 --k-i 50 --selection kmeans

Scores ``k_q`` anchor queries against every document (every passage of a build split into passages) with the
cross-encoder (the expensive step: a progress bar, and checkpoints under ``--work-dir`` so an interrupted run
resumes where it stopped), picks
``k_i`` anchor items, solves ``E = pinv(R[:, anchors]) · R`` and publishes a new build of the index with
``cur/`` and its manifest entry. ``POST /search`` with ``mode: "cur"`` then uses it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from simsearch.cli import fail, settings_with
from simsearch.cur import CURApproximation, score_matrix
from simsearch.data.beir import load_qrels, load_queries
from simsearch.index import IndexLoadError
from simsearch.index.cur_arrays import save_cur
from simsearch.index.layout import EMBEDDINGS_FILE
from simsearch.index.manifest import CrossEncoderInfo, CurInfo, Manifest
from simsearch.index.open import open_index
from simsearch.index.publish import publish_derived
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.loading import ModelLoadError
from simsearch.text.passages import passage_input


def anchor_queries(source: Path | None, split: str | None, k_q: int, seed: int, documents: list[str]) -> list[str]:
    """``k_q`` query texts: a seeded sample of a query file (BEIR folder/``queries.jsonl``, or one a line),
    or of the documents themselves when there is no query file."""
    if source is None:
        pool = documents
    elif source.is_dir() or source.suffix == ".jsonl":
        folder = source if source.is_dir() else source.parent
        queries = load_queries(folder)
        ids = sorted(load_qrels(folder, split)) if split else sorted(queries)
        pool = [queries[i] for i in ids if i in queries]
    else:
        pool = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    pool = list(dict.fromkeys(pool))
    if len(pool) < k_q:
        raise ValueError(f"{len(pool)} distinct anchor queries available, k_q = {k_q} asked for")
    return random.Random(seed).sample(pool, k_q)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-fit-cur", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    p.add_argument("--cross", help="trained cross-encoder (default: SIMSEARCH_CROSS_MODEL)")
    p.add_argument("--queries", type=Path, help="anchor query source; default: sampled documents")
    p.add_argument("--queries-split", help="with a BEIR folder: only queries judged in this split (e.g. train)")
    p.add_argument("--k-q", type=int, default=100, help="anchor queries (default: %(default)s)")
    p.add_argument("--k-i", type=int, default=50, help="anchor items (default: %(default)s)")
    p.add_argument("--selection", choices=["random", "kmeans"], default="kmeans")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rcond",
        type=float,
        help="pseudo-inverse rank cut-off, relative (default: chosen by 5-fold validation on the anchor queries)",
    )
    p.add_argument("--work-dir", type=Path, default=Path("cache/cur"), help="resumable score checkpoints")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.index, index_dir=args.index_dir, cross_model=args.cross)
    if not settings.cross_model:
        fail("give --cross or set SIMSEARCH_CROSS_MODEL: the cross-encoder to approximate")
    if not 1 <= args.k_i <= args.k_q:
        fail(f"--k-i must be between 1 and --k-q ({args.k_q}): E = pinv(R[:, anchors]) needs k_i <= k_q")
    started = time.perf_counter()
    try:
        # 1. the index and the cross-encoder
        index = open_index(settings.index_path, verify=settings.verify_checksums)
        cross = CrossScorer.load(settings.cross_model, batch_size=64)
        docs = index.store.get(list(range(index.manifest.count)))
        documents = [d.content() for d in docs]
        # the items E has a column for: the documents, or with a build split into passages each passage as the
        # cross-encoder reads it when re-ranking (the title, then the passage), in the order of the build's
        # vectors (the k-means anchors are chosen among them); a document then scores as its best passage
        items = documents
        if index.passages is not None:
            items = [passage_input(docs[int(d)], int(s), int(e)) for d, s, e in index.passages]
        # 2. anchor queries and anchor items
        queries = anchor_queries(args.queries, args.queries_split, args.k_q, args.seed, documents)
        embeddings = (
            np.load(index.path / EMBEDDINGS_FILE, allow_pickle=False, mmap_mode="r")
            if args.selection == "kmeans"
            else None
        )
        # 3. R = CE(anchor queries x all items): resumable
        work = args.work_dir / f"{index.name}-{index.manifest.build_id}-{cross.sha256[:12]}-q{args.k_q}-s{args.seed}"
        R = score_matrix(cross.score, queries, items, work / "R.npy", model_key=cross.sha256)
        # 4. anchor items, the rank cut-off (validated on the anchor queries), E = pinv(R[:, anchors]) R
        cur = CURApproximation(
            n_anchors=args.k_i,
            selection=args.selection,
            rcond="cv" if args.rcond is None else args.rcond,
            random_state=args.seed,
        ).fit(R, embeddings=embeddings)
    except (IndexLoadError, ModelLoadError, ValueError, OSError) as exc:
        fail(str(exc))
    info = CurInfo(
        k_q=args.k_q,
        k_i=args.k_i,
        selection=args.selection,
        seed=args.seed,
        rcond=cur.rcond_,
        rank=cur.rank_,
        query_source=str(args.queries or "sampled documents")
        + (f":{args.queries_split}" if args.queries_split else ""),
        cross_encoder=CrossEncoderInfo(path=cross.path, sha256=cross.sha256, max_seq_length=cross.max_seq_length),
        calls=int(R.size),
        seconds=round(time.perf_counter() - started, 1),
        items="documents" if index.passages is None else "passages",
    )

    def update(m: Manifest) -> Manifest:
        return m.model_copy(update={"cur": info})

    # 5. a new build of the index with cur/, published atomically
    path = publish_derived(
        settings.index_path,
        lambda folder: save_cur(folder, cur, R, queries, [items[int(a)] for a in cur.anchors_]),
        update,
    )
    index.close()
    print(
        f"published {path} -> {path.resolve().name}: CUR k_q={args.k_q} k_i={args.k_i} ({args.selection}) over "
        f"{len(items)} {info.items}, "
        f"rank {cur.rank_}, {info.calls} cross-encoder calls, {info.seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

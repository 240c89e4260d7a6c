"""Turn a sentence-pair set (``s1 TAB s2 TAB label``: LCQMC, ATEC, PAWS-X, BQ) into a duplicate-question
retrieval set in BEIR layout, ready for ``training.build_index`` and ``training.evaluate``.

    python -m training.pairs_corpus --pairs ../shared/data/lcqmc/test.tsv --out cache/lcqmc-retrieval

The construction (simsearch.data.pairs_retrieval): queries are the first sentences of positive pairs, the
corpus their second sentences plus both sentences of negative pairs, a query's answer its pair; seeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.cli import fail
from simsearch.data.pairs_retrieval import pairs_to_beir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-pairs-corpus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", type=Path, required=True, help="a TSV of s1, s2, label (0 or 1)")
    p.add_argument("--out", type=Path, required=True, help="the BEIR folder to write")
    p.add_argument("--max-queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.pairs.is_file():
        fail(f"{args.pairs} does not exist")
    counts = pairs_to_beir(args.pairs, args.out, max_queries=args.max_queries, seed=args.seed)
    print(json.dumps({"out": str(args.out), **counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

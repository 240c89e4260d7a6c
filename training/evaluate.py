"""Evaluate an index on a BEIR benchmark (nDCG@10, Recall@100, MRR@10) with the service's search code.

python -m training.evaluate --data ../shared/data/scifact --name scifact --out report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.atomic import atomic_write_json
from simsearch.evaluation import evaluate_beir
from simsearch.runtime import StartupError, load_runtime
from training.cli import fail, settings_with


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="BEIR folder with queries.jsonl and qrels/")
    p.add_argument("--split", default="test")
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument("--model", help="bi-encoder folder (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--out", type=Path, help="also write the report here as JSON")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.name, index_dir=args.index_dir, bi_model=args.model)
    try:
        runtime = load_runtime(settings)
    except StartupError as exc:
        fail(str(exc))
    try:
        report = {
            "index": runtime.index.name,
            "build_id": runtime.index.manifest.build_id,
            "model": runtime.encoder.path,
            **evaluate_beir(runtime.searcher, args.data, split=args.split),
        }
    except (OSError, ValueError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    print(json.dumps(report, indent=2))
    if args.out:
        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

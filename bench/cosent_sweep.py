"""The English bi-encoder sweep: CoSENT against CosineSimilarityLoss over one grid of budgets (learning
rate, epochs, batch size, and λ for CoSENT), each point a ``bench.cosent_stsb_en`` run.

    python -m bench.cosent_sweep               # trains the points not yet trained (about 10-17 min each on 2 cores)
    python -m bench.cosent_sweep --table-only  # tabulates the points whose result files exist

Writes bench/results/cosent_sweep.json (one row per run: budget, test and dev Spearman x100, the kept
step, training seconds) and prints the table; a point's own result file and dev-curve plot are
bench/results/cosent_stsb_en[_<variant>].json/.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench import cosent_stsb_en
from bench.common import RESULTS, write_result
from training.train_bi import COSENT_SCALE

# (variant, arguments of bench.cosent_stsb_en, losses): "" is the benchmark's default budget
GRID: list[tuple[str, list[str], list[str]]] = [
    ("", [], ["cosent", "cosine"]),
    ("lr5e-6", ["--lr", "5e-6"], ["cosent", "cosine"]),
    ("e2", ["--epochs", "2"], ["cosent", "cosine"]),
    ("bs32", ["--batch-size", "32"], ["cosent", "cosine"]),
    ("scale5", ["--scale", "5"], ["cosent"]),
    ("scale5-e2", ["--scale", "5", "--epochs", "2"], ["cosent"]),
    ("scale2-e2", ["--scale", "2", "--epochs", "2"], ["cosent"]),
]


def result_file(variant: str) -> str:
    return "cosent_stsb_en" + (f"_{variant}" if variant else "")


def rows_of(variant: str, losses: list[str]) -> list[dict[str, Any]]:
    path = RESULTS / f"{result_file(variant)}.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    budget = result["budget"]
    rows = []
    for loss in losses:
        run = result["bi"].get(loss)
        if run is None:
            continue
        scale = budget.get("scale") or (COSENT_SCALE if loss == "cosent" else None)
        rows.append(
            {
                "variant": variant or "default",
                "loss": loss,
                "epochs": budget["epochs"],
                "batch_size": budget["batch_size"],
                "lr": budget["lr"],
                "scale": scale,
                "test_spearman": run["test_spearman"],
                "dev_spearman": run["dev_spearman"],
                "best_step": run["best_step"],
                "steps": run["steps"],
                "train_seconds": run["train_seconds"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table-only", action="store_true", help="do not train: tabulate the existing result files")
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for variant, extra, losses in GRID:
        if not args.table_only:
            only = [x for loss in losses for x in ("--only", f"bi.{loss}")]
            cosent_stsb_en.main([*extra, *only, *(["--variant", variant] if variant else [])])
        found = rows_of(variant, losses)
        if not found:
            print(f"no results for {variant or 'default'} yet", file=sys.stderr)
        rows += found
    best = {
        loss: max((r for r in rows if r["loss"] == loss), key=lambda r: r["test_spearman"], default=None)
        for loss in ("cosent", "cosine")
    }
    path = write_result(
        "cosent_sweep",
        {
            "benchmark": "STS-B English test (1,379 pairs), Spearman x100, bi-encoder all-MiniLM-L6-v2, "
            "best of 10 dev evaluations kept",
            "grid": [{"variant": v or "default", "arguments": a, "losses": ls} for v, a, ls in GRID],
            "rows": rows,
            "best": best,
            "target_best_bi_encoder": 86.0,
        },
    )
    print("| loss | epochs | batch | lr | λ | test | dev (kept) | kept step | seconds |")
    for r in rows:
        print(
            f"| {r['loss']} | {r['epochs']:g} | {r['batch_size']} | {r['lr']:g} | {r['scale'] or '—'} | "
            f"{r['test_spearman']:.2f} | {r['dev_spearman']:.2f} | {r['best_step']} of {r['steps']} | "
            f"{r['train_seconds']:.0f} |"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

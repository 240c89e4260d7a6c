"""Shared by the training benchmarks: run a training job or reuse its finished run, and plot dev curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from training.recipe import TrainConfig

MODELS = Path("models") / "bench"


def finished(cfg: TrainConfig) -> dict[str, Any] | None:
    """The report of a finished run with exactly this configuration, if there is one."""
    report_path = cfg.output / (cfg.name or "") / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        try:  # read through the model, so a setting added since the run compares at its default
            then = TrainConfig.model_validate(report.get("config") or {})
        except ValidationError:
            return None  # written with a setting that no longer exists
        if then.model_dump_json() == cfg.model_dump_json():
            return dict(report)
    return None


def train_or_reuse(cfg: TrainConfig) -> dict[str, Any]:
    """The run's report; a finished run with the same configuration is reused instead of retrained, and one
    with another configuration in the same folder is never overwritten (a benchmark's names for its runs leave
    out settings it does not vary, so a run with other settings must be named apart)."""
    if (report := finished(cfg)) is not None:
        print(f"reusing {cfg.output / (cfg.name or '')}")
        return report
    folder = cfg.output / (cfg.name or "")
    if cfg.name and (folder / "report.json").is_file():
        raise SystemExit(
            f"error: {folder} holds a finished run with another configuration; move it away, or give this run "
            "another name (a --variant or --result where the benchmark has one)"
        )
    if cfg.kind == "bi":
        from training.train_bi import run
    else:
        from training.train_cross import run
    result = run(cfg)
    return json.loads((result.path / "report.json").read_text())


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "test_spearman": report["test_spearman"],
        "dev_spearman": report["dev_spearman"],
        "dev_spearman_before": report["dev_spearman_before"],
        "best_step": report["best_step"],
        "steps": report["steps"],
        "train_seconds": report["seconds"],
        "dev_curve": report["dev_curve"],
    }


def plot_curves(
    panels: dict[str, dict[str, list[dict[str, float]]]],
    path: Path,
    title: str,
    ymin: float | None = None,
    levels: dict[str, float] | None = None,
) -> None:
    """One panel per key of ``panels``: dev Spearman against training steps, one line per loss; ``ymin``
    cuts the axis (the first evaluations of a fresh head sit far below and would flatten the rest);
    ``levels`` draws named horizontal lines (e.g. a teacher's dev Spearman)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 5 * len(panels)), 3.8), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        for label, points in curves.items():
            ax.plot([p["step"] for p in points], [p["spearman"] for p in points], marker="o", ms=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.set_ylabel("dev Spearman ×100")
        for label, value in (levels or {}).items():
            ax.axhline(value, ls="--", lw=1, color="grey")
            ax.annotate(label, (0, value), xytext=(4, 3), textcoords="offset points", fontsize=8, color="grey")
        ax.grid(alpha=0.3)
        if ymin is not None:
            ax.set_ylim(bottom=ymin)
        if levels:  # room above the highest line for its label
            ax.set_ylim(top=max(ax.get_ylim()[1], max(levels.values()) + 0.8))
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""What `pyecho design` writes: the ranked table (CSV and JSON) and the figure.

``design.csv``: one row per protocol evaluated, best design score first: the measurements, the
spectrometer time per sample (µs), the design score, every task's out-of-fold score (F1 of the
power-law class, 3-class macro-F1, R² of every target) and test score, and each target's 90 %
interval width. ``design.png``: every task's out-of-fold score against spectrometer time, the
greedy path drawn through its steps.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from pyecho.atomic import atomic_path
from pyecho.learn.design.study import TABLE_TASKS, DesignResult, table_value
from pyecho.learn.base import to_json

CSV_FILE, JSON_FILE, FIGURE_FILE = "design.csv", "design.json", "design.png"


def design_frame(result: DesignResult) -> pl.DataFrame:
    """The ranked table as a polars frame (columns: see the module docstring)."""
    rows = []
    path = {e.measurements for e in result.path}
    for rank, e in enumerate(result.ranked(), 1):
        row = {"rank": rank, "protocol": ",".join(e.measurements), "n_measurements": len(e.measurements),
               "time_us": e.time_us, "design_score": e.score, "greedy_path": e.measurements in path}
        for task, _ in TABLE_TASKS:
            row[f"cv_{task}"] = table_value(e.cv, task)
            row[f"test_{task}"] = table_value(e.test, task)
        for target, width in e.interval_width.items():
            row[f"width90_{target}"] = width
        rows.append(row)
    return pl.DataFrame(rows)


def write_design(result: DesignResult, out: str | Path) -> tuple[Path, Path, Path]:
    """Write design.csv, design.json and design.png into ``out`` (created); each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = design_frame(result)
    frame = frame.select([c for c in frame.columns if frame[c].null_count() < frame.height])
    with atomic_path(out / CSV_FILE) as tmp:
        frame.write_csv(tmp)
    doc = {"candidates": list(result.candidates), "budget": result.budget, "snr": result.snr, "folds": result.folds,
           "n_design": result.n_design, "n_test": result.n_test,
           "best": result.best, "path": list(result.path), "evaluations": list(result.ranked())}
    with atomic_path(out / JSON_FILE) as tmp:
        tmp.write_text(json.dumps(to_json(doc), indent=1))
    plot_design(result, out / FIGURE_FILE)
    return out / CSV_FILE, out / JSON_FILE, out / FIGURE_FILE


def plot_design(result: DesignResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [(t, title) for t, title in TABLE_TASKS if table_value(result.evaluations[0].cv, t) is not None]
    cols = 3
    fig, axes = plt.subplots(-(-len(tasks) // cols), cols, figsize=(4.2 * cols, 3.2 * -(-len(tasks) // cols)),
                             squeeze=False, constrained_layout=True)
    sizes = sorted({len(e.measurements) for e in result.evaluations})
    colours = dict(zip(sizes, plt.cm.viridis(np.linspace(0.1, 0.85, len(sizes)))))
    for ax, (task, title) in zip(axes.flat, tasks):
        for n in sizes:
            pts = [e for e in result.evaluations if len(e.measurements) == n]
            ax.scatter([e.time_us / 1000 for e in pts], [table_value(e.cv, task) for e in pts], s=12,
                       color=colours[n], alpha=0.7, label=f"{n} measurement(s)")
        ax.plot([e.time_us / 1000 for e in result.path], [table_value(e.cv, task) for e in result.path], "k-o", ms=4,
                lw=1, label="greedy path")
        for e in result.path:
            ax.annotate(e.measurements[-1], (e.time_us / 1000, table_value(e.cv, task)), fontsize=6,
                        xytext=(3, -8), textcoords="offset points")
        ax.set_xlabel("spectrometer time per sample (ms)")
        ax.set_ylabel(f"{title} (out of fold)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"What each protocol tells (linear probe, SNR {result.snr:g}, {result.n_design} samples, "
                 f"{result.folds}-fold)", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

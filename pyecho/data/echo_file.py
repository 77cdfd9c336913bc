"""One echo as a CSV file (t_us, re_M, im_M, abs_M) and as a PNG of |M(t)|."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pyecho.atomic import atomic_path
from pyecho.physics.params import EchoParams

CSV_HEADER = "t_us,re_M,im_M,abs_M"


def write_echo_csv(path: str | Path, t_us: np.ndarray, m: np.ndarray) -> None:
    """Write the series M(t) (complex, shape (T,)) at times ``t_us`` (us) atomically."""
    table = np.column_stack([t_us, m.real, m.imag, np.abs(m)])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=CSV_HEADER, comments="", fmt="%.10g")


def plot_echo(path: str | Path, params: EchoParams, m: np.ndarray, title: str = "") -> None:
    """PNG of |M(t)| with the refocusing pulses (dashed) and the echo tops (dotted, dots) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_us = params.time_grid_us()
    plan = params.step_plan()
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    ax.plot(t_us, np.abs(m), lw=1.2, color="tab:blue", label="|M(t)|")
    for i, step in enumerate(s for s in plan.pulse_steps if s > 0):
        ax.axvline(step * params.dt_us, color="0.4", ls="--", lw=0.8, label="refocusing pulse" if i == 0 else None)
    tops = list(plan.echo_samples)
    if tops:
        ax.plot(t_us[tops], np.abs(m[tops]), "o", ms=4, color="tab:red", label="echo tops")
    ax.set_xlabel("t (µs)")
    ax.set_ylabel("|M| (per spin, max 1/2)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)

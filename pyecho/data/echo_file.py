"""One echo as a CSV file (t_us, re_M, im_M, abs_M) and as a PNG of |M(t)|."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pyecho.atomic import atomic_path

CSV_HEADER = "t_us,re_M,im_M,abs_M"


def write_echo_csv(path: str | Path, t_us: np.ndarray, m: np.ndarray) -> None:
    """Write the series M(t) (complex, shape (T,)) at times ``t_us`` (us) atomically."""
    table = np.column_stack([t_us, m.real, m.imag, np.abs(m)])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=CSV_HEADER, comments="", fmt="%.10g")


def plot_echo(path: str | Path, t_us: np.ndarray, m: np.ndarray, tau_us: float, title: str = "") -> None:
    """PNG of |M(t)| with the refocusing pulse (tau) and the echo (2 tau) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    ax.plot(t_us, np.abs(m), lw=1.2, color="tab:blue", label="|M(t)|")
    ax.axvline(tau_us, color="0.4", ls="--", lw=0.8, label=r"$\tau$ (refocusing pulse)")
    ax.axvline(2 * tau_us, color="tab:red", ls=":", lw=1.0, label=r"$2\tau$ (echo)")
    ax.set_xlabel("t (µs)")
    ax.set_ylabel("|M| (per spin, max 1/2)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)

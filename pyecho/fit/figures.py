"""The figure of one record's fit: measured vs fitted, each measurement, with residuals."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pyecho.atomic import atomic_path
from pyecho.fit.estimate import RecordFit
from pyecho.fit.limits import BoundMap
from pyecho.fit.space import KERNEL_PARAM_SYMBOL
from pyecho.physics.protocol import RecordGrid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
    return path


def plot_record_fit(fit: RecordFit, grid: RecordGrid, path: str | Path, *, title: str = "") -> Path:
    """One column per measurement: the binned record divided by its fitted receiver gain (Re and
    Im, points) over the chosen family's model (lines), and below it the residual in units of
    each bin's standard deviation under the error model (noise and draw scatter)."""
    plt = _pyplot()
    chosen = fit.family(fit.kernel)
    K = len(grid.protocol)
    n = len(chosen.data)
    # the error model's sd of every bin, in record units, then in the model's (divided by |g|)
    variance = np.sum(chosen.error.chol**2, axis=1)
    sd = np.sqrt(0.5 * (variance[:n] + variance[n:]))
    fig, axes = plt.subplots(2, K, figsize=(4.2 * K, 5.2), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": (3, 1.3)})
    for k in range(K):
        rows = chosen.measurement == k
        t, g = chosen.times_us[rows], chosen.gains[k]
        measured = chosen.data[rows] / g
        model = chosen.model[rows]
        top, bottom = axes[0, k], axes[1, k]
        top.plot(t, measured.real, ".", ms=2.5, color="tab:blue", label="Re, measured / gain")
        top.plot(t, measured.imag, ".", ms=2.5, color="tab:orange", label="Im, measured / gain")
        top.plot(t, model.real, "-", lw=0.9, color="navy", label=f"Re, {fit.kernel} fit")
        top.plot(t, model.imag, "-", lw=0.9, color="darkred", label=f"Im, {fit.kernel} fit")
        chi2 = chosen.chi2_by_measurement[k] / chosen.n_by_measurement[k]
        top.set_title(f"{grid.protocol[k].text}  (χ²/n {chi2:.2f})", fontsize=9)
        scale = sd[rows] / abs(g)
        bottom.plot(t, (measured.real - model.real) / scale, ".", ms=2, color="tab:blue")
        bottom.plot(t, (measured.imag - model.imag) / scale, ".", ms=2, color="tab:orange")
        bottom.axhline(0, color="k", lw=0.5)
        bottom.set_xlabel("t after excitation (µs)")
    axes[0, 0].set_ylabel("M (model units)")
    axes[1, 0].set_ylabel("residual / sd")
    axes[0, 0].legend(fontsize=7, loc="best")
    verdict = f"fits, p {fit.gof_p_value:.2f}" if fit.fits else f"does NOT fit, p {fit.gof_p_value:.2f}"
    probs = ", ".join(f"p({k}) {p:.2f}" for k, p in fit.probability.items())
    fig.suptitle(f"{title}: {fit.kernel}, χ²/dof {fit.chi2_per_dof:.2f} ({verdict}); {probs}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_bound_map(result: BoundMap, prior: dict, path: str | Path) -> Path:
    """Per family, the Cramér-Rao sd of its kernel parameter and of L along the kernel parameter,
    each against the prior's sd (dashed): where the range can be known, and how well."""
    plt = _pyplot()
    kernels = list(dict.fromkeys(b.kernel for b in result.bounds))
    fig, axes = plt.subplots(2, len(kernels), figsize=(3.8 * len(kernels), 5.6), squeeze=False)
    for j, kernel in enumerate(kernels):
        bounds = result.family(kernel)
        k = [b.value["kernel_param"] for b in bounds]
        symbol = KERNEL_PARAM_SYMBOL[kernel][0]
        for i, (name, label) in enumerate((("kernel_param", symbol), ("L", "L"))):
            ax = axes[i, j]
            ax.semilogy(k, [b.sd[name] for b in bounds], "o-", label="Cramér-Rao sd")
            ax.axhline(prior[kernel][name], ls="--", color="gray", label="prior sd")
            ax.set_xlabel(symbol)
            ax.set_ylabel(f"sd of {label}")
            ax.set_title(f"{kernel}: {label}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{result.protocol} on {result.lattice}x{result.lattice}, SNR {result.snr:g}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

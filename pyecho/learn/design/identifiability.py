"""Where the range of the correlations is measurable: interval widths of L and of the kernel
parameter across the couplings, per kernel family, for a protocol against the Hahn echo alone.

Within one kernel family, a linear probe (ridge on the standardised features of
:class:`~pyecho.learn.design.study.ProtocolProbe`, penalty by leave-one-out) predicts L and the
kernel parameter (xi, p or gamma) out of fold (K-fold within the family's samples, noise at
the probe's SNR). The samples are binned by W and by the kernel parameter; in each bin the
width of a 90 % interval is twice the 90th percentile of the out-of-fold |error|, shown
relative to the quantity's span over the family's prior (1 means: the echo says nothing the
prior did not). Empty bins are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from pyecho.learn.base import KERNELS, NO_JSON
from pyecho.learn.design.study import DEFAULT_FOLDS, DESIGN_VIEW, INTERVAL_LEVEL, DesignResult, ProtocolProbe
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US

#: what the map shows: L and the family's kernel parameter
QUANTITIES = ("L", "kernel_param")
#: bins along W and along the kernel parameter
DEFAULT_BINS = 4
#: a bin's width is shown only with at least this many samples (else NaN)
MIN_BIN_COUNT = 5
RIDGE_ALPHAS = tuple(np.logspace(-2, 5, 15))
#: the kernel parameter's name per family
PARAMETER_NAMES = {"gaussian": "xi", "power": "p", "rkky": "gamma"}


@dataclass(frozen=True)
class IdentifiabilityPanel:
    """One family × quantity × protocol: 90 % error relative to the prior's, per (W bin, parameter bin).

    width : array (n_W, n_param), NaN where a bin has too few samples; count : samples per bin;
    w_edges, param_edges : bin edges (rad/µs; the parameter's units); r2 : out-of-fold R² over
    the family's samples.
    """

    kernel: str
    quantity: str
    protocol: str
    width: np.ndarray = field(metadata=NO_JSON)
    count: np.ndarray = field(metadata=NO_JSON)
    w_edges: np.ndarray = field(metadata=NO_JSON)
    param_edges: np.ndarray = field(metadata=NO_JSON)
    r2: float = float("nan")

    def __json__(self) -> dict:
        return {"kernel": self.kernel, "quantity": self.quantity, "protocol": self.protocol, "r2": self.r2,
                "width": np.where(np.isfinite(self.width), self.width, None).tolist(), "count": self.count.tolist(),
                "w_edges": self.w_edges.tolist(), "param_edges": self.param_edges.tolist()}


@dataclass(frozen=True)
class IdentifiabilityMap:
    panels: tuple[IdentifiabilityPanel, ...]
    protocols: tuple[str, ...]
    snr: float

    def panel(self, kernel: str, quantity: str, protocol: str) -> IdentifiabilityPanel:
        return next(p for p in self.panels if (p.kernel, p.quantity, p.protocol) == (kernel, quantity, protocol))


def _edges(values: np.ndarray, n: int) -> np.ndarray:
    return np.linspace(values.min(), values.max(), n + 1)


def identifiability_map(probe: ProtocolProbe, protocols: dict[str, tuple[int, ...]], *, bins: int = DEFAULT_BINS,
                        folds: int = DEFAULT_FOLDS) -> IdentifiabilityMap:
    """The map for every protocol of ``protocols`` (label -> the probe's measurement indices)."""
    with threadpool_limits(limits=probe.n_jobs):
        return _identifiability_map(probe, protocols, bins, folds)


def _identifiability_map(probe: ProtocolProbe, protocols: dict[str, tuple[int, ...]], bins: int, folds: int
                         ) -> IdentifiabilityMap:
    lab = probe.data.labels
    panels = []
    for kernel in KERNELS:
        rows = np.flatnonzero(lab.kernel == kernel)
        param = lab.kernel_param[rows]
        if rows.size < 2 * folds or not np.all(np.isfinite(param)):
            continue
        truth = {"L": lab.L[rows], "kernel_param": param}
        w_edges, p_edges = _edges(lab.W[rows], bins), _edges(param, bins)
        w_bin = np.clip(np.digitize(lab.W[rows], w_edges[1:-1]), 0, bins - 1)
        p_bin = np.clip(np.digitize(param, p_edges[1:-1]), 0, bins - 1)
        for label, indices in protocols.items():
            F = probe._matrix(indices)[rows]
            for quantity in QUANTITIES:
                y = truth[quantity]
                oof = np.empty_like(y)
                for fit, held in KFold(folds, shuffle=True, random_state=probe.seed).split(F):
                    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(F[fit], y[fit])
                    oof[held] = model.predict(F[held])
                error, prior_error = np.abs(oof - y), np.abs(y - y.mean())
                width = np.full((bins, bins), np.nan)
                count = np.zeros((bins, bins), dtype=int)
                for i in range(bins):
                    for j in range(bins):
                        inside = (w_bin == i) & (p_bin == j)
                        count[i, j] = int(inside.sum())
                        if count[i, j] >= MIN_BIN_COUNT:
                            width[i, j] = (np.quantile(error[inside], INTERVAL_LEVEL)
                                           / max(np.quantile(prior_error[inside], INTERVAL_LEVEL), 1e-300))
                r2 = 1.0 - np.mean((oof - y) ** 2) / np.var(y) if np.var(y) > 0 else float("nan")
                panels.append(IdentifiabilityPanel(kernel, quantity, label, width, count, w_edges, p_edges, float(r2)))
    return IdentifiabilityMap(tuple(panels), tuple(protocols), probe.snr)


def plot_identifiability(m: IdentifiabilityMap, path) -> None:
    """Heat maps: one row per (family, quantity), one column per protocol; colour = the 90 %
    error relative to the prior's (module docstring)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyecho.atomic import atomic_path

    rows = list(dict.fromkeys((p.kernel, p.quantity) for p in m.panels))
    fig, axes = plt.subplots(len(rows), len(m.protocols), figsize=(3.3 * len(m.protocols) + 1.2, 2.4 * len(rows)),
                             squeeze=False, constrained_layout=True)
    image = None
    for i, (kernel, quantity) in enumerate(rows):
        name = "L" if quantity == "L" else PARAMETER_NAMES[kernel]
        for j, label in enumerate(m.protocols):
            ax = axes[i, j]
            p = m.panel(kernel, quantity, label)
            image = ax.imshow(p.width.T, origin="lower", aspect="auto", cmap="viridis_r", vmin=0, vmax=1,
                              extent=(p.w_edges[0], p.w_edges[-1], p.param_edges[0], p.param_edges[-1]))
            for a in range(p.width.shape[0]):
                for b in range(p.width.shape[1]):
                    if np.isfinite(p.width[a, b]):
                        x = 0.5 * (p.w_edges[a] + p.w_edges[a + 1])
                        y = 0.5 * (p.param_edges[b] + p.param_edges[b + 1])
                        ax.text(x, y, f"{p.width[a, b]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if p.width[a, b] > 0.5 else "black")
            top = "\n".join(textwrap.wrap(label, 40)) + "\n" if i == 0 else ""
            ax.set_title(f"{top}{kernel}: {name}, out-of-fold R² {p.r2:.2f}", fontsize=8)
            ax.set_xlabel("W (rad/µs)", fontsize=8)
            ax.set_ylabel(PARAMETER_NAMES[kernel], fontsize=8)
            ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes, shrink=0.5, label="90 % error / the prior's (1: nothing learned)")
    fig.suptitle(f"Where the range is measurable (linear probe, SNR {m.snr:g})", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


@dataclass(frozen=True)
class MeasurementStudy:
    """`pyecho learn`'s look at its own protocol: forward selection over the dataset's
    measurements (None for a single measurement) and the identifiability map of the whole
    protocol against the 90° Hahn echo alone."""

    selection: DesignResult | None
    identifiability: IdentifiabilityMap


HAHN_ALONE, WHOLE_PROTOCOL = "Hahn 90° alone", "the protocol"


def run_measurement_study(data, *, seed: int = 0, max_samples: int | None = None,
                          dead_time_us: float = DEFAULT_DEAD_TIME_US, note=None) -> MeasurementStudy:
    """The stage: a :class:`ProtocolProbe` on the dataset's measurements (with the 90° Hahn echo
    cut from a train when it is not a measurement of its own), forward selection when there
    are several, and the identifiability map; on a stratified (by kernel) subsample of
    ``max_samples`` samples when the dataset has more (the probe's cross-validation grows with
    the samples; a few thousand rank protocols as well). The probe never reads the samples
    within ``dead_time_us`` after a pulse, as the models it stands for."""
    from pyecho.learn.base import LearnData, no_note
    from pyecho.learn.design.study import DesignBudget, forward_selection
    from pyecho.physics.protocol import Protocol, RecordGrid

    note = note or no_note
    if max_samples is not None and data.n_samples > max_samples:
        keep, _ = train_test_split(np.arange(data.n_samples), train_size=max_samples, random_state=seed,
                                   stratify=data.labels.kernel)
        data = data.take(np.sort(keep))
    hahn = data.hahn_measurement
    if hahn in data.protocol:
        probe_data, hahn_index = data, data.protocol.index(hahn)
    else:
        probe_data = LearnData(records=(*data.records, data.M),
                               grid=RecordGrid(Protocol((*data.protocol, hahn)), data.grid.dt_us),
                               labels=data.labels, metadata=data.metadata)
        hahn_index = len(data.protocol)
    probe = ProtocolProbe(probe_data, seed=seed, view=replace(DESIGN_VIEW, dead_time_us=dead_time_us))
    selection = None
    if len(probe_data.protocol) > 1:
        selection = forward_selection(probe, DesignBudget(max_measurements=len(probe_data.protocol)), note=note)
    protocols = {HAHN_ALONE: (hahn_index,)}
    if len(data.protocol) > 1 or hahn_index != 0:
        protocols[WHOLE_PROTOCOL] = tuple(range(len(data.protocol)))
    note("identifiability map")
    return MeasurementStudy(selection, identifiability_map(probe, protocols))

"""The report's figures, each made from :class:`LearnResults` (mirrors the paper's Figs. 2-6, 8-12).

Every figure that shows a paper number reads it from :mod:`pyecho.learn.paper.table` and names its metric.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyecho.atomic import atomic_path  # noqa: E402
from pyecho.learn.paper import table as paper  # noqa: E402
from pyecho.learn.base import (COUPLING_TARGETS, FEATURE_SETS, FEATURE_TAGS, KERNELS, METRIC_TITLES,  # noqa: E402
                               RANGE_NP, RANGE_P, SUBSETS, ClassScores, FeatureSet, Labels, Metric, Subset,
                               Target, Task, target_title)
from pyecho.learn.paper.features import FeatureLayout, parse_polynomial_name  # noqa: E402
from pyecho.learn.results import LearnResults  # noqa: E402
from pyecho.learn.paper.vae import TRAVERSAL_GRID, VaeInput  # noqa: E402
from pyecho.physics.kernels import kernel_values  # noqa: E402

KERNEL_COLOURS = dict(zip(KERNELS, ("tab:pink", "tab:brown", "tab:green")))
KERNEL_CODE = {k: i for i, k in enumerate(KERNELS, 1)}
KERNEL_CODE_LABEL = "kernel (" + ", ".join(f"{i} {k}" for k, i in KERNEL_CODE.items()) + ")"
COEF_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
#: kernel parameters drawn in Fig. 2b
EXAMPLE_KERNELS = (("gaussian", 8.0), ("power", 1.47), ("rkky", 13.0))
SUBSET_TITLES = {Subset.ALL: "all kernels", Subset.P: "long range (power)", Subset.NP: "short range (non-power)"}
DPI = 110


@dataclass(frozen=True)
class FigurePaths:
    """File names (inside ``figures/``) of every figure of the report."""

    dataset: str
    vae: str
    pvnp: str
    regression: str
    pca_kmeans: str
    wscreen_pointwise: str
    wscreen_polynomial: str
    importance_W: str
    importance_L: str
    importance_alpha_xy: str
    kernel3: str
    vae_training: str
    leak: str
    candidates: str
    calibration: str
    identifiability: str
    selection: str | None
    curves: str | None
    limits: str | None = None

    def names(self) -> list[str]:
        """The files written (a figure that does not apply to the run, such as the forward
        selection over the measurements of a single-measurement protocol, is None)."""
        return [name for f in fields(self) if (name := getattr(self, f.name)) is not None]


# --------------------------------------------------------------------------- helpers
def _save(fig, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    return path.name


def _cm(ax, cm, labels, title):
    cmn = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(cmn, vmin=0, vmax=1, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cmn[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center",
                    color="white" if cmn[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def _f1s(s: ClassScores) -> str:
    """Short score text for a title: F1 of the power-law class and weighted F1."""
    return f"F1(P) {s.f1_power:.3f}, weighted F1 {s.f1_weighted:.3f}"


def _poly_bars(ax, names, imp, t_window, title, top=10):
    """Top polynomial features: bar spans the section's time window, colour = coefficient order."""
    order = np.argsort(imp)[::-1][:top]
    for rank, i in enumerate(order):
        n, k, c = parse_polynomial_name(names[i])
        edges = np.linspace(0, len(t_window), n + 1).round().astype(int)
        t0, t1 = t_window[edges[k - 1]], t_window[edges[k] - 1]
        ax.barh(rank, t1 - t0, left=t0, color=COEF_COLOURS[c], alpha=0.8)
        ax.text(t1, rank, f" {imp[i]:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(order)), [names[i] for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("t (µs)")
    ax.set_title(title, fontsize=9)
    for c in range(4):
        ax.bar(0, 0, color=COEF_COLOURS[c], label=f"c{c}")
    ax.legend(fontsize=6, loc="lower right")
    ax.set_xlim(t_window[0], t_window[-1] + 0.15 * (t_window[-1] - t_window[0]))


def _pt_importance(ax, imp, t_window, title, label=None):
    ax.plot(t_window, imp, lw=1, label=label)
    ax.set_xlabel("t (µs)")
    ax.set_ylabel("Gini importance")
    ax.set_title(title, fontsize=9)


def _importance(ax, fs: FeatureSet, names, imp, layout: FeatureLayout, title: str):
    """Gini importances against time (pointwise) or as section bars (polynomial); zeros if None."""
    imp = np.zeros(len(names)) if imp is None else imp
    if fs == FeatureSet.POINTWISE:
        _pt_importance(ax, imp, layout.t_window, title)
    else:
        _poly_bars(ax, names, imp, layout.t_window, title)


def _subsample_rows(n, k, seed=0):
    return np.sort(np.random.default_rng(seed).choice(n, min(n, k), replace=False))


# --------------------------------------------------------------------------- figures
def fig_dataset(r: LearnResults, out: Path) -> str:
    """Fig. 2: the echoes, the kernels, one echo per kernel, the window, the spectra."""
    Xn, lab, layout, M = r.features.X_norm, r.paper_data.labels, r.features.layout, r.paper_data.M
    t = np.asarray(layout.t_us)
    tw = layout.t_window
    a, b = layout.window
    fig, ax = plt.subplots(2, 3, figsize=(15, 8), gridspec_kw={"hspace": 0.35})
    rows = _subsample_rows(len(Xn), 300)
    for i in rows:
        ax[0, 0].plot(t, Xn[i], lw=0.3, alpha=0.3, color="k")
    ax[0, 0].axvspan(tw[0], tw[-1], color="gold", alpha=0.3, label="area of interest")
    ax[0, 0].set(xlabel="t (µs)", ylabel="normalised |M|", title=f"(a) {len(rows)} of {len(Xn)} echoes")
    rr = np.linspace(0.5, 40, 400)
    for k, p in EXAMPLE_KERNELS:
        kv = np.abs(kernel_values(k, p, rr))
        ax[0, 1].semilogy(rr, kv / kv.max(), color=KERNEL_COLOURS[k], label=f"{k} ({p})")
    ax[0, 1].set(xlabel="r (lattice spacings)", ylabel="|K(r)| / max", title="(b) kernels", ylim=(1e-6, 1.5))
    f_khz = np.fft.fftshift(np.fft.fftfreq(M.shape[1], d=t[1] - t[0])) * 1e3
    for k, col in KERNEL_COLOURS.items():
        sel = np.flatnonzero(lab.kernel == k)
        if not len(sel):
            continue
        i = sel[0]
        ax[0, 2].plot(t, Xn[i], color=col, lw=0.8, label=f"{k} W={lab.W[i]:.2f}")
        ax[1, 0].plot(tw, Xn[i, a:b], color=col, lw=0.8, label=k)
        ax[1, 1].plot(tw, Xn[sel, a:b].mean(0), color=col, lw=1, label=f"{k} mean")
        spec = np.abs(np.fft.fftshift(np.fft.fft(M[sel[:200]], axis=1), axes=1)).mean(0)
        ax[1, 2].plot(f_khz, spec / spec.max(), color=col, lw=0.8, label=k)
    ax[0, 2].set(xlabel="t (µs)", title="(c) one echo per kernel")
    ax[1, 0].set(xlabel="t (µs)", title="(d) area of interest")
    ax[1, 1].set(xlabel="t (µs)", title="(d') kernel means in the window")
    ax[1, 2].set(xlabel="frequency (kHz)", title="(e) mean |FFT M| per kernel", xlim=(-50, 50))
    for x in ax.flat:
        x.legend(fontsize=7)
    return _save(fig, out / "fig2_dataset.png")


def _scatter3(axes, Z, lab: Labels, xlabel, ylabel):
    kc = np.array([KERNEL_CODE.get(k, 0) for k in lab.kernel])
    for ax, (c, name, cmap) in zip(axes, ((kc, KERNEL_CODE_LABEL, "Set1"), (lab.W, "W", "viridis"),
                                           (lab.L, "L", "plasma"))):
        sc = ax.scatter(Z[:, 0], Z[:, 1], c=c, s=2, cmap=cmap, alpha=0.6, rasterized=True)
        plt.colorbar(sc, ax=ax, label=name)
        ax.set(xlabel=xlabel, ylabel=ylabel)


def fig_vae(r: LearnResults, out: Path) -> str:
    """Fig. 3: the two VAE latent spaces and decoded traversals along the axis that orders W."""
    lab, layout = r.paper_data.labels, r.features.layout
    fig, ax = plt.subplots(2, 4, figsize=(20, 8), gridspec_kw={"hspace": 0.35})
    cmap = plt.get_cmap("viridis")
    Wlo, Whi = np.min(lab.W), np.max(lab.W)
    for row, v in enumerate((r.vae_full, r.vae_window)):
        _scatter3(ax[row, :3], v.Z, lab, "LA1", "LA2")
        ax[row, 0].set_title(f"({'ac'[row]}) VAE {v.inputs.value}: {'-'.join(map(str, v.arch))}", fontsize=9)
        axis = int(np.argmax(v.abs_corr_W))
        tt = np.asarray(layout.t_us) if v.inputs == VaeInput.FULL else layout.t_window
        # colour each decoded curve by the mean W of the echoes nearest that latent coordinate
        for g, curve in zip(TRAVERSAL_GRID, v.traversals[axis]):
            near = np.argsort(np.abs(v.Z[:, axis] - g))[:50]
            ax[row, 3].plot(tt, curve, color=cmap((lab.W[near].mean() - Wlo) / max(Whi - Wlo, 1e-12)), lw=1)
        ax[row, 3].set(xlabel="t (µs)", ylabel="decoded |M|",
                       title=f"({'bd'[row]}) traversal along LA{axis + 1} in [{TRAVERSAL_GRID[0]}, {TRAVERSAL_GRID[-1]}] "
                             f"(|corr(LA{axis + 1}, W)| = {v.abs_corr_W[axis]:.2f})")
    return _save(fig, out / "fig3_vae.png")


def fig_pvnp(r: LearnResults, out: Path) -> str:
    """Fig. 4: pruning curve (F1 of the power-law class), confusion matrices, echoes, importances."""
    lab, layout, Xn = r.paper_data.labels, r.features.layout, r.features.X_norm
    fig, ax = plt.subplots(2, 3, figsize=(17, 9), gridspec_kw={"hspace": 0.35})
    nan = float("nan")
    for fs, mk in zip(FEATURE_SETS, "os"):
        st = r.pruning[fs].steps
        n = [s.n_features for s in st]
        tag = FEATURE_TAGS[fs]
        ax[0, 0].plot(n, [s.scores.f1_power for s in st], marker=mk, label=f"{tag} test F1(P)")
        ax[0, 0].errorbar(n, [nan if s.cv is None else s.cv.mean for s in st],
                          yerr=[0.0 if s.cv is None else s.cv.std for s in st], marker=mk, ls="--",
                          capsize=2, label=f"{tag} CV F1(P)")
        ax[0, 0].plot(n, [s.oob_accuracy for s in st], marker=mk, ls=":", label=f"{tag} OOB (accuracy)")
    ref = paper.PVNP_F1_POWER
    ax[0, 0].axhline(ref.value, color="gray", lw=0.8, label=f"paper RF: {ref.label}")
    ax[0, 0].set(xscale="log", xlabel="number of features", ylabel="score",
                 title=f"(a) successive pruning; F1(P) = {METRIC_TITLES[Metric.F1_POWER]}")
    ax[0, 0].legend(fontsize=6)
    for j, fs in enumerate(FEATURE_SETS):
        res = r.pvnp[fs]
        _cm(ax[0, 1 + j], res.confusion, res.classes,
            f"({'bc'[j]}) RF, {len(res.feature_names)} {FEATURE_TAGS[fs]} features: {_f1s(res.scores)}")
    a, b = layout.window
    tw = layout.t_window
    for cls, col, sel in ((RANGE_NP, "tab:blue", ~lab.is_power), (RANGE_P, "tab:green", lab.is_power)):
        for i in np.flatnonzero(sel)[:150]:
            ax[1, 0].plot(tw, Xn[i, a:b], color=col, lw=0.3, alpha=0.3)
        ax[1, 0].plot([], [], color=col, label=cls)
    ax[1, 0].set(xlabel="t (µs)", title=f"(d) echoes: {RANGE_NP} (blue), {RANGE_P} (green)")
    ax[1, 0].legend(fontsize=7)
    _pt_importance(ax[1, 1], r.pvnp.pointwise.importances, tw, "(e) Gini importance, PT model", "all features")
    ax[1, 1].legend(fontsize=7)
    _poly_bars(ax[1, 2], r.pvnp.polynomial.feature_names, r.pvnp.polynomial.importances, tw, "(f) top-10 PF features")
    return _save(fig, out / "fig4_power_vs_nonpower.png")


def fig_regression(r: LearnResults, out: Path) -> str:
    """Fig. 5: target distributions by kernel; OOB and test R² of every forest."""
    lab = r.paper_data.labels
    fig = plt.figure(figsize=(18, 8))
    gs = fig.add_gridspec(2, 4)
    for j, t in enumerate(COUPLING_TARGETS):
        ax = fig.add_subplot(gs[0, j])
        for k, col in KERNEL_COLOURS.items():
            sel = lab.kernel == k
            if sel.any():
                ax.hist(lab.target(t)[sel], bins=30, histtype="step", color=col, label=k)
        ax.set(xlabel=t.value, title=f"({'abcd'[j]}) {t.value} by kernel")
        ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[1, :])
    xt, ticks, x = [], [], 0.0
    for t in COUPLING_TARGETS:
        for s in SUBSETS:
            for fs in FEATURE_SETS:
                res = r.regression.get(t, s, fs)
                ax.bar(x - 0.2, max(res.r2_oob, -0.1), 0.4, color="tab:blue")
                ax.bar(x + 0.2, max(res.scores.r2, -0.1), 0.4, color="tab:orange")
                xt.append(x)
                ticks.append(f"{t.value}\n{s.value} {FEATURE_TAGS[fs]}")
                x += 1
        x += 0.5
    ax.bar(0, 0, color="tab:blue", label="OOB R²")
    ax.bar(0, 0, color="tab:orange", label="test R²")
    ax.set_xticks(xt, ticks, fontsize=6)
    ax.set(ylabel="R²", ylim=(-0.1, 1), title="(e) random-forest regression (all = all kernels, P = power, NP = non-power)")
    ax.legend(fontsize=7)
    return _save(fig, out / "fig5_regression.png")


def fig_pca_kmeans(r: LearnResults, out: Path) -> str:
    """Fig. 6: PCA coloured by W, L, kernel; k-means scree and the K = 2 cluster means."""
    lab, layout = r.paper_data.labels, r.features.layout
    pca, km = r.unsupervised.pca, r.unsupervised.kmeans
    fig, ax = plt.subplots(1, 5, figsize=(24, 4.3))
    S, ev = pca.scores, pca.explained
    kc = np.array([KERNEL_CODE.get(k, 0) for k in lab.kernel])
    for j, (c, name, cmap) in enumerate(((lab.W, "W", "viridis"), (lab.L, "L", "plasma"),
                                         (kc, KERNEL_CODE_LABEL, "Set1"))):
        sc = ax[j].scatter(S[:, 0], S[:, 1], c=c, s=2, cmap=cmap, alpha=0.6, rasterized=True)
        plt.colorbar(sc, ax=ax[j], label=name)
        ax[j].set(xlabel=f"PC1 ({ev[0]:.0%})", ylabel=f"PC2 ({ev[1]:.0%})", title=f"({'abc'[j]}) PCA by {name.split()[0]}")
    ax[3].plot(km.k, km.sse, "o-")
    ax[3].axvline(km.elbow, color="gray", ls="--", label=f"elbow K={km.elbow}")
    ax[3].set(xlabel="K", ylabel="SSE", title="(d) k-means scree")
    ax[3].legend(fontsize=7)
    t = np.asarray(layout.t_us)
    lab2 = km.labels[2]
    for c, col in zip(range(2), ("tab:red", "tab:blue")):
        sel = lab2 == c
        ax[4].plot(t, km.centres[2][c], color=col, label=f"cluster {c + 1}: n={sel.sum()}, mean W={lab.W[sel].mean():.3f}")
    ax[4].set(xlabel="t (µs)", ylabel="normalised |M|", title="(e) K=2 cluster means")
    ax[4].legend(fontsize=7)
    return _save(fig, out / "fig6_pca_kmeans.png")


def fig_wscreen(r: LearnResults, out: Path, fs: FeatureSet, number: int) -> str:
    """Figs. 8-9: one confusion matrix and importance plot per W bin."""
    ws = r.wscreen[fs]
    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5), gridspec_kw={"hspace": 0.35})
    last = len(ws.bins) - 1
    for j, b in enumerate(ws.bins):
        res = b.result
        _cm(ax[0, j], res.confusion, res.classes,
            f"({'abc'[j]}) W in [{b.lo}, {b.hi}{']' if j == last else ')'}: F1(P) {res.scores.f1_power:.3f} "
            f"(n_test {res.n_test})")
        _importance(ax[1, j], fs, res.feature_names, res.importances, r.features.layout,
                    f"({'def'[j]}) " + ("Gini importance" if fs == FeatureSet.POINTWISE else "top-10 PF features"))
    return _save(fig, out / f"fig{number}_wscreen_{fs.value}.png")


def fig_reg_importance(r: LearnResults, out: Path, target: Target, number: int) -> str:
    """Figs. 10-12: feature ranking of one target's forests, per kernel subset."""
    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5), gridspec_kw={"hspace": 0.35})
    names = r.features.layout.polynomial_names
    for j, s in enumerate(SUBSETS):
        res = r.regression.get(target, s, FeatureSet.POINTWISE)
        _pt_importance(ax[0, j], res.importances, r.features.layout.t_window,
                       f"({'abc'[j]}) {target.value}, {SUBSET_TITLES[s]}: PT importance (test R² {res.scores.r2:.2f})")
        rp = r.regression.get(target, s, FeatureSet.POLYNOMIAL)
        _poly_bars(ax[1, j], names, rp.importances, r.features.layout.t_window,
                   f"({'def'[j]}) {target.value}, {SUBSET_TITLES[s]}: top-10 PF (test R² {rp.scores.r2:.2f})")
    return _save(fig, out / f"fig{number}_importance_{target.value}.png")


def fig_kernel3(r: LearnResults, out: Path) -> str:
    """3-class confusion matrices: the paper's forests and the headline prediction beyond the paper
    (its calibrated probabilities, decided as `pyecho predict` decides)."""
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.3))
    for j, fs in enumerate(FEATURE_SETS):
        res = r.kernel3[fs]
        _cm(ax[j], res.confusion, res.classes, f"3-class, RF {fs.value}: macro F1 {res.scores.f1_macro:.3f}")
    c = r.candidates
    truth = r.data.labels.kernel[c.rows.test]
    pred = c.calibrated.headline_kernel
    cm = np.array([[np.sum((truth == a) & (pred == b)) for b in KERNELS] for a in KERNELS])
    _cm(ax[2], cm, KERNELS, f"3-class, headline (beyond): macro F1 {c.calibrated.headline_at(np.inf).kernel3.f1_macro:.3f}")
    return _save(fig, out / "fig_kernel3_confusion.png")


def fig_candidates(r: LearnResults, out: Path) -> str:
    """Every candidate beyond the paper on the test rows against SNR, for the protocol (solid) and
    the Hahn echo alone (dashed), with the paper's forest (noise-free)."""
    c = r.candidates
    rf = {Task.PVNP.value: r.pvnp.pointwise.scores.f1_weighted, Task.KERNEL3.value: r.kernel3.pointwise.scores.f1_macro,
          **{t.value: r.regression.get(t, Subset.ALL, FeatureSet.POINTWISE).scores.r2 for t in COUPLING_TARGETS}}
    tasks = c.runs[0].validation.tasks
    titles = {Task.PVNP.value: "P vs NP: weighted F1", Task.KERNEL3.value: "3-class: macro F1"}
    get = {Task.PVNP.value: lambda s: s.pvnp.f1_weighted, Task.KERNEL3.value: lambda s: s.kernel3.f1_macro}
    fig, ax = plt.subplots(1, len(tasks), figsize=(3.1 * len(tasks), 3.3), sharex=True)
    snrs = [s.snr for s in c.runs[0].test]
    x = np.arange(len(snrs))
    studies = [(r.candidates, "-")] + ([(r.hahn_seeds.results[0], "--")] if r.hahn_seeds else [])
    for a, task in zip(ax, tasks):
        score = get.get(task, lambda s, t=task: s.regression[t].r2)
        for study, style in studies:
            for k, run in enumerate(study.runs):
                a.plot(x, [score(s.scores) for s in run.test], style, marker="o", ms=3, color=f"C{k}",
                       label=f"{run.name} ({study.label})")
        if task in rf:
            a.axhline(rf[task], color="k", ls=":", lw=1, label="paper's RF (no noise)")
        a.set_xticks(x, ["∞" if not np.isfinite(s) else f"{s:g}" for s in snrs])
        a.set(title=titles[task] if task in titles else f"R² {target_title(task)}", xlabel="test SNR")
        a.title.set_fontsize(9)
    ax[0].legend(fontsize=6)
    return _save(fig, out / "fig_candidates_snr.png")


def fig_calibration(r: LearnResults, out: Path) -> str:
    """Reliability diagrams of the kernel probabilities (raw and calibrated, SNR ∞ and 50), and
    the intervals' test coverage at every SNR against the target level."""
    from pyecho.learn.calibration.conformal import plot_reliability

    cal = r.candidates.calibrated
    tasks = list(dict.fromkeys(d.task for d in cal.reliability))
    fig, ax = plt.subplots(1, len(tasks) + 1, figsize=(4.4 * (len(tasks) + 1), 3.9))
    for a, task in zip(ax, tasks):
        plot_reliability([d for d in cal.reliability if d.task == task], ax=a)
        a.set_title(f"reliability, {task}", fontsize=9)
    a = ax[-1]
    targets = list(dict.fromkeys(c.target for c in cal.coverage))
    snrs = list(dict.fromkeys(c.snr for c in cal.coverage))
    width = 0.8 / len(snrs)
    for k, snr in enumerate(snrs):
        a.bar(np.arange(len(targets)) + (k - (len(snrs) - 1) / 2) * width,
              [cal.coverage_at(t, snr).coverage for t in targets], width,
              label=f"SNR {'∞' if not np.isfinite(snr) else f'{snr:g}'}")
    a.axhspan(cal.level - 0.02, cal.level + 0.02, color="tab:green", alpha=0.2, label=f"{cal.level:.0%} ± 2 %")
    a.set_xticks(range(len(targets)), targets, fontsize=8)
    a.set(ylim=(0.5, 1.0), ylabel="test coverage", title=f"{cal.level:.0%} intervals at each SNR")
    a.title.set_fontsize(9)
    a.legend(fontsize=6, ncol=2)
    return _save(fig, out / "fig_calibration.png")


def fig_identifiability(r: LearnResults, out: Path) -> str:
    """Where the range is measurable: the identifiability map of the protocol against the Hahn echo."""
    from pyecho.learn.design.identifiability import plot_identifiability

    path = out / "fig_identifiability.png"
    plot_identifiability(r.measurements.identifiability, path)
    return path.name


def fig_selection(r: LearnResults, out: Path) -> str | None:
    """Forward selection over the dataset's measurements (the design figure), when it has several."""
    from pyecho.learn.design.output import plot_design

    if r.measurements.selection is None:
        return None
    path = out / "fig_measurement_selection.png"
    plot_design(r.measurements.selection, path)
    return path.name


def fig_vae_training(r: LearnResults, out: Path) -> str:
    """The VAEs' training curves and the kept epoch."""
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for j, v in enumerate((r.vae_full, r.vae_window)):
        ep = [h.epoch for h in v.history]
        ax[j].plot(ep, [h.val_recon for h in v.history], label="validation reconstruction")
        ax[j].plot(ep, [h.train_loss for h in v.history], label="training loss (recon + beta KL)")
        ax[j].axvline(v.best_epoch, color="gray", ls="--", label="kept")
        ax[j].set(xlabel="epoch", ylabel="per-echo loss", title=f"VAE {v.inputs.value}", yscale="log")
        ax[j].legend(fontsize=7)
    return _save(fig, out / "fig_vae_training.png")


def fig_leak(r: LearnResults, out: Path) -> str:
    """The paper's random forest, P vs NP: the four scores leak-free and with the paper's leak,
    each beside the paper's number of the same metric and protocol."""
    metrics = [Metric(f.name) for f in fields(ClassScores)]
    ours = {"leak-free (this run)": r.pvnp.pointwise.scores, "leaked (this run)": r.leak.scores}
    refs = [paper.PVNP_F1_POWER, paper.PVNP_F1_WEIGHTED, paper.PVNP_ACCURACY, paper.PVNP_LEAKED]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(metrics))
    for k, (name, s) in enumerate(ours.items()):
        ax.bar(x + (k - 0.5) * 0.38, [getattr(s, m.value) for m in metrics], 0.38, label=name,
               color=("tab:blue", "tab:red")[k])
    for ref in refs:
        i = metrics.index(ref.metric)
        leaked = ref.obtained == paper.Obtained.LEAKED
        ax.plot([i + (0.5 if leaked else -0.5) * 0.38], [ref.value], marker="v" if leaked else "^", ms=9,
                color="k" if not leaked else "darkred", ls="none")
    ax.plot([], [], marker="^", color="k", ls="none", label="paper, leak-free")
    ax.plot([], [], marker="v", color="darkred", ls="none", label="paper, leaked")
    ax.set_xticks(x, [METRIC_TITLES[m] for m in metrics], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="test score", title="P vs NP, the paper's random forest: leak-free vs leaked")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out / "fig_leak.png")


def fig_curves(r: LearnResults, out: Path) -> str | None:
    """Learning curves: F1 of the power-law class and R² of L against the training rows."""
    lc = r.curves
    if lc is None or not lc.points:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for model in lc.models:
        pts = [p for p in lc.points if p.model == model]
        n = [p.n_train for p in pts]
        ax[0].plot(n, [p.pvnp.f1_power for p in pts], "o-", ms=4, label=model)
        ax[1].plot(n, [p.L.r2 for p in pts], "o-", ms=4, label=model)
    ax[0].set(xscale="log", xlabel="training rows", ylabel="test F1 of the power-law class", title="P vs NP")
    ax[1].set(xscale="log", xlabel="training rows", ylabel="test R²", title="L, all kernels")
    ax[0].legend(fontsize=7)
    return _save(fig, out / "fig_learning_curves.png")


def fig_limits(r: LearnResults, out: Path) -> str | None:
    """The Cramér-Rao bound map of the dataset's prior (pyecho limits' figure)."""
    if r.limits is None:
        return None
    from pyecho.fit.figures import plot_bound_map

    return plot_bound_map(r.limits.bound_map, r.limits.prior, out / "fig_limits.png").name


def make_figures(r: LearnResults, out: Path) -> FigurePaths:
    """Write every figure into ``out`` (created) and return their file names."""
    out.mkdir(parents=True, exist_ok=True)
    return FigurePaths(
        dataset=fig_dataset(r, out), vae=fig_vae(r, out), pvnp=fig_pvnp(r, out), regression=fig_regression(r, out),
        pca_kmeans=fig_pca_kmeans(r, out),
        wscreen_pointwise=fig_wscreen(r, out, FeatureSet.POINTWISE, 8),
        wscreen_polynomial=fig_wscreen(r, out, FeatureSet.POLYNOMIAL, 9),
        importance_W=fig_reg_importance(r, out, Target.W, 10), importance_L=fig_reg_importance(r, out, Target.L, 11),
        importance_alpha_xy=fig_reg_importance(r, out, Target.ALPHA_XY, 12),
        kernel3=fig_kernel3(r, out), vae_training=fig_vae_training(r, out), leak=fig_leak(r, out),
        candidates=fig_candidates(r, out), calibration=fig_calibration(r, out),
        identifiability=fig_identifiability(r, out), selection=fig_selection(r, out), curves=fig_curves(r, out),
        limits=fig_limits(r, out))

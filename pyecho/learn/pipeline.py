"""`pyecho learn` orchestration: dataset -> features -> unsupervised, classification, regression
-> report, metrics and saved models.

The dataset is anything with the :class:`pyecho.data.store.EchoDataset` attributes: ``M``
(complex (B, T)), ``labels`` (polars frame with kernel, is_power, W, L, alpha_x, alpha_z),
``t_us`` (T,), ``echo_index``, ``metadata``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import pyecho
from pyecho.atomic import atomic_path
from pyecho.learn import classify, regress, unsupervised
from pyecho.learn.features import DEFAULT_WINDOW, FeatureLayout, normalise_abs, polynomial_features
from pyecho.learn.vae import BetaVAE

KERNELS = ("gaussian", "power", "rkky")
PVNP = ("NP", "P")  # positive class P (power law) last


@dataclass(frozen=True)
class Budget:
    """Model sizes; ``FULL`` is designed for the paper preset (15 000 x 1875) in < 30 min on 2 cores."""

    rf_trees: int = 200            # headline / saved random forests
    aux_trees: int = 60            # CV folds, pruning curve, W-screening bins, non-headline regressions
    cv_folds: int = 5              # CV of the headline P-vs-NP models
    prune_cv_folds: int = 0        # CV at each pruning step (0: test F1 and OOB only, for run time)
    svm_max_train: int = 4000      # RBF SVM trained on a stratified subsample of this many rows
    knn_max_train: int | None = None
    vae_full_hidden: tuple[int, ...] = (512, 128, 16)
    vae_window_hidden: tuple[int, ...] = (128, 32, 16)
    vae_max_epochs: int = 60
    vae_batch: int = 128
    kmeans_max_samples: int = 5000
    hgb_max_iter: int = 150
    hgb_cv_folds: int = 0          # CV of the beyond-the-paper P-vs-NP model (test F1 only by default)
    test_size: float = 0.2


FULL = Budget()
QUICK = Budget(rf_trees=40, aux_trees=20, cv_folds=3, prune_cv_folds=2, svm_max_train=500,
               vae_full_hidden=(64, 16), vae_window_hidden=(32, 16), vae_max_epochs=8, vae_batch=64,
               kmeans_max_samples=1000, hgb_max_iter=50)


def load_data(path: str | Path):
    """Load a `pyecho sim` Parquet file or directory (pyecho.data.store.load_dataset)."""
    from pyecho.data.store import load_dataset  # written in parallel (issue 4)

    return load_dataset(path)


def _labels_arrays(labels: pl.DataFrame) -> dict[str, np.ndarray]:
    need = {"kernel", "is_power", "W", "L", "alpha_x", "alpha_z"}
    missing = need - set(labels.columns)
    if missing:
        raise ValueError(f"dataset labels lack columns {sorted(missing)}")
    return {
        "kernel": labels["kernel"].to_numpy().astype(str),
        "is_power": labels["is_power"].to_numpy().astype(bool),
        "W": labels["W"].to_numpy().astype(float),
        "L": labels["L"].to_numpy().astype(float),
        "alpha_xy": labels["alpha_x"].to_numpy().astype(float),
        "alpha_z": labels["alpha_z"].to_numpy().astype(float),
    }


class _Stages:
    """Rich progress over the pipeline stages, with wall time per stage."""

    def __init__(self, names: list[str], console: Console | None):
        self.names, self.times, self._t = names, {}, None
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=console, transient=False,
                                 disable=console is None)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("starting", total=len(self.names))
        return self

    def __exit__(self, *exc):
        self.done_current()
        self.progress.__exit__(*exc)

    def start(self, name: str, detail: str = ""):
        self.done_current()
        self._current, self._t = name, time.perf_counter()
        self.progress.update(self.task, description=f"{name} {detail}")

    def note(self, detail: str):
        self.progress.update(self.task, description=f"{self._current} {detail}")

    def done_current(self):
        if self._t is not None:
            self.times[self._current] = round(time.perf_counter() - self._t, 2)
            self.progress.advance(self.task)
            self._t = None


def run_learn(
    data,
    out_dir: str | Path,
    quick: bool = False,
    seed: int = 0,
    n_jobs: int = 1,
    window: int | None = None,
    console: Console | None = None,
    budget: Budget | None = None,
) -> dict:
    """Run the whole learning pipeline and write ``out_dir/{report.md, metrics.json, figures/, models/}``.

    Parameters
    ----------
    data : path of a `pyecho sim` Parquet file/directory, or an EchoDataset-like object
    out_dir : report directory (created; files inside are replaced atomically)
    quick : small models for tiny datasets and tests
    seed : seeds the split, SMOTE, every model and the VAE
    n_jobs : parallel workers of the forests / kNN and torch threads
    window : area-of-interest width in samples (default 400, or smaller when the series is short
        and ``quick``)

    Returns
    -------
    the metrics dictionary (also written to ``metrics.json``)
    """
    from threadpoolctl import threadpool_limits

    # OpenMP/BLAS pools (HistGradientBoosting, numpy) follow --n-jobs as well
    with threadpool_limits(limits=int(n_jobs)):
        return _run_learn(data, out_dir, quick, seed, n_jobs, window, console, budget)


def _run_learn(data, out_dir, quick, seed, n_jobs, window, console, budget) -> dict:
    from pyecho.learn import report  # matplotlib only when needed

    t_start = time.perf_counter()
    budget = budget or (QUICK if quick else FULL)
    ds = load_data(data) if isinstance(data, (str, Path)) else data
    lab = _labels_arrays(ds.labels)
    B, T = ds.M.shape
    if B < 20:
        raise ValueError(f"the dataset has {B} echoes; learning needs at least 20")
    for k in KERNELS:
        if not np.any(lab["kernel"] == k):
            raise ValueError(f"the dataset has no {k!r} echoes; learning needs all three kernels")
    t_us = np.asarray(ds.t_us, dtype=float)
    if window is None:
        window = DEFAULT_WINDOW if (not quick or T >= DEFAULT_WINDOW + 2) else max(40, (T // 3) // 2 * 2)
    layout = FeatureLayout.build(t_us, int(ds.echo_index), window)
    rng_seed = int(seed)
    out = Path(out_dir)  # created only once the data has been read and checked
    out.mkdir(parents=True, exist_ok=True)

    stage_names = ["features", "PCA + k-means", "VAE (full series)", "VAE (window)", "P vs NP",
                   "pruning curves", "Table I zoo", "3-class kernel", "regression", "W screening",
                   "beyond the paper", "report"]
    R: dict = {"budget": asdict(budget), "seed": rng_seed, "n_jobs": n_jobs, "n_samples": B,
               "n_times": T, "layout": layout.to_dict(), "pyecho_version": pyecho.__version__,
               "metadata": {k: v for k, v in dict(getattr(ds, "metadata", {}) or {}).items()
                            if isinstance(v, (int, float, str, bool)) or v is None}}
    with _Stages(stage_names, console) as st:
        # ---------------------------------------------------------------- features
        st.start("features")
        Xn = normalise_abs(ds.M)
        feats = layout.features(Xn)
        a, b = layout.window
        Xw = Xn[:, a:b]
        Xlog = polynomial_features(np.log10(Xw + 1e-3), layout.t_window, layout.sections)
        F = {"pointwise": feats["pointwise"].to_numpy(), "polynomial": feats["polynomial"].to_numpy()}
        names = {"pointwise": feats["pointwise"].columns, "polynomial": feats["polynomial"].columns}
        y_kernel = lab["kernel"]
        y_pvnp = np.where(lab["is_power"], "P", "NP")
        train, test = classify.split_indices(y_kernel, budget.test_size, rng_seed)
        R["split"] = {"n_train": int(len(train)), "n_test": int(len(test)), "test_size": budget.test_size,
                      "stratified_by": "kernel"}

        # ---------------------------------------------------------------- unsupervised
        st.start("PCA + k-means")
        pca_scores, pca_var = unsupervised.pca_2d(Xn, rng_seed)
        km = unsupervised.kmeans_scree(Xn, 10, rng_seed, budget.kmeans_max_samples)
        R["pca"] = {"scores": pca_scores, "explained": pca_var}
        R["kmeans"] = km

        st.start("VAE (full series)")
        vaes = {}
        for key, hidden, X in (("full", budget.vae_full_hidden, Xn), ("window", budget.vae_window_hidden, Xw)):
            if key == "window":
                st.start("VAE (window)")
            vae = BetaVAE(hidden=hidden, beta=2.0, max_epochs=budget.vae_max_epochs, patience=7,
                          batch_size=budget.vae_batch, random_state=rng_seed, n_threads=n_jobs)
            vae.fit(X.astype(np.float32), on_epoch=lambda e, r: st.note(f"epoch {e} val_recon {r['val_recon']:.2f}"))
            Z = vae.transform(X)
            grid = np.linspace(-2.5, 2.5, 9)
            trav = {ax: vae.decode(np.stack([grid if i == ax else np.zeros_like(grid) for i in range(2)], 1))
                    for ax in range(2)}
            # |corr| of each latent axis with W (the paper: W ordered along one axis)
            corr = [float(abs(np.corrcoef(Z[:, i], lab["W"])[0, 1])) for i in range(2)]
            vaes[key] = vae
            R[f"vae_{key}"] = {"Z": Z, "traversals": trav, "grid": grid, "history": vae.history_,
                               "best_epoch": vae.best_epoch_, "epochs": len(vae.history_),
                               "arch": [X.shape[1], *hidden, 2], "abs_corr_W": corr}

        # ---------------------------------------------------------------- P vs NP
        st.start("P vs NP")
        pv = {}
        for fs in ("pointwise", "polynomial"):
            st.note(fs)
            pv[fs] = classify.fit_evaluate(
                classify.make_rf_pipeline(budget.rf_trees, rng_seed, n_jobs), F[fs], y_pvnp, train, test,
                list(PVNP), cv_folds=budget.cv_folds,
                cv_pipe=classify.make_rf_pipeline(budget.aux_trees, rng_seed, n_jobs), seed=rng_seed,
                feature_names=names[fs])
        R["pvnp"] = pv

        st.start("pruning curves")
        R["pruning"] = {}
        for fs in ("pointwise", "polynomial"):
            R["pruning"][fs] = classify.pruning_curve(
                F[fs], y_pvnp, train, test, list(PVNP), pv[fs],
                lambda: classify.make_rf_pipeline(budget.aux_trees, rng_seed, n_jobs), names[fs],
                cv_folds=budget.prune_cv_folds, seed=rng_seed,
                on_step=lambda n, fs=fs: st.note(f"{fs}: {n} features"))

        st.start("Table I zoo")
        zoo = {}
        for name, model in classify.model_zoo(rng_seed, n_jobs, budget.rf_trees).items():
            if name == "Random forest":
                zoo[name] = {"f1_test": pv["pointwise"]["f1_test"], "n_train": int(len(train))}
                continue
            st.note(name)
            limit = budget.svm_max_train if "Kernel SVM" in name else (
                budget.knn_max_train if "neighbors" in name else None)
            tr = classify.subsample(train, y_pvnp, limit, rng_seed)
            res = classify.fit_evaluate(model, F["pointwise"], y_pvnp, tr, test, list(PVNP), cv_folds=0)
            zoo[name] = {"f1_test": res["f1_test"], "n_train": int(len(tr))}
        R["zoo"] = zoo

        st.start("3-class kernel")
        R["kernel3"] = {}
        for fs in ("pointwise", "polynomial"):
            st.note(fs)
            R["kernel3"][fs] = classify.fit_evaluate(
                classify.make_rf_pipeline(budget.rf_trees, rng_seed, n_jobs), F[fs], y_kernel, train, test,
                list(KERNELS), cv_folds=0, feature_names=names[fs])

        # ---------------------------------------------------------------- regression
        st.start("regression")
        reg: dict = {}
        for target in regress.TARGETS:
            y = lab[target]
            for subset in regress.SUBSETS:
                tr_s = regress.subset_indices(train, lab["is_power"], subset)
                te_s = regress.subset_indices(test, lab["is_power"], subset)
                for fs in ("pointwise", "polynomial"):
                    st.note(f"{target} / {subset} / {fs}")
                    trees = budget.rf_trees if (subset == "all" and fs == "pointwise") else budget.aux_trees
                    reg[(target, subset, fs)] = regress.fit_evaluate_regressor(
                        regress.make_rf_regressor(trees, rng_seed, n_jobs), F[fs], y, tr_s, te_s, names[fs])
        R["regression"] = reg

        st.start("W screening")
        R["wscreen"] = {}
        for fs in ("pointwise", "polynomial"):
            st.note(fs)
            W_hat = reg[("W", "all", fs)]["y_pred"]  # test rows, model trained on training rows only
            R["wscreen"][fs] = classify.w_screening(
                F[fs], y_pvnp, lab["W"], W_hat, train, test, list(PVNP),
                lambda: classify.make_rf_pipeline(budget.aux_trees, rng_seed, n_jobs))

        # ---------------------------------------------------------------- beyond the paper
        st.start("beyond the paper")
        X_all = np.hstack([F["pointwise"], F["polynomial"], Xlog.to_numpy()])
        names_all = names["pointwise"] + names["polynomial"] + [f"log{c}" for c in Xlog.columns]
        beyond = {"features": f"pointwise ({F['pointwise'].shape[1]}) + polynomial ({F['polynomial'].shape[1]}) "
                              f"+ polynomial of log10(|M|+1e-3) ({Xlog.shape[1]}) = {X_all.shape[1]}"}
        st.note("HGB P vs NP")
        beyond["pvnp"] = classify.fit_evaluate(
            classify.make_hgb_classifier(rng_seed, budget.hgb_max_iter), X_all, y_pvnp, train, test, list(PVNP),
            cv_folds=budget.hgb_cv_folds, seed=rng_seed, feature_names=names_all)
        st.note("HGB 3-class")
        beyond["kernel3"] = classify.fit_evaluate(
            classify.make_hgb_classifier(rng_seed, budget.hgb_max_iter), X_all, y_kernel, train, test,
            list(KERNELS), cv_folds=0, feature_names=names_all)
        beyond["regression"] = {}
        for target in regress.TARGETS:
            st.note(f"HGB {target}")
            beyond["regression"][target] = regress.fit_evaluate_regressor(
                regress.make_hgb_regressor(rng_seed, budget.hgb_max_iter), X_all, lab[target], train, test,
                names_all)
        R["beyond"] = beyond

        # ---------------------------------------------------------------- outputs
        st.start("report")
        R["stage_seconds"] = st.times
        models_info = save_models(out / "models", layout, R, vaes)
        R["models"] = models_info
        R["wall_seconds_before_report"] = round(time.perf_counter() - t_start, 1)
        metrics = report.build_metrics(R)
        report.write_report(out, R, metrics, Xn, lab, layout, ds.M)
    metrics["stage_seconds"] = st.times
    metrics["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, default=_json_default))
    return metrics


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_models(models_dir: Path, layout: FeatureLayout, R: dict, vaes: dict) -> dict:
    """Save the models `pyecho predict` uses (skops) and the VAE weights (npz), plus manifest.json.

    Saved: P vs NP and 3-class random forests, and the all-kernel regressors of W, L,
    alpha_xy, alpha_z, on pointwise and on polynomial features. Each file is written atomically.
    """
    from pyecho.learn.predict import MANIFEST, dump_model

    models_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for fs in ("pointwise", "polynomial"):
        for task, res, classes in (("pvnp", R["pvnp"][fs], list(PVNP)), ("kernel3", R["kernel3"][fs], list(KERNELS))):
            est = res["model"][-1]
            fname = f"{task}_rf_{fs}.skops"
            dump_model(est, models_dir / fname)
            entries[f"{task}_{fs}"] = {"file": fname, "task": task, "features": fs, "classes": classes,
                                       "estimator": type(est).__name__, "f1_test": res["f1_test"]}
        for target in regress.TARGETS:
            res = R["regression"][(target, "all", fs)]
            fname = f"reg_{target}_rf_{fs}.skops"
            dump_model(res["model"], models_dir / fname)
            entries[f"{target}_{fs}"] = {"file": fname, "task": "regression", "target": target, "features": fs,
                                         "estimator": type(res["model"]).__name__, "r2_test": res["r2_test"]}
    for key, vae in vaes.items():
        fname = f"vae_{key}.npz"
        with atomic_path(models_dir / fname) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **vae.state_arrays())
        entries[f"vae_{key}"] = {"file": fname, "task": "vae", "input": key,
                                 "arch": [vae.n_features_in_, *vae.hidden, vae.latent_dim], "beta": vae.beta}
    manifest = {"pyecho_version": pyecho.__version__, "layout": layout.to_dict(), "models": entries,
                "default_features": "pointwise", "seed": R["seed"],
                "units": {"W": "rad/us", "alpha_xy": "rad/us", "alpha_z": "rad/us", "L": "lattice spacings"}}
    with atomic_path(models_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return entries

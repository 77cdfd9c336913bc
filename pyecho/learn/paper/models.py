"""The paper's saved models: the random forests and VAE weights `pyecho learn` writes, and
`pyecho predict --model paper` (the |M| random forests on one echo, :func:`predict_file`).

Its kernel and range are decided as the headline model's are (one distribution, range first):
P where the P-vs-NP forest's p_power >= :data:`PVNP_THRESHOLD`; the kernel is then the power
law, else the likelier short-range kernel of the 3-class forest; the probabilities shown are that
one distribution (p_power, and the 3-class forest's short-range odds for the rest).

The models are stored with skops (no pickle). Loading checks the file's untrusted types against an
allowlist of scikit-learn / NumPy classes and refuses anything else. ``models/manifest.json``
holds the pyecho version, the feature layout and one entry per model, keyed
``{pvnp|kernel3|W|L|alpha_xy|alpha_z}_{pointwise|polynomial}`` and ``vae_{full|window}``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import skops.io as sio

import pyecho
from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError
from pyecho.learn.base import (FEATURE_SETS, RANGE_NP, RANGE_P, TARGET_UNITS, COUPLING_TARGETS, ByFeatureSet, FeatureSet,
                               Subset, Task)
from pyecho.learn.calibration.probability import KernelProbability
from pyecho.learn.models.targets import KERNEL_CLASSES
from pyecho.learn.paper.features import FeatureLayout

if TYPE_CHECKING:  # the stage modules import torch / imblearn, which prediction does not need
    from pyecho.learn.paper.classify import ClassifierResult
    from pyecho.learn.paper.regress import RegressionTable
    from pyecho.learn.paper.vae import VaeResult

MANIFEST = "manifest.json"
_TRUSTED_ROOTS = ("sklearn.", "numpy.")
#: the feature set `pyecho predict` uses unless told otherwise
DEFAULT_FEATURES = FeatureSet.POINTWISE
#: P where the P-vs-NP forest's p_power reaches this: its training rows are SMOTE-balanced, so
#: one half is the class-balanced threshold
PVNP_THRESHOLD = 0.5


def dump_model(model, path: Path) -> None:
    """Write ``model`` with skops, atomically."""
    with atomic_path(path) as tmp:
        sio.dump(model, tmp)


def load_model(path: str | Path):
    """Load a skops file, trusting only scikit-learn and NumPy types (anything else: ValueError)."""
    path = Path(path)
    untrusted = sio.get_untrusted_types(file=path)
    bad = [t for t in untrusted if not t.startswith(_TRUSTED_ROOTS)]
    if bad:
        raise InputFileError(f"{path.name} contains types that are not trusted: {', '.join(bad)}")
    return sio.load(path, trusted=untrusted)


@dataclass(frozen=True)
class SavedModel:
    """One file under ``models/``: its manifest key, file name and what it predicts."""

    key: str
    file: str
    task: str
    estimator: str


def _model_key(task: str, fs: FeatureSet) -> str:
    return f"{task}_{fs.value}"


def save_models(models_dir: Path, layout: FeatureLayout, pvnp: ByFeatureSet[ClassifierResult],
                kernel3: ByFeatureSet[ClassifierResult], regression: RegressionTable,
                vaes: tuple[VaeResult, ...], seed: int) -> tuple[SavedModel, ...]:
    """Save the models `pyecho predict` uses (skops) and the VAE weights (npz), plus manifest.json.

    Saved: the P-vs-NP and 3-class random forests and the all-kernel regressors of W, L,
    alpha_xy, alpha_z, on pointwise and on polynomial features. Each file is written atomically.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    saved, entries = [], {}
    for fs in FEATURE_SETS:
        for res in (pvnp[fs], kernel3[fs]):
            est = res.model[-1]  # the forest without the SMOTE step (prediction never resamples)
            key, fname = _model_key(res.task, fs), f"{res.task.value}_rf_{fs.value}.skops"
            dump_model(est, models_dir / fname)
            saved.append(SavedModel(key, fname, res.task, type(est).__name__))
            entries[key] = {"file": fname, "task": res.task.value, "features": fs.value, "classes": list(res.classes),
                            "estimator": type(est).__name__, "test_scores": asdict(res.scores)}
        for target in COUPLING_TARGETS:
            res = regression.get(target, Subset.ALL, fs)
            key, fname = _model_key(target, fs), f"reg_{target.value}_rf_{fs.value}.skops"
            dump_model(res.model, models_dir / fname)
            saved.append(SavedModel(key, fname, target, type(res.model).__name__))
            entries[key] = {"file": fname, "task": "regression", "target": target.value, "features": fs.value,
                            "estimator": type(res.model).__name__, "test_scores": asdict(res.scores)}
    for vae in vaes:
        key = f"vae_{vae.inputs.value}"
        fname = f"{key}.npz"
        with atomic_path(models_dir / fname) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **vae.model.state_arrays())
        saved.append(SavedModel(key, fname, "vae", "BetaVAE"))
        entries[key] = {"file": fname, "task": "vae", "input": vae.inputs.value, "arch": list(vae.arch),
                        "beta": vae.model.beta}
    manifest = {"pyecho_version": pyecho.__version__, "layout": layout.to_dict(), "models": entries,
                "default_features": DEFAULT_FEATURES.value, "seed": int(seed),
                "units": {t.value: u for t, u in TARGET_UNITS.items()}}
    with atomic_path(models_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return tuple(saved)


class EchoModels:
    """The fitted models of a `pyecho learn` run and their feature layout."""

    def __init__(self, model_dir: str | Path, features: str | None = None):
        d = Path(model_dir)
        if (d / "models" / MANIFEST).exists():
            d = d / "models"
        if not (d / MANIFEST).exists():
            raise InputFileError(f"{model_dir} holds no {MANIFEST}; point at a `pyecho learn` output directory")
        self.dir = d
        self.manifest = json.loads((d / MANIFEST).read_text())
        self.layout = FeatureLayout.from_dict(self.manifest["layout"])
        self.features = FeatureSet(features or self.manifest.get("default_features", DEFAULT_FEATURES))
        self._cache: dict = {}

    def model(self, task: str):
        """(fitted estimator, manifest entry) of ``task`` (a Task or Target value) on this feature set."""
        if task not in self._cache:
            entry = self.manifest["models"][_model_key(task, self.features)]
            self._cache[task] = (load_model(self.dir / entry["file"]), entry)
        return self._cache[task]

    def predict_series(self, M_grid: np.ndarray) -> dict:
        """Predict from one echo already on the model's time grid: array (T,), complex or |M|."""
        Xn = self.layout.normalise(np.atleast_2d(M_grid))
        X = self.layout.features(Xn)[self.features].to_numpy()
        out: dict = {"features": self.features.value}
        m, _ = self.model(Task.KERNEL3)
        kernel3 = dict(zip(map(str, m.classes_), m.predict_proba(X)[0]))
        m, _ = self.model(Task.PVNP)
        p_power = float(dict(zip(map(str, m.classes_), m.predict_proba(X)[0])).get(RANGE_P, 0.0))
        rule = KernelProbability.uncalibrated(PVNP_THRESHOLD)  # the headline's composition, uncalibrated
        proba = rule.probabilities([p_power], np.array([[kernel3.get(k, 0.0) for k in KERNEL_CLASSES]]))
        kernel, is_power = rule.decide(proba)
        out["kernel"] = str(kernel[0])
        out["kernel_probability"] = float(proba[0, KERNEL_CLASSES.index(out["kernel"])])
        out["kernel_probabilities"] = {k: float(v) for k, v in zip(KERNEL_CLASSES, proba[0])}
        out["range"] = RANGE_P if is_power[0] else RANGE_NP
        out["p_power"] = p_power
        out["p_power_threshold"] = PVNP_THRESHOLD
        for target in COUPLING_TARGETS:
            m, _ = self.model(target)
            out[target.value] = float(m.predict(X)[0])
        return out


def _check_finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise InputFileError(f"{name} contains NaN or infinite values")


def read_echo(path: str | Path, grid: np.ndarray, row: int = 0) -> np.ndarray:
    """Read one echo and resample it onto ``grid`` (µs) -> array (T,) of |M| (or complex on-grid).

    Accepted inputs:

    * CSV with a ``t_us`` column and either ``abs_M`` or ``re_M`` + ``im_M`` (the `pyecho echo`
      header ``t_us,re_M,im_M,abs_M`` works); resampled with ``np.interp``;
    * NPY: a 1-D complex or real array, or a (T, 2) array of (re, im), on the model's own grid;
    * a `pyecho sim` Parquet file (row ``row``), resampled from its own time grid.

    Raises InputFileError (one line) for NaNs, a time axis that does not cover the grid, a wrong
    shape or missing columns.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no such file: {path}")
    grid = np.asarray(grid, dtype=float)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 -- any unreadable file is one user error
            raise InputFileError(f"{path.name} is not a readable .npy array ({exc})") from None
        if a.ndim == 2 and a.shape[1] == 2 and not np.iscomplexobj(a):
            a = a[:, 0] + 1j * a[:, 1]
        if a.ndim != 1:
            raise InputFileError(f"{path.name} has shape {a.shape}; expected (T,) or (T, 2) with T = {len(grid)}")
        if a.shape[0] != len(grid):
            raise InputFileError(f"{path.name} has {a.shape[0]} samples; the model's grid has {len(grid)} "
                             "(save a CSV with t_us to resample)")
        if not np.issubdtype(a.dtype, np.number):
            raise InputFileError(f"{path.name} is not numeric")
        _check_finite(path.name, a)
        return np.abs(a)
    if suffix == ".csv":
        try:
            df = pl.read_csv(path, infer_schema_length=None)
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(f"{path.name} is not a readable CSV ({exc})") from None
        cols = set(df.columns)
        if "t_us" not in cols or not ({"abs_M"} <= cols or {"re_M", "im_M"} <= cols):
            raise InputFileError(f"{path.name} needs columns t_us and abs_M (or re_M and im_M); found {', '.join(df.columns)}")
        try:
            t = df["t_us"].cast(pl.Float64).to_numpy()
            if {"re_M", "im_M"} <= cols:
                y = np.abs(df["re_M"].cast(pl.Float64).to_numpy() + 1j * df["im_M"].cast(pl.Float64).to_numpy())
            else:
                y = np.abs(df["abs_M"].cast(pl.Float64).to_numpy())
        except Exception:  # noqa: BLE001
            raise InputFileError(f"{path.name}: t_us and M columns must be numeric") from None
        return _resample(path.name, t, y, grid)
    if suffix == ".parquet" or path.is_dir():
        from pyecho.data.store import load_dataset

        ds = load_dataset(path)
        if not 0 <= row < ds.M.shape[0]:
            raise InputFileError(f"row {row} out of range: {path.name} holds {ds.M.shape[0]} echoes")
        return _resample(path.name, np.asarray(ds.t_us, float), np.abs(ds.M[row]), grid)
    raise InputFileError(f"{path.name}: unsupported file type (use .csv, .npy or a pyecho .parquet)")


def _resample(name: str, t: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    _check_finite(f"{name} (t_us)", t)
    _check_finite(name, y)
    if t.ndim != 1 or len(t) < 2:
        raise InputFileError(f"{name} holds fewer than two samples")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if np.any(np.diff(t) <= 0):
        raise InputFileError(f"{name}: t_us has repeated values")
    tol = 0.5 * float(np.min(np.diff(grid))) if len(grid) > 1 else 0.0
    if t[0] > grid[0] + tol or t[-1] < grid[-1] - tol:
        raise InputFileError(
            f"{name}: time axis {t[0]:.2f}-{t[-1]:.2f} us does not cover the model's "
            f"{grid[0]:.2f}-{grid[-1]:.2f} us (normalisation uses the full series)"
        )
    return np.interp(grid, t, y)


def predict_file(model_dir: str | Path, echo_file: str | Path, row: int = 0, features: str | None = None) -> dict:
    """Load models from ``model_dir``, read ``echo_file``, return the prediction dictionary."""
    models = EchoModels(model_dir, features)
    series = read_echo(echo_file, np.asarray(models.layout.t_us), row=row)
    out = models.predict_series(series)
    out["file"] = str(echo_file)
    return out

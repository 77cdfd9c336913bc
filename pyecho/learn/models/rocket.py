"""A fast time-series model: MiniRocket (or MultiRocket) features + linear heads.

Input: complex records of every measurement of a protocol -> :class:`~pyecho.learn.models.inputs.InputView`
channels (phase/gain-referenced Re, Im, |M| of each measurement, dead samples dropped,
block-averaged in time) -> aeon's MiniRocket / MultiRocket transform of each measurement
(random dilated convolutions, proportion-of-positive-values pooling; fitted on the training
rows only; the kernels shared out equally between the measurements), or no transform
(``transform="none"``: the channels themselves, flattened -- the linear baseline) ->
standardised features ->

* kernel: multinomial logistic regression (class probabilities, so P vs NP is derived as
  p_power = P(power) like the network's, and a calibration stage can use them);
* every target (W, L, alpha_xy, alpha_z, and T2 on a log scale where the data have it): ridge
  regression with one penalty per target.

The logistic C and the ridge penalties are chosen on a stratified validation split carved from
the training rows (validation log-loss, per-target validation MSE), then the heads are refitted
on all training rows. The split is by *source*: fit() takes ``groups`` (e.g. the clean row each
noisy copy was made from), and a group's rows all land on one side, so no row is validated
against its own noisy copy. (Efficient leave-one-out ``RidgeCV`` decomposes the 12 000 x 10 000
feature matrix and did not finish in 10 minutes on one core; an lsqr fit takes seconds.)

aeon (not sktime) provides the transform: measured on the same input, the two gave the same
accuracy and transform times within this machine's run-to-run noise; aeon covers
univariate and multivariate input with one class and needs no extra packages here.

Saved as a directory: ``rocket.skops`` (the fitted transform, scaler and heads, loaded with
an allowlist: scikit-learn and NumPy types plus exactly the aeon transform classes below; no
pickle) and ``rocket.json`` (input view, options, class and target order, pyecho version).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skops.io as sio
from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket
from scipy.linalg import LinAlgWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from pyecho.atomic import atomic_path
from pyecho.learn.models.inputs import (
    KERNEL_CLASSES,
    EchoPredictions,
    EchoTargets,
    InputView,
    ModelFileError,
    NoisyRecords,
    as_noisy_records,
    check_fit_inputs,
    check_grid,
    model_header,
    read_model_config,
)
from pyecho.physics.protocol import RecordGrid

#: ``format`` of the JSON header of a saved model
ROCKET_FORMAT = "pyecho.rocket"
MODEL_FILE = "rocket.skops"
CONFIG_FILE = "rocket.json"
#: the transforms, by option value; "none": the view's channels, flattened, are the features
TRANSFORMS = {"minirocket": MiniRocket, "multirocket": MultiRocket, "none": None}
#: types a saved model may contain besides scikit-learn and NumPy ones
_TRUSTED_TYPES = tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in TRANSFORMS.values() if cls is not None)
_TRUSTED_ROOTS = ("sklearn.", "numpy.")
#: fewest kernels of a measurement's transform (MiniRocket's own minimum)
MIN_KERNELS = 84
#: candidate inverse L2 strengths of the logistic regression (standardised features)
DEFAULT_C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
#: rows of features converted to float64 at a time by the ridge path
_GRAM_ROWS = 2048
#: candidate ridge penalties (standardised features), one per decade
DEFAULT_RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 7))


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=2000)


def _ridge_validation_mse(F_fit: np.ndarray, Y_fit: np.ndarray, F_val: np.ndarray, Y_val: np.ndarray,
                          alphas) -> np.ndarray:
    """Validation MSE (alphas, targets) of ridge at every penalty, exactly, from one
    decomposition of the centred fit rows X (instead of one solve per penalty): the thin SVD of
    X when it has fewer rows than features (a few hundred rows of 10 000 features take a
    fraction of a second), else the eigendecomposition of XᵀX, built :data:`_GRAM_ROWS` rows at
    a time (features² memory, whatever the rows: 20 000 rows of 7 200 features would need
    2.2 GB of float64 for the SVD, 0.8 GB this way)."""
    mean_f, mean_y = F_fit.mean(axis=0, dtype=np.float64), Y_fit.mean(axis=0)
    Yc = Y_fit - mean_y
    if F_fit.shape[0] < F_fit.shape[1]:
        U, sv, Vt = np.linalg.svd((F_fit - mean_f).astype(np.float64), full_matrices=False)
        V, shrink = Vt.T, lambda a: sv / (sv ** 2 + a)
        XtY_in_V = U.T @ Yc  # (rank, targets), already scaled by sv: shrink carries sv / (sv² + a)
    else:
        G = np.zeros((F_fit.shape[1],) * 2)
        XtY = np.zeros((F_fit.shape[1], Yc.shape[1]))
        for i in range(0, F_fit.shape[0], _GRAM_ROWS):
            Xc = F_fit[i:i + _GRAM_ROWS].astype(np.float64) - mean_f
            G += Xc.T @ Xc
            XtY += Xc.T @ Yc[i:i + _GRAM_ROWS]
        ev, V = np.linalg.eigh(G)
        del G
        ev = np.clip(ev, 0.0, None)  # round-off below zero on a rank-deficient XᵀX
        XtY_in_V, shrink = V.T @ XtY, lambda a: 1.0 / (ev + a)
    P = np.concatenate([(F_val[i:i + _GRAM_ROWS].astype(np.float64) - mean_f) @ V
                        for i in range(0, F_val.shape[0], _GRAM_ROWS)])
    return np.array([(((P @ (shrink(a)[:, None] * XtY_in_V)) + mean_y - Y_val) ** 2).mean(axis=0) for a in alphas])


def group_split(kernel_index: np.ndarray, groups: np.ndarray, fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows (fit, validation): whole groups on each side (a clean row and its noisy copies share
    a group), stratified by each group's kernel."""
    unique, first = np.unique(groups, return_index=True)
    try:
        _, g_val = train_test_split(unique, test_size=fraction, random_state=seed, stratify=kernel_index[first])
    except ValueError as exc:
        raise ValueError(f"validation_fraction: cannot carve a stratified validation split ({exc})") from None
    in_val = np.isin(groups, g_val)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


@dataclass(frozen=True)
class LinearHeads:
    """Standardisation and linear heads on a feature matrix: multinomial logistic regression for
    the kernel, ridge for the targets (learning scale), with the penalties they were chosen with."""

    scaler: StandardScaler
    classifier: LogisticRegression
    regressor: Ridge
    targets: tuple[str, ...]
    C: float
    ridge_alpha: dict

    def predict(self, F: np.ndarray) -> EchoPredictions:
        Z = self.scaler.transform(F)
        # float32 features keep 12 000 x 10 000 in memory; the outputs are float64
        proba = self.classifier.predict_proba(Z).astype(np.float64)  # fit saw every class: 0, 1, 2
        proba /= proba.sum(axis=1, keepdims=True)
        Y = self.regressor.predict(Z).astype(np.float64).reshape(len(Z), -1)
        return EchoPredictions.from_learning_scale(proba, Y, self.targets)


def fit_linear_heads(F: np.ndarray, targets: EchoTargets, *, groups: np.ndarray | None = None,
                     C_grid=DEFAULT_C_GRID, ridge_alphas=DEFAULT_RIDGE_ALPHAS, validation_fraction: float = 0.2,
                     random_state: int = 0) -> LinearHeads:
    """Fit :class:`LinearHeads` on features F (B, n_features) and their targets.

    The logistic C (validation log-loss, each fit warm-started from the previous, weakest
    penalty last) and one ridge penalty per target (validation MSE) are chosen on a validation
    split by ``groups`` (:func:`group_split`); the heads are then refitted on every row.
    F is standardised in place (a float array of the caller's it no longer needs: its memory is
    the largest of the fit).
    """
    scaler = StandardScaler().fit(F)
    Z = scaler.transform(F, copy=False)
    k, Y = targets.kernel_index, targets.regression()
    fit, val = group_split(k, np.arange(len(k)) if groups is None else np.asarray(groups), validation_fraction,
                           random_state)
    path = _logistic(min(C_grid)).set_params(warm_start=True)
    grid = sorted(C_grid)
    losses = [log_loss(k[val], path.set_params(C=C).fit(Z[fit], k[fit]).predict_proba(Z[val]),
                       labels=range(len(KERNEL_CLASSES))) for C in grid]
    C = grid[int(np.argmin(losses))]
    mse = _ridge_validation_mse(Z[fit], Y[fit], Z[val], Y[val], ridge_alphas)  # (alphas, targets)
    alphas = np.asarray(ridge_alphas)[np.argmin(mse, axis=0)]
    with warnings.catch_warnings():
        # a weak penalty on more features than rows is ill-conditioned by design; the validation
        # MSE above (from the SVD, exact) is what chose it
        warnings.simplefilter("ignore", LinAlgWarning)
        regressor = Ridge(alpha=alphas, solver="cholesky").fit(Z, Y)
    return LinearHeads(scaler, _logistic(C).fit(Z, k), regressor, targets.targets, float(C),
                       {str(t): float(a) for t, a in zip(targets.targets, alphas)})


class RocketModel:
    """MiniRocket/MultiRocket features + logistic (kernel) and ridge (W, L, alpha's) heads.

    Parameters (keyword-only)
    ----------
    view : InputView -- channels and decimation of the input (default: Re, Im, |M|, decimate 2)
    transform : "minirocket" (default; ~10 000 features), "multirocket" (~50 000 features,
        four pooling operators, several times the transform time) or "none" (the A·C·T'
        view values themselves: logistic + ridge on the standardised series)
    n_kernels : kernels of the transform (MiniRocket rounds down to a multiple of 84; unused
        with "none")
    C_grid : candidate inverse L2 strengths of the logistic regression (> 0)
    ridge_alphas : candidate ridge penalties (> 0), one chosen per target
    validation_fraction : share of the training rows (stratified by kernel) on which C and the
        penalties are chosen, in (0, 0.9)
    n_jobs : threads of the transform (numba) and of the linear algebra (BLAS/OpenMP pools are
        limited to it during fit and predict: on a machine shared with other jobs, more threads
        than free cores made these fits tens of times slower)
    random_state : seed of the transform's kernels and biases and of the validation split

    Attributes after fit
    --------------------
    n_features_ : number of transform features
    C_ : the chosen logistic C
    ridge_alpha_ : dict target -> chosen penalty
    """

    def __init__(self, *, view: InputView = InputView(), transform: str = "minirocket", n_kernels: int = 10_000,
                 C_grid: tuple[float, ...] = DEFAULT_C_GRID, ridge_alphas: tuple[float, ...] = DEFAULT_RIDGE_ALPHAS,
                 validation_fraction: float = 0.2, n_jobs: int = 1, random_state: int = 0):
        if not isinstance(view, InputView):
            raise ValueError(f"view: got {type(view).__name__}; allowed: an InputView")
        if transform not in TRANSFORMS:
            raise ValueError(f"transform: got {transform!r}; allowed: {', '.join(TRANSFORMS)}")
        for name, value, lo in (("n_kernels", n_kernels, 1), ("n_jobs", n_jobs, 1), ("random_state", random_state, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"{name}: got {value!r}; allowed: an integer >= {lo}")
        grids = {}
        for name, grid in (("C_grid", C_grid), ("ridge_alphas", ridge_alphas)):
            try:
                values = tuple(float(v) for v in grid)
            except (TypeError, ValueError):
                values = ()
            if not values or not all(0 < v < np.inf for v in values):
                raise ValueError(f"{name}: got {grid!r}; allowed: one or more numbers > 0")
            grids[name] = values
        if isinstance(validation_fraction, bool) or not (isinstance(validation_fraction, (int, float))
                                                         and 0 < validation_fraction < 0.9):
            raise ValueError(f"validation_fraction: got {validation_fraction!r}; allowed: a number in (0, 0.9)")
        self.view = view
        self.transform_name = transform
        self.n_kernels = int(n_kernels)
        self.C_grid = grids["C_grid"]
        self.ridge_alphas = grids["ridge_alphas"]
        self.validation_fraction = float(validation_fraction)
        self.n_jobs = int(n_jobs)
        self.random_state = int(random_state)

    def _records(self, M) -> NoisyRecords:
        X = as_noisy_records(M)
        if hasattr(self, "heads_"):
            check_grid(X.records, self.grid_)
        return X

    def _raw_features(self, views: list[np.ndarray], transforms) -> np.ndarray:
        """Transform features of the view channels (one (B, C, T'_k) array per measurement), float32 (B, F)."""
        parts = [X.reshape(X.shape[0], -1) if tf is None else tf.transform(X) for X, tf in zip(views, transforms)]
        return np.concatenate([np.asarray(F, dtype=np.float32) for F in parts], axis=1)

    def fit(self, M, targets: EchoTargets, grid: RecordGrid, groups=None) -> "RocketModel":
        """Fit transform, scaler and heads on the records M of protocol ``grid`` and their targets.

        ``groups`` (B,), optional: rows of one group (a clean row and its noisy copies) stay on
        one side of the validation split that chooses the penalties.
        """
        R = check_fit_inputs(M, targets, grid)
        missing = sorted(set(KERNEL_CLASSES) - set(targets.kernel.tolist()))
        if missing:
            raise ValueError(f"targets: no training rows of kernel {', '.join(missing)}; every class needs some")
        groups = np.arange(len(targets)) if groups is None else np.asarray(groups)
        if groups.shape != (len(targets),):
            raise ValueError(f"groups: expected {len(targets)} values; got shape {groups.shape}")
        with threadpool_limits(limits=self.n_jobs):
            return self._fit(R, targets, grid, groups)

    def _fit(self, R: NoisyRecords, targets: EchoTargets, grid: RecordGrid, groups: np.ndarray
             ) -> "RocketModel":
        self.grid_ = grid
        views = self.view.transform(R, grid)
        make = TRANSFORMS[self.transform_name]
        per_measurement = max(MIN_KERNELS, self.n_kernels // len(views))
        self.transforms_ = [None if make is None else make(n_kernels=per_measurement, n_jobs=self.n_jobs,
                                                           random_state=self.random_state).fit(X) for X in views]
        F = self._raw_features(views, self.transforms_)
        self.heads_ = fit_linear_heads(F, targets, groups=groups, C_grid=self.C_grid, ridge_alphas=self.ridge_alphas,
                                       validation_fraction=self.validation_fraction, random_state=self.random_state)
        self.n_features_ = F.shape[1]
        return self

    @property
    def C_(self) -> float:
        return self.heads_.C

    @property
    def ridge_alpha_(self) -> dict:
        return self.heads_.ridge_alpha

    @property
    def targets_(self) -> tuple[str, ...]:
        return self.heads_.targets

    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise ValueError("RocketModel: not fitted; call fit() or RocketModel.load() first")

    def features(self, M) -> np.ndarray:
        """The transform's features of records M, before standardisation: float32 (B, n_features_)."""
        self._check_fitted()
        with threadpool_limits(limits=self.n_jobs):
            return self._raw_features(self.view.transform(self._records(M), self.grid_), self.transforms_)

    def predict(self, M) -> EchoPredictions:
        """Kernel probabilities and every target (its own units) for the records M."""
        F = self.features(M)
        with threadpool_limits(limits=self.n_jobs):
            return self.heads_.predict(F)

    def save(self, directory: str | Path) -> Path:
        """Write ``rocket.skops`` and ``rocket.json`` into ``directory`` (created); each atomically."""
        self._check_fitted()
        d = Path(directory)
        config = {**model_header(ROCKET_FORMAT), "view": self.view.to_dict(), "transform": self.transform_name,
                  "n_kernels": self.n_kernels, "C_grid": list(self.C_grid), "ridge_alphas": list(self.ridge_alphas),
                  "validation_fraction": self.validation_fraction, "C": self.C_,
                  "n_jobs": self.n_jobs, "random_state": self.random_state, "grid": self.grid_.to_dict(),
                  "targets": list(self.targets_), "n_features": self.n_features_, "ridge_alpha": self.ridge_alpha_}
        with atomic_path(d / MODEL_FILE) as tmp_model, atomic_path(d / CONFIG_FILE) as tmp_json:
            h = self.heads_
            sio.dump({"transform": self.transforms_, "scaler": h.scaler, "classifier": h.classifier,
                      "regressor": h.regressor}, tmp_model)
            tmp_json.write_text(json.dumps(config, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "RocketModel":
        """A fitted model from a directory written by :meth:`save`.

        Raises ModelFileError (one line naming the file) for a missing file, another pyecho
        version or format, or a model file holding a type outside the allowlist.
        """
        cfg_path, model_path, cfg = read_model_config(directory, CONFIG_FILE, MODEL_FILE, ROCKET_FORMAT,
                                                      "RocketModel.save")
        try:
            model = cls(view=InputView.from_dict(cfg["view"]), transform=cfg["transform"],
                        n_kernels=cfg["n_kernels"], C_grid=tuple(cfg["C_grid"]),
                        ridge_alphas=tuple(cfg["ridge_alphas"]), validation_fraction=cfg["validation_fraction"],
                        n_jobs=cfg["n_jobs"], random_state=cfg["random_state"])
            grid = RecordGrid.from_dict(cfg["grid"])
            targets = tuple(str(t) for t in cfg["targets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfg_path}: incomplete or invalid config ({exc!r})") from None
        try:
            untrusted = sio.get_untrusted_types(file=model_path)
        except Exception as exc:  # noqa: BLE001 -- any unreadable model file is one user error
            raise ModelFileError(f"{model_path}: not a readable skops file ({exc})") from None
        bad = [t for t in untrusted if not (t.startswith(_TRUSTED_ROOTS) or t in _TRUSTED_TYPES)]
        if bad:
            raise ModelFileError(f"{model_path}: contains types that are not trusted: {', '.join(bad)}")
        parts = sio.load(model_path, trusted=untrusted)
        if not isinstance(parts, dict) or set(parts) != {"transform", "scaler", "classifier", "regressor"}:
            raise ModelFileError(f"{model_path}: does not hold a RocketModel's parts")
        try:
            model.heads_ = LinearHeads(parts["scaler"], parts["classifier"], parts["regressor"], targets,
                                       float(cfg["C"]), dict(cfg["ridge_alpha"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfg_path}: incomplete or invalid config ({exc!r})") from None
        model.transforms_, model.grid_, model.n_features_ = parts["transform"], grid, cfg.get("n_features")
        return model

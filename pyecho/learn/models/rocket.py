"""A fast time-series model: MiniRocket (or MultiRocket) features + linear heads.

Input: complex records (B, T) or (B, A, T) -> :class:`~pyecho.learn.inputs.InputView`
channels (phase/gain-referenced Re, Im, |M| per angle, block-averaged in time) -> aeon's
MiniRocket / MultiRocket transform (random dilated convolutions, proportion-of-positive-values
pooling; fitted on the training rows only), or no transform (``transform="none"``: the
channels themselves, flattened -- the linear baseline) -> standardised features ->

* kernel: multinomial logistic regression (class probabilities, so P vs NP is derived as
  p_power = P(power) like the network's, and a calibration stage can use them);
* W, L, alpha_xy, alpha_z: ridge regression (iterative ``lsqr`` solver) with one penalty per
  target.

The logistic C and the ridge penalties are chosen on a stratified validation split carved from
the training rows (validation log-loss, per-target validation MSE), then the heads are refitted
on all training rows. (Efficient leave-one-out ``RidgeCV`` decomposes the 12 000 x 10 000
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
from pathlib import Path

import numpy as np
import skops.io as sio
from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from pyecho.atomic import atomic_path
from pyecho.learn.base import TARGETS
from pyecho.learn.inputs import (
    KERNEL_CLASSES,
    EchoPredictions,
    EchoTargets,
    InputView,
    ModelFileError,
    as_batch,
    model_header,
    read_model_config,
)

#: ``format`` of the JSON header of a saved model
ROCKET_FORMAT = "pyecho.rocket"
MODEL_FILE = "rocket.skops"
CONFIG_FILE = "rocket.json"
#: the transforms, by option value; "none": the view's channels, flattened, are the features
TRANSFORMS = {"minirocket": MiniRocket, "multirocket": MultiRocket, "none": None}
#: types a saved model may contain besides scikit-learn and NumPy ones
_TRUSTED_TYPES = tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in TRANSFORMS.values() if cls is not None)
_TRUSTED_ROOTS = ("sklearn.", "numpy.")
#: candidate inverse L2 strengths of the logistic regression (standardised features)
DEFAULT_C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
#: candidate ridge penalties (standardised features), one per decade
DEFAULT_RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 7))


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=2000)


def _ridge_validation_mse(F_fit: np.ndarray, Y_fit: np.ndarray, F_val: np.ndarray, Y_val: np.ndarray,
                          alphas) -> np.ndarray:
    """Validation MSE (alphas, targets) of ridge at every penalty, exactly, from one
    eigendecomposition of the fit rows' Gram matrix (instead of one solve per penalty)."""
    mean_f, mean_y = F_fit.mean(axis=0), Y_fit.mean(axis=0)
    A = (F_fit - mean_f).astype(np.float64)
    s, V = np.linalg.eigh(A.T @ A)
    b = V.T @ (A.T @ (Y_fit - mean_y))  # (features, targets) in the eigenbasis
    P = (F_val - mean_f).astype(np.float64) @ V
    return np.array([(((P @ (b / (s + a)[:, None])) + mean_y - Y_val) ** 2).mean(axis=0) for a in alphas])


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

    def _records(self, M) -> np.ndarray:
        X = as_batch(M)
        if hasattr(self, "parts_") and X.shape[1:] != self.record_shape_:
            raise ValueError(f"M: records of shape (A, T) = {X.shape[1:]}; this model was trained on "
                             f"{self.record_shape_} (angles, samples)")
        return X

    def _raw_features(self, X: np.ndarray, transform) -> np.ndarray:
        """Transform features of view channels X (B, C, T'), float32 (B, F)."""
        F = X.reshape(X.shape[0], -1) if transform is None else transform.transform(X)
        return np.asarray(F, dtype=np.float32)

    def _features(self, R: np.ndarray) -> np.ndarray:
        F = self._raw_features(self.view.transform(R), self.parts_["transform"])
        return self.parts_["scaler"].transform(F)

    def fit(self, M, targets: EchoTargets) -> "RocketModel":
        """Fit transform, scaler and heads on records M (B, T) or (B, A, T) and their targets."""
        if not isinstance(targets, EchoTargets):
            raise ValueError(f"targets: got {type(targets).__name__}; allowed: an EchoTargets")
        R = as_batch(M)
        if len(targets) != R.shape[0]:
            raise ValueError(f"targets: {len(targets)} rows for {R.shape[0]} records")
        missing = sorted(set(KERNEL_CLASSES) - set(targets.kernel.tolist()))
        if missing:
            raise ValueError(f"targets: no training rows of kernel {', '.join(missing)}; every class needs some")
        with threadpool_limits(limits=self.n_jobs):
            return self._fit(R, targets)

    def _fit(self, R: np.ndarray, targets: EchoTargets) -> "RocketModel":
        X = self.view.transform(R)
        make = TRANSFORMS[self.transform_name]
        tf = None if make is None else make(n_kernels=self.n_kernels, n_jobs=self.n_jobs,
                                            random_state=self.random_state).fit(X)
        F = self._raw_features(X, tf)
        scaler = StandardScaler().fit(F)
        F = scaler.transform(F)
        k, Y = targets.kernel_index, targets.regression()
        try:
            fit, val = train_test_split(np.arange(len(k)), test_size=self.validation_fraction,
                                        random_state=self.random_state, stratify=k)
        except ValueError as exc:
            raise ValueError(f"validation_fraction: cannot carve a stratified validation split ({exc})") from None
        classes = range(len(KERNEL_CLASSES))
        # weakest penalty last, each fit starting from the previous solution
        path = _logistic(self.C_grid[0]).set_params(warm_start=True)
        losses = []
        for C in sorted(self.C_grid):
            losses.append(log_loss(k[val], path.set_params(C=C).fit(F[fit], k[fit]).predict_proba(F[val]),
                                   labels=classes))
        self.C_ = sorted(self.C_grid)[int(np.argmin(losses))]
        mse = _ridge_validation_mse(F[fit], Y[fit], F[val], Y[val], self.ridge_alphas)  # (alphas, targets)
        alphas = np.asarray(self.ridge_alphas)[np.argmin(mse, axis=0)]
        self.parts_ = {"transform": tf, "scaler": scaler, "classifier": _logistic(self.C_).fit(F, k),
                       "regressor": Ridge(alpha=alphas, solver="cholesky").fit(F, Y)}
        self.record_shape_ = R.shape[1:]
        self.n_features_ = F.shape[1]
        self.ridge_alpha_ = {str(t): float(a) for t, a in zip(TARGETS, alphas)}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "parts_"):
            raise ValueError("RocketModel: not fitted; call fit() or RocketModel.load() first")

    def transform(self, M) -> np.ndarray:
        """Standardised transform features, float array (B, n_features_)."""
        self._check_fitted()
        with threadpool_limits(limits=self.n_jobs):
            return self._features(self._records(M))

    def predict(self, M) -> EchoPredictions:
        """Kernel probabilities and W, L, alpha_xy, alpha_z (original units) for records M."""
        F = self.transform(M)
        with threadpool_limits(limits=self.n_jobs):
            # float32 features keep 12 000 x 10 000 in memory; the outputs are float64
            proba = self.parts_["classifier"].predict_proba(F).astype(np.float64)  # fit saw every class: 0, 1, 2
            Y = self.parts_["regressor"].predict(F).astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        return EchoPredictions(kernel_proba=proba, **{t: Y[:, i] for i, t in enumerate(TARGETS)})

    def save(self, directory: str | Path) -> Path:
        """Write ``rocket.skops`` and ``rocket.json`` into ``directory`` (created); each atomically."""
        self._check_fitted()
        d = Path(directory)
        config = {**model_header(ROCKET_FORMAT), "view": self.view.to_dict(), "transform": self.transform_name,
                  "n_kernels": self.n_kernels, "C_grid": list(self.C_grid), "ridge_alphas": list(self.ridge_alphas),
                  "validation_fraction": self.validation_fraction, "C": self.C_,
                  "n_jobs": self.n_jobs, "random_state": self.random_state, "record_shape": list(self.record_shape_),
                  "n_features": self.n_features_, "ridge_alpha": self.ridge_alpha_}
        with atomic_path(d / MODEL_FILE) as tmp_model, atomic_path(d / CONFIG_FILE) as tmp_json:
            sio.dump(self.parts_, tmp_model)
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
            record_shape = tuple(int(v) for v in cfg["record_shape"])
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
        model.parts_, model.record_shape_ = parts, record_shape
        model.n_features_, model.C_, model.ridge_alpha_ = cfg.get("n_features"), cfg.get("C"), cfg.get("ridge_alpha")
        return model

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
against its own noisy copy. The features are made :data:`~pyecho.data.records.CHUNK_ROWS`
rows at a time and the heads fitted from blocks of them (:mod:`pyecho.learn.models.heads`), in
memory or, for a dataset larger than memory, in a scratch file (``feature_dir``); the transform
is fitted on at most :data:`TRANSFORM_FIT_ROWS` rows.

aeon (not sktime) provides the transform: measured on the same input, the two gave the same
accuracy and transform times within this machine's run-to-run noise; aeon covers
univariate and multivariate input with one class and needs no extra packages here.

Saved as a directory: ``rocket.skops`` (the fitted transforms and the heads' arrays, loaded
with an allowlist: NumPy types plus exactly the aeon transform classes below; no pickle) and
``rocket.json`` (input view, options, class and target order, pyecho version).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import skops.io as sio
from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket
from threadpoolctl import threadpool_limits

from pyecho.atomic import atomic_path
from pyecho.data.records import NoisyRecords, as_noisy_records, check_grid
from pyecho.learn.models.heads import DEFAULT_C_GRID, DEFAULT_RIDGE_ALPHAS, LinearHeads, fit_linear_heads
from pyecho.learn.models.inputs import InputView, check_fit_inputs
from pyecho.learn.models.model_files import ModelFileError, model_header, read_model_config
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets
from pyecho.learn.storage import BLOCK_ROWS, FeatureRows
from pyecho.physics.protocol import RecordGrid

#: ``format`` of the JSON header of a saved model
ROCKET_FORMAT = "pyecho.rocket"
MODEL_FILE = "rocket.skops"
CONFIG_FILE = "rocket.json"
#: the transforms, by option value; "none": the view's channels, flattened, are the features
TRANSFORMS = {"minirocket": MiniRocket, "multirocket": MultiRocket, "none": None}
#: types a saved model may contain besides NumPy ones
_TRUSTED_TYPES = tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in TRANSFORMS.values() if cls is not None)
_TRUSTED_ROOTS = ("numpy.",)
#: fewest kernels of a measurement's transform (MiniRocket's own minimum)
MIN_KERNELS = 84
#: a transform is fitted on at most this many rows, drawn at random: MiniRocket draws one row per
#: (dilation, kernel) pair for its biases, at most 84 x 32 = 2 688 of them
TRANSFORM_FIT_ROWS = 4096


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
    random_state : seed of the transform's kernels and biases, of the rows it is fitted on, and
        of the validation split
    feature_dir : where fit() keeps the training rows' features: None (memory), or a directory
        for an unlinked scratch file (float32, rows x features; for datasets larger than memory)

    Attributes after fit
    --------------------
    n_features_ : number of transform features
    C_ : the chosen logistic C
    ridge_alpha_ : dict target -> chosen penalty
    """

    def __init__(self, *, view: InputView = InputView(), transform: str = "minirocket", n_kernels: int = 10_000,
                 C_grid: tuple[float, ...] = DEFAULT_C_GRID, ridge_alphas: tuple[float, ...] = DEFAULT_RIDGE_ALPHAS,
                 validation_fraction: float = 0.2, n_jobs: int = 1, random_state: int = 0,
                 feature_dir: str | Path | None = None):
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
        self.feature_dir = None if feature_dir is None else Path(feature_dir)

    def _records(self, M) -> NoisyRecords:
        X = as_noisy_records(M)
        if hasattr(self, "heads_"):
            check_grid(X.records, self.grid_)
        return X

    def _raw_features(self, records, grid: RecordGrid) -> np.ndarray:
        """Transform features of a chunk of records, float32 (B, n_features)."""
        views = self.view.transform(records, grid)
        parts = [X.reshape(X.shape[0], -1) if tf is None else tf.transform(X) for X, tf in zip(views, self.transforms_)]
        return np.concatenate([np.asarray(F, dtype=np.float32) for F in parts], axis=1)

    def _feature_chunks(self, R: NoisyRecords):
        """(first row, features) of every chunk of rows of R."""
        for start, chunk in R.chunks():
            yield start, self._raw_features(chunk, self.grid_)

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
        make = TRANSFORMS[self.transform_name]
        per_measurement = max(MIN_KERNELS, self.n_kernels // len(grid.protocol))
        self.transforms_ = [None] * len(grid.protocol)
        if make is not None:
            rng = np.random.default_rng(self.random_state)
            sample = R if len(R) <= TRANSFORM_FIT_ROWS else R.take(np.sort(rng.choice(len(R), TRANSFORM_FIT_ROWS,
                                                                                         replace=False)))
            self.transforms_ = [make(n_kernels=per_measurement, n_jobs=self.n_jobs, random_state=self.random_state).fit(X)
                                for X in self.view.transform(sample, grid)]
        F = FeatureRows.from_blocks(len(R), self._feature_chunks(R), directory=self.feature_dir)
        try:
            self.heads_ = fit_linear_heads(F, targets, groups=groups, C_grid=self.C_grid,
                                           ridge_alphas=self.ridge_alphas,
                                           validation_fraction=self.validation_fraction,
                                           random_state=self.random_state)
        finally:
            F.close()
        self.n_features_ = F.n_features
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
        R = self._records(M)
        with threadpool_limits(limits=self.n_jobs):
            return self._features(R)

    def _features(self, R: NoisyRecords) -> np.ndarray:
        return np.concatenate([F for _, F in self._feature_chunks(R)])

    def predict(self, M) -> EchoPredictions:
        """Kernel probabilities and every target (its own units) for the records M, in blocks of
        :data:`~pyecho.learn.storage.BLOCK_ROWS` rows (the same rows' products whatever the
        chunks their features were made in, so the predictions do not depend on them)."""
        self._check_fitted()
        R = self._records(M)
        with threadpool_limits(limits=self.n_jobs):
            parts = [self.heads_.outputs(self._features(block)) for block in R.blocks(BLOCK_ROWS)]
        return EchoPredictions.from_learning_scale(np.concatenate([p for p, _ in parts]),
                                                   np.concatenate([y for _, y in parts]), self.targets_)

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
            sio.dump({"transform": self.transforms_, "heads": self.heads_.arrays()}, tmp_model)
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
        if (not isinstance(parts, dict) or set(parts) != {"transform", "heads"} or not isinstance(parts["heads"], dict)
                or set(parts["heads"]) != set(LinearHeads.ARRAYS)):
            raise ModelFileError(f"{model_path}: does not hold a RocketModel's parts")
        try:
            model.heads_ = LinearHeads(**parts["heads"], targets=targets, C=float(cfg["C"]),
                                       ridge_alpha=dict(cfg["ridge_alpha"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfg_path}: incomplete or invalid config ({exc!r})") from None
        model.transforms_, model.grid_, model.n_features_ = parts["transform"], grid, cfg.get("n_features")
        return model

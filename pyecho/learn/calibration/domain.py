"""Out-of-domain warning: an echo unlike the training data is flagged, not silently predicted.

A :class:`DomainGuard` is fitted beside a model and checks every echo it is asked to predict:

* **the protocol** -- the measurements (sequence, angle, τ) and the step must be the model's
  (an echo on another grid is not the signal the model learned; no resampling hides that);
* **the feature space** -- the echo's features (whatever the model is invariant to, the guard
  must be too: the phase/gain-referenced records, flattened to (B, F)) are standardised and
  projected on the training rows' principal components (fitted on at most :data:`PCA_MAX_ROWS`
  of them; every row is projected a block at a time), whitened, plus one coordinate for
  what the components do not explain (the standardised PCA reconstruction error: white
  noise, for one, mostly lands there). A feature without spread over the training rows (the
  reference window itself, which is 1 + 0i by construction) is dropped, and every scale has a
  floor: otherwise the round-off of a receiver phase (1e-17) would count as hundreds of
  standard deviations. The statistic is the mean distance to the k nearest training rows in
  that space. Its threshold is the ``percentile`` (99th by default) of the same statistic over
  *calibration* rows, held-out rows drawn (and noised) like the training rows, **per SNR band**
  (the bands of the intervals, by each record's estimated SNR): noise moves every record away
  from the clean ones, so one threshold would flag noisy in-domain records and miss clean
  out-of-domain ones. Not over the training rows themselves: each is its own nearest neighbour
  (distance 0) and the components were fitted to them. The threshold is the calibration rows'
  ⌈(n + 1) p⌉-th smallest value in the band, so an exchangeable new in-domain echo is flagged
  with probability at most 1 - p;
* **the predictions** -- a predicted W, L, α_xy or α_z outside the trained label window
  (widened by ``label_margin`` of its span) is outside what the model has seen.

Fit it on the features of the rows the model was fitted on: a model trained on noise-augmented
copies needs a guard fitted (and calibrated) on equally augmented rows, else every noisy echo
is flagged -- a guard fitted on clean simulated echoes flagged 97 % of the quick preset's
echoes at SNR 200.

:meth:`DomainGuard.check` returns one frozen :class:`DomainCheck` per echo: ``in_domain`` and
short ``reasons``. :meth:`DomainGuard.save` writes JSON (grid, windows, threshold, settings)
plus an .npz of the arrays (no pickle).
"""
from __future__ import annotations

import json
import math
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError
from pyecho.learn.calibration.conformal import (SNR_BAND_EDGES, merged_band_edges, conformal_rank, min_calibration_rows,
                                                snr_band)
from pyecho.learn.storage import BLOCK_ROWS, FeatureRows, blockwise_mean_std
from pyecho.physics.protocol import RecordGrid

#: the principal axes are fitted on at most this many training rows, drawn at random (seed 0):
#: 16 axes of a few thousand features are settled long before, and the rows' features are
#: then never copied whole (every training row is still projected and a reference)
PCA_MAX_ROWS = 8192
#: defaults: principal components kept, neighbours averaged, threshold percentile
DEFAULT_COMPONENTS = 16
DEFAULT_NEIGHBOURS = 5
DEFAULT_PERCENTILE = 99.0
#: a prediction may exceed the trained label window by this fraction of its span: a good
#: regressor's estimate of an echo at the window's edge scatters past it by its own error
DEFAULT_LABEL_MARGIN = 0.05
#: a feature whose training spread is below this fraction of the median feature's is dropped,
#: and no scale is taken smaller than this fraction of the median (the phase round-off floor)
SCALE_FLOOR = 1e-6
#: version of the JSON/.npz layout written by :meth:`DomainGuard.save`
FORMAT_VERSION = 2
#: the arrays of the .npz file
_ARRAYS = ("kept_features", "feature_mean", "feature_scale", "components", "component_scale", "reference")


def _number(name: str, value, lo: float, hi: float = math.inf, *, integer: bool = False, open_lo: bool = False):
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type or not (value > lo if open_lo else value >= lo) or not value <= hi:
        kind = "an integer" if integer else "a number"
        bound = f"> {lo}" if open_lo else f">= {lo}"
        raise ValueError(f"{name}: got {value!r}; allowed: {kind} {bound}" + (f" and <= {hi}" if hi < math.inf else ""))
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class LabelWindow:
    """The range of one target over the training rows (target units)."""

    target: str
    lo: float
    hi: float


@dataclass(frozen=True)
class DomainCheck:
    """One echo's verdict.

    Attributes
    ----------
    in_domain : True when nothing below was found
    reasons : short human-readable reasons, e.g. "feature distance 3.2 > 99th pct 1.9"
    distance : the feature-space statistic (NaN when the grid did not match)
    """

    in_domain: bool
    reasons: tuple[str, ...]
    distance: float


@dataclass(frozen=True, eq=False)
class DomainGuard:
    """Flags echoes unlike the training data; build it with :func:`fit_domain_guard`.

    Attributes
    ----------
    grid : the model's :class:`~pyecho.physics.protocol.RecordGrid`
    windows : the trained :class:`LabelWindow` of every target
    n_features_in : F, features per record given to the guard
    kept_features : int array (F',) -- the input features used (those with spread)
    feature_mean, feature_scale : arrays (F',) -- standardisation of the kept features
    components : array (K, F') -- principal axes of the standardised training features
    component_scale : array (K,) -- standard deviation of each principal score (whitening)
    residual_scale : standard deviation of the training rows' reconstruction error
    reference : array (N, K + 1) -- the training rows in the guard's space
    k : neighbours averaged
    percentile : the thresholds' percentile (e.g. 99)
    band_edges : SNR band edges (estimated SNR) of the thresholds
    thresholds : that percentile of the calibration rows' statistic, one per SNR band
    label_margin : allowed excess over a label window, as a fraction of its span
    """

    grid: RecordGrid
    windows: tuple[LabelWindow, ...]
    n_features_in: int
    kept_features: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    components: np.ndarray
    component_scale: np.ndarray
    residual_scale: float
    reference: np.ndarray
    k: int
    percentile: float
    band_edges: tuple[float, ...]
    thresholds: tuple[float, ...]
    label_margin: float = DEFAULT_LABEL_MARGIN
    _nn: NearestNeighbors = field(init=False, repr=False)

    def __post_init__(self) -> None:
        F = self.feature_mean.shape[0]
        K = self.components.shape[0]
        shapes = {"kept_features": (F,), "feature_mean": (F,), "feature_scale": (F,), "components": (K, F),
                  "component_scale": (K,), "reference": (self.reference.shape[0], K + 1)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected {shape}")
        if not 1 <= self.k <= self.reference.shape[0]:
            raise ValueError(f"k: got {self.k}; allowed: 1 .. {self.reference.shape[0]} (training rows)")
        if len(self.thresholds) != len(self.band_edges) + 1:
            raise ValueError(f"thresholds: {len(self.thresholds)} for {len(self.band_edges) + 1} SNR bands")
        object.__setattr__(self, "_nn", NearestNeighbors(n_neighbors=self.k).fit(self.reference))

    def embed(self, X) -> np.ndarray:
        """Features (B, F) -> the guard's space (B, K + 1): whitened PCA scores, scaled residual."""
        X = _float_array(X)
        if len(X.shape) != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(f"features: expected shape (B, {self.n_features_in}); got {X.shape}")
        scores, resid = _project(X, self.kept_features, self.feature_mean, self.feature_scale, self.components,
                                 "features")
        return np.column_stack([scores / self.component_scale, resid / self.residual_scale])

    def distance(self, X) -> np.ndarray:
        """Mean distance of each row of features (B, F) to its k nearest training rows, (B,)."""
        d, _ = self._nn.kneighbors(self.embed(X))
        return d.mean(axis=1)

    def threshold(self, snr) -> np.ndarray:
        """The threshold of records with estimated SNRs ``snr`` (B,)."""
        return np.asarray(self.thresholds)[snr_band(snr, self.band_edges)]

    def check(self, X, grid: RecordGrid, snr, predicted: Mapping[str, np.ndarray] | None = None
              ) -> tuple[DomainCheck, ...]:
        """One :class:`DomainCheck` per echo.

        Parameters
        ----------
        X : array (B, F) -- the echoes' features, computed exactly as for the training rows
        grid : the grid the echoes were recorded on
        snr : array (B,) -- each echo's estimated SNR (its threshold's band)
        predicted : optional target name -> array (B,) of the model's predictions
        """
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"features: expected shape (B, F); got {X.shape}")
        B = X.shape[0]
        unknown = [t for t in (predicted or {}) if t not in {w.target for w in self.windows}]
        if unknown:
            raise ValueError(f"predicted: no trained window for {unknown}; have {[w.target for w in self.windows]}")
        grid_reasons = self.grid.mismatches(grid)
        # features from another grid mean nothing here, and may not even have the right length
        dist = np.full(B, np.nan) if grid_reasons else self.distance(X)
        limit = self.threshold(snr)
        reasons: list[list[str]] = [list(grid_reasons) for _ in range(B)]
        pct = f"{self.percentile:g}th pct"
        for i in np.flatnonzero(dist > limit):
            reasons[i].append(f"feature distance {dist[i]:.3g} > {pct} {limit[i]:.3g} at its SNR")
        for target, values in (predicted or {}).items():
            w = self.window(target)
            v = np.asarray(values, dtype=np.float64)
            if v.shape != (B,):
                raise ValueError(f"predicted {target}: expected shape ({B},); got {v.shape}")
            slack = self.label_margin * (w.hi - w.lo)
            for i in np.flatnonzero(~((v >= w.lo - slack) & (v <= w.hi + slack))):
                reasons[i].append(f"predicted {target} {v[i]:.3g} outside trained [{w.lo:.3g}, {w.hi:.3g}]")
        return tuple(DomainCheck(in_domain=not r, reasons=tuple(r), distance=float(d)) for r, d in zip(reasons, dist))

    def window(self, target: str) -> LabelWindow:
        for w in self.windows:
            if w.target == target:
                return w
        raise KeyError(f"no trained window for {target!r}; have {[w.target for w in self.windows]}")

    # ----------------------------------------------------------------------- files
    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``path`` (JSON, ending .json) and its sibling .npz (arrays), atomically."""
        path = Path(path)
        if path.suffix != ".json":
            raise ValueError(f"path: got {path}; allowed: a file name ending in .json")
        npz = path.with_suffix(".npz")
        meta = {"format_version": FORMAT_VERSION, "arrays": npz.name, "grid": self.grid.to_dict(),
                "windows": [{"target": w.target, "lo": w.lo, "hi": w.hi} for w in self.windows],
                "n_features_in": self.n_features_in, "residual_scale": self.residual_scale, "k": self.k,
                "percentile": self.percentile, "band_edges": list(self.band_edges), "thresholds": list(self.thresholds),
                "label_margin": self.label_margin}
        # both are written before either is renamed into place: a failure leaves the old pair
        with atomic_path(npz) as tmp_npz, atomic_path(path) as tmp_json:
            with open(tmp_npz, "wb") as f:
                np.savez(f, **{name: getattr(self, name) for name in _ARRAYS})
            tmp_json.write_text(json.dumps(meta, indent=1))
        return path, npz

    @classmethod
    def load(cls, path: str | Path) -> "DomainGuard":
        """Read what :meth:`save` wrote; InputFileError names the file and what is wrong."""
        path = Path(path)
        try:
            meta = json.loads(path.read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {meta.get('format_version')!r}; this pyecho reads {FORMAT_VERSION}")
            npz = path.with_name(meta["arrays"])
            with np.load(npz, allow_pickle=False) as z:
                arrays = {name: z[name] for name in _ARRAYS}
            return cls(grid=RecordGrid.from_dict(meta["grid"]),
                       windows=tuple(LabelWindow(**w) for w in meta["windows"]), n_features_in=meta["n_features_in"],
                       residual_scale=meta["residual_scale"], k=meta["k"], percentile=meta["percentile"],
                       band_edges=tuple(meta["band_edges"]), thresholds=tuple(meta["thresholds"]),
                       label_margin=meta["label_margin"], **arrays)
        except FileNotFoundError as exc:
            raise InputFileError(f"{path}: domain guard incomplete ({exc.filename} is missing)") from None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise InputFileError(f"{path}: not a pyecho domain guard ({exc})") from None


def _float_array(X) -> np.ndarray | FeatureRows:
    """X as it is when :class:`~pyecho.learn.storage.FeatureRows` or a float32/float64 array (no copy
    of a large feature matrix), else float64."""
    if isinstance(X, FeatureRows) or isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64):
        return X
    return np.asarray(X, dtype=np.float64)


def _blocks(X: np.ndarray | FeatureRows):
    """The rows of X, :data:`~pyecho.learn.storage.BLOCK_ROWS` at a time."""
    if isinstance(X, FeatureRows):
        return (block for _, block in X.blocks(BLOCK_ROWS))
    return (X[i:i + BLOCK_ROWS] for i in range(0, len(X), BLOCK_ROWS))


def _project(X: np.ndarray | FeatureRows, kept: np.ndarray, mean: np.ndarray, scale: np.ndarray,
             components: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(PCA scores (B, K), reconstruction error (B,)) of the standardised kept features of X
    (B, F), a block of rows at a time (:func:`_blocks`); ValueError naming ``name`` for a NaN or inf."""
    scores, resid = [], []
    for rows in _blocks(X):
        block = rows.astype(np.float64)
        if not np.all(np.isfinite(block)):
            raise ValueError(f"{name}: contain NaN or infinite values")
        Z = (block[:, kept] - mean) / scale
        s = Z @ components.T
        scores.append(s)
        resid.append(np.linalg.norm(Z - s @ components, axis=1))
    return (np.concatenate(scores) if scores else np.empty((0, len(components))),
            np.concatenate(resid) if resid else np.empty(0))


def fit_domain_guard(
    X_train,
    X_calibration,
    snr_calibration,
    grid: RecordGrid,
    labels: Mapping[str, np.ndarray],
    *,
    n_components: int = DEFAULT_COMPONENTS,
    k: int = DEFAULT_NEIGHBOURS,
    percentile: float = DEFAULT_PERCENTILE,
    band_edges=SNR_BAND_EDGES,
    label_margin: float = DEFAULT_LABEL_MARGIN,
) -> DomainGuard:
    """Fit a :class:`DomainGuard`.

    Parameters
    ----------
    X_train : array or :class:`~pyecho.learn.storage.FeatureRows` (N, F) -- features of the model's
        training rows (the reference set)
    X_calibration : array (M, F) -- features of held-out rows drawn and noised like the training
        rows (disjoint from them)
    snr_calibration : array (M,) -- their estimated SNRs (the bands of the thresholds; a band
        with too few rows for the percentile joins its noisier neighbour)
    grid : the training records' :class:`~pyecho.physics.protocol.RecordGrid`
    labels : target name -> array (N,) of the training rows' labels (the trained windows)
    n_components : principal components kept (at most min(N, F) - 1; fewer are kept if needed)
    k : neighbours averaged (1 <= k <= N)
    percentile : threshold percentile over the calibration rows, in (0, 100)
    label_margin : allowed excess over a label window, fraction of its span (>= 0)
    """
    X_train, X_cal = _float_array(X_train), _float_array(X_calibration)
    if len(X_train.shape) != 2 or len(X_cal.shape) != 2 or X_train.shape[1] != X_cal.shape[1]:
        raise ValueError(f"X_train {X_train.shape} and X_calibration {X_cal.shape}: need 2-D arrays with the same columns")
    for name, X in (("X_train", X_train), ("X_calibration", X_cal)):
        if not all(np.isfinite(block).all() for block in _blocks(X)):
            raise ValueError(f"{name}: contains NaN or infinite values")
    N, F = X_train.shape
    snr_cal = np.asarray(snr_calibration, dtype=np.float64)
    if snr_cal.shape != (X_cal.shape[0],):
        raise ValueError(f"snr_calibration: expected {X_cal.shape[0]} values; got shape {snr_cal.shape}")
    n_components = _number("n_components", n_components, 1, integer=True)
    k = _number("k", k, 1, N, integer=True)
    percentile = _number("percentile", percentile, 0, 100, open_lo=True)
    if percentile == 100:
        raise ValueError("percentile: got 100; allowed: a number > 0 and < 100")
    level = Fraction(str(percentile)) / 100  # exact: 99.9 / 100 in floating point is 0.9990000000000001
    need = min_calibration_rows(level)
    if X_cal.shape[0] < need:
        raise ValueError(f"X_calibration: {X_cal.shape[0]} rows are too few for the {percentile:g}th percentile; "
                         f"need {need} or more")
    label_margin = _number("label_margin", label_margin, 0)
    windows = []
    for target, y in labels.items():
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (N,) or not np.all(np.isfinite(y)):
            raise ValueError(f"labels[{target!r}]: expected {N} finite values (one per training row); got shape {y.shape}")
        windows.append(LabelWindow(str(target), float(y.min()), float(y.max())))

    _, mean_all, spread = blockwise_mean_std(_blocks(X_train))
    floor = SCALE_FLOOR * float(np.median(spread))
    kept = np.flatnonzero(spread > floor)  # a feature without spread carries only round-off
    mean, scale = mean_all[kept], np.maximum(spread[kept], floor)
    rows = np.arange(N) if N <= PCA_MAX_ROWS else np.sort(np.random.default_rng(0).choice(N, PCA_MAX_ROWS,
                                                                                          replace=False))
    Z = ((X_train.take(rows) if isinstance(X_train, FeatureRows) else X_train[rows])[:, kept].astype(np.float64)
         - mean) / scale
    pca = PCA(n_components=min(n_components, len(rows) - 1, len(kept)), svd_solver="randomized",
              random_state=0).fit(Z)
    del Z
    components = pca.components_
    # scores of centred Z: Z has zero mean over the training rows, so pca.mean_ is ~0 and dropped
    scores, resid = _project(X_train, kept, mean, scale, components, "X_train")
    component_scale = scores.std(axis=0)
    component_scale = np.where(component_scale > 0, component_scale, 1.0)
    residual_scale = float(resid.std()) if resid.std() > 0 else 1.0
    edges = merged_band_edges(snr_cal, band_edges, need)
    guard_args = dict(grid=grid, windows=tuple(windows), n_features_in=F, kept_features=kept, feature_mean=mean, feature_scale=scale,
                      components=components, component_scale=component_scale, residual_scale=residual_scale,
                      k=k, percentile=percentile, band_edges=edges, label_margin=label_margin)
    reference = np.column_stack([scores / component_scale, resid / residual_scale])
    provisional = DomainGuard(reference=reference, thresholds=(math.inf,) * (len(edges) + 1), **guard_args)
    d_cal = provisional.distance(X_cal)
    bands = snr_band(snr_cal, edges)
    thresholds = tuple(float(np.sort(d_cal[bands == b])[conformal_rank(int(np.sum(bands == b)), level) - 1])
                       for b in range(len(edges) + 1))
    return DomainGuard(reference=reference, thresholds=thresholds, **guard_args)

"""Calibrated uncertainty for any fitted model: conformal intervals, temperature scaling, sets.

Everything here works from a model's *predictions* (plain NumPy arrays), so a linear model, a
torch network or anything else is calibrated the same way, after it has been fitted.

* **Intervals at the measurement's noise** -- Mondrian split-conformal prediction: on
  calibration rows (disjoint from the rows the model was fitted on and from the test rows), each
  row noised at an SNR of the training range (and clean), the scores |y - ŷ| (on the target's
  learning scale: log10 for T2) are grouped by the row's *estimated* SNR band
  (:data:`SNR_BAND_EDGES`; the SNR each record shows, :func:`~pyecho.data.records.estimate_noise`),
  and each band's conformal quantile q_b is the half-width of every interval ŷ ± q_b of a new
  record in that band. For rows exchangeable within a band the coverage is at least the level
  at every SNR, not only on average over the SNRs; a noisy record gets a wide interval, a clean
  one a narrow one. A band with too few calibration rows for the level is merged with the
  next noisier one.
* **The quantile** -- the ⌈(n + 1)·level⌉-th smallest of n scores, the rank computed in exact
  rational arithmetic (:func:`conformal_quantile`). crepes 0.9, used here before, computes it
  as ``int((1 - level) * (n + 1))`` in floating point, which at level 0.9 and n = 19, 29, 99
  takes one rank too many (the interval one score wider than the guarantee needs).
* **Probabilities** -- temperature scaling (scikit-learn :class:`~sklearn.calibration.CalibratedClassifierCV`,
  one parameter, so it cannot over-fit a few hundred rows as isotonic regression does), and
  conformal prediction sets (score 1 - p(true class)) with the same quantile; the kernel's one
  coherent distribution is in :mod:`pyecho.learn.calibration.probability`.
* :class:`ReliabilityDiagram` -- binned top-label confidence vs accuracy and the ECE, and
  :func:`plot_reliability` that draws it.

Results are frozen dataclasses; :class:`~pyecho.learn.calibration.saved.Calibration` bundles
them and saves them as JSON (no pickle); applying them needs only the new point predictions and
each record's estimated SNR.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from pyecho.learn.base import from_learning_scale, to_learning_scale

#: the default confidence level of intervals and prediction sets
DEFAULT_LEVEL = 0.9
#: the probability calibration used (see the module docstring)
TEMPERATURE = "temperature"
#: scikit-learn's temperature scaling turns probabilities into logits as log(p + LOG_EPS)
LOG_EPS = 1e-12
#: bins of the reliability diagram
DEFAULT_BINS = 10
#: version of the JSON layout written by :meth:`~pyecho.learn.calibration.saved.Calibration.save`
FORMAT_VERSION = 2
#: rows sum to 1 within this tolerance to count as class probabilities
PROBA_SUM_TOL = 1e-4
#: edges of the Mondrian SNR bands (estimated SNR): < 30, 30-100, 100-300, 300-1000, >= 1000
SNR_BAND_EDGES: tuple[float, ...] = (30.0, 100.0, 300.0, 1000.0)


# --------------------------------------------------------------------------- validation
def check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level: got {level!r}; allowed: a number strictly between 0 and 1 (e.g. 0.9)")
    return float(level)


def _vector(name: str, a, n: int | None = None) -> np.ndarray:
    """A finite float64 1-D array (of length n if given)."""
    a = np.asarray(a)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{name}: expected a real 1-D array; got {a.dtype} {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: has {a.shape[0]} rows; expected {n}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a.astype(np.float64)


def _snr(name: str, snr, n: int) -> np.ndarray:
    a = np.asarray(snr, dtype=np.float64)
    if a.shape != (n,) or np.any(np.isnan(a)) or np.any(a <= 0):
        raise ValueError(f"{name}: expected {n} SNRs > 0 (inf allowed); got shape {a.shape}")
    return a


def _classes(classes) -> tuple[str, ...]:
    c = tuple(str(v) for v in classes)
    if len(c) < 2 or len(set(c)) != len(c):
        raise ValueError(f"classes: got {list(c)}; allowed: two or more distinct names")
    return c


def check_probabilities(name: str, proba, n_classes: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"{name}: expected shape (B, {n_classes}); got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"{name}: probabilities must be finite and in [0, 1]")
    if np.any(np.abs(p.sum(axis=1) - 1) > PROBA_SUM_TOL):
        raise ValueError(f"{name}: rows must sum to 1 (class probabilities)")
    return p


def label_index(y, classes: tuple[str, ...], n: int) -> np.ndarray:
    y = np.asarray(y).astype(str)
    if y.shape != (n,):
        raise ValueError(f"y: expected {n} labels; got shape {y.shape}")
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise ValueError(f"y: labels {unknown} are not among the classes {list(classes)}")
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in y], dtype=np.int64)


# --------------------------------------------------------------------------- the quantile
def conformal_rank(n: int, level: float | Fraction) -> int:
    """⌈(n + 1)·level⌉, exactly (a float ``level`` read as the decimal it was written as)."""
    return math.ceil((n + 1) * (level if isinstance(level, Fraction) else Fraction(str(level))))


def min_calibration_rows(level: float) -> int:
    """Fewest scores for which :func:`conformal_quantile` is finite: rank <= n."""
    n = 1
    while conformal_rank(n, level) > n:
        n += 1
    return n


def conformal_quantile(scores, level: float) -> float:
    """The ⌈(n + 1)·level⌉-th smallest of the n ``scores`` (inf when that rank exceeds n)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    rank = conformal_rank(len(s), check_level(level))
    return float(s[rank - 1]) if rank <= len(s) else math.inf


def snr_band(snr, edges: Sequence[float]) -> np.ndarray:
    """Index of each SNR's band: 0 below edges[0], ..., len(edges) at or above edges[-1]."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(snr, dtype=float), side="right")


def merged_band_edges(snr: np.ndarray, edges: Sequence[float], need: int) -> tuple[float, ...]:
    """``edges`` with an edge removed wherever a band holds fewer than ``need`` rows (each
    such band joins its noisier neighbour; the noisiest joins the next cleaner one)."""
    edges = list(edges)
    while edges:
        counts = np.bincount(snr_band(snr, edges), minlength=len(edges) + 1)
        short = np.flatnonzero(counts < need)
        if short.size == 0:
            break
        b = int(short[-1])
        edges.pop(b - 1 if b > 0 else 0)
    return tuple(edges)


# --------------------------------------------------------------------------- regression
def _too_few(level: float, n: int, what: str) -> ValueError:
    return ValueError(f"level {level}: {n} calibration rows are too few for {what}; "
                      f"need {min_calibration_rows(level)} or more")


@dataclass(frozen=True)
class IntervalCalibration:
    """Mondrian split-conformal intervals of one target, one half-width per SNR band.

    Attributes
    ----------
    target : the target's name (W, L, alpha_xy, alpha_z, t2_us)
    level : the confidence level, e.g. 0.9
    band_edges : the SNR band edges kept (estimated SNR; see :func:`snr_band`)
    q : the conformal quantile of each band's scores: the half-width of its intervals, on the
        target's learning scale (log10 for T2: a factor 10^q either way)
    n_calibration : calibration rows per band
    """

    target: str
    level: float
    band_edges: tuple[float, ...]
    q: tuple[float, ...]
    n_calibration: tuple[int, ...]

    def half_width(self, snr) -> np.ndarray:
        """The half-width (learning scale) of the interval of records with estimated ``snr`` (B,)."""
        return np.asarray(self.q)[snr_band(snr, self.band_edges)]

    def interval(self, y_pred, snr) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), arrays (B,) in the target's units, for point predictions ``y_pred`` (B,) of
        records with estimated SNRs ``snr`` (B,)."""
        y = to_learning_scale(self.target, _vector(f"{self.target} predictions", y_pred))
        half = self.half_width(_snr("snr", snr, len(y)))
        return from_learning_scale(self.target, y - half), from_learning_scale(self.target, y + half)


def fit_interval(target: str, y_true, y_pred, snr, *, level: float = DEFAULT_LEVEL,
                 band_edges: Sequence[float] = SNR_BAND_EDGES) -> IntervalCalibration:
    """Calibrate one target's intervals on calibration rows.

    Parameters
    ----------
    target : the target's name
    y_true, y_pred : arrays (n,) -- true values and the fitted model's predictions on the
        calibration rows (target units)
    snr : array (n,) -- each calibration record's estimated SNR
    level : confidence level in (0, 1), default 0.9
    band_edges : SNR band edges; bands with too few rows for the level are merged

    Raises ValueError for mismatched lengths, NaNs, a bad level, or too few calibration rows.
    """
    level = check_level(level)
    y_true = _vector("y_true", y_true)
    y_pred = _vector("y_pred", y_pred, len(y_true))
    snr = _snr("snr", snr, len(y_true))
    need = min_calibration_rows(level)
    if len(y_true) < need:
        raise _too_few(level, len(y_true), f"{target} intervals")
    edges = merged_band_edges(snr, band_edges, need)
    scores = np.abs(to_learning_scale(target, y_true) - to_learning_scale(target, y_pred))
    bands = snr_band(snr, edges)
    q = tuple(conformal_quantile(scores[bands == b], level) for b in range(len(edges) + 1))
    return IntervalCalibration(target=str(target), level=level, band_edges=edges, q=q,
                               n_calibration=tuple(int(np.sum(bands == b)) for b in range(len(edges) + 1)))


@dataclass(frozen=True)
class CoverageReport:
    """Empirical coverage and mean width (learning scale) of one target's intervals on test rows
    at one nominal SNR (inf: clean), over the rows of ``group`` ("all", a kernel, a W tercile)."""

    target: str
    level: float
    snr: float
    group: str
    coverage: float
    mean_width: float
    n_test: int


def interval_coverage(calibration: IntervalCalibration, y_true, y_pred, snr_estimated, *, snr: float,
                      group: str = "all") -> CoverageReport:
    """Coverage (fraction of ``y_true`` inside [lo, hi]) and mean width on test rows (arrays (n,))."""
    lo, hi = calibration.interval(y_pred, snr_estimated)
    y = _vector("y_true", y_true, len(lo))
    width = to_learning_scale(calibration.target, hi) - to_learning_scale(calibration.target, lo)
    return CoverageReport(target=calibration.target, level=calibration.level, snr=float(snr), group=group,
                          coverage=float(np.mean((y >= lo) & (y <= hi))), mean_width=float(np.mean(width)),
                          n_test=len(y))


# --------------------------------------------------------------------------- classification
class _GivenProbabilities(ClassifierMixin, BaseEstimator):
    """Adapter for scikit-learn's calibration: its input X *is* the model's probabilities.

    Its classes are the column indices 0..C-1, so labels are passed as column indices and no
    re-ordering (scikit-learn sorts class names) can mix the columns up.
    """

    def __init__(self, n_classes: int = 2):
        self.n_classes = n_classes

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):
        return np.argmax(X, axis=1)


def temperature_scale(proba: np.ndarray, inverse_temperature: float) -> np.ndarray:
    """scikit-learn's temperature scaling: softmax(β log(p + eps)), rows of ``proba`` (B, C)."""
    return softmax(inverse_temperature * np.log(np.asarray(proba, dtype=np.float64) + LOG_EPS), axis=1)


def fit_temperature(proba, y_index) -> float:
    """β minimising the log-loss of temperature-scaled ``proba`` (B, C) on labels ``y_index``
    (column indices, (B,)); 1.0 where the rows hold a single class."""
    p = np.asarray(proba, dtype=np.float64)
    yi = np.asarray(y_index, dtype=np.int64)
    if np.unique(yi).size < 2:
        return 1.0
    adapter = FrozenEstimator(_GivenProbabilities(p.shape[1]).fit())
    cc = CalibratedClassifierCV(adapter, method=TEMPERATURE).fit(p, yi)
    return float(cc.calibrated_classifiers_[0].calibrators[0].beta_)


def fit_set_threshold(proba, y_index, level: float) -> float:
    """q of conformal prediction sets {class: 1 - p(class) <= q} from calibrated probabilities
    (B, C) and true column indices (B,); ValueError for too few rows."""
    p = np.asarray(proba, dtype=np.float64)
    yi = np.asarray(y_index, dtype=np.int64)
    q = conformal_quantile(1.0 - p[np.arange(len(p)), yi], level)
    if not math.isfinite(q):
        raise _too_few(level, len(p), "prediction sets")
    return q


@dataclass(frozen=True)
class SetReport:
    """Empirical coverage (true class inside the set) and mean set size on test rows."""

    task: str
    level: float
    snr: float
    coverage: float
    mean_set_size: float
    n_test: int


def set_coverage(task: str, sets: np.ndarray, y, classes: Sequence[str], *, level: float, snr: float) -> SetReport:
    """Coverage and mean size of prediction sets (bool (B, C)) against true class names (B,)."""
    classes = _classes(classes)
    yi = label_index(y, classes, len(sets))
    return SetReport(task=task, level=level, snr=float(snr), coverage=float(np.mean(sets[np.arange(len(sets)), yi])),
                     mean_set_size=float(sets.sum(axis=1).mean()), n_test=len(sets))


# --------------------------------------------------------------------------- reliability
@dataclass(frozen=True)
class ReliabilityDiagram:
    """Top-label reliability: per confidence bin, mean confidence vs accuracy.

    Attributes
    ----------
    task, label : what it shows (label e.g. "model" or "calibrated")
    bin_edges : n_bins + 1 equal-width edges on [0, 1]
    confidence, accuracy : per bin, the mean top probability and the fraction of rows whose
        top class is the true one (None for an empty bin, so the data stay valid JSON)
    count : rows per bin
    ece : expected calibration error Σ_b (n_b / n) |accuracy_b - confidence_b|
    """

    task: str
    label: str
    bin_edges: tuple[float, ...]
    confidence: tuple[float | None, ...]
    accuracy: tuple[float | None, ...]
    count: tuple[int, ...]
    ece: float


def reliability(task: str, label: str, classes: Sequence[str], proba, y, n_bins: int = DEFAULT_BINS) -> ReliabilityDiagram:
    """Reliability-diagram data of probabilities (B, C) against true class names (B,)."""
    classes = _classes(classes)
    p = check_probabilities("proba", proba, len(classes))
    yi = label_index(y, classes, len(p))
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins: got {n_bins!r}; allowed: an integer >= 1")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == yi).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)  # bins (lo, hi], first [0, hi]
    count = np.bincount(b, minlength=n_bins)
    filled = count > 0
    mean_conf = np.bincount(b, conf, n_bins)[filled] / count[filled]
    acc = np.bincount(b, correct, n_bins)[filled] / count[filled]
    ece = float(np.sum(count[filled] / len(p) * np.abs(acc - mean_conf)))
    return ReliabilityDiagram(task=str(task), label=str(label), bin_edges=tuple(edges.tolist()),
                              confidence=_with_gaps(mean_conf, filled), accuracy=_with_gaps(acc, filled),
                              count=tuple(int(c) for c in count), ece=ece)


def _with_gaps(values: np.ndarray, filled: np.ndarray) -> tuple[float | None, ...]:
    it = iter(values.tolist())
    return tuple(next(it) if f else None for f in filled)


def plot_reliability(diagrams: Sequence[ReliabilityDiagram], ax=None):
    """Draw reliability diagrams on one axes (a new figure if ``ax`` is None); returns the figure.

    Each diagram is a line of accuracy vs mean confidence over its non-empty bins, labelled
    with its ECE; the diagonal is perfect calibration.
    """
    import matplotlib.pyplot as plt  # only the report draws

    if not diagrams:
        raise ValueError("diagrams: need at least one ReliabilityDiagram")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfect calibration")
    for d in diagrams:
        c, a = np.array(d.confidence, dtype=float), np.array(d.accuracy, dtype=float)  # None -> NaN
        ok = np.array(d.count) > 0
        ax.plot(c[ok], a[ok], marker="o", ms=4, label=f"{d.task} {d.label} (ECE {d.ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="upper left")
    return ax.figure

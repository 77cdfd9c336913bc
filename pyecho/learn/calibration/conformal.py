"""Calibrated uncertainty for any fitted model: conformal intervals, calibrated probabilities, sets.

Everything here works from a model's *predictions* (plain NumPy arrays), so a random forest, a
torch network or anything else is calibrated the same way, after it has been fitted.

* **Regression** -- split conformal prediction (crepes :class:`~crepes.ConformalRegressor`):
  on calibration rows (disjoint from the rows the model was fitted on and from the test rows)
  the scores |y - ŷ| (or |y - ŷ| / σ with a difficulty σ, "normalised") give a quantile q, and
  a new prediction gets the interval ŷ ± q (or ŷ ± q σ). For exchangeable rows its coverage is
  at least the level, and at most level + 1/(n + 1) in expectation.
* **Classification** -- temperature scaling of the class probabilities (scikit-learn
  :class:`~sklearn.calibration.CalibratedClassifierCV`, one parameter, so it cannot over-fit a
  few hundred rows as isotonic regression does), then conformal prediction sets (crepes
  :class:`~crepes.ConformalClassifier`, score 1 - p(class)) at the same level. The two are
  fitted on disjoint halves of the calibration rows, so the sets' guarantee is exact.
* :class:`ReliabilityDiagram` -- binned top-label confidence vs accuracy and the ECE, and
  :func:`plot_reliability` that draws it.

Why crepes rather than MAPIE: measured on the quick preset (600 echoes, random forest on the
standardised |M| series, 10 train/calibration/test splits), both give identical intervals and
sets for the same score; crepes takes the residuals / probabilities directly, where MAPIE 1.6
needs a fitted scikit-learn estimator (an adapter around a torch model's outputs) and
re-predicts with it (~0.1 s per target against < 1 ms); and crepes' normalised intervals take
any difficulty σ, where MAPIE's residual-normalised score spends a quarter of the calibration
rows on fitting its own residual model (and gave wider intervals there).

Results are frozen dataclasses; :class:`Calibration` bundles them and saves them as JSON (no
pickle); applying them at predict time needs only the new point predictions (and σ if used).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from crepes import ConformalClassifier, ConformalRegressor
from crepes.extras import hinge
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError

#: the default confidence level of intervals and prediction sets
DEFAULT_LEVEL = 0.9
#: the probability calibration used (see the module docstring)
TEMPERATURE = "temperature"
#: scikit-learn's temperature scaling turns probabilities into logits as log(p + LOG_EPS)
LOG_EPS = 1e-12
#: bins of the reliability diagram
DEFAULT_BINS = 10
#: version of the JSON layout written by :meth:`Calibration.save`
FORMAT_VERSION = 1
#: rows sum to 1 within this tolerance to count as class probabilities
PROBA_SUM_TOL = 1e-4


# --------------------------------------------------------------------------- validation
def _check_level(level) -> float:
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


def _sigma(name: str, sigma, n: int) -> np.ndarray:
    s = _vector(name, sigma, n)
    if np.any(s <= 0):
        raise ValueError(f"{name}: difficulties must be > 0; got min {s.min():.3g}")
    return s


def _rows(name: str, rows) -> np.ndarray:
    r = np.asarray(rows)
    if r.ndim != 1 or not (r.size == 0 or np.issubdtype(r.dtype, np.integer)):
        raise ValueError(f"rows.{name}: expected a 1-D array of integer row indices; got {r.dtype} {r.shape}")
    if r.size == 0:
        raise ValueError(f"rows.{name}: is empty")
    if np.any(r < 0) or len(np.unique(r)) != len(r):
        raise ValueError(f"rows.{name}: row indices must be >= 0 and unique")
    return r.astype(np.int64)


def _classes(classes) -> tuple[str, ...]:
    c = tuple(str(v) for v in classes)
    if len(c) < 2 or len(set(c)) != len(c):
        raise ValueError(f"classes: got {list(c)}; allowed: two or more distinct names")
    return c


def _probabilities(name: str, proba, n_classes: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"{name}: expected shape (B, {n_classes}); got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"{name}: probabilities must be finite and in [0, 1]")
    if np.any(np.abs(p.sum(axis=1) - 1) > PROBA_SUM_TOL):
        raise ValueError(f"{name}: rows must sum to 1 (class probabilities)")
    return p


def _label_index(y, classes: tuple[str, ...], n: int) -> np.ndarray:
    y = np.asarray(y).astype(str)
    if y.shape != (n,):
        raise ValueError(f"y: expected {n} labels; got shape {y.shape}")
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise ValueError(f"y: labels {unknown} are not among the classes {list(classes)}")
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in y], dtype=np.int64)


# --------------------------------------------------------------------------- rows
@dataclass(frozen=True, eq=False)
class SplitRows:
    """Row indices of one dataset: the model's rows, the calibration rows, the test rows.

    ``train`` are *all* rows the model saw while being fitted (a validation part used for
    early stopping included): a calibration score on such a row would be optimistic.
    Construction checks that the three sets are disjoint (ValueError naming the shared rows).
    """

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        sets = {}
        for name in ("train", "calibration", "test"):
            r = _rows(name, getattr(self, name))
            object.__setattr__(self, name, r)
            sets[name] = set(r.tolist())
        for a, b in (("train", "calibration"), ("train", "test"), ("calibration", "test")):
            shared = sorted(sets[a] & sets[b])
            if shared:
                raise ValueError(f"rows: {len(shared)} rows are both {a} and {b} rows "
                                 f"(e.g. {shared[:5]}); calibration needs disjoint sets")


def split_rows(strata, calibration_size: float = 0.2, test_size: float = 0.2, seed: int = 0) -> SplitRows:
    """Stratified train / calibration / test split of ``range(len(strata))``.

    Parameters
    ----------
    strata : array (B,) -- labels to stratify on (e.g. the kernel)
    calibration_size, test_size : fractions of all rows (each > 0, together < 1)
    seed : random seed of the split
    """
    strata = np.asarray(strata)
    for name, v in (("calibration_size", calibration_size), ("test_size", test_size)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{name}: got {v!r}; allowed: a fraction strictly between 0 and 1")
    if calibration_size + test_size >= 1:
        raise ValueError(f"calibration_size + test_size: got {calibration_size + test_size}; allowed: < 1")
    idx = np.arange(len(strata))
    rest, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    train, cal = train_test_split(rest, test_size=calibration_size / (1 - test_size), random_state=seed,
                                  stratify=strata[rest])
    return SplitRows(train=np.sort(train), calibration=np.sort(cal), test=np.sort(test))


def _calibration_rows(rows: SplitRows, n: int) -> None:
    if not isinstance(rows, SplitRows):
        raise TypeError(f"rows: expected a SplitRows (train/calibration/test), got {type(rows).__name__}")
    if n != len(rows.calibration):
        raise ValueError(f"calibration arrays have {n} rows; rows.calibration has {len(rows.calibration)}")


def _too_few(level: float, n: int, what: str) -> ValueError:
    return ValueError(f"level {level}: {n} calibration rows are too few for {what}; "
                      f"need about 1/(1 - level) = {1 / (1 - level):.0f} or more")


# --------------------------------------------------------------------------- regression
@dataclass(frozen=True)
class IntervalCalibration:
    """Split-conformal prediction intervals of one regression target.

    Attributes
    ----------
    target : name of the target (W, L, alpha_xy, alpha_z)
    level : the confidence level, e.g. 0.9
    q : the conformal quantile of the calibration scores: the half-width of every interval
        (target units) or, when normalised, the factor of σ (dimensionless)
    n_calibration : calibration rows it came from
    difficulty : None for constant-width intervals ŷ ± q; else the name of the difficulty σ
        the intervals ŷ ± q σ scale with (e.g. "member_spread"), which :meth:`interval` needs
    """

    target: str
    level: float
    q: float
    n_calibration: int
    difficulty: str | None = None

    @property
    def method(self) -> str:
        return "split conformal" if self.difficulty is None else f"normalised split conformal ({self.difficulty})"

    def interval(self, y_pred, sigma=None) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), arrays (B,), for point predictions ``y_pred`` (B,) (and difficulties σ (B,))."""
        y = _vector(f"{self.target} predictions", y_pred)
        if self.difficulty is None:
            if sigma is not None:
                raise ValueError(f"{self.target}: these intervals are not normalised; pass no sigma")
            half = np.full_like(y, self.q)
        else:
            if sigma is None:
                raise ValueError(f"{self.target}: normalised intervals need sigma ({self.difficulty})")
            half = self.q * _sigma(f"{self.target} sigma", sigma, len(y))
        return y - half, y + half


def fit_interval(target: str, y_true, y_pred, rows: SplitRows, *, level: float = DEFAULT_LEVEL,
                 sigma=None, difficulty: str | None = None) -> IntervalCalibration:
    """Calibrate intervals of one target on the calibration rows.

    Parameters
    ----------
    target : the target's name
    y_true, y_pred : arrays (n,) -- true values and the fitted model's predictions on
        ``rows.calibration`` (in that order; target units)
    rows : the split; its calibration rows are disjoint from the model's training rows
    level : confidence level in (0, 1), default 0.9
    sigma : optional array (n,) > 0 -- a difficulty per calibration row (normalised intervals);
        the same measure must be given for new rows at predict time
    difficulty : name of that measure (required with sigma)

    Raises ValueError for mismatched lengths, NaNs, a bad level, or too few calibration rows
    for the level (about 1/(1 - level) are needed: 10 at 0.9).
    """
    level = _check_level(level)
    y_true = _vector("y_true", y_true)
    y_pred = _vector("y_pred", y_pred, len(y_true))
    _calibration_rows(rows, len(y_true))
    if (sigma is None) != (difficulty is None):
        raise ValueError("sigma and difficulty: give both (normalised intervals) or neither")
    sig = None if sigma is None else _sigma("sigma", sigma, len(y_true))
    cr = ConformalRegressor().fit(y_true - y_pred, sigmas=sig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crepes warns and returns infinite intervals; we raise instead
        lo, hi = cr.predict_int(np.zeros(1), sigmas=None if sig is None else np.ones(1), confidence=level)[0]
    if not np.isfinite(hi):
        raise _too_few(level, len(y_true), f"{target} intervals")
    return IntervalCalibration(target=str(target), level=level, q=float(hi), n_calibration=len(y_true),
                               difficulty=difficulty)


def member_spread(member_predictions) -> np.ndarray:
    """Difficulty σ from an ensemble: the standard deviation over members, array (B,).

    ``member_predictions`` is (M, B): M ≥ 2 members (the trees of a random forest, or
    networks trained with different seeds), B rows. On the quick preset the spread of a random
    forest's trees narrowed its 90 % intervals by 0-7 % (per target) at the same coverage,
    where k-NN and MAPIE's residual-model difficulties widened them.
    """
    m = np.asarray(member_predictions, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2:
        raise ValueError(f"member_predictions: expected shape (M >= 2, B); got {m.shape}")
    return m.std(axis=0)


@dataclass(frozen=True)
class CoverageReport:
    """Empirical coverage and mean width of one target's intervals on test rows."""

    target: str
    level: float
    coverage: float
    mean_width: float
    n_test: int


def interval_coverage(calibration: IntervalCalibration, y_true, y_pred, sigma=None) -> CoverageReport:
    """Coverage (fraction of ``y_true`` inside [lo, hi]) and mean width on test rows (arrays (n,))."""
    lo, hi = calibration.interval(y_pred, sigma)
    y = _vector("y_true", y_true, len(lo))
    return CoverageReport(target=calibration.target, level=calibration.level,
                          coverage=float(np.mean((y >= lo) & (y <= hi))), mean_width=float(np.mean(hi - lo)),
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


def _temperature_scale(proba: np.ndarray, inverse_temperature: float) -> np.ndarray:
    # scikit-learn's temperature scaling: softmax(beta * log(p + eps))
    return softmax(inverse_temperature * np.log(proba + LOG_EPS), axis=1)


@dataclass(frozen=True)
class ClassCalibration:
    """Calibrated probabilities and conformal prediction sets of one classification task.

    Attributes
    ----------
    task : name of the task (e.g. pvnp, kernel3)
    classes : class names, in the order of the probability columns
    inverse_temperature : β of temperature scaling p -> softmax(β log p) (β < 1 softens
        over-confident probabilities, β > 1 sharpens under-confident ones)
    level : confidence level of the sets
    q : a class enters the set when 1 - p_calibrated(class) <= q
    n_temperature, n_sets : calibration rows that fitted β, and (the other ones) q
    """

    task: str
    classes: tuple[str, ...]
    inverse_temperature: float
    level: float
    q: float
    n_temperature: int
    n_sets: int
    method: str = TEMPERATURE

    def probabilities(self, proba) -> np.ndarray:
        """Calibrated probabilities (B, C) from the model's probabilities (B, C) (softmax outputs)."""
        return _temperature_scale(_probabilities(f"{self.task} probabilities", proba, len(self.classes)),
                                  self.inverse_temperature)

    def sets(self, proba) -> np.ndarray:
        """Prediction sets: bool (B, C), True where the class is in the set (model probabilities in)."""
        return 1 - self.probabilities(proba) <= self.q


def fit_classification(task: str, classes: Sequence[str], proba, y, rows: SplitRows, *,
                       level: float = DEFAULT_LEVEL, seed: int = 0) -> ClassCalibration:
    """Temperature scaling and conformal sets for one task, from the calibration rows.

    Parameters
    ----------
    task : the task's name
    classes : class names in the order of the probability columns
    proba : array (n, C) -- the fitted model's class probabilities on ``rows.calibration``
    y : array (n,) -- true class names of those rows
    rows : the split; its calibration rows are disjoint from the model's training rows
    level : confidence level of the sets, default 0.9
    seed : the stratified halving of the calibration rows (β on one half, q on the other)
    """
    level = _check_level(level)
    classes = _classes(classes)
    p = _probabilities("proba", proba, len(classes))
    yi = _label_index(y, classes, len(p))
    _calibration_rows(rows, len(p))
    counts = np.bincount(yi, minlength=len(classes))
    stratify = yi if counts.min() >= 2 else None
    a, b = train_test_split(np.arange(len(p)), test_size=0.5, random_state=seed, stratify=stratify)
    # sklearn fits β by minimising the log-loss on half a; the sets' threshold comes from half b
    adapter = FrozenEstimator(_GivenProbabilities(len(classes)).fit())
    cc = CalibratedClassifierCV(adapter, method=TEMPERATURE).fit(p[a], yi[a])
    beta = float(cc.calibrated_classifiers_[0].calibrators[0].beta_)
    scores_b = hinge(_temperature_scale(p[b], beta), np.arange(len(classes)), yi[b])
    cp = ConformalClassifier().fit(scores_b)
    if cp.predict_set(np.array([[np.inf]]), confidence=level, smoothing=False)[0, 0]:
        # even an impossible score would enter the set: too few rows for this level
        raise _too_few(level, len(b), f"{task} prediction sets (half of the calibration rows)")
    inside = cp.predict_set(scores_b[:, None], confidence=level, smoothing=False)[:, 0].astype(bool)
    # crepes' p-value falls with the score, so the set is {score <= largest included calibration score}
    q = float(scores_b[inside].max())
    return ClassCalibration(task=str(task), classes=classes, inverse_temperature=beta, level=level, q=q,
                            n_temperature=len(a), n_sets=len(b))


@dataclass(frozen=True)
class SetReport:
    """Empirical coverage (true class inside the set) and mean set size on test rows."""

    task: str
    level: float
    coverage: float
    mean_set_size: float
    n_test: int


def set_coverage(calibration: ClassCalibration, proba, y) -> SetReport:
    """Coverage and mean size of the prediction sets on test rows (model probabilities, true names)."""
    s = calibration.sets(proba)
    yi = _label_index(y, calibration.classes, len(s))
    return SetReport(task=calibration.task, level=calibration.level,
                     coverage=float(np.mean(s[np.arange(len(s)), yi])), mean_set_size=float(s.sum(axis=1).mean()),
                     n_test=len(s))


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
    p = _probabilities("proba", proba, len(classes))
    yi = _label_index(y, classes, len(p))
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


# --------------------------------------------------------------------------- saving
@dataclass(frozen=True)
class Calibration:
    """Every calibration of a trained model set, saved as one JSON file."""

    intervals: tuple[IntervalCalibration, ...] = ()
    classifications: tuple[ClassCalibration, ...] = ()

    def interval(self, target: str) -> IntervalCalibration:
        for c in self.intervals:
            if c.target == target:
                return c
        raise KeyError(f"no interval calibration for {target!r}; have {[c.target for c in self.intervals]}")

    def classification(self, task: str) -> ClassCalibration:
        for c in self.classifications:
            if c.task == task:
                return c
        raise KeyError(f"no class calibration for {task!r}; have {[c.task for c in self.classifications]}")

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION,
                "intervals": [asdict(c) for c in self.intervals],
                "classifications": [{**asdict(c), "classes": list(c.classes)} for c in self.classifications]}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {d.get('format_version')!r}; this pyecho reads {FORMAT_VERSION}")
        return cls(intervals=tuple(IntervalCalibration(**c) for c in d["intervals"]),
                   classifications=tuple(ClassCalibration(**{**c, "classes": tuple(c["classes"])})
                                         for c in d["classifications"]))

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` atomically (floats round-trip exactly)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read a file written by :meth:`save`; InputFileError names the file and what is wrong."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputFileError(f"{path}: missing (a calibration file of pyecho learn)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"{path}: not a pyecho calibration file ({exc})") from None

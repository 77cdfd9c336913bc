"""The headline predictor `pyecho predict` runs: chosen models, calibration, domain guard.

Saved by `pyecho learn` under ``models/headline/``:

* ``predictor.json``: format and pyecho version, the time grid and angles the models were
  trained on, which candidate predicts each task, the interval level;
* one folder per candidate used (``linear/``, ``minirocket/``, ``cnn/``: each model's own files,
  no pickle);
* ``calibration.json``: the conformal intervals and sets and the probability temperatures;
* ``guard.json`` + ``guard.npz``: the out-of-domain guard.

:meth:`EchoPredictor.predict` takes complex records (B, A, T) on the model's grid and returns a
:class:`PredictionTable`: one row per echo with the kernel probabilities, P vs NP, every target
with its interval, and whether the echo looks like the training data (and if not, why).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

import pyecho
from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError
from pyecho.learn.base import RANGE_NP, RANGE_P, TARGETS, TASK_CLASSES, Task
from pyecho.learn.candidates import Candidate, CandidatesResult, Headline, combine, guard_features
from pyecho.learn.conformal import Calibration
from pyecho.learn.domain import DomainGuard, EchoGrid
from pyecho.learn.inputs import KERNEL_CLASSES, as_batch

#: where `pyecho learn` saves the predictor, under its models/ folder
HEADLINE_DIR = "headline"
PREDICTOR_FORMAT = "pyecho.predictor"
PREDICTOR_VERSION = 1
PREDICTOR_FILE = "predictor.json"
CALIBRATION_FILE = "calibration.json"
GUARD_FILE = "guard.json"
#: the output columns of `pyecho predict`, in order (_lo/_hi: the interval ends)
PREDICTION_COLUMNS = ("index", "kernel", "p_gaussian", "p_power", "p_rkky", "range", "p_power_law",
                      *(f"{t.value}{s}" for t in TARGETS for s in ("", "_lo", "_hi")), "in_domain")


def _model_class(name: str):
    from pyecho.learn.cnn import EchoCNN
    from pyecho.learn.rocket import RocketModel

    return EchoCNN if name == Candidate.CNN else RocketModel


@dataclass(frozen=True)
class PredictionTable:
    """Predictions for B echoes (arrays (B,) unless said), in the units of the targets.

    kernel_proba : (B, 3) calibrated probabilities in the order of KERNEL_CLASSES;
    p_power_law : calibrated probability of the P (power-law, long-range) class;
    is_power : the P-vs-NP decision (the class-balanced rule of :class:`Headline`);
    values / lo / hi : dict target -> point prediction and interval ends at ``level``;
    in_domain : False where the echo is unlike the training data; reasons : why (tuple per echo).
    """

    kernel_proba: np.ndarray
    p_power_law: np.ndarray
    is_power: np.ndarray
    values: dict
    lo: dict
    hi: dict
    in_domain: np.ndarray
    reasons: tuple[tuple[str, ...], ...]
    level: float

    def to_frame(self) -> pl.DataFrame:
        """The table as a polars frame with :data:`PREDICTION_COLUMNS` (and ``ood_reasons``)."""
        n = len(self.in_domain)
        columns = {
            "index": np.arange(n),
            "kernel": np.asarray(KERNEL_CLASSES)[np.argmax(self.kernel_proba, axis=1)],
            **{f"p_{k}": self.kernel_proba[:, i] for i, k in enumerate(KERNEL_CLASSES)},
            "range": np.where(self.is_power, RANGE_P, RANGE_NP),
            "p_power_law": self.p_power_law,
        }
        for t in TARGETS:
            columns |= {t.value: self.values[t.value], f"{t.value}_lo": self.lo[t.value], f"{t.value}_hi": self.hi[t.value]}
        columns |= {"in_domain": self.in_domain, "ood_reasons": ["; ".join(r) for r in self.reasons]}
        return pl.DataFrame(columns).select(*PREDICTION_COLUMNS, "ood_reasons")


class EchoPredictor:
    """The headline models of a `pyecho learn` run with their calibration and domain guard."""

    def __init__(self, models: dict, headline: Headline, calibration: Calibration, guard: DomainGuard, grid: EchoGrid):
        self.models, self.headline, self.calibration, self.guard, self.grid = models, headline, calibration, guard, grid

    @classmethod
    def from_result(cls, result: CandidatesResult, grid: EchoGrid) -> "EchoPredictor":
        used = {result.headline.kernel, *(result.headline.for_task(t) for t in TARGETS)}
        return cls({name: result.run(name).model for name in sorted(used)}, result.headline,
                   result.calibrated.calibration, result.guard, grid)

    @property
    def level(self) -> float:
        return self.calibration.intervals[0].level

    def predict(self, M, grid: EchoGrid | None = None) -> PredictionTable:
        """Predict from complex records (T,), (B, T) or (B, A, T) on the model's grid; ``grid``
        (default: the model's) describes the records, and a mismatch flags them out of domain."""
        X = as_batch(M)
        if X.shape[1:] != (len(self.grid.thetas), self.grid.n_samples):
            raise InputFileError(f"the echoes have {X.shape[1]} angle(s) x {X.shape[2]} samples; the model needs "
                                 f"{len(self.grid.thetas)} x {self.grid.n_samples} (angles "
                                 f"{', '.join(f'{np.degrees(t):.0f}°' for t in self.grid.thetas)})")
        pred = combine({name: model.predict(X) for name, model in self.models.items()}, self.headline)
        kernel_cal = self.calibration.classification(Task.KERNEL3.value)
        pvnp_cal = self.calibration.classification(Task.PVNP.value)
        proba = kernel_cal.probabilities(pred.kernel_proba)
        p_power_law = pvnp_cal.probabilities(np.column_stack([1.0 - pred.p_power, pred.p_power]))[:, 1]
        values, lo, hi = {}, {}, {}
        for t in TARGETS:
            values[t.value] = getattr(pred, t.value)
            lo[t.value], hi[t.value] = self.calibration.interval(t.value).interval(values[t.value])
        checks = self.guard.check(guard_features(X), grid or self.grid, predicted=values)
        is_power = pred.p_power >= self.headline.pvnp_threshold
        return PredictionTable(proba, p_power_law, is_power, values, lo, hi, np.array([c.in_domain for c in checks]),
                               tuple(c.reasons for c in checks), self.level)

    # ---- on disk ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            model.save(d / name)
        self.calibration.save(d / CALIBRATION_FILE)
        self.guard.save(d / GUARD_FILE)
        header = {"format": PREDICTOR_FORMAT, "format_version": PREDICTOR_VERSION,
                  "pyecho_version": pyecho.__version__, "grid": {"tau_us": self.grid.tau_us, "dt_us": self.grid.dt_us,
                  "n_samples": self.grid.n_samples, "thetas": list(self.grid.thetas)},
                  "headline": vars(self.headline), "models": sorted(self.models), "level": self.level,
                  "classes": {"kernel3": list(KERNEL_CLASSES), "pvnp": list(TASK_CLASSES[Task.PVNP])}}
        with atomic_path(d / PREDICTOR_FILE) as tmp:  # written last: a predictor without it is incomplete
            tmp.write_text(json.dumps(header, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "EchoPredictor":
        """Read a predictor; one clear InputFileError for a missing, foreign or other-version folder."""
        d = Path(directory)
        path = d / PREDICTOR_FILE
        if not path.is_file():
            raise InputFileError(f"{d}: holds no {PREDICTOR_FILE}; point at the output of `pyecho learn`")
        try:
            header = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{path}: not readable JSON ({exc})") from None
        if header.get("format") != PREDICTOR_FORMAT or header.get("format_version") != PREDICTOR_VERSION:
            raise InputFileError(f"{path}: format {header.get('format')!r} version {header.get('format_version')!r}; "
                                 f"this pyecho reads {PREDICTOR_FORMAT!r} version {PREDICTOR_VERSION}")
        if header.get("pyecho_version") != pyecho.__version__:
            raise InputFileError(f"{path}: written by pyecho {header.get('pyecho_version')}, this is "
                                 f"{pyecho.__version__}; rerun `pyecho learn` with this version")
        try:
            models = {name: _model_class(name).load(d / name) for name in header["models"]}
            grid = EchoGrid(**{**header["grid"], "thetas": tuple(header["grid"]["thetas"])})
            return cls(models, Headline(**header["headline"]), Calibration.load(d / CALIBRATION_FILE),
                       DomainGuard.load(d / GUARD_FILE), grid)
        except (KeyError, TypeError) as exc:
            raise InputFileError(f"{path}: incomplete predictor ({exc!r})") from None

"""The headline predictor `pyecho predict` runs: chosen models, calibration, domain guard.

Saved by `pyecho learn` under ``models/headline/``:

* ``predictor.json``: format and pyecho version, the protocol and time step the models were
  trained on (which measurements to make), their dead time, which candidate predicts each task,
  the interval level;
* one folder per candidate used (``linear/``, ``minirocket/``, ``cnn/``: each model's own files,
  no pickle);
* ``calibration.json``: the Mondrian intervals and the kernel's probability model and sets;
* ``guard.json`` + ``guard.npz``: the out-of-domain guard.

:meth:`EchoPredictor.predict` takes complex records (one array per measurement of the model's
protocol) and returns a :class:`PredictionTable`: one row per sample with the kernel
probabilities (summing to 1), P vs NP and the kernel decided from them without contradiction,
every target with its interval at the record's own SNR, the SNR, and whether the record looks
like the training data (and if not, why).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

import pyecho
from pyecho.atomic import atomic_path
from pyecho.data.records import as_records, estimate_noise
from pyecho.errors import InputFileError
from pyecho.learn.base import RANGE_NP, RANGE_P
from pyecho.learn.calibration.domain import DomainGuard
from pyecho.learn.calibration.saved import Calibration
from pyecho.learn.models.candidates import Candidate, CandidatesResult, Headline, combine, guard_features
from pyecho.learn.models.inputs import unreadable
from pyecho.learn.models.model_files import read_json
from pyecho.learn.models.targets import KERNEL_CLASSES
from pyecho.physics.protocol import RecordGrid

#: where `pyecho learn` saves the predictor, under its models/ folder
HEADLINE_DIR = "headline"
PREDICTOR_FORMAT = "pyecho.predictor"
PREDICTOR_VERSION = 2
PREDICTOR_FILE = "predictor.json"
CALIBRATION_FILE = "calibration.json"
GUARD_FILE = "guard.json"


def prediction_columns(targets) -> tuple[str, ...]:
    """The output columns of `pyecho predict` for a model of ``targets``, in order (_lo/_hi:
    the interval ends)."""
    return ("index", "kernel", *(f"p_{k}" for k in KERNEL_CLASSES), "range", "p_power_law", "p_power_law_threshold",
            *(f"{t}{s}" for t in targets for s in ("", "_lo", "_hi")), "snr", "in_domain")


def _model_class(name: str):
    from pyecho.learn.models.cnn import EchoCNN
    from pyecho.learn.models.rocket import RocketModel

    return EchoCNN if name == Candidate.CNN else RocketModel


@dataclass(frozen=True)
class PredictionTable:
    """Predictions for B samples (arrays (B,) unless said), in the units of the targets.

    kernel_proba : (B, 3) calibrated probabilities in the order of KERNEL_CLASSES (rows sum to 1);
    kernel, is_power : the decisions made from them (never contradicting): P where p_power_law
    (the power-law column) >= ``p_power_law_threshold``, the kernel then the power law, else the
    likelier short-range kernel;
    values / lo / hi : dict target -> point prediction and interval ends at ``level``;
    snr : each sample's estimated SNR (its records' peak |M| over their noise std);
    in_domain : False where the records are unlike the training data; reasons : why;
    p_power_law_threshold : the model's threshold of the range decision (the same for every row).
    """

    kernel_proba: np.ndarray
    kernel: np.ndarray
    is_power: np.ndarray
    values: dict
    lo: dict
    hi: dict
    snr: np.ndarray
    in_domain: np.ndarray
    reasons: tuple[tuple[str, ...], ...]
    level: float
    p_power_law_threshold: float

    def to_frame(self) -> pl.DataFrame:
        """The table as a polars frame with :func:`prediction_columns` (and ``ood_reasons``)."""
        n = len(self.in_domain)
        columns = {
            "index": np.arange(n),
            "kernel": self.kernel,
            **{f"p_{k}": self.kernel_proba[:, i] for i, k in enumerate(KERNEL_CLASSES)},
            "range": np.where(self.is_power, RANGE_P, RANGE_NP),
            "p_power_law": self.kernel_proba[:, KERNEL_CLASSES.index("power")],
            "p_power_law_threshold": np.full(n, self.p_power_law_threshold),
        }
        for t in self.values:
            columns |= {t: self.values[t], f"{t}_lo": self.lo[t], f"{t}_hi": self.hi[t]}
        columns |= {"snr": np.asarray(self.snr, dtype=np.float64), "in_domain": self.in_domain,
                    "ood_reasons": ["; ".join(r) for r in self.reasons]}
        return pl.DataFrame(columns).select(*prediction_columns(self.values), "ood_reasons")


class EchoPredictor:
    """The headline models of a `pyecho learn` run with their calibration and domain guard."""

    def __init__(self, models: dict, headline: Headline, calibration: Calibration, guard: DomainGuard,
                 grid: RecordGrid, dead_time_us: float):
        self.models, self.headline, self.calibration, self.guard = models, headline, calibration, guard
        self.grid, self.dead_time_us = grid, float(dead_time_us)

    @classmethod
    def from_result(cls, result: CandidatesResult, grid: RecordGrid, dead_time_us: float) -> "EchoPredictor":
        return cls({name: result.run(name).model for name in result.headline.used}, result.headline,
                   result.calibrated.calibration, result.guard, grid, dead_time_us)

    @property
    def level(self) -> float:
        return self.calibration.level

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.headline.targets)

    def needs(self) -> str:
        """What records the model takes, for messages and help: its protocol and dead time."""
        lengths = ", ".join(map(str, self.grid.lengths))
        return (f"{len(self.grid.protocol)} measurement(s) {self.grid.protocol.text} (T = {lengths} samples, dt "
                f"{self.grid.dt_us:g} µs), a dead time of up to {self.dead_time_us:g} µs after each pulse")

    def predict(self, records, grid: RecordGrid | None = None, *, source: str = "records") -> PredictionTable:
        """Predict from complex records (one (B, T_k) array per measurement of the model's
        protocol; NaN where the receiver was dead); ``grid`` (default: the model's) describes the
        records, and a mismatch flags them out of domain. Records the model cannot read are one
        InputFileError naming ``source``."""
        try:
            X = as_records(records, len(self.grid.protocol))
        except ValueError as exc:
            raise InputFileError(f"{source}: {exc}; the model needs {self.needs()}") from None
        if tuple(r.shape[1] for r in X) != self.grid.lengths:
            raise InputFileError(f"{source}: the records have {[r.shape[1] for r in X]} samples; the model needs "
                                 f"{self.needs()}")
        problem = unreadable(X, self.grid, self.dead_time_us)
        if problem is not None:
            raise InputFileError(f"{source}: {problem}")
        noise = estimate_noise(X, self.grid, dead_time_us=self.dead_time_us)
        pred = combine({name: model.predict(X) for name, model in self.models.items()}, self.headline,
                       self.calibration.kernel)
        kernel, is_power = self.calibration.kernel.decide(pred.kernel_proba)
        lo, hi = {}, {}
        for t in self.targets:
            lo[t], hi[t] = self.calibration.interval(t).interval(pred[t], noise.snr)
        checks = self.guard.check(guard_features(X, self.grid, self.dead_time_us), grid or self.grid, noise.snr,
                                  predicted=dict(pred.values))
        return PredictionTable(pred.kernel_proba, kernel, is_power, dict(pred.values), lo, hi, noise.snr,
                               np.array([c.in_domain for c in checks]), tuple(c.reasons for c in checks), self.level,
                               self.calibration.kernel.threshold)

    # ---- on disk ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            model.save(d / name)
        self.calibration.save(d / CALIBRATION_FILE)
        self.guard.save(d / GUARD_FILE)
        h = self.headline
        header = {"format": PREDICTOR_FORMAT, "format_version": PREDICTOR_VERSION,
                  "pyecho_version": pyecho.__version__, "grid": self.grid.to_dict(), "protocol": self.grid.protocol.text,
                  "dead_time_us": self.dead_time_us,
                  "headline": {"pvnp": h.pvnp, "kernel": h.kernel, "targets": h.targets,
                               "pvnp_threshold": h.pvnp_threshold},
                  "models": sorted(self.models), "level": self.level, "classes": list(KERNEL_CLASSES)}
        with atomic_path(d / PREDICTOR_FILE) as tmp:  # written last: a predictor without it is incomplete
            tmp.write_text(json.dumps(header, indent=1))
        return d

    @classmethod
    def read_header(cls, directory: str | Path) -> dict:
        """The checked ``predictor.json`` of a predictor folder (cheap: no model is loaded)."""
        d = Path(directory)
        path = d / PREDICTOR_FILE
        if not path.is_file():
            raise InputFileError(f"{d}: holds no {PREDICTOR_FILE}; point at the output of `pyecho learn`")
        header = read_json(path)
        if header.get("format") != PREDICTOR_FORMAT or header.get("format_version") != PREDICTOR_VERSION:
            raise InputFileError(f"{path}: format {header.get('format')!r} version {header.get('format_version')!r}; "
                                 f"this pyecho reads {PREDICTOR_FORMAT!r} version {PREDICTOR_VERSION}")
        if header.get("pyecho_version") != pyecho.__version__:
            raise InputFileError(f"{path}: written by pyecho {header.get('pyecho_version')}, this is "
                                 f"{pyecho.__version__}; rerun `pyecho learn` with this version")
        return header

    @classmethod
    def load(cls, directory: str | Path) -> "EchoPredictor":
        """Read a predictor; one clear InputFileError for a missing, foreign or other-version folder."""
        d = Path(directory)
        header = cls.read_header(d)
        try:
            models = {name: _model_class(name).load(d / name) for name in header["models"]}
            h = header["headline"]
            headline = Headline(pvnp=h["pvnp"], kernel=h["kernel"], targets=dict(h["targets"]),
                                pvnp_threshold=float(h["pvnp_threshold"]))
            return cls(models, headline, Calibration.load(d / CALIBRATION_FILE), DomainGuard.load(d / GUARD_FILE),
                       RecordGrid.from_dict(header["grid"]), float(header["dead_time_us"]))
        except (KeyError, TypeError) as exc:
            raise InputFileError(f"{d / PREDICTOR_FILE}: incomplete predictor ({exc!r})") from None

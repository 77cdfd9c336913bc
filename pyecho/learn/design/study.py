"""Which measurements determine the correlations: every protocol's information, by forward selection.

The samples of a dataset measured by a set of *candidate* measurements (a `pyecho sim` dataset
whose protocol is the candidate set, so every candidate sees the same parameters and detunings)
are split once into design rows and test rows (stratified by kernel). A protocol -- a subset of
the candidates -- is scored by a linear probe on its records: the referenced, block-averaged
Re, Im and |M| of each of its measurements side by side, then logistic regression (kernel) and
ridge (every target; :func:`~pyecho.learn.models.heads.fit_linear_heads`), at one SNR (complex
white noise, one independent draw per record). Its *design score* is the mean over the tasks
(P vs NP weighted F1, 3-class weighted F1, R² of W, L, alpha_xy, alpha_z and log10 T2) of the
out-of-fold predictions of a K-fold cross-validation over the design rows; the 90 % interval
width of each target is twice the 90th percentile of the out-of-fold |error| (a jackknife+
width). The test rows are scored once per protocol (a model fitted on every design row) and
never choose anything.

Greedy forward selection: start from no measurement; at every step add the candidate that
gives the best design score, among those the budget allows (number of measurements, total
spectrometer time per sample = the summed record durations). Every protocol evaluated on the
way is kept: the ranked table. The linear probe is a lower bound on what a protocol tells (the
models of `pyecho learn` do better); it ranks protocols, as measured on the same samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from pyecho.data.records import add_complex_noise
from pyecho.errors import ParameterError
from pyecho.learn.base import NO_JSON, LearnData, Note, Target, no_note, target_title, to_learning_scale
from pyecho.learn.models.heads import fit_linear_heads
from pyecho.learn.models.inputs import InputView, check_readable
from pyecho.learn.models.scores import TaskScores
from pyecho.learn.models.targets import EchoPredictions, EchoTargets
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US, Protocol, RecordGrid

#: the SNR the protocols are compared at (definition: pyecho.data.records.add_complex_noise)
DESIGN_SNR = 200.0
#: what the probe sees of each measurement: at most 256 time points, the default dead time
DESIGN_VIEW = InputView(channels="reim_abs", max_points=256, dead_time_us=DEFAULT_DEAD_TIME_US)
DEFAULT_FOLDS = 5
DEFAULT_TEST_SIZE = 0.2
INTERVAL_LEVEL = 0.9


@dataclass(frozen=True)
class DesignBudget:
    """What a protocol may cost per sample: ``max_measurements`` (>= 1) and, optionally, a total
    spectrometer time ``max_time_us`` (µs, the summed durations of its records)."""

    max_measurements: int = 3
    max_time_us: float | None = None

    def __post_init__(self) -> None:
        n = self.max_measurements
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"max_measurements: got {n!r}; must be an integer >= 1")
        t = self.max_time_us
        if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise ParameterError(f"max_time_us: got {t!r}; must be a time > 0 (us), or none")

    def allows(self, n_measurements: int, time_us: float) -> bool:
        return n_measurements <= self.max_measurements and (self.max_time_us is None or time_us <= self.max_time_us)


@dataclass(frozen=True)
class ProtocolEvaluation:
    """One protocol's information at the design SNR.

    measurements : the measurements' texts, in the order they were added; time_us : spectrometer
    time per sample (µs); cv : out-of-fold scores on the design rows (they choose); test : a
    model fitted on every design row, scored on the test rows; interval_width : target ->
    width of a 90 % interval from the out-of-fold errors (learning scale: log10 for T2).
    """

    measurements: tuple[str, ...]
    time_us: float
    cv: TaskScores
    test: TaskScores
    interval_width: dict
    indices: tuple[int, ...] = field(metadata=NO_JSON, default=())

    @property
    def label(self) -> str:
        return ", ".join(self.measurements)

    @property
    def score(self) -> float:
        """The design score: the mean selection score over the tasks, out of fold."""
        return self.cv.objective()

    def __json__(self) -> dict:
        return {"measurements": list(self.measurements), "time_us": self.time_us, "score": self.score,
                "cv": self.cv, "test": self.test, "interval_width": self.interval_width}


@dataclass(frozen=True)
class DesignResult:
    """Every protocol evaluated, the greedy path (the best protocol of each size), the setting."""

    evaluations: tuple[ProtocolEvaluation, ...]
    path: tuple[ProtocolEvaluation, ...]
    candidates: tuple[str, ...]
    budget: DesignBudget
    snr: float
    folds: int
    n_design: int
    n_test: int

    @property
    def best(self) -> ProtocolEvaluation:
        """The greedy path's protocol with the best design score."""
        return max(self.path, key=lambda e: e.score)

    def ranked(self) -> tuple[ProtocolEvaluation, ...]:
        return tuple(sorted(self.evaluations, key=lambda e: -e.score))

    def evaluation(self, measurements) -> ProtocolEvaluation:
        key = tuple(measurements)
        return next(e for e in self.evaluations if e.measurements == key)


class ProtocolProbe:
    """The linear probe on a dataset's candidate measurements, features computed once.

    Parameters
    ----------
    data : LearnData whose protocol is the candidate set
    snr : complex white noise added to every record (one draw per record; inf: none)
    seed : the noise, the test split and the folds
    view : the probe's :class:`InputView` of each measurement
    folds : K of the K-fold cross-validation on the design rows
    test_size : fraction of the samples held out as test rows
    n_jobs : BLAS/OpenMP threads of the fits (their matrices are small: more threads than free
        cores made each logistic fit 12x slower on a shared 2-core machine)
    """

    def __init__(self, data: LearnData, *, snr: float = DESIGN_SNR, seed: int = 0, view: InputView = DESIGN_VIEW,
                 folds: int = DEFAULT_FOLDS, test_size: float = DEFAULT_TEST_SIZE, n_jobs: int = 1):
        if not (snr > 0):
            raise ParameterError(f"snr: got {snr!r}; must be > 0 (inf: no noise)")
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise ParameterError(f"folds: got {folds!r}; must be an integer >= 2")
        self.data, self.snr, self.seed, self.view, self.folds = data, float(snr), int(seed), view, folds
        self.n_jobs = int(n_jobs)
        check_readable(data.grid, view.dead_time_us, view.n_ref)
        rng = np.random.default_rng(seed)
        noisy = add_complex_noise(data.records, snr, rng) if math.isfinite(snr) else data.records
        grid = data.grid
        self.features = [view.flat((noisy[k],), RecordGrid(Protocol((m,)), grid.dt_us))
                         for k, m in enumerate(grid.protocol)]
        self.time_us = [m.duration_us(grid.dt_us) for m in grid.protocol]
        lab = data.labels
        self.targets = EchoTargets(kernel=lab.kernel, values={t.value: lab.target(t) for t in data.targets})
        self.design, self.test = (np.sort(r) for r in train_test_split(
            np.arange(data.n_samples), test_size=test_size, random_state=seed, stratify=lab.kernel))
        self.threshold = float(np.mean(self.targets.is_power[self.design]))
        self.fold_rows = [(self.design[a], self.design[b]) for a, b in StratifiedKFold(
            folds, shuffle=True, random_state=seed).split(self.design, lab.kernel[self.design])]

    def _matrix(self, indices) -> np.ndarray:
        return np.hstack([self.features[k] for k in indices])

    def out_of_fold(self, indices) -> EchoPredictions:
        """Out-of-fold predictions on the design rows (in the order of ``self.design``)."""
        F = self._matrix(indices)
        position = {row: i for i, row in enumerate(self.design)}
        proba = np.empty((len(self.design), 3))
        values = {t: np.empty(len(self.design)) for t in self.targets.targets}
        for fit, held in self.fold_rows:
            pred = fit_linear_heads(F[fit], self.targets.take(fit), random_state=self.seed).predict(F[held])
            at = [position[r] for r in held]
            proba[at] = pred.kernel_proba
            for t in values:
                values[t][at] = pred[t]
        return EchoPredictions(proba, values)

    def evaluate(self, indices) -> ProtocolEvaluation:
        """Scores of the protocol made of the candidate measurements ``indices``."""
        with threadpool_limits(limits=self.n_jobs):
            return self._evaluate(tuple(int(k) for k in indices))

    def _evaluate(self, indices: tuple[int, ...]) -> ProtocolEvaluation:
        truth = self.targets.take(self.design)
        oof = self.out_of_fold(indices)
        widths = {t: 2.0 * float(np.quantile(np.abs(to_learning_scale(t, truth[t]) - to_learning_scale(t, oof[t])),
                                             INTERVAL_LEVEL)) for t in truth.targets}
        F = self._matrix(indices)
        heads = fit_linear_heads(F[self.design], truth, random_state=self.seed)
        test = TaskScores.of(heads.predict(F[self.test]), self.targets.take(self.test), self.threshold)
        protocol = self.data.protocol
        return ProtocolEvaluation(measurements=tuple(protocol[k].text for k in indices),
                                  time_us=float(sum(self.time_us[k] for k in indices)),
                                  cv=TaskScores.of(oof, truth, self.threshold), test=test, interval_width=widths,
                                  indices=indices)


def forward_selection(probe: ProtocolProbe, budget: DesignBudget = DesignBudget(), *,
                      note: Note = no_note) -> DesignResult:
    """Greedy forward selection over the probe's candidate measurements (module docstring)."""
    protocol = probe.data.protocol
    chosen: list[int] = []
    evaluations, path = [], []
    while len(chosen) < budget.max_measurements:
        options = [k for k in range(len(protocol)) if k not in chosen
                   and budget.allows(len(chosen) + 1, sum(probe.time_us[j] for j in (*chosen, k)))]
        if not options:
            break
        step = []
        for k in options:
            note(f"{len(chosen) + 1} measurement(s): {protocol[k].text}")
            step.append(probe.evaluate((*chosen, k)))
        evaluations.extend(step)
        best = max(step, key=lambda e: e.score)
        path.append(best)
        chosen = list(best.indices)
    if not path:
        raise ParameterError(f"the budget {budget} allows no candidate measurement (the shortest takes "
                             f"{min(probe.time_us):.0f} us)")
    return DesignResult(tuple(evaluations), tuple(path), tuple(m.text for m in protocol), budget, probe.snr,
                        probe.folds, len(probe.design), len(probe.test))


def run_design(data: LearnData, budget: DesignBudget = DesignBudget(), *, snr: float = DESIGN_SNR, seed: int = 0,
               note: Note = no_note) -> DesignResult:
    """Forward selection over ``data``'s measurements with the default probe."""
    return forward_selection(ProtocolProbe(data, snr=snr, seed=seed), budget, note=note)


#: the scores a design table shows, as (task, title)
TABLE_TASKS: tuple[tuple[str, str], ...] = (("pvnp", "F1 P"), ("kernel3", "macro-F1 3-class"),
                                            *((t.value, f"R² {target_title(t)}") for t in Target))


def table_value(scores: TaskScores, task: str) -> float | None:
    """The value a design table shows for ``task`` (None where the scores do not hold it)."""
    if task == "pvnp":
        return scores.pvnp.f1_power
    if task == "kernel3":
        return scores.kernel3.f1_macro
    reg = scores.regression.get(task)
    return None if reg is None else reg.r2

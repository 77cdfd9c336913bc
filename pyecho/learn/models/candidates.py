"""Beyond the paper: models on the complex echo, chosen on validation rows, calibrated, guarded.

The rows of the main split are used as follows (the test rows are the paper models' test rows):

* ``fit``: the training rows a candidate is fitted on (with complex-noise augmentation);
* ``validation``: training rows held out to choose the headline model of each task;
* ``calibration``: training rows held out for the conformal intervals and sets, the
  probability temperature and the out-of-domain threshold;
* ``test``: scored once, at SNR inf, 200 and 50, for every candidate and the calibration.

Candidates (all see every angle of the dataset, phase/gain-referenced, Re, Im and |M|):
``linear`` (the standardised series, logistic + ridge), ``minirocket`` (MiniRocket features,
logistic + ridge) and ``cnn`` (a multitask 1-D ResNet). The headline model of each task is the
candidate with the best validation score (weighted F1, R²); the test scores never choose.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from sklearn.model_selection import train_test_split

from pyecho.data.store import DatasetError
from pyecho.learn.base import (NO_JSON, POWER_CLASS, RANGE_NP, RANGE_P, TARGETS, TASK_CLASSES, Budget, ClassScores,
                               Evaluation, LearnData, ModelScore, Note, RegScores, Split, Task, make_split, mean_std,
                               no_note, pool_seeds)
from pyecho.learn.cnn import EchoCNN
from pyecho.learn.conformal import (Calibration, ClassCalibration, CoverageReport, ReliabilityDiagram, SetReport,
                                    SplitRows, fit_classification, fit_interval, interval_coverage, reliability,
                                    set_coverage)
from pyecho.learn.domain import DEFAULT_PERCENTILE, DomainGuard, EchoGrid, fit_domain_guard
from pyecho.learn.inputs import KERNEL_CLASSES, EchoPredictions, EchoTargets, InputView, add_complex_noise, augment_training
from pyecho.learn.rocket import RocketModel

#: the SNRs every candidate is scored at on the test rows (inf: noise-free)
TEST_SNRS = (np.inf, 200.0, 50.0)
#: SNR range of the training rows' noisy copies (log-uniform), beside the clean rows
TRAIN_SNR_RANGE = (30.0, 3000.0)
#: the view of the out-of-domain guard: model-agnostic, coarse in time
GUARD_VIEW = InputView(channels="reim_abs", decimate=8)


class Candidate(StrEnum):
    LINEAR = "linear"
    MINIROCKET = "minirocket"
    CNN = "cnn"


CANDIDATE_TITLES = {Candidate.LINEAR: "logistic + ridge on the series", Candidate.MINIROCKET: "MiniRocket + logistic/ridge",
                    Candidate.CNN: "multitask 1-D CNN"}


def make_candidate(name: Candidate, budget: Budget, seed: int, n_jobs: int):
    """An unfitted model of candidate ``name`` (all share fit(M, EchoTargets) / predict(M))."""
    view = InputView(channels="reim_abs", decimate=budget.candidate_decimate)
    if name == Candidate.LINEAR:
        return RocketModel(view=view, transform="none", random_state=seed, n_jobs=n_jobs)
    if name == Candidate.MINIROCKET:
        return RocketModel(view=view, transform="minirocket", n_kernels=budget.rocket_kernels, random_state=seed,
                           n_jobs=n_jobs)
    return EchoCNN(view=view, max_epochs=budget.cnn_max_epochs, patience=budget.cnn_patience,
                   noise_snr_range=TRAIN_SNR_RANGE, n_threads=n_jobs, random_state=seed)


@dataclass(frozen=True)
class ModelRows:
    """fit / validation / calibration rows carved (stratified by kernel) from the split's training
    rows, and the split's test rows; pairwise disjoint."""

    fit: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def __json__(self) -> dict:
        return {k: int(len(getattr(self, k))) for k in ("fit", "validation", "calibration", "test")}


def model_rows(split: Split, kernel: np.ndarray, budget: Budget) -> ModelRows:
    held = budget.validation_size + budget.calibration_size
    fit, rest = train_test_split(split.train, test_size=held, random_state=split.seed, stratify=kernel[split.train])
    val, cal = train_test_split(rest, test_size=budget.calibration_size / held, random_state=split.seed,
                                stratify=kernel[rest])
    return ModelRows(np.sort(fit), np.sort(val), np.sort(cal), split.test)


@dataclass(frozen=True)
class TaskScores:
    """Every task's score of one model on one set of rows."""

    pvnp: ClassScores
    kernel3: ClassScores
    W: RegScores
    L: RegScores
    alpha_xy: RegScores
    alpha_z: RegScores

    @classmethod
    def of(cls, pred: EchoPredictions, truth: EchoTargets, pvnp_threshold: float) -> "TaskScores":
        """Scores of ``pred``; P vs NP decides P where p_power >= ``pvnp_threshold``."""
        pvnp_true = np.where(truth.is_power, RANGE_P, RANGE_NP)
        pvnp_pred = np.where(pred.p_power >= pvnp_threshold, RANGE_P, RANGE_NP)
        return cls(pvnp=ClassScores.of(pvnp_true, pvnp_pred, TASK_CLASSES[Task.PVNP], POWER_CLASS[Task.PVNP]),
                   kernel3=ClassScores.of(truth.kernel, pred.kernel, KERNEL_CLASSES, POWER_CLASS[Task.KERNEL3]),
                   **{t.value: RegScores.of(getattr(truth, t.value), getattr(pred, t.value)) for t in TARGETS})

    def selection_score(self, task: str) -> float:
        """The validation score that chooses the headline model of ``task``."""
        value = getattr(self, str(task))
        return value.f1_weighted if isinstance(value, ClassScores) else value.r2


@dataclass(frozen=True)
class SnrScores:
    snr: float
    scores: TaskScores


@dataclass(frozen=True)
class CandidateRun:
    """One candidate: its validation scores (which choose) and its test scores at every SNR."""

    name: str
    inputs: str
    fit_seconds: float
    validation: TaskScores
    test: tuple[SnrScores, ...]
    model: object = field(metadata=NO_JSON, repr=False)
    calibration_pred: EchoPredictions = field(metadata=NO_JSON, repr=False)
    test_pred: tuple[EchoPredictions, ...] = field(metadata=NO_JSON, repr=False)

    def test_at(self, snr: float) -> TaskScores:
        return next(s.scores for s in self.test if s.snr == snr)


@dataclass(frozen=True)
class Headline:
    """The candidate chosen for each task by its validation score, and the P-vs-NP decision rule:
    P where the kernel model's p_power >= ``pvnp_threshold``, the training share of power-law
    echoes (the class-balanced rule, as the paper's SMOTE-balanced forest decides)."""

    kernel: str
    W: str
    L: str
    alpha_xy: str
    alpha_z: str
    pvnp_threshold: float

    def for_task(self, task: str) -> str:
        return self.kernel if task in (Task.PVNP, Task.KERNEL3) else getattr(self, str(task))


def combine(predictions: dict[str, EchoPredictions], headline: Headline) -> EchoPredictions:
    """One prediction from the headline models' (candidate name -> its predictions): the kernel
    probabilities of the kernel's model, each target from its own model."""
    return EchoPredictions(kernel_proba=predictions[headline.kernel].kernel_proba,
                           **{t.value: getattr(predictions[headline.for_task(t)], t.value) for t in TARGETS})


@dataclass(frozen=True)
class CalibrationResult:
    """Conformal intervals and sets of the headline models, and how they did on the test rows."""

    level: float
    calibration: Calibration = field(metadata=NO_JSON)
    coverage: tuple[CoverageReport, ...]
    sets: tuple[SetReport, ...]
    reliability: tuple[ReliabilityDiagram, ...]


@dataclass(frozen=True)
class CandidatesResult:
    rows: ModelRows
    runs: tuple[CandidateRun, ...]
    headline: Headline
    calibrated: CalibrationResult
    guard: DomainGuard = field(metadata=NO_JSON)
    seed: int
    inputs: str

    def run(self, name: str) -> CandidateRun:
        return next(r for r in self.runs if r.name == name)

    def scores(self) -> tuple[ModelScore, ...]:
        """Every candidate × task on the noise-free test rows (pooled over seeds by CandidateSeeds)."""
        out = []
        for run in self.runs:
            scores = run.test_at(np.inf)
            for task in (Task.PVNP, Task.KERNEL3, *TARGETS):
                out.append(ModelScore.single(CANDIDATE_TITLES[Candidate(run.name)], task, run.inputs, Evaluation.BEYOND,
                                             getattr(scores, str(task)), self.seed, len(self.rows.fit),
                                             len(self.rows.test)))
        return tuple(out)


@dataclass(frozen=True)
class HeadlineScore:
    """The headline model of one task on the test rows at one SNR: mean (and std) over seeds of
    each seed's chosen model, and which models were chosen."""

    task: str
    snr: float
    scores: ClassScores | RegScores
    spread: ClassScores | RegScores | None
    chosen: tuple[str, ...]


@dataclass(frozen=True)
class CandidateSeeds:
    """The candidate stage on the main split and on every other seed's split (``results[0]`` is
    the main run's, whose models are saved); every headline number is pooled over them."""

    results: tuple[CandidatesResult, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.results)

    def model_scores(self) -> tuple[ModelScore, ...]:
        return pool_seeds([r.scores() for r in self.results])

    def headline(self, task: str, snr: float = np.inf) -> HeadlineScore:
        chosen = tuple(r.headline.for_task(task) for r in self.results)
        per_seed = [getattr(r.run(name).test_at(snr), str(task)) for r, name in zip(self.results, chosen)]
        mean, std = mean_std(per_seed)
        return HeadlineScore(str(task), float(snr), mean, std, chosen)

    def coverage(self, target: str) -> tuple[CoverageReport, CoverageReport | None]:
        """Mean (and std) over seeds of one target's interval coverage and width."""
        reports = [next(c for c in r.calibrated.coverage if c.target == target) for r in self.results]
        mean = CoverageReport(target, reports[0].level, float(np.mean([c.coverage for c in reports])),
                              float(np.mean([c.mean_width for c in reports])), reports[0].n_test)
        if len(reports) == 1:
            return mean, None
        return mean, CoverageReport(target, reports[0].level, float(np.std([c.coverage for c in reports])),
                                    float(np.std([c.mean_width for c in reports])), reports[0].n_test)

    def __json__(self) -> dict:
        tasks = (Task.PVNP, Task.KERNEL3, *TARGETS)
        return {"seeds": list(self.seeds),
                "headline": [self.headline(t, snr) for t in tasks for snr in TEST_SNRS],
                "coverage": [self.coverage(t.value) for t in TARGETS]}


def fit_candidate(name: Candidate, series: np.ndarray, targets: EchoTargets, fit_rows: np.ndarray, noisy,
                  budget: Budget, seed: int, n_jobs: int):
    """A fitted candidate: the CNN on the fit rows (it draws fresh noise every epoch itself), the
    others on the fit rows and their noisy copies ``noisy`` (:func:`augment_training` of them)."""
    model = make_candidate(name, budget, seed, n_jobs)
    if name == Candidate.CNN:
        return model.fit(series[fit_rows], targets.take(fit_rows))
    return model.fit(np.concatenate([series[fit_rows], noisy.M]),
                     targets.take(np.concatenate([fit_rows, noisy.source_index])))


def targets_of(data: LearnData) -> EchoTargets:
    lab = data.labels
    return EchoTargets(kernel=lab.kernel, W=lab.W, L=lab.L, alpha_xy=lab.alpha_xy, alpha_z=lab.alpha_z)


def describe_inputs(data: LearnData) -> str:
    degrees = ", ".join(f"{np.degrees(t):.0f}°" for t in data.thetas)
    return f"complex M, phase/gain referenced, Re + Im + |M| at {degrees}"


#: fewest calibration rows of each kernel: each half of them must hold 5 per kernel (the temperature
#: fit's 5-fold split), and the other half enough rows for the conformal sets
MIN_CALIBRATION_PER_KERNEL = 10


def check_calibration_rows(kernel: np.ndarray, calibration: np.ndarray, level: float) -> None:
    """DatasetError (one line: a dataset too small for calibrated uncertainty) unless the
    calibration rows hold enough echoes of every kernel present."""
    kinds, counts = np.unique(kernel[calibration], return_counts=True)
    need = max(MIN_CALIBRATION_PER_KERNEL, math.ceil(2 / (1 - level) / max(len(kinds), 1)))
    present = len(np.unique(kernel))
    if len(kinds) < present or counts.min() < need:
        fewest = 0 if len(kinds) < present else int(counts.min())
        share = len(calibration) / len(kernel)
        raise DatasetError(f"the dataset has {len(kernel)} echoes; its calibration rows ({share:.0%} of them) hold "
                           f"{fewest} of one kernel, and calibrated intervals at level {level} need {need} of each: "
                           f"simulate at least {math.ceil(need / share)} echoes per kernel (pyecho sim "
                           "--n-per-kernel)")


def run_candidates(data: LearnData, split: Split, budget: Budget, n_jobs: int, *, level: float = 0.9,
                   note: Note = no_note) -> CandidatesResult:
    """Stage: fit every candidate, choose per task on validation, calibrate, fit the domain guard."""
    targets = targets_of(data)
    rows = model_rows(split, data.labels.kernel, budget)
    check_calibration_rows(np.asarray(data.labels.kernel), rows.calibration, level)
    noisy = augment_training(data.series, train_index=rows.fit, rng=np.random.default_rng(split.seed),
                             snr_range=TRAIN_SNR_RANGE)
    test_sets = [add_complex_noise(data.series[rows.test], snr, np.random.default_rng(split.seed + 1))
                 for snr in TEST_SNRS]
    inputs = describe_inputs(data)
    threshold = float(np.mean(targets.is_power[rows.fit]))
    runs = []
    for name in budget.candidates:
        note(f"{name}: fitting on {len(rows.fit)} rows")
        start = time.perf_counter()
        model = fit_candidate(Candidate(name), data.series, targets, rows.fit, noisy, budget, split.seed, n_jobs)
        seconds = time.perf_counter() - start
        note(f"{name}: scoring")
        test_pred = tuple(model.predict(M) for M in test_sets)
        runs.append(CandidateRun(
            name=str(name), inputs=inputs, fit_seconds=round(seconds, 1),
            validation=TaskScores.of(model.predict(data.series[rows.validation]), targets.take(rows.validation),
                                     threshold),
            test=tuple(SnrScores(float(snr), TaskScores.of(p, targets.take(rows.test), threshold))
                       for snr, p in zip(TEST_SNRS, test_pred)),
            model=model, calibration_pred=model.predict(data.series[rows.calibration]), test_pred=test_pred))
    best = {task: max(runs, key=lambda r: r.validation.selection_score(task)).name
            for task in (Task.KERNEL3, *TARGETS)}
    headline = Headline(kernel=best[Task.KERNEL3], **{t.value: best[t] for t in TARGETS}, pvnp_threshold=threshold)
    note("calibration")
    calibrated = _calibrate(rows, combine({r.name: r.calibration_pred for r in runs}, headline),
                            combine({r.name: r.test_pred[0] for r in runs}, headline), targets, level)
    note("domain guard")
    guard = _fit_guard(data, rows, noisy, targets)
    return CandidatesResult(rows, tuple(runs), headline, calibrated, guard, split.seed, inputs)


def _calibrate(rows: ModelRows, cal_pred: EchoPredictions, test_pred: EchoPredictions, targets: EchoTargets,
               level: float) -> CalibrationResult:
    """Conformal intervals and sets, and temperature-scaled probabilities, of the headline models
    on the calibration rows; their coverage and reliability on the (noise-free) test rows."""
    conformal_rows = SplitRows(train=np.concatenate([rows.fit, rows.validation]), calibration=rows.calibration,
                               test=rows.test)
    cal_truth, test_truth = targets.take(rows.calibration), targets.take(rows.test)
    intervals, coverage = [], []
    for t in TARGETS:
        interval = fit_interval(t.value, getattr(cal_truth, t.value), getattr(cal_pred, t.value), conformal_rows,
                                level=level)
        intervals.append(interval)
        coverage.append(interval_coverage(interval, getattr(test_truth, t.value), getattr(test_pred, t.value)))
    classes, sets, diagrams = [], [], []
    for task, names, cal_p, test_p, cal_y, test_y in (
        (Task.KERNEL3, KERNEL_CLASSES, cal_pred.kernel_proba, test_pred.kernel_proba, cal_truth.kernel, test_truth.kernel),
        (Task.PVNP, TASK_CLASSES[Task.PVNP], _pvnp_proba(cal_pred), _pvnp_proba(test_pred),
         np.where(cal_truth.is_power, RANGE_P, RANGE_NP),
         np.where(test_truth.is_power, RANGE_P, RANGE_NP)),
    ):
        calib = fit_classification(task.value, names, cal_p, cal_y, conformal_rows, level=level)
        classes.append(calib)
        sets.append(set_coverage(calib, test_p, test_y))
        diagrams.append(reliability(task.value, "raw", names, test_p, test_y))
        diagrams.append(reliability(task.value, "calibrated", names, calib.probabilities(test_p), test_y))
    return CalibrationResult(level, Calibration(tuple(intervals), tuple(classes)), tuple(coverage), tuple(sets),
                             tuple(diagrams))


def _pvnp_proba(pred: EchoPredictions) -> np.ndarray:
    """(B, 2) probabilities of (NP, P) from the kernel head."""
    return np.column_stack([1.0 - pred.p_power, pred.p_power])


def guard_features(M) -> np.ndarray:
    """The out-of-domain guard's view of records (B, A, T): (B, F)."""
    X = GUARD_VIEW.transform(M)
    return X.reshape(X.shape[0], -1)


def _fit_guard(data: LearnData, rows: ModelRows, noisy, targets: EchoTargets) -> DomainGuard:
    """Fitted on the rows the models were fitted on, clean and noisy alike; thresholded on the
    held-out validation and calibration rows with the same mix of noise, at the 99th percentile
    (or, with fewer than 99 of them, at their largest distance)."""
    X_fit = guard_features(np.concatenate([data.series[rows.fit], noisy.M]))
    held = np.concatenate([rows.validation, rows.calibration])
    rng = np.random.default_rng(data.n_samples)
    snr = np.exp(rng.uniform(*np.log(TRAIN_SNR_RANGE), size=len(held)))
    snr[: len(snr) // 2] = np.inf  # half clean, as in the fit rows
    X_held = guard_features(add_complex_noise(data.series[held], snr, rng))
    grid = EchoGrid.from_metadata({**data.metadata, "thetas": list(data.thetas)}, data.n_times)
    fit_rows = np.concatenate([rows.fit, noisy.source_index])
    labels = {t.value: getattr(targets, t.value)[fit_rows] for t in TARGETS}
    percentile = min(DEFAULT_PERCENTILE, 100.0 * len(held) / (len(held) + 1))
    return fit_domain_guard(X_fit, X_held, grid, labels, percentile=percentile)


def run_candidate_seeds(main: CandidatesResult, data: LearnData, seeds: tuple[int, ...], budget: Budget, n_jobs: int,
                        *, level: float, note: Note = no_note) -> CandidateSeeds:
    """The candidate stage again on the split of every seed but the main one (its own split and
    model seeds each), beside the main run's ``main``."""
    extra = []
    for seed in seeds:
        if seed == main.seed:
            continue
        note(f"seed {seed}")
        split = make_split(data.labels, budget.test_size, seed)
        extra.append(run_candidates(data, split, budget, n_jobs, level=level,
                                    note=lambda text, seed=seed: note(f"seed {seed}: {text}")))
    return CandidateSeeds((main, *extra))

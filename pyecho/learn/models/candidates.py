"""Beyond the paper: models on every measurement of a protocol, chosen on validation rows,
calibrated at the measurement's noise, guarded.

The samples of the main split are used as follows (the test rows are the paper models' test rows):

* ``fit``: the samples a candidate is fitted on. The linear and MiniRocket models also see one
  noisy copy of each (SNR log-uniform in :data:`TRAIN_SNR_RANGE`), and choose their penalties on
  a validation split *by sample* (a row and its noisy copy on the same side); the CNN redraws
  the noise every epoch;
* ``validation``: held-out samples, each clean and once noised across the training SNRs, that
  choose the headline model of each task (P vs NP, 3-class, every target) by its validation
  score (weighted F1, R²); the test scores never choose;
* ``calibration``: held-out samples, clean and ``Budget.calibration_copies`` times noised across
  the training SNRs, for the conformal intervals (per SNR band of each record's *estimated*
  SNR), the kernel's probability model and sets, and the out-of-domain guard's thresholds;
* ``test``: scored at SNR inf, 200, 50 and 20, an independent noise draw for each.

Candidates (all see every measurement of the protocol, phase/gain-referenced, Re, Im and |M|,
without the samples within ``Budget.dead_time_us`` after each pulse): ``linear`` (the
standardised records, logistic + ridge), ``minirocket`` (MiniRocket features of each
measurement, logistic + ridge) and ``cnn`` (a multitask 1-D ResNet with a branch per measurement).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from pyecho.data.records import NoisyRecords, estimate_noise
from pyecho.data.store import DatasetError
from pyecho.learn.base import (NO_JSON, RANGE_NP, RANGE_P, TASK_CLASSES, Budget, Evaluation, LearnData,
                               ModelScore, Note, Split, Task, make_split, mean_std, no_note, pool_seeds)
from pyecho.learn.calibration.conformal import (CoverageReport, ReliabilityDiagram, SetReport, fit_interval,
                                                interval_coverage, min_calibration_rows, reliability, set_coverage)
from pyecho.learn.calibration.domain import DEFAULT_PERCENTILE, DomainGuard, fit_domain_guard
from pyecho.learn.calibration.probability import KernelProbability, fit_kernel_probability
from pyecho.learn.calibration.saved import Calibration
from pyecho.learn.models.cnn import EchoCNN
from pyecho.learn.models.inputs import InputView
from pyecho.learn.models.rocket import RocketModel
from pyecho.learn.models.scores import TaskScores
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets
from pyecho.learn.storage import FeatureRows

#: the SNRs every candidate is scored at on the test rows (inf: noise-free), each its own noise draw
TEST_SNRS = (math.inf, 200.0, 50.0, 20.0)
#: SNR range of the noisy copies (log-uniform) of the fit, validation and calibration rows
TRAIN_SNR_RANGE = (15.0, 3000.0)
#: what the out-of-domain guard sees: model-agnostic, coarse in time
GUARD_DECIMATE, GUARD_MAX_POINTS = 8, 256
#: the seed streams of one split's noise: fit copies, validation, calibration, guard, test SNRs
_NOISE_STREAMS = ("fit", "validation", "calibration", "guard", *(f"test {s:g}" for s in TEST_SNRS))


class Candidate(StrEnum):
    LINEAR = "linear"
    MINIROCKET = "minirocket"
    CNN = "cnn"


CANDIDATE_TITLES = {Candidate.LINEAR: "logistic + ridge on the records", Candidate.MINIROCKET: "MiniRocket + logistic/ridge",
                    Candidate.CNN: "multitask 1-D CNN"}


def candidate_view(budget: Budget) -> InputView:
    return InputView(channels="reim_abs", decimate=budget.candidate_decimate, max_points=budget.candidate_max_points,
                     dead_time_us=budget.dead_time_us)


def guard_view(dead_time_us: float) -> InputView:
    return InputView(channels="reim_abs", decimate=GUARD_DECIMATE, max_points=GUARD_MAX_POINTS,
                     dead_time_us=dead_time_us)


def make_candidate(name: Candidate, budget: Budget, seed: int, n_jobs: int, *, feature_dir: Path | None = None):
    """An unfitted model of candidate ``name`` (all share fit(records, EchoTargets, grid) / predict(records));
    ``feature_dir``: where the linear and MiniRocket models keep their training features (None: memory)."""
    view = candidate_view(budget)
    if name == Candidate.LINEAR:
        return RocketModel(view=view, transform="none", random_state=seed, n_jobs=n_jobs, feature_dir=feature_dir)
    if name == Candidate.MINIROCKET:
        return RocketModel(view=view, transform="minirocket", n_kernels=budget.rocket_kernels, random_state=seed,
                           n_jobs=n_jobs, feature_dir=feature_dir)
    return EchoCNN(view=view, max_epochs=budget.cnn_max_epochs, patience=budget.cnn_patience,
                   noise_snr_range=TRAIN_SNR_RANGE, n_threads=n_jobs, random_state=seed)


def noise_streams(seed: int) -> dict[str, int]:
    """Independent noise seeds (:class:`NoisyRecords`) of every noise draw of one split (named by
    :data:`_NOISE_STREAMS`)."""
    states = np.random.SeedSequence([seed, 0x6E6F6973]).generate_state(len(_NOISE_STREAMS))
    return {name: int(state) for name, state in zip(_NOISE_STREAMS, states)}


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
class NoisyRows:
    """Some samples, clean and noised: ``records`` (row i: sample ``records.source[i]`` at nominal
    SNR ``records.snr[i]``, inf = clean; made a chunk at a time) and each row's ``estimated_snr``."""

    records: NoisyRecords
    estimated_snr: np.ndarray

    @property
    def source(self) -> np.ndarray:
        return self.records.source


def noisy_rows(data: LearnData, rows: np.ndarray, copies: int, seed: int, dead_time_us: float) -> NoisyRows:
    """The samples ``rows`` clean, and ``copies`` times noised at SNRs of the training range."""
    records = NoisyRecords.with_copies(data.records, rows, copies=copies, snr_range=TRAIN_SNR_RANGE, seed=seed)
    return NoisyRows(records, estimate_noise(records, data.grid, dead_time_us=dead_time_us).snr)


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
    """The candidate chosen for each task by its validation score: ``pvnp`` gives p_power,
    ``kernel`` the split of the short-range kernels, ``targets`` (name -> candidate) each target;
    P where the calibrated p_power >= ``pvnp_threshold``, the training share of power-law
    samples (the class-balanced rule, as the paper's SMOTE-balanced forest decides)."""

    pvnp: str
    kernel: str
    targets: dict
    pvnp_threshold: float

    def for_task(self, task: str) -> str:
        task = str(task)
        if task == Task.PVNP:
            return self.pvnp
        if task == Task.KERNEL3:
            return self.kernel
        return self.targets[task]

    @property
    def used(self) -> tuple[str, ...]:
        return tuple(sorted({self.pvnp, self.kernel, *self.targets.values()}))


def combine(predictions: dict[str, EchoPredictions], headline: Headline, kernel: KernelProbability
            ) -> EchoPredictions:
    """The headline prediction from every used candidate's predictions (name -> predictions):
    the kernel's one distribution (``kernel``: calibrated, or :meth:`KernelProbability.uncalibrated`)
    from the P-vs-NP model's p_power and the kernel model's probabilities, each target from its model."""
    proba = kernel.probabilities(predictions[headline.pvnp].p_power, predictions[headline.kernel].kernel_proba)
    return EchoPredictions(proba, {t: predictions[m][t] for t, m in headline.targets.items()})


@dataclass(frozen=True)
class CalibrationResult:
    """The headline predictions' calibration and how it did on the test rows at every SNR:
    interval coverage (all rows, per kernel, per W tercile), prediction-set coverage, and the
    reliability of the kernel probabilities (raw and calibrated, SNR inf and 50)."""

    level: float
    calibration: Calibration = field(metadata=NO_JSON)
    coverage: tuple[CoverageReport, ...]
    sets: tuple[SetReport, ...]
    reliability: tuple[ReliabilityDiagram, ...]
    headline_test: tuple[SnrScores, ...]
    headline_kernel: np.ndarray = field(metadata=NO_JSON, repr=False)

    def coverage_at(self, target: str, snr: float, group: str = "all") -> CoverageReport:
        return next(c for c in self.coverage if (c.target, c.snr, c.group) == (target, snr, group))

    def headline_at(self, snr: float) -> TaskScores:
        return next(s.scores for s in self.headline_test if s.snr == snr)


@dataclass(frozen=True)
class CandidatesResult:
    rows: ModelRows
    runs: tuple[CandidateRun, ...]
    headline: Headline
    calibrated: CalibrationResult
    guard: DomainGuard = field(metadata=NO_JSON)
    seed: int
    inputs: str
    label: str

    def run(self, name: str) -> CandidateRun:
        return next(r for r in self.runs if r.name == name)

    def scores(self) -> tuple[ModelScore, ...]:
        """Every candidate × task on the noise-free test rows (pooled over seeds by CandidateSeeds)."""
        out = []
        for run in self.runs:
            scores = run.test_at(math.inf)
            for task in scores.tasks:
                out.append(ModelScore.single(f"{CANDIDATE_TITLES[Candidate(run.name)]} ({self.label})", task,
                                             run.inputs, Evaluation.BEYOND, scores[task], self.seed,
                                             len(self.rows.fit), len(self.rows.test)))
        return tuple(out)


@dataclass(frozen=True)
class HeadlineScore:
    """The headline predictions of one task on the test rows at one SNR: mean (and std) over
    seeds, and which models were chosen."""

    task: str
    snr: float
    scores: object
    spread: object
    chosen: tuple[str, ...]


@dataclass(frozen=True)
class CandidateSeeds:
    """The candidate stage on the main split and on every other seed's split (``results[0]`` is
    the main run's, whose models are saved); every headline number is pooled over them."""

    results: tuple[CandidatesResult, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.results)

    @property
    def label(self) -> str:
        return self.results[0].label

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.results[0].calibrated.headline_test[0].scores.tasks

    def model_scores(self) -> tuple[ModelScore, ...]:
        return pool_seeds([r.scores() for r in self.results])

    def headline(self, task: str, snr: float = math.inf) -> HeadlineScore:
        chosen = tuple(r.headline.for_task(task) for r in self.results)
        mean, std = mean_std([r.calibrated.headline_at(snr)[task] for r in self.results])
        return HeadlineScore(str(task), float(snr), mean, std, chosen)

    def headline_within(self, target: str, kernel: str, snr: float = math.inf) -> HeadlineScore | None:
        """The headline scores of ``target`` within one true kernel family; None where a seed's
        test rows hold too few of that family."""
        within = [r.calibrated.headline_at(snr).within_kernel.get(kernel, {}).get(target) for r in self.results]
        if any(w is None for w in within):
            return None
        mean, std = mean_std(within)
        return HeadlineScore(str(target), float(snr), mean, std, tuple(r.headline.for_task(target) for r in self.results))

    def coverage(self, target: str, snr: float = math.inf, group: str = "all"
                 ) -> tuple[CoverageReport, CoverageReport | None]:
        """Mean (and std) over seeds of one target's interval coverage and width."""
        reports = [r.calibrated.coverage_at(target, snr, group) for r in self.results]
        first = reports[0]
        mean = CoverageReport(target, first.level, first.snr, group, float(np.mean([c.coverage for c in reports])),
                              float(np.mean([c.mean_width for c in reports])), first.n_test)
        if len(reports) == 1:
            return mean, None
        return mean, CoverageReport(target, first.level, first.snr, group, float(np.std([c.coverage for c in reports])),
                                    float(np.std([c.mean_width for c in reports])), first.n_test)

    def __json__(self) -> dict:
        targets = self.tasks[2:]
        return {"label": self.label, "seeds": list(self.seeds),
                "headline": [self.headline(t, snr) for t in self.tasks for snr in TEST_SNRS],
                "coverage": [self.coverage(t, snr) for t in targets for snr in TEST_SNRS]}


def fit_candidate(name: Candidate, data: LearnData, targets: EchoTargets, fit_rows: np.ndarray,
                  noisy: NoisyRows | None, budget: Budget, seed: int, n_jobs: int, *, feature_dir: Path | None = None):
    """A fitted candidate: the CNN on the clean fit rows (it draws fresh noise every epoch itself),
    the others on the fit rows and their noisy copies ``noisy`` (grouped by sample)."""
    model = make_candidate(name, budget, seed, n_jobs, feature_dir=feature_dir)
    if name == Candidate.CNN or noisy is None:
        return model.fit(NoisyRecords.clean(data.records, fit_rows), targets.take(fit_rows), data.grid)
    return model.fit(noisy.records, targets.take(noisy.source), data.grid, groups=noisy.source)


def targets_of(data: LearnData) -> EchoTargets:
    lab = data.labels
    return EchoTargets(kernel=lab.kernel, values={t.value: lab.target(t) for t in data.targets})


def describe_inputs(data: LearnData, budget: Budget) -> str:
    return (f"complex records of {data.protocol.text}, phase/gain referenced, Re + Im + |M|, "
            f"{budget.dead_time_us:g} µs dead time after each pulse")


#: fewest calibration rows of each kernel: each half of them must hold 5 per kernel (the temperature
#: fit's 5-fold split), and the other half enough rows for the conformal sets
MIN_CALIBRATION_PER_KERNEL = 10


def check_calibration_rows(kernel: np.ndarray, calibration: np.ndarray, level: float) -> None:
    """DatasetError (one line: a dataset too small for calibrated uncertainty) unless the
    calibration rows hold enough samples of every kernel present."""
    kinds, counts = np.unique(kernel[calibration], return_counts=True)
    need = max(MIN_CALIBRATION_PER_KERNEL, math.ceil(2 * min_calibration_rows(level) / max(len(kinds), 1)))
    present = len(np.unique(kernel))
    if len(kinds) < present or counts.min() < need:
        fewest = 0 if len(kinds) < present else int(counts.min())
        share = len(calibration) / len(kernel)
        raise DatasetError(f"the dataset has {len(kernel)} samples; its calibration rows ({share:.0%} of them) hold "
                           f"{fewest} of one kernel, and calibrated intervals at level {level} need {need} of each: "
                           f"simulate at least {math.ceil(need / share)} samples per kernel (pyecho sim "
                           "--n-per-kernel)")


def run_candidates(data: LearnData, split: Split, budget: Budget, n_jobs: int, *, level: float = 0.9,
                   label: str = "protocol", note: Note = no_note, feature_dir: Path | None = None) -> CandidatesResult:
    """Stage: fit every candidate, choose per task on validation, calibrate, fit the domain guard.
    ``feature_dir``: where the linear and MiniRocket fits and the guard keep the training rows'
    features (None: memory)."""
    targets = targets_of(data)
    rows = model_rows(split, data.labels.kernel, budget)
    check_calibration_rows(np.asarray(data.labels.kernel), rows.calibration, level)
    seeds = noise_streams(split.seed)
    dead = budget.dead_time_us
    fit_noisy = noisy_rows(data, rows.fit, 1, seeds["fit"], dead)
    validation = noisy_rows(data, rows.validation, 1, seeds["validation"], dead)
    calibration = noisy_rows(data, rows.calibration, budget.calibration_copies, seeds["calibration"], dead)
    n_test = len(rows.test)
    test_sets = [NoisyRecords(data.records, rows.test, np.full(n_test, snr), np.arange(n_test), seeds[f"test {snr:g}"])
                 for snr in TEST_SNRS]
    inputs = describe_inputs(data, budget)
    threshold = float(np.mean(targets.is_power[rows.fit]))
    runs = []
    for name in budget.candidates:
        note(f"{label}: {name}: fitting on {len(rows.fit)} samples")
        start = time.perf_counter()
        model = fit_candidate(Candidate(name), data, targets, rows.fit, fit_noisy, budget, split.seed, n_jobs,
                              feature_dir=feature_dir)
        seconds = time.perf_counter() - start
        note(f"{label}: {name}: scoring")
        test_pred = tuple(model.predict(M) for M in test_sets)
        runs.append(CandidateRun(
            name=str(name), inputs=inputs, fit_seconds=round(seconds, 1),
            validation=TaskScores.of(model.predict(validation.records), targets.take(validation.source), threshold),
            test=tuple(SnrScores(float(snr), TaskScores.of(p, targets.take(rows.test), threshold))
                       for snr, p in zip(TEST_SNRS, test_pred)),
            model=model, calibration_pred=model.predict(calibration.records), test_pred=test_pred))
    best = {task: max(runs, key=lambda r: r.validation.selection_score(task)).name for task in runs[0].validation.tasks}
    headline = Headline(pvnp=best[Task.PVNP], kernel=best[Task.KERNEL3],
                        targets={t: best[t] for t in targets.targets}, pvnp_threshold=threshold)
    note(f"{label}: calibration")
    test_snr = [estimate_noise(M, data.grid, dead_time_us=dead).snr for M in test_sets]
    calibrated = _calibrate(runs, headline, calibration, targets, rows, test_snr, level, split.seed)
    note(f"{label}: domain guard")
    guard = _fit_guard(data, fit_noisy, validation, calibration, targets, budget, feature_dir)
    return CandidatesResult(rows, tuple(runs), headline, calibrated, guard, split.seed, inputs, label)


def _calibrate(runs, headline: Headline, calibration: NoisyRows, targets: EchoTargets, rows: ModelRows,
               test_snr: list[np.ndarray], level: float, seed: int) -> CalibrationResult:
    """The kernel's probability model and sets, and every target's Mondrian intervals, on the
    calibration rows; their coverage, set coverage, reliability and the headline's scores on
    the test rows at every SNR."""
    by_name = {r.name: r for r in runs}
    cal_truth, test_truth = targets.take(calibration.source), targets.take(rows.test)
    raw_model = KernelProbability.uncalibrated(headline.pvnp_threshold)
    cal = combine({n: by_name[n].calibration_pred for n in headline.used}, headline, raw_model)
    kernel = fit_kernel_probability(cal.p_power, by_name[headline.kernel].calibration_pred.kernel_proba,
                                    cal_truth.kernel, threshold=headline.pvnp_threshold, level=level, seed=seed)
    intervals = tuple(fit_interval(t, cal_truth[t], cal[t], calibration.estimated_snr, level=level)
                      for t in targets.targets)
    calibration_bundle = Calibration(intervals, kernel)
    coverage, sets, diagrams, scores, decided = [], [], [], [], None
    W = test_truth["W"]
    terciles = np.quantile(W, [1 / 3, 2 / 3])
    groups = {"all": np.ones(len(W), bool), **{k: test_truth.kernel == k for k in KERNEL_CLASSES},
              **{f"W tercile {i + 1}": np.searchsorted(terciles, W) == i for i in range(3)}}
    for i, snr in enumerate(TEST_SNRS):
        raw = combine({n: by_name[n].test_pred[i] for n in headline.used}, headline, raw_model)
        pred = combine({n: by_name[n].test_pred[i] for n in headline.used}, headline, kernel)
        scores.append(SnrScores(float(snr), TaskScores.of(pred, test_truth, headline.pvnp_threshold)))
        if decided is None:
            decided = kernel.decide(pred.kernel_proba)[0]
        for t in targets.targets:
            for group, mask in groups.items():
                coverage.append(interval_coverage(calibration_bundle.interval(t), test_truth[t][mask], pred[t][mask],
                                                  test_snr[i][mask], snr=float(snr), group=group))
        sets.append(set_coverage(Task.KERNEL3.value, kernel.sets(pred.kernel_proba), test_truth.kernel,
                                 KERNEL_CLASSES, level=level, snr=float(snr)))
        if snr in (math.inf, 50.0):
            at = "∞" if math.isinf(snr) else f"{snr:g}"
            pvnp_true = np.where(test_truth.is_power, RANGE_P, RANGE_NP)
            for label, proba in ((f"raw, SNR {at}", raw.kernel_proba), (f"calibrated, SNR {at}", pred.kernel_proba)):
                diagrams.append(reliability(Task.KERNEL3.value, label, KERNEL_CLASSES, proba, test_truth.kernel))
                diagrams.append(reliability(Task.PVNP.value, label, TASK_CLASSES[Task.PVNP],
                                            np.column_stack([1 - proba[:, 1], proba[:, 1]]), pvnp_true))
    return CalibrationResult(level, calibration_bundle, tuple(coverage), tuple(sets), tuple(diagrams), tuple(scores),
                             decided)


def guard_features(records, grid, dead_time_us: float) -> np.ndarray:
    """The out-of-domain guard's view of records: (B, F)."""
    return guard_view(dead_time_us).flat(records, grid)


def _fit_guard(data: LearnData, fit_noisy: NoisyRows, validation: NoisyRows, calibration: NoisyRows,
               targets: EchoTargets, budget: Budget, feature_dir: Path | None) -> DomainGuard:
    """Fitted on the rows the models were fitted on, clean and noisy alike (their features in
    ``feature_dir`` when given); thresholded per SNR band on the held-out validation and
    calibration rows, noised the same way."""
    dead = budget.dead_time_us
    held = np.concatenate([guard_features(r.records, data.grid, dead) for r in (validation, calibration)])
    held_snr = np.concatenate([validation.estimated_snr, calibration.estimated_snr])
    labels = {t: targets[t][fit_noisy.source] for t in targets.targets}
    train = FeatureRows.from_blocks(len(fit_noisy.records), ((start, guard_features(chunk, data.grid, dead))
                                                             for start, chunk in fit_noisy.records.chunks()),
                                    directory=feature_dir)
    try:
        return fit_domain_guard(train, held, held_snr, data.grid, labels, percentile=DEFAULT_PERCENTILE)
    finally:
        train.close()


def run_candidate_seeds(main: CandidatesResult, data: LearnData, seeds: tuple[int, ...], budget: Budget, n_jobs: int,
                        *, level: float, note: Note = no_note, feature_dir: Path | None = None) -> CandidateSeeds:
    """The candidate stage again on the split of every seed but the main one (its own split and
    model seeds each), beside the main run's ``main``."""
    extra = []
    for seed in seeds:
        if seed == main.seed:
            continue
        note(f"seed {seed}")
        split = make_split(data.labels, budget.test_size, seed)
        extra.append(run_candidates(data, split, budget, n_jobs, level=level, label=main.label,
                                    note=lambda text, seed=seed: note(f"seed {seed}: {text}"), feature_dir=feature_dir))
    return CandidateSeeds((main, *extra))

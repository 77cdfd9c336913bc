"""Learning curves: does more data or a better model limit P vs NP and L?

Every model is refitted on growing, class-stratified subsets of the same fit rows of the
candidate stage (1 000, 2 000, 4 000, 8 000, 12 000 rows, up to as many as there are) and
scored on the same noise-free test rows (sizes: ``Budget.curve_sizes``): the paper's random forest (pointwise |M| window,
SMOTE) and every candidate of the budget. A curve still rising at the largest size says more
data would help; a flat one that the model (or the information in the echo) is the limit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from pyecho.data.records import NoisyRecords
from pyecho.learn.base import (POWER_CLASS, TASK_CLASSES, Budget, ClassScores, FeatureSet, LearnData, Note, RegScores,
                               Target, Task, no_note)
from pyecho.learn.models.candidates import (CANDIDATE_TITLES, Candidate, fit_candidate, noise_streams, noisy_rows,
                                            targets_of)
from pyecho.learn.models.scores import TaskScores
from pyecho.learn.paper.classify import make_rf_pipeline
from pyecho.learn.paper.features import Features
from pyecho.learn.paper.regress import make_rf_regressor

PAPER_RF = "paper's RF (pointwise |M| window)"


@dataclass(frozen=True)
class CurvePoint:
    """One model fitted on ``n_train`` rows: P-vs-NP scores and R² of L on the test rows."""

    model: str
    n_train: int
    pvnp: ClassScores
    L: RegScores


@dataclass(frozen=True)
class LearningCurves:
    points: tuple[CurvePoint, ...]
    n_test: int

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(p.model for p in self.points))


def run_learning_curves(data: LearnData, features: Features, studies, budget: Budget, n_jobs: int, *,
                        note: Note = no_note) -> LearningCurves:
    """Stage (behind ``--learning-curve``): every model at every training size of
    ``budget.curve_sizes`` that the fit rows allow. ``studies``: (data, CandidatesResult) pairs
    on the same samples and split (the protocol, and the Hahn echo alone)."""
    _, first = studies[0]
    rows, seed = first.rows, first.seed
    y_pvnp = data.labels.classes(Task.PVNP)
    X_rf = features.tables[FeatureSet.POINTWISE]
    points = []
    for size in (s for s in budget.curve_sizes if s <= len(rows.fit)):
        sub = curve_subset(rows.fit, size, data.labels.kernel, seed)
        note(f"{size} rows: paper's RF")
        rf = make_rf_pipeline(budget.rf_trees, seed, n_jobs).fit(X_rf[sub], y_pvnp[sub])
        rf_L = make_rf_regressor(budget.rf_trees, seed, n_jobs).fit(X_rf[sub], data.labels.L[sub])
        points.append(CurvePoint(PAPER_RF, size, ClassScores.of(y_pvnp[rows.test], rf.predict(X_rf[rows.test]),
                                                                 TASK_CLASSES[Task.PVNP], POWER_CLASS[Task.PVNP]),
                                 RegScores.of(data.labels.L[rows.test], rf_L.predict(X_rf[rows.test]))))
        for study_data, study in studies:
            for name in budget.candidates:
                note(f"{size} rows: {name} ({study.label})")
                points.append(candidate_point(Candidate(name), study_data, study.label, sub, rows.test,
                                              study.headline.pvnp_threshold, budget, seed, n_jobs))
    return LearningCurves(tuple(points), len(rows.test))


def curve_subset(fit_rows: np.ndarray, size: int, kernel: np.ndarray, seed: int) -> np.ndarray:
    """``size`` of the fit rows, stratified by kernel (all of them at their number)."""
    if size == len(fit_rows):
        return fit_rows
    return np.sort(train_test_split(fit_rows, train_size=size, random_state=seed, stratify=kernel[fit_rows])[0])


def candidate_point(name: Candidate, data: LearnData, label: str, sub: np.ndarray, test_rows: np.ndarray,
                    pvnp_threshold: float, budget: Budget, seed: int, n_jobs: int) -> CurvePoint:
    """The candidate ``name`` fitted on the samples ``sub`` (and one noisy copy each, as the
    candidate stage does), scored on the noise-free ``test_rows``: P vs NP (P where p_power >=
    ``pvnp_threshold``) and R² of L."""
    targets = targets_of(data)
    # the CNN draws fresh noise every epoch itself
    noisy = None if name == Candidate.CNN else noisy_rows(data, sub, 1, noise_streams(seed)["fit"], budget.dead_time_us)
    model = fit_candidate(name, data, targets, sub, noisy, budget, seed, n_jobs)
    scores = TaskScores.of(model.predict(NoisyRecords.clean(data.records, test_rows)), targets.take(test_rows),
                           pvnp_threshold)
    return CurvePoint(f"{CANDIDATE_TITLES[name]} ({label})", len(sub), scores.pvnp, scores.regression[Target.L.value])

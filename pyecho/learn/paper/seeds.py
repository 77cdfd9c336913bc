"""The headline models over several seeds: each seed draws its own split and seeds its models.

The headline models are the paper's random forests on the pointwise features: P vs NP, the
3-class kernel and the all-kernel regressions of W, L, alpha_xy, alpha_z. The main run's seed
reuses the main run's fits; every other seed refits them on its own split (no CV, no pruning).
The report gives mean ± std over the seeds.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Sequence

from pyecho.errors import ParameterError
from pyecho.learn.base import (COUPLING_TARGETS, Budget, Evaluation, FeatureSet, Labels, ModelScore, Note, Split, Subset, Task,
                               make_split, no_note, pool_seeds)
from pyecho.learn.paper.classify import RF_MODEL, ClassifierResult, fit_evaluate, inputs_name, make_rf_pipeline
from pyecho.learn.paper.features import Features
from pyecho.learn.paper.regress import RegressionTable, fit_evaluate_regressor, make_rf_regressor

#: the headline models' features
HEADLINE_FEATURES = FeatureSet.POINTWISE


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct non-negative ints; ValueError naming the value otherwise."""
    given = list(seeds)
    try:
        out = tuple(operator.index(s) for s in given if not isinstance(s, bool))
    except TypeError:
        out = ()
    if not out or len(out) != len(given) or min(out) < 0 or len(set(out)) != len(out):
        raise ParameterError(f"seeds must be distinct non-negative integers (at least one), got {given!r}")
    return out


def headline_scores(features: Features, pvnp: ClassifierResult, kernel3: ClassifierResult,
                    regression: RegressionTable, seed: int) -> tuple[ModelScore, ...]:
    """The headline models' scores of one seed, in a fixed order (the all-kernel regressions on
    :data:`HEADLINE_FEATURES` are read from ``regression``)."""
    inputs = inputs_name(features, HEADLINE_FEATURES)
    regs = [regression.get(t, Subset.ALL, HEADLINE_FEATURES) for t in COUPLING_TARGETS]
    return tuple(r.model_score(RF_MODEL, inputs, Evaluation.PAPER, seed) for r in (pvnp, kernel3, *regs))


def fit_headline(features: Features, labels: Labels, split: Split, budget: Budget, n_jobs: int) -> tuple[ModelScore, ...]:
    """Fit the headline models on ``split`` (models seeded by ``split.seed``) and score them."""
    X = features.tables[HEADLINE_FEATURES]
    names = tuple(features.layout.names(HEADLINE_FEATURES))
    pvnp, kernel3 = (fit_evaluate(make_rf_pipeline(budget.rf_trees, split.seed, n_jobs), X, labels.classes(task),
                                  split.train, split.test, task, feature_names=names)
                     for task in (Task.PVNP, Task.KERNEL3))
    regression = RegressionTable(tuple(
        fit_evaluate_regressor(make_rf_regressor(budget.rf_trees, split.seed, n_jobs), X, labels.target(t),
                               split.train, split.test, t, Subset.ALL, HEADLINE_FEATURES, list(names))
        for t in COUPLING_TARGETS))
    return headline_scores(features, pvnp, kernel3, regression, split.seed)


@dataclass(frozen=True)
class SeedStudy:
    """seeds : the seeds; per_seed : each seed's headline scores (same model order)."""

    seeds: tuple[int, ...]
    per_seed: tuple[tuple[ModelScore, ...], ...]

    def model_scores(self) -> tuple[ModelScore, ...]:
        """Mean ± std over the seeds (std None for one seed)."""
        return pool_seeds(self.per_seed)


def run_seed_study(features: Features, labels: Labels, main_split: Split, main_scores: tuple[ModelScore, ...],
                   seeds: Sequence[int], budget: Budget, n_jobs: int, note: Note = no_note) -> SeedStudy:
    """Stage: the headline models for every seed; ``main_scores`` (from :func:`headline_scores`)
    stand for ``main_split.seed``."""
    seeds = check_seeds(seeds)
    per_seed = []
    for s in seeds:
        if s == main_split.seed:
            per_seed.append(main_scores)
            continue
        note(f"seed {s}")
        per_seed.append(fit_headline(features, labels, make_split(labels, main_split.test_size, s), budget, n_jobs))
    return SeedStudy(seeds=seeds, per_seed=tuple(per_seed))

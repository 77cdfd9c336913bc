"""Regression of the interaction parameters (paper Sec. III C, Fig. 5, Figs. 10-12).

Random forests (``max_features="sqrt"``, OOB scoring) predict W, L, alpha_xy (= alpha_x =
alpha_y) and alpha_z from pointwise or polynomial features, on all kernels, power-law only
("P") and non-power only ("NP"). Scores: OOB R^2 (training rows), test R^2 and MAE.
The paper also SMOTE-oversampled P in the all-kernel regressions; SMOTE is a classification
resampler, so here the regressions are trained on the rows as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor

from pyecho.learn.base import (FEATURE_SETS, NO_JSON, SUBSETS, COUPLING_TARGETS, Budget, ByFeatureSet, Evaluation,
                               FeatureSet, Labels, ModelScore, Note, RegScores, Split, Subset, Target, no_note)
from pyecho.learn.paper.features import Features

#: how many of the most important features a result lists
TOP_FEATURES = 10


def make_rf_regressor(n_estimators: int = 200, seed: int = 0, n_jobs: int = 1) -> RandomForestRegressor:
    """RandomForestRegressor(max_features="sqrt", oob_score=True)."""
    return RandomForestRegressor(n_estimators=n_estimators, max_features="sqrt", oob_score=True,
                                 random_state=seed, n_jobs=n_jobs)


@dataclass(frozen=True)
class FeatureImportance:
    name: str
    importance: float


@dataclass(frozen=True)
class RegressionResult:
    """A fitted regressor scored on the test rows.

    target, subset, feature_set : what was learned from what; scores : test R² and MAE (units of
    the target); r2_oob : OOB R² on the training rows (None if the model has none);
    top_features : the ten most important features; importances (F,), y_true / y_pred (test rows).
    """

    target: Target
    subset: Subset
    feature_set: str
    scores: RegScores
    r2_oob: float | None
    top_features: tuple[FeatureImportance, ...]
    n_train: int
    n_test: int
    importances: np.ndarray | None = field(metadata=NO_JSON)
    y_true: np.ndarray = field(metadata=NO_JSON)
    y_pred: np.ndarray = field(metadata=NO_JSON)
    model: object = field(metadata=NO_JSON)

    def model_score(self, model: str, inputs: str, evaluation: Evaluation, seed: int) -> ModelScore:
        return ModelScore.single(model, self.target, inputs, evaluation, self.scores, seed, self.n_train, self.n_test)


def fit_evaluate_regressor(model, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                           target: Target, subset: Subset, feature_set: str,
                           feature_names: list[str]) -> RegressionResult:
    """Fit a clone of ``model`` on the training rows of X (B, F), y (B,); score on the test rows."""
    m = clone(model).fit(X[train], y[train])
    pred = m.predict(X[test])
    imp = getattr(m, "feature_importances_", None)
    top = ()
    if imp is not None:
        top = tuple(FeatureImportance(feature_names[i], float(imp[i])) for i in np.argsort(imp)[::-1][:TOP_FEATURES])
    return RegressionResult(
        target=Target(target), subset=Subset(subset), feature_set=str(feature_set),
        scores=RegScores.of(y[test], pred), r2_oob=float(m.oob_score_) if hasattr(m, "oob_score_") else None,
        top_features=top, n_train=len(train), n_test=len(test), importances=imp, y_true=y[test], y_pred=pred,
        model=m)


def subset_indices(idx: np.ndarray, is_power: np.ndarray, subset: Subset) -> np.ndarray:
    """Restrict row indices to a kernel subset: all, P (power) or NP (gaussian + rkky)."""
    subset = Subset(subset)
    if subset == Subset.ALL:
        return idx
    return idx[is_power[idx]] if subset == Subset.P else idx[~is_power[idx]]


@dataclass(frozen=True)
class RegressionTable:
    """Every (target, subset, feature set) random-forest regression of the paper."""

    results: tuple[RegressionResult, ...]

    def get(self, target: Target, subset: Subset = Subset.ALL,
            feature_set: FeatureSet = FeatureSet.POINTWISE) -> RegressionResult:
        for r in self.results:
            if (r.target, r.subset, r.feature_set) == (target, subset, feature_set):
                return r
        raise KeyError(f"no regression for {target} / {subset} / {feature_set}")

    def W_test_predictions(self) -> ByFeatureSet[np.ndarray]:
        """The all-kernel W forests' test predictions, per feature set (routes W screening)."""
        return ByFeatureSet.build(lambda fs: self.get(Target.W, Subset.ALL, fs).y_pred)


def headline_trees(subset: Subset, fs: FeatureSet, budget: Budget) -> int:
    """The saved (all-kernel, pointwise) regressors get the headline forest size; the others the auxiliary one."""
    return budget.rf_trees if (subset == Subset.ALL and fs == FeatureSet.POINTWISE) else budget.aux_trees


def run_regression(features: Features, labels: Labels, split: Split, budget: Budget, n_jobs: int,
                   note: Note = no_note) -> RegressionTable:
    """Stage: random-forest regressions of every target on every kernel subset and feature set."""
    results = []
    for target in COUPLING_TARGETS:
        y = labels.target(target)
        for subset in SUBSETS:
            tr = subset_indices(split.train, labels.is_power, subset)
            te = subset_indices(split.test, labels.is_power, subset)
            for fs in FEATURE_SETS:
                note(f"{target.value} / {subset.value} / {fs.value}")
                rf = make_rf_regressor(headline_trees(subset, fs, budget), split.seed, n_jobs)
                results.append(fit_evaluate_regressor(rf, features.tables[fs], y, tr, te, target, subset, fs,
                                                      features.layout.names(fs)))
    return RegressionTable(tuple(results))

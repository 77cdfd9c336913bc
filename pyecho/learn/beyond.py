"""Beyond the paper (clearly labelled): histogram gradient boosting on richer |M| features.

Pointwise + polynomial features + the polynomial features of log10(|M| + 1e-3), on the same split
as the paper's models; ``class_weight="balanced"`` instead of SMOTE, early stopping on an
internal 10 % of the training rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from pyecho.learn.base import (FEATURE_SETS, TARGETS, Budget, Evaluation, Labels, ModelScore, Note, Split, Subset,
                               Task, no_note)
from pyecho.learn.classify import ClassifierResult, fit_evaluate
from pyecho.learn.features import Features, polynomial_features
from pyecho.learn.regress import RegressionResult, fit_evaluate_regressor

HGB_MODEL = "gradient boosting (HGB)"
#: the feature-set label of the beyond-the-paper models
ALL_FEATURES = "pointwise + polynomial + log-polynomial"
#: offset of log10(|M| + LOG_OFFSET): keeps the log finite where |M| is 0
LOG_OFFSET = 1e-3


def make_hgb_classifier(seed: int = 0, max_iter: int = 150) -> HistGradientBoostingClassifier:
    """Histogram gradient boosting, class_weight="balanced" instead of SMOTE, early stopping on an
    internal 10 % validation split, 30 % of the features tried per split."""
    return HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, class_weight="balanced",
                                          early_stopping=True, validation_fraction=0.1, max_features=0.3,
                                          n_iter_no_change=20, random_state=seed)


def make_hgb_regressor(seed: int = 0, max_iter: int = 150) -> HistGradientBoostingRegressor:
    """Histogram gradient boosting with early stopping, 30 % of the features per split."""
    return HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.1, early_stopping=True,
                                         validation_fraction=0.1, max_features=0.3, n_iter_no_change=20,
                                         random_state=seed)


@dataclass(frozen=True)
class BeyondResult:
    """features : the feature description; pvnp / kernel3 / regression : the HGB models' results."""

    features: str
    n_features: int
    pvnp: ClassifierResult
    kernel3: ClassifierResult
    regression: tuple[RegressionResult, ...]
    seed: int

    def model_scores(self) -> tuple[ModelScore, ...]:
        inputs = f"{ALL_FEATURES} ({self.n_features})"
        return (*(r.model_score(HGB_MODEL, inputs, Evaluation.BEYOND, self.seed) for r in (self.pvnp, self.kernel3)),
                *(r.model_score(HGB_MODEL, inputs, Evaluation.BEYOND, self.seed) for r in self.regression))


def run_beyond(features: Features, labels: Labels, split: Split, budget: Budget, note: Note = no_note) -> BeyondResult:
    """Stage: HGB P vs NP, 3-class and the four regressions on all |M| features."""
    lay = features.layout
    Xlog = polynomial_features(np.log10(features.X_window + LOG_OFFSET), lay.t_window, lay.sections)
    X = np.hstack([*(features.tables[fs] for fs in FEATURE_SETS), Xlog.to_numpy()])
    names = [*lay.pointwise_names, *lay.polynomial_names, *(f"log{c}" for c in Xlog.columns)]
    sizes = " + ".join(f"{fs.value} ({features.tables[fs].shape[1]})" for fs in FEATURE_SETS)
    description = f"{sizes} + polynomial of log10(|M|+{LOG_OFFSET:g}) ({Xlog.shape[1]}) = {X.shape[1]}"
    classifiers = {}
    for task in Task:
        note(f"HGB {task.value}")
        classifiers[task] = fit_evaluate(make_hgb_classifier(split.seed, budget.hgb_max_iter), X,
                                         labels.classes(task), split.train, split.test, task,
                                         cv_folds=budget.hgb_cv_folds if task == Task.PVNP else 0, seed=split.seed,
                                         feature_names=tuple(names))
    regression = []
    for target in TARGETS:
        note(f"HGB {target.value}")
        regression.append(fit_evaluate_regressor(make_hgb_regressor(split.seed, budget.hgb_max_iter), X,
                                                 labels.target(target), split.train, split.test, target,
                                                 Subset.ALL, ALL_FEATURES, names))
    return BeyondResult(features=description, n_features=X.shape[1], pvnp=classifiers[Task.PVNP],
                        kernel3=classifiers[Task.KERNEL3], regression=tuple(regression), seed=split.seed)

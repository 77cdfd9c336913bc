"""The paper's leak, reproduced once so that a reader sees why its headline F1 is optimistic.

The paper's authors SMOTE-oversampled *all* echoes before the stratified train/test split, so
the test set holds synthetic echoes interpolated between training echoes (and training echoes
sit next to test echoes). This stage does exactly that with the paper's random forest and
scores it on that leaked test set. It is reported beside the leak-free result and is never
used to choose anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from imblearn.over_sampling import SMOTE
from sklearn.model_selection import train_test_split

from pyecho.learn.base import NO_JSON, Budget, ClassScores, Evaluation, FeatureSet, Labels, ModelScore, Split, Task
from pyecho.learn.paper.classify import RF_MODEL, fit_evaluate, inputs_name, make_rf_pipeline
from pyecho.learn.paper.features import Features


@dataclass(frozen=True)
class LeakResult:
    """The paper's random forest scored on a test set drawn after oversampling every row.

    n_rows : echoes before oversampling; n_synthetic : SMOTE rows added (to all rows);
    n_test_synthetic : synthetic rows that ended up in the test set; test_index : test rows as
    indices into the oversampled rows (index >= n_rows: synthetic).
    """

    inputs: str
    scores: ClassScores
    confusion: np.ndarray
    n_rows: int
    n_synthetic: int
    n_train: int
    n_test: int
    n_test_synthetic: int
    seed: int
    test_index: np.ndarray = field(metadata=NO_JSON)

    def model_scores(self) -> tuple[ModelScore, ...]:
        return (ModelScore.single(RF_MODEL, Task.PVNP, self.inputs, Evaluation.LEAKED, self.scores, self.seed,
                                  self.n_train, self.n_test),)


def reproduce_leak(X: np.ndarray, y: np.ndarray, test_size: float, seed: int, n_trees: int, n_jobs: int = 1,
                   inputs: str = "", sampler=None) -> LeakResult:
    """Oversample all rows of X (B, F), y (B,) P/NP, *then* split (stratified by y), fit the paper's
    random forest on the training part and score it on the (leaked) test part.

    ``sampler`` replaces SMOTE(random_state=seed) (tests); it must return the original rows
    first, unchanged, then the synthetic ones (as imbalanced-learn's oversamplers do).
    """
    sampler = SMOTE(random_state=seed) if sampler is None else sampler
    X_os, y_os = sampler.fit_resample(X, y)
    n = len(X)
    if len(X_os) < n or not np.array_equal(X_os[:n], X):
        raise RuntimeError("the oversampler did not return the original rows first; cannot tell synthetic rows apart")
    train, test = train_test_split(np.arange(len(X_os)), test_size=test_size, random_state=seed, stratify=y_os)
    train, test = np.sort(train), np.sort(test)
    res = fit_evaluate(make_rf_pipeline(n_trees, seed, n_jobs, sampler="passthrough"), X_os, y_os, train, test,
                       Task.PVNP)
    return LeakResult(inputs=inputs, scores=res.scores, confusion=res.confusion, n_rows=n, n_synthetic=len(X_os) - n,
                      n_train=len(train), n_test=len(test), n_test_synthetic=int(np.sum(test >= n)), seed=int(seed),
                      test_index=test)


def run_leak(features: Features, labels: Labels, split: Split, budget: Budget, n_jobs: int) -> LeakResult:
    """Stage: the leak on the pointwise features, with the main split's test fraction and seed."""
    fs = FeatureSet.POINTWISE
    return reproduce_leak(features.tables[fs], labels.classes(Task.PVNP), split.test_size, split.seed,
                          budget.rf_trees, n_jobs, inputs=inputs_name(features, fs))

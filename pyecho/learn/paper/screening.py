"""W screening (paper Sec. III B, Figs. 8-9): one P-vs-NP forest per W bin.

One model per bin is trained on the training rows whose true W falls in the bin. The test rows
are routed to a bin model twice: by their true W (the paper's protocol, optimistic: a measured
echo has no true W) and, honestly, by a W regressor's prediction (trained on the training rows
only). Both pooled results carry the four scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.metrics import confusion_matrix

from pyecho.learn.base import (POWER_CLASS, TASK_CLASSES, Budget, ByFeatureSet, ClassScores, FeatureSet, Labels,
                               Note, Split, Task, no_note)
from pyecho.learn.paper.classify import ClassifierResult, fit_evaluate, make_rf_pipeline
from pyecho.learn.paper.features import Features

#: W screening bins (paper Sec. III B), rad/µs; the last bin is closed
W_BINS: tuple[tuple[float, float], ...] = ((0.1, 0.17), (0.17, 0.23), (0.23, 0.3))


def w_bin(W: np.ndarray) -> np.ndarray:
    """Index of the W screening bin (0, 1, 2); values outside [0.1, 0.3] go to the nearest end bin."""
    edges = [b[1] for b in W_BINS[:-1]]
    return np.digitize(np.asarray(W), edges, right=False)


@dataclass(frozen=True)
class ScreenBin:
    """One bin's model: W range [lo, hi), its result on the test rows whose true W is in the bin,
    and whether its training rows held one class only (tiny datasets: a constant model)."""

    lo: float
    hi: float
    result: ClassifierResult
    single_class: bool


@dataclass(frozen=True)
class PooledScores:
    """All test rows, each classified by the model of the bin it was routed to."""

    scores: ClassScores
    confusion: np.ndarray


@dataclass(frozen=True)
class WScreenResult:
    """bins : per-bin models; true_W / predicted_W : pooled by true and by predicted W;
    bin_accuracy_predicted_W : fraction of test rows whose predicted W falls in their true bin."""

    bins: tuple[ScreenBin, ...]
    true_W: PooledScores
    predicted_W: PooledScores
    bin_accuracy_predicted_W: float


def w_screening(X: np.ndarray, y: np.ndarray, W_true: np.ndarray, W_pred_test: np.ndarray, split: Split,
                make_pipe, feature_names: tuple[str, ...] = ()) -> WScreenResult:
    """Per-W-bin P-vs-NP classifiers.

    Parameters
    ----------
    X : (B, F) features; y : (B,) P/NP labels; W_true : (B,) true W (rad/µs)
    W_pred_test : (n_test,) a W regressor's prediction for ``split.test``
    make_pipe : builds one bin's model
    """
    train, test = split.train, split.test
    bins_tr, bins_te, bins_hat = w_bin(W_true[train]), w_bin(W_true[test]), w_bin(W_pred_test)
    bins = []
    pred_true, pred_hat = np.empty(len(test), dtype=y.dtype), np.empty(len(test), dtype=y.dtype)
    for b, (lo, hi) in enumerate(W_BINS):
        tr_b = train[bins_tr == b]
        if len(tr_b) == 0:
            raise ValueError(f"W bin [{lo}, {hi}) has no training rows")
        te_mask = bins_te == b
        single = len(np.unique(y[tr_b])) < 2
        model = DummyClassifier(strategy="most_frequent") if single else make_pipe()
        res = fit_evaluate(model, X, y, tr_b, test[te_mask], Task.PVNP, feature_names=feature_names)
        pred_true[te_mask] = res.y_pred
        bins.append(ScreenBin(lo=lo, hi=hi, result=res, single_class=single))
    for b, sb in enumerate(bins):
        sel = bins_hat == b
        if sel.any():
            pred_hat[sel] = sb.result.model.predict(X[test[sel]])
    classes = TASK_CLASSES[Task.PVNP]

    def pooled(pred: np.ndarray) -> PooledScores:
        return PooledScores(scores=ClassScores.of(y[test], pred, classes, POWER_CLASS[Task.PVNP]),
                            confusion=confusion_matrix(y[test], pred, labels=list(classes)))
    return WScreenResult(bins=tuple(bins), true_W=pooled(pred_true), predicted_W=pooled(pred_hat),
                         bin_accuracy_predicted_W=float(np.mean(bins_hat == bins_te)))


def run_wscreen(features: Features, labels: Labels, split: Split, W_pred_test: ByFeatureSet[np.ndarray],
                budget: Budget, n_jobs: int, note: Note = no_note) -> ByFeatureSet[WScreenResult]:
    """Stage: W screening on each feature set, routed by ``W_pred_test[fs]`` (the all-kernel W forest's
    test predictions on the same features) as well as by the true W."""
    def screen(fs: FeatureSet) -> WScreenResult:
        note(fs.value)
        return w_screening(features.tables[fs], labels.classes(Task.PVNP), labels.W, W_pred_test[fs], split,
                           lambda: make_rf_pipeline(budget.aux_trees, split.seed, n_jobs),
                           tuple(features.layout.names(fs)))
    return ByFeatureSet.build(screen)

"""Kernel classification (paper Sec. III B, Fig. 4, Table I, Appendix C 5, Figs. 8-9).

Protocol (the paper's): one stratified train/test split; SMOTE oversampling of the training
part only, inside an imbalanced-learn :class:`~imblearn.pipeline.Pipeline` so that
cross-validation resamples each fold's training part and never sees a synthetic copy of a
validation or test row; random forests with out-of-bag scores.

Note on OOB: the forest's bootstrap draws from the SMOTE-resampled training set, so its OOB
rows include synthetic points (as in the paper, which used sklearn's ``oob_score``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

#: W screening bins (paper Sec. III B), in the dataset's W units; the last bin is closed
W_BINS: tuple[tuple[float, float], ...] = ((0.1, 0.17), (0.17, 0.23), (0.23, 0.3))


def split_indices(strata: np.ndarray, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of ``range(len(strata))`` -> (train_idx, test_idx), sorted."""
    idx = np.arange(len(strata))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    return np.sort(tr), np.sort(te)


def make_rf_pipeline(n_estimators: int = 200, seed: int = 0, n_jobs: int = 1, sampler=None) -> Pipeline:
    """SMOTE (training part only) -> RandomForestClassifier(max_features="sqrt", oob_score=True).

    ``sampler`` replaces SMOTE (tests use a recording sampler); ``"passthrough"`` disables it.
    """
    return Pipeline([
        ("smote", SMOTE(random_state=seed) if sampler is None else sampler),
        ("rf", RandomForestClassifier(n_estimators=n_estimators, max_features="sqrt",
                                      oob_score=True, random_state=seed, n_jobs=n_jobs)),
    ])


def _f1(y_true, y_pred, labels) -> float:
    if len(labels) == 2:
        return float(f1_score(y_true, y_pred, pos_label=labels[1], labels=labels, zero_division=0))
    return float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))


def f1_scorer(labels):
    """CV scorer: binary F1 of the positive class ``labels[1]``, or macro F1 for > 2 classes."""
    def score(est, X, y):
        return _f1(y, est.predict(X), labels)
    return score


def _fit_smote_k(pipe, y_train, min_count: int | None = None):
    """Shrink SMOTE's k_neighbors for tiny minority classes (k < minority size); drop it if < 2."""
    if not hasattr(pipe, "named_steps") or not isinstance(pipe.named_steps.get("smote"), SMOTE):
        return pipe
    if min_count is None:
        _, counts = np.unique(y_train, return_counts=True)
        min_count = int(counts.min())
    k = pipe.named_steps["smote"].k_neighbors
    if isinstance(k, int) and min_count <= k:
        pipe.set_params(smote=SMOTE(random_state=pipe.named_steps["smote"].random_state,
                                    k_neighbors=min_count - 1) if min_count >= 2 else "passthrough")
    return pipe


def fit_evaluate(
    pipe,
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    labels: list,
    cv_folds: int = 5,
    cv_pipe=None,
    seed: int = 0,
    feature_names: list[str] | None = None,
) -> dict:
    """Fit ``pipe`` on the training rows and score it.

    Parameters
    ----------
    pipe : classifier / imblearn pipeline (cloned, not modified)
    X : array (B, F); y : array (B,) class labels
    train, test : row indices
    labels : class order; for two classes ``labels[1]`` is the positive class of F1
    cv_folds : stratified k-fold CV on the training rows (0 to skip)
    cv_pipe : estimator used for the CV folds (default: ``pipe``); lets CV use smaller forests

    Returns
    -------
    dict: ``model`` (fitted), ``f1_test``, ``f1_cv`` / ``f1_cv_std`` (None when skipped),
    ``oob`` (OOB accuracy of a final random forest, else None), ``confusion`` (counts,
    rows = true class in ``labels`` order), ``confusion_norm`` (row-normalised),
    ``importances`` (Gini, if the final step has them), ``y_pred``, ``proba`` (test rows).
    """
    model = _fit_smote_k(clone(pipe), y[train]).fit(X[train], y[train])
    y_pred = model.predict(X[test])
    out = {"model": model, "labels": list(labels), "f1_test": _f1(y[test], y_pred, labels)}
    if cv_folds and cv_folds > 1:
        cv = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        _, counts = np.unique(y[train], return_counts=True)
        fold_min = int(counts.min() * (cv_folds - 1) // cv_folds)
        cv_est = _fit_smote_k(clone(cv_pipe if cv_pipe is not None else pipe), None, fold_min)
        scores = cross_val_score(cv_est, X[train], y[train],
                                 scoring=f1_scorer(labels), cv=cv)
        out["f1_cv"], out["f1_cv_std"] = float(scores.mean()), float(scores.std())
    else:
        out["f1_cv"] = out["f1_cv_std"] = None
    final = model[-1] if hasattr(model, "steps") else model
    out["oob"] = float(final.oob_score_) if hasattr(final, "oob_score_") else None
    cm = confusion_matrix(y[test], y_pred, labels=labels)
    out["confusion"] = cm
    out["confusion_norm"] = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    out["importances"] = getattr(final, "feature_importances_", None)
    out["feature_names"] = feature_names
    out["y_pred"] = y_pred
    out["proba"] = model.predict_proba(X[test]) if hasattr(model, "predict_proba") else None
    return out


def pruning_curve(
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    labels: list,
    first: dict,
    make_pipe: Callable[[], object],
    feature_names: list[str],
    cv_folds: int = 3,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> list[dict]:
    """Successive pruning (paper Fig. 4a): keep the features above the median Gini importance
    of the previous model, refit, repeat until two features remain.

    ``first`` is the :func:`fit_evaluate` result on all features (step 0). Returns one record
    per step: n_features, f1_test, f1_cv, f1_cv_std, oob, features (names kept).
    """
    keep = np.arange(X.shape[1])
    steps = [{"n_features": int(X.shape[1]), "f1_test": first["f1_test"], "f1_cv": first["f1_cv"],
              "f1_cv_std": first["f1_cv_std"], "oob": first["oob"],
              "features": [feature_names[i] for i in keep]}]
    imp = np.asarray(first["importances"])
    while len(keep) > 2:
        sel = imp > np.median(imp)
        if sel.sum() < 2 or sel.sum() == len(keep):
            sel = np.zeros(len(keep), bool)
            sel[np.argsort(imp)[::-1][: max(2, len(keep) // 2)]] = True
        keep = keep[sel]
        res = fit_evaluate(make_pipe(), X[:, keep], y, train, test, labels, cv_folds=cv_folds, seed=seed)
        imp = np.asarray(res["importances"])
        steps.append({"n_features": int(len(keep)), "f1_test": res["f1_test"], "f1_cv": res["f1_cv"],
                      "f1_cv_std": res["f1_cv_std"], "oob": res["oob"],
                      "features": [feature_names[i] for i in keep]})
        if on_step:
            on_step(len(keep))
    return steps


def model_zoo(seed: int = 0, n_jobs: int = 1, rf_trees: int = 200) -> dict[str, Pipeline]:
    """The paper's Table I models, each as StandardScaler -> SMOTE -> model (trees unscaled)."""
    def scaled(model):
        return Pipeline([("scale", StandardScaler()), ("smote", SMOTE(random_state=seed)), ("model", model)])

    return {
        "Logistic regression": scaled(LogisticRegression(max_iter=2000)),
        "K-nearest neighbors": scaled(KNeighborsClassifier(n_neighbors=5, n_jobs=n_jobs)),
        "Support vector machine (linear)": scaled(LinearSVC(C=1.0, max_iter=5000, random_state=seed)),
        "Kernel SVM (RBF)": scaled(SVC(kernel="rbf", C=1.0, gamma="scale", random_state=seed)),
        "SGD classifier": scaled(SGDClassifier(random_state=seed)),
        "Decision tree": Pipeline([("smote", SMOTE(random_state=seed)),
                                   ("model", DecisionTreeClassifier(random_state=seed))]),
        "Random forest": make_rf_pipeline(rf_trees, seed, n_jobs),
    }


#: Table I as printed in the paper (F1, power vs non-power)
PAPER_TABLE1 = {
    "Logistic regression": 0.795, "K-nearest neighbors": 0.793, "Support vector machine (linear)": 0.796,
    "Kernel SVM (RBF)": 0.69, "SGD classifier": 0.79, "Decision tree": 0.756, "Random forest": 0.82,
}


def subsample(train: np.ndarray, y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Stratified random subset of the training indices with at most ``max_rows`` rows."""
    if max_rows is None or len(train) <= max_rows:
        return train
    sub, _ = train_test_split(train, train_size=max_rows, random_state=seed, stratify=y[train])
    return np.sort(sub)


def w_bin(W: np.ndarray) -> np.ndarray:
    """Index of the W screening bin (0, 1, 2); values outside [0.1, 0.3] go to the nearest end bin."""
    edges = [b[1] for b in W_BINS[:-1]]
    return np.digitize(np.asarray(W), edges, right=False)


def w_screening(
    X: np.ndarray,
    y: np.ndarray,
    W_true: np.ndarray,
    W_pred_test: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    labels: list,
    make_pipe: Callable[[], object],
) -> dict:
    """Per-W-bin classifiers (paper Sec. III B, Figs. 8-9).

    One model per bin is trained on the training rows whose true W falls in the bin. The
    test rows are routed to a bin model twice: by their true W (the paper's protocol) and,
    honestly, by ``W_pred_test`` (a W regressor's prediction for the test rows, trained on
    the training rows only). Returns per-bin results and pooled F1 / confusion for both.
    """
    bins_tr, bins_te, bins_hat = w_bin(W_true[train]), w_bin(W_true[test]), w_bin(W_pred_test)
    per_bin, models = [], []
    pred_true, pred_hat = np.empty(len(test), dtype=y.dtype), np.empty(len(test), dtype=y.dtype)
    for b, (lo, hi) in enumerate(W_BINS):
        tr_b = train[bins_tr == b]
        te_mask = bins_te == b
        single = len(np.unique(y[tr_b])) < 2  # tiny datasets only: the bin model is a constant
        model = DummyClassifier(strategy="most_frequent") if single else make_pipe()
        if len(tr_b) == 0:
            raise ValueError(f"W bin [{lo}, {hi}) has no training rows")
        res = fit_evaluate(model, X, y, tr_b, test[te_mask], labels, cv_folds=0)
        models.append(res["model"])
        pred_true[te_mask] = res["y_pred"]
        per_bin.append({"bin": [lo, hi], "n_train": int(len(tr_b)), "n_test": int(te_mask.sum()),
                        "f1_test": res["f1_test"], "oob": res["oob"],
                        "confusion": res["confusion"], "confusion_norm": res["confusion_norm"],
                        "importances": res["importances"] if not single else np.zeros(X.shape[1]),
                        "single_class": single})
    for b, m in enumerate(models):
        sel = bins_hat == b
        if sel.any():
            pred_hat[sel] = m.predict(X[test[sel]])
    out = {"bins": per_bin}
    for key, pred in (("true_W", pred_true), ("predicted_W", pred_hat)):
        cm = confusion_matrix(y[test], pred, labels=labels)
        out[key] = {"f1_test": _f1(y[test], pred, labels), "confusion": cm,
                    "confusion_norm": cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)}
    out["bin_accuracy_predicted_W"] = float(np.mean(bins_hat == bins_te))
    return out


def make_hgb_classifier(seed: int = 0, max_iter: int = 150) -> HistGradientBoostingClassifier:
    """Beyond the paper: histogram gradient boosting, class_weight="balanced" instead of SMOTE,
    early stopping on an internal 10 % validation split, 30 % of the features tried per split."""
    return HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, class_weight="balanced",
                                          early_stopping=True, validation_fraction=0.1, max_features=0.3,
                                          n_iter_no_change=20, random_state=seed)

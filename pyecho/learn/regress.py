"""Regression of the interaction parameters (paper Sec. III C, Fig. 5, Figs. 10-12).

Random forests (``max_features="sqrt"``, OOB scoring) predict W, L, alpha_xy (= alpha_x =
alpha_y) and alpha_z from pointwise or polynomial features, on all kernels, power-law only
("P") and non-power only ("NP"). Scores: OOB R^2 (training rows), test R^2 and MAE.
The paper also SMOTE-oversampled P in the all-kernel regressions; SMOTE is a classification
resampler, so here the regressions are trained on the rows as they are.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.metrics import mean_absolute_error, r2_score

TARGETS: tuple[str, ...] = ("W", "L", "alpha_xy", "alpha_z")
SUBSETS: tuple[str, ...] = ("all", "P", "NP")


def make_rf_regressor(n_estimators: int = 200, seed: int = 0, n_jobs: int = 1) -> RandomForestRegressor:
    """RandomForestRegressor(max_features="sqrt", oob_score=True)."""
    return RandomForestRegressor(n_estimators=n_estimators, max_features="sqrt", oob_score=True,
                                 random_state=seed, n_jobs=n_jobs)


def make_hgb_regressor(seed: int = 0, max_iter: int = 150) -> HistGradientBoostingRegressor:
    """Beyond the paper: histogram gradient boosting with early stopping, 30 % of the features per split."""
    return HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.1, early_stopping=True,
                                         validation_fraction=0.1, max_features=0.3, n_iter_no_change=20,
                                         random_state=seed)


def fit_evaluate_regressor(
    model,
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    feature_names: list[str],
    top: int = 10,
) -> dict:
    """Fit a clone of ``model`` on the training rows.

    Parameters
    ----------
    X : array (B, F); y : array (B,) target (units of the label: W, alpha in rad/µs; L lattice units)
    train, test : row indices

    Returns
    -------
    dict: ``model``, ``r2_oob`` (None if the model has no OOB), ``r2_test``, ``mae_test``,
    ``importances`` (array (F,) or None), ``top_features`` [(name, importance)] (up to ``top``),
    ``y_true`` / ``y_pred`` (test rows), ``n_train``, ``n_test``.
    """
    m = clone(model).fit(X[train], y[train])
    pred = m.predict(X[test])
    imp = getattr(m, "feature_importances_", None)
    top_features = []
    if imp is not None:
        order = np.argsort(imp)[::-1][:top]
        top_features = [(feature_names[i], float(imp[i])) for i in order]
    return {
        "model": m,
        "r2_oob": float(m.oob_score_) if hasattr(m, "oob_score_") else None,
        "r2_test": float(r2_score(y[test], pred)),
        "mae_test": float(mean_absolute_error(y[test], pred)),
        "importances": imp,
        "top_features": top_features,
        "y_true": y[test],
        "y_pred": pred,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
    }


def subset_indices(idx: np.ndarray, is_power: np.ndarray, subset: str) -> np.ndarray:
    """Restrict row indices to a kernel subset: "all", "P" (power) or "NP" (gaussian + rkky)."""
    if subset == "all":
        return idx
    if subset == "P":
        return idx[is_power[idx]]
    if subset == "NP":
        return idx[~is_power[idx]]
    raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")

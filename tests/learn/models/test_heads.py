"""Linear heads fitted a block of feature rows at a time: the same ridge and logistic regression
as scikit-learn's on the whole matrix, and the same heads from a scratch file as from memory."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from pyecho.learn import storage as storage_module
from pyecho.learn.models import heads as heads_module
from pyecho.learn.models.heads import _fit_logistic, _ridge_basis, _ridge_validation_mse, fit_linear_heads
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoTargets
from pyecho.learn.storage import FeatureRows
from tests.learn.models.learnable import most_probable_kernel
from tests.learn.test_storage import features


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    for module in (storage_module, heads_module):  # every pass in several blocks, the last one short
        monkeypatch.setattr(module, "BLOCK_ROWS", 37)


def learnable(n_rows: int = 300, n_features: int = 40, seed: int = 0) -> tuple[np.ndarray, EchoTargets]:
    """Features whose first columns carry the kernel and two targets, with noise."""
    rng = np.random.default_rng(seed)
    F = features(n_rows, n_features, seed)
    k = rng.integers(0, 3, n_rows)
    F[:, 0] += 1.5 * (k == 1) - 1.5 * (k == 2)
    W = F[:, 1] + 0.3 * rng.standard_normal(n_rows)
    L = 2.0 + F[:, 2] - F[:, 3] + 0.3 * rng.standard_normal(n_rows)
    return F, EchoTargets(kernel=np.asarray(KERNEL_CLASSES)[k], values={"W": W, "L": L})


@pytest.mark.parametrize("n_rows, n_features", [(300, 40), (60, 90), (20, 90)])  # XᵀX, XᵀX, the SVD
def test_ridge_at_every_penalty_equals_sklearn_ridge(n_rows, n_features):
    rng = np.random.default_rng(0)
    F = features(n_rows, n_features)
    Y = F[:, :3] @ rng.standard_normal((3, 2)) + 0.1 * rng.standard_normal((n_rows, 2)) + 5.0
    fit = np.arange(n_rows) < 2 * n_rows // 3
    alphas = (0.1, 10.0, 1000.0)
    got = _ridge_validation_mse(FeatureRows.of(F), Y, fit, ~fit, alphas)
    basis = _ridge_basis(FeatureRows.of(F), fit, Y)
    for i, a in enumerate(alphas):
        ridge = Ridge(alpha=a).fit(F[fit].astype(np.float64), Y[fit])
        want = ((ridge.predict(F[~fit]) - Y[~fit]) ** 2).mean(axis=0)
        np.testing.assert_allclose(got[i], want, rtol=1e-6)
        coef = basis.coef([a, a])
        np.testing.assert_allclose(coef, ridge.coef_.T, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(basis.intercept(coef), ridge.intercept_, rtol=1e-9)


@pytest.mark.parametrize("C", [1e-3, 1.0])
def test_logistic_regression_from_blocks_equals_sklearn(C):
    F, targets = learnable()
    Z = StandardScaler().fit_transform(F).astype(np.float32)
    k = targets.kernel_index
    every = np.ones(len(k), dtype=bool)
    theta = _fit_logistic(FeatureRows.of(Z), every, k, C, None)
    n_classes = len(KERNEL_CLASSES)
    coef, intercept = theta[:-n_classes].reshape(-1, n_classes), theta[-n_classes:]
    want = LogisticRegression(C=C, max_iter=2000, tol=1e-8).fit(Z.astype(np.float64), k)
    np.testing.assert_allclose(coef, want.coef_.T, atol=2e-3 * np.abs(want.coef_).max())
    logits = Z @ coef + intercept
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba / proba.sum(axis=1, keepdims=True), want.predict_proba(Z), atol=2e-3)


def test_heads_from_a_scratch_file_equal_the_heads_in_memory(tmp_path):
    F, targets = learnable()
    a = fit_linear_heads(F.copy(), targets, random_state=1)
    rows = FeatureRows(len(F), F.shape[1], directory=tmp_path)
    for start in range(0, len(F), 50):
        rows.write(start, F[start:start + 50])
    b = fit_linear_heads(rows, targets, random_state=1)
    for name in a.ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.C, a.ridge_alpha) == (b.C, b.ridge_alpha)
    pred = a.predict(F)
    assert np.mean(most_probable_kernel(pred) == targets.kernel) > 0.6  # chance: 1/3
    assert np.corrcoef(pred["L"], targets["L"])[0, 1] > 0.9
    with pytest.raises(ValueError, match="F: 10 rows for 300 targets"):
        fit_linear_heads(F[:10], targets)

"""Linear heads fitted a block of feature rows at a time: their memory is set by the number of
features, not of rows.

The kernel head is a multinomial logistic regression, the target heads ridge regressions (one
penalty per target), both on standardised features, their penalties chosen on a validation
split by sample group (:func:`group_split`). None of it needs the feature matrix in memory:

* the standardisation: per-block means and variances, merged (:func:`~pyecho.learn.storage.blockwise_mean_std`),
  then the features rewritten standardised, a block at a time;
* ridge at every penalty from the centred rows X: XᵀX accumulated block by block (features²
  memory, whatever the rows) and one Cholesky factorisation per penalty, or the thin SVD of X
  when the rows are at most half the features (its arrays are then smaller than XᵀX's);
* the logistic regression minimises scikit-learn's objective (mean cross-entropy +
  ‖W‖² / (2 C n), intercepts unpenalised) with scipy's L-BFGS, every loss and gradient one pass
  over the blocks. scikit-learn's ``LogisticRegression`` needs every row in memory at once, and
  its estimators that learn from batches (``SGDClassifier.partial_fit``) stop short of this
  optimum; the tests hold the coefficients to scikit-learn's.

The features are a :class:`~pyecho.learn.storage.FeatureRows` matrix: in memory, or in an
unlinked scratch file read with plain reads.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy.linalg import cho_factor, cho_solve, svd
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets
from pyecho.learn.storage import BLOCK_ROWS, FeatureRows

#: ridge goes through the SVD of the rows when they are at most this share of the features: the
#: SVD's arrays (the rows, overwritten, Vᵀ, U and LAPACK's work space: some 2 n F + 4 n² numbers
#: for n rows of F features) then take less memory than XᵀX and its factorisation (2 F²), and
#: less time. Measured on 7 200 features: the linear model's fit peaked 1.8 GB above the resident
#: memory through the SVD of 4 800 rows (n/F = 0.67), 1.1 GB through XᵀX of 9 600 rows; of
#: 2 400 rows (n/F = 0.33), 0.9 GB through XᵀX and 0.55 GB through the SVD
_SVD_MAX_ROW_SHARE = 0.5
#: candidate inverse L2 strengths of the logistic regression (standardised features)
DEFAULT_C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
#: candidate ridge penalties (standardised features), one per decade
DEFAULT_RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 5, 7))
#: the logistic fit's iterations and gradient tolerance (scikit-learn's defaults: max_iter, tol)
LOGISTIC_MAX_ITER, LOGISTIC_TOL = 2000, 1e-4


def group_split(kernel_index: np.ndarray, groups: np.ndarray, fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows (fit, validation): whole groups on each side (a clean row and its noisy copies share
    a group), stratified by each group's kernel."""
    unique, first = np.unique(groups, return_index=True)
    try:
        _, g_val = train_test_split(unique, test_size=fraction, random_state=seed, stratify=kernel_index[first])
    except ValueError as exc:
        raise ValueError(f"validation_fraction: cannot carve a stratified validation split ({exc})") from None
    in_val = np.isin(groups, g_val)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def _selected(Z: FeatureRows, mask: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(positions, rows) of the rows of every block where ``mask`` (n_rows,) holds."""
    for start, block in Z.blocks():
        at = np.flatnonzero(mask[start:start + len(block)])
        if at.size == len(block):
            yield start + at, block  # no copy of a whole block
        elif at.size:
            yield start + at, block[at]


@dataclass(frozen=True)
class _RidgeBasis:
    """Ridge on one set of rows at any penalty, from the thin SVD X = U diag(sv) Vᵀ of its centred
    rows: coef(a) = V diag(sv / (sv² + a)) Uᵀ Yc; intercept ``mean_y`` - ``mean_x`` · coef."""

    mean_x: np.ndarray
    mean_y: np.ndarray
    V: np.ndarray
    sv: np.ndarray
    UtY: np.ndarray

    def coef(self, alphas) -> np.ndarray:
        """(n_features, n_targets): target t at penalty ``alphas[t]``."""
        s = self.sv[:, None]
        return self.V @ (s / (s ** 2 + np.asarray(alphas, dtype=float)[None, :]) * self.UtY)

    def intercept(self, coef: np.ndarray) -> np.ndarray:
        return self.mean_y - self.mean_x @ coef


@dataclass(frozen=True)
class _RidgeGram:
    """Ridge on one set of rows at any penalty, from G = XᵀX and XᵀYc of its centred rows: one
    Cholesky factorisation of G + a I per penalty (F³/3 operations: a few times fewer than one
    eigendecomposition for the seven penalties of a validation path)."""

    mean_x: np.ndarray
    mean_y: np.ndarray
    G: np.ndarray
    XtY: np.ndarray

    def coef(self, alphas) -> np.ndarray:
        """(n_features, n_targets): target t at penalty ``alphas[t]``."""
        alphas = np.asarray(alphas, dtype=float)
        out = np.empty(self.XtY.shape)
        for a in np.unique(alphas):
            A = self.G.copy()
            A.flat[::A.shape[0] + 1] += a
            cols = alphas == a
            out[:, cols] = cho_solve(cho_factor(A, overwrite_a=True, check_finite=False), self.XtY[:, cols],
                                     check_finite=False)
        return out

    def intercept(self, coef: np.ndarray) -> np.ndarray:
        return self.mean_y - self.mean_x @ coef


def _ridge_basis(Z: FeatureRows, mask: np.ndarray, Y: np.ndarray) -> _RidgeBasis | _RidgeGram:
    """Ridge on the rows where ``mask`` holds (targets Y (n_rows, n_targets)) at any penalty:
    from the SVD of the centred rows when they are at most :data:`_SVD_MAX_ROW_SHARE` of the
    features, else from XᵀX accumulated block by block (features² memory, whatever the rows)."""
    n = int(mask.sum())
    mean_y = Y[mask].mean(axis=0)
    if n <= _SVD_MAX_ROW_SHARE * Z.n_features:
        X = np.concatenate([rows for _, rows in _selected(Z, mask)]).astype(np.float64)
        mean_x = X.mean(axis=0)
        X -= mean_x
        U, sv, Vt = svd(X, full_matrices=False, overwrite_a=True, check_finite=False)
        del X
        return _RidgeBasis(mean_x, mean_y, Vt.T, sv, U.T @ (Y[mask] - mean_y))
    mean_x = np.zeros(Z.n_features)
    for _, rows in _selected(Z, mask):
        mean_x += rows.sum(axis=0, dtype=np.float64)
    mean_x /= n
    G, XtY = np.zeros((Z.n_features,) * 2), np.zeros((Z.n_features, Y.shape[1]))
    for at, rows in _selected(Z, mask):
        Xc = rows.astype(np.float64) - mean_x
        G += Xc.T @ Xc
        XtY += Xc.T @ (Y[at] - mean_y)
    return _RidgeGram(mean_x, mean_y, G, XtY)


def _ridge_validation_mse(Z: FeatureRows, Y: np.ndarray, fit: np.ndarray, val: np.ndarray, alphas) -> np.ndarray:
    """Validation MSE (alphas, targets) of ridge fitted on the rows ``fit`` (mask) at every
    penalty, exactly (:func:`_ridge_basis`)."""
    basis = _ridge_basis(Z, fit, Y)
    coefs = [basis.coef(np.full(Y.shape[1], a)) for a in alphas]
    sse = np.zeros((len(alphas), Y.shape[1]))
    for at, rows in _selected(Z, val):
        X = rows.astype(np.float64)
        for i, coef in enumerate(coefs):
            sse[i] += ((X @ coef + basis.intercept(coef) - Y[at]) ** 2).sum(axis=0)
    return sse / int(val.sum())


def _logistic_loss(theta: np.ndarray, Z: FeatureRows, mask: np.ndarray, k: np.ndarray, C: float
                   ) -> tuple[float, np.ndarray]:
    """scikit-learn's multinomial objective on the rows ``mask`` and its gradient; ``theta``: the
    coefficients (n_features, K) then the intercepts (K,), flattened."""
    n_classes, n_features, n = len(KERNEL_CLASSES), Z.n_features, int(mask.sum())
    W = theta[:-n_classes].reshape(n_features, n_classes)
    b = theta[-n_classes:]
    W32 = W.astype(np.float32)  # float32 products, as scikit-learn's on float32 features
    loss, gW, gb = 0.0, np.zeros_like(W), np.zeros(n_classes)
    for at, rows in _selected(Z, mask):
        logits = (rows @ W32).astype(np.float64) + b
        lse = logsumexp(logits, axis=1)
        y = k[at]
        loss += float((lse - logits[np.arange(len(y)), y]).sum())
        P = np.exp(logits - lse[:, None])
        P[np.arange(len(y)), y] -= 1.0
        gW += rows.T @ P.astype(np.float32)
        gb += P.sum(axis=0)
    penalty = 1.0 / (C * n)
    loss = loss / n + 0.5 * penalty * float((W ** 2).sum())
    return loss, np.concatenate([(gW / n + penalty * W).ravel(), gb / n])


def _fit_logistic(Z: FeatureRows, mask: np.ndarray, k: np.ndarray, C: float, start: np.ndarray | None
                  ) -> np.ndarray:
    """The minimiser of :func:`_logistic_loss` (L-BFGS from ``start``, or zero)."""
    theta0 = np.zeros((Z.n_features + 1) * len(KERNEL_CLASSES)) if start is None else start
    res = minimize(_logistic_loss, theta0, args=(Z, mask, k, C), jac=True, method="L-BFGS-B",
                   options={"maxiter": LOGISTIC_MAX_ITER, "maxls": 50, "gtol": LOGISTIC_TOL,
                            "ftol": 64 * np.finfo(float).eps})
    if res.nit >= LOGISTIC_MAX_ITER:
        warnings.warn(f"logistic regression at C = {C:g}: not converged in {LOGISTIC_MAX_ITER} iterations",
                      ConvergenceWarning, stacklevel=3)
    return res.x


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


@dataclass(frozen=True)
class LinearHeads:
    """Standardisation and linear heads on features: multinomial logistic regression for the
    kernel, ridge for the targets (learning scale), and the penalties they were chosen with.

    Attributes
    ----------
    mean, scale : float64 (n_features,) -- the standardisation
    kernel_coef, kernel_intercept : (n_features, K), (K,) -- logits of :data:`KERNEL_CLASSES`
    target_coef, target_intercept : (n_features, n_targets), (n_targets,) -- the targets on
        their learning scale
    targets : the target names; C : the logistic C; ridge_alpha : target -> its penalty
    """

    mean: np.ndarray
    scale: np.ndarray
    kernel_coef: np.ndarray
    kernel_intercept: np.ndarray
    target_coef: np.ndarray
    target_intercept: np.ndarray
    targets: tuple[str, ...]
    C: float
    ridge_alpha: dict

    #: the array attributes, as saved
    ARRAYS = ("mean", "scale", "kernel_coef", "kernel_intercept", "target_coef", "target_intercept")

    def outputs(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kernel probabilities (B, K), targets on the learning scale (B, n_targets)), float64,
        of raw features F (B, n_features); memory: a float64 copy of F."""
        Z = (np.asarray(F, dtype=np.float64) - self.mean) / self.scale
        return _softmax(Z @ self.kernel_coef + self.kernel_intercept), Z @ self.target_coef + self.target_intercept

    def predict(self, F: np.ndarray) -> EchoPredictions:
        """Predictions for raw features F (B, n_features), :data:`BLOCK_ROWS` rows at a time."""
        parts = [self.outputs(F[i:i + BLOCK_ROWS]) for i in range(0, len(F), BLOCK_ROWS)]
        return EchoPredictions.from_learning_scale(np.concatenate([p for p, _ in parts]),
                                                   np.concatenate([y for _, y in parts]), self.targets)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}


def fit_linear_heads(F, targets: EchoTargets, *, groups: np.ndarray | None = None, C_grid=DEFAULT_C_GRID,
                     ridge_alphas=DEFAULT_RIDGE_ALPHAS, validation_fraction: float = 0.2,
                     random_state: int = 0) -> LinearHeads:
    """Fit :class:`LinearHeads` on features F (:class:`FeatureRows`, or an array (B, n_features))
    and their targets.

    The logistic C (validation log-loss; each fit starts from the previous one's solution,
    weakest penalty last) and one ridge penalty per target (validation MSE) are chosen on a
    validation split by ``groups`` (:func:`group_split`); the heads are then refitted on every
    row. F is standardised in place (a float32 array passed in is rewritten): its memory is the
    largest of the fit, and only a block of it is copied at a time.
    """
    Z = F if isinstance(F, FeatureRows) else FeatureRows.of(F)
    if len(Z) != len(targets):
        raise ValueError(f"F: {len(Z)} rows for {len(targets)} targets")
    mean, scale = Z.standardise()
    k, Y = targets.kernel_index, targets.regression()
    fit_rows, val_rows = group_split(k, np.arange(len(k)) if groups is None else np.asarray(groups),
                                     validation_fraction, random_state)
    fit, val = (np.isin(np.arange(len(k)), r) for r in (fit_rows, val_rows))
    theta, losses, thetas = None, [], []
    for C in sorted(C_grid):
        theta = _fit_logistic(Z, fit, k, C, theta)
        thetas.append(theta)
        losses.append(_logistic_loss(theta, Z, val, k, np.inf)[0])  # C = inf: the mean cross-entropy alone
    best = int(np.argmin(losses))
    C = sorted(C_grid)[best]
    every = np.ones(len(k), dtype=bool)
    theta = _fit_logistic(Z, every, k, C, thetas[best])
    mse = _ridge_validation_mse(Z, Y, fit, val, ridge_alphas)  # (alphas, targets)
    alphas = np.asarray(ridge_alphas)[np.argmin(mse, axis=0)]
    basis = _ridge_basis(Z, every, Y)
    target_coef = basis.coef(alphas)
    n_classes = len(KERNEL_CLASSES)
    return LinearHeads(mean, scale, theta[:-n_classes].reshape(Z.n_features, n_classes), theta[-n_classes:],
                       target_coef, basis.intercept(target_coef), targets.targets, float(C),
                       {str(t): float(a) for t, a in zip(targets.targets, alphas)})

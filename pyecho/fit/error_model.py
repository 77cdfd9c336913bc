"""The error model of a binned record: noise, the detuning draw's scatter, the receiver's gains.

A measured record is the sample's echo times a complex receiver gain g_k per measurement k,
plus noise. On a finite lattice the echo also depends on the draw of the detunings: two
lattices with the same parameters and other draws give records that differ by about as much as
a change of the kernel moves them (docs/fit.md). A fit that ignores this is biased and
overconfident; so the covariance of a binned record (real and imaginary parts stacked,
2 Nb values) is

    C = diag(σ_k² / bin_size) + (1 + 1/D_m) G Σ̂ Gᵀ,

σ_k the noise per quadrature of measurement k (read off the record), G the gains as real 2x2
rotations-and-scalings, Σ̂ the draw scatter of one lattice's record in model units, and
1/D_m the share the model's own mean over D_m draws adds.

Σ̂ is read off one set of simulations at the parameter point: each draw's lattice is split into
g² interleaved site groups (pyecho.physics.problem.site_group_means), and within a draw the
groups' spread measures how a record moves with the draw of its sites' detunings -- D (g² - 1)
degrees of freedom from D simulations, where D draws alone give D - 1. That part (the sites'
independent share) is shrunk towards its diagonal by the Ledoit-Wolf rule, since its
dimension exceeds its degrees of freedom; the draws' own spread around their mean (the
collective share: a draw's core of near-resonant spins moves the mean field of every site)
is added at full rank D - 1.

Gains are never fitted by the optimiser: for every model record they are the weighted
least-squares solution (variable projection), so the fit's residual -- and the bound's -- is
the record's part that no gain explains, whitened by C.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, solve_triangular
from sklearn.covariance import ledoit_wolf_shrinkage


def real_stack(z: np.ndarray) -> np.ndarray:
    """(..., N) complex -> (..., 2N) real: real parts, then imaginary parts."""
    return np.concatenate([z.real, z.imag], axis=-1)


@dataclass(frozen=True)
class Scatter:
    """A parameter point's binned records over detuning draws and their scatter (model units).

    mean : (Nb,) complex -- the record averaged over the draws
    covariance : (2Nb, 2Nb) -- Σ̂, the scatter of one lattice's record (module docstring)
    n_draws : the draws behind the collective part; shrinkage : the Ledoit-Wolf weight of the
    diagonal in the site-group part
    """

    mean: np.ndarray
    covariance: np.ndarray
    n_draws: int
    shrinkage: float

    @classmethod
    def of(cls, grouped: np.ndarray, more_draws: np.ndarray | None = None) -> "Scatter":
        """From binned site-group records (D, g², Nb) of D draws at one point and, optionally,
        the binned records (M, Nb) of M more draws at the same point (their spread adds to the
        collective part's degrees of freedom)."""
        D, G, _ = grouped.shape
        if D < 2 or G < 2:
            raise ValueError(f"grouped: got {D} draws x {G} groups; need >= 2 of each")
        per_draw = grouped.mean(axis=1)  # (D, Nb): each draw's record
        # sites' share: a group's record deviates from its draw's by sqrt(G) times what one
        # lattice's record does (a mean of G groups), with G - 1 degrees of freedom per draw
        within = real_stack(grouped - per_draw[:, None, :]).reshape(D * G, -1) / np.sqrt(G)
        sd = np.sqrt(np.sum(within**2, axis=0) / (D * (G - 1)))
        standardised = within / np.where(sd > 0, sd, 1.0)
        # no spread at all (every site at one detuning): nothing to shrink
        shrinkage = float(ledoit_wolf_shrinkage(standardised, assume_centered=True)) if np.any(within) else 1.0
        correlation = standardised.T @ standardised / (D * (G - 1))
        correlation *= 1.0 - shrinkage
        correlation[np.diag_indices_from(correlation)] += shrinkage
        sites = correlation * sd[:, None] * sd[None, :]
        records = per_draw if more_draws is None else np.concatenate([per_draw, more_draws])
        collective = real_stack(records - records.mean(axis=0))
        return cls(records.mean(axis=0), sites + collective.T @ collective / (len(records) - 1), len(records),
                   shrinkage)


def gain_transform(covariance: np.ndarray, gains_per_bin: np.ndarray) -> np.ndarray:
    """R Σ Rᵀ for the real 2Nb x 2Nb covariance ``covariance`` of complex values z, where R maps
    [Re z; Im z] to [Re(g z); Im(g z)] with one complex gain per bin (``gains_per_bin`` (Nb,))."""
    a, b = gains_per_bin.real, gains_per_bin.imag
    n = len(a)
    c1, c2 = np.concatenate([a, a]), np.concatenate([-b, b])
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    swapped_rows = covariance[partner]
    return (np.outer(c1, c1) * covariance + np.outer(c1, c2) * covariance[:, partner]
            + np.outer(c2, c1) * swapped_rows + np.outer(c2, c2) * swapped_rows[:, partner])


@dataclass(frozen=True)
class ErrorModel:
    """C of a binned record in record units, factored: ``chol`` lower-triangular (2Nb, 2Nb).

    noise_var : (2Nb,) the noise variance of every value; log_det : log det C."""

    chol: np.ndarray
    noise_var: np.ndarray
    log_det: float

    @classmethod
    def build(cls, scatter: Scatter, gains: np.ndarray, measurement: np.ndarray, noise_sigma: np.ndarray,
              bin_size: int, mean_draws: int | None) -> "ErrorModel":
        """C for a record whose measurements have ``gains`` (K,) and noise ``noise_sigma`` (K,)
        per quadrature and sample; ``measurement`` (Nb,) each bin's measurement. ``mean_draws``:
        the draws the model's mean averages (None for the ideal, infinitely averaged model, as the
        bound assumes)."""
        per_bin_var = (np.asarray(noise_sigma, dtype=np.float64)[measurement] ** 2) / bin_size
        noise_var = np.concatenate([per_bin_var, per_bin_var])
        factor = 1.0 + (1.0 / mean_draws if mean_draws else 0.0)
        C = factor * gain_transform(scatter.covariance, np.asarray(gains)[measurement])
        C[np.diag_indices_from(C)] += noise_var
        chol, _ = cho_factor(C, lower=True, overwrite_a=True, check_finite=False)
        chol = np.tril(chol)
        return cls(chol, noise_var, float(2.0 * np.sum(np.log(np.diag(chol)))))

    def whiten(self, v: np.ndarray) -> np.ndarray:
        """L⁻¹ v for v (2Nb,) or (2Nb, m): its squared norm is vᵀ C⁻¹ v."""
        return solve_triangular(self.chol, v, lower=True, check_finite=False)

    def variance_along(self, d_white: np.ndarray, deviations: np.ndarray, scatter_factor: float = 1.0) -> float:
        """The variance of the statistic dᵀC⁻¹y over records y that scatter as ``deviations``
        (M, 2Nb: independent draws' deviations, record units, their variance times
        ``scatter_factor``) plus the noise; ``d_white`` = L⁻¹d. Under the error model itself it
        would be |d_white|² = dᵀC⁻¹d: the ratio of the two is how far the model under-states the
        scatter along d."""
        return float(scatter_factor * np.var(deviations @ self.direction(d_white), ddof=1)) + self.noise_along(d_white)

    def noise_along(self, d_white: np.ndarray) -> float:
        """The noise's part of :meth:`variance_along`: Σ σ² (C⁻¹d)²."""
        return float(np.sum(self.noise_var * self.direction(d_white) ** 2))

    def direction(self, d_white: np.ndarray) -> np.ndarray:
        """C⁻¹d (2Nb,) from ``d_white`` = L⁻¹d: what a record is projected on to test along d."""
        return solve_triangular(self.chol, d_white, lower=True, trans="T", check_finite=False)


@dataclass(frozen=True)
class Profile:
    """The record's fit by one model record with the gains solved: whitened ``residual``
    (2Nb,), ``gains`` (K,) complex, ``chi2`` = |residual|²."""

    residual: np.ndarray
    gains: np.ndarray
    chi2: float


def gain_design(model: np.ndarray, measurement: np.ndarray, n_measurements: int) -> np.ndarray:
    """The real design matrix (2Nb, 2K) of g_k μ in the real parts a_k and imaginary parts b_k of
    the gains: column 2k is [Re μ; Im μ] on measurement k's bins, column 2k + 1 [-Im μ; Re μ]."""
    n = len(model)
    A = np.zeros((2 * n, 2 * n_measurements))
    rows = np.arange(n)
    A[rows, 2 * measurement] = model.real
    A[n + rows, 2 * measurement] = model.imag
    A[rows, 2 * measurement + 1] = -model.imag
    A[n + rows, 2 * measurement + 1] = model.real
    return A


def profile(white_data: np.ndarray, model: np.ndarray, error: ErrorModel, measurement: np.ndarray,
            n_measurements: int) -> Profile:
    """The gains that best scale ``model`` (Nb,) complex onto the whitened record ``white_data``
    (2Nb,) under ``error``, and what is left (variable projection)."""
    A = error.whiten(gain_design(model, measurement, n_measurements))
    c, *_ = np.linalg.lstsq(A, white_data, rcond=None)
    r = white_data - A @ c
    return Profile(r, c[0::2] + 1j * c[1::2], float(r @ r))


def plain_gains(data: np.ndarray, model: np.ndarray, measurement: np.ndarray, n_measurements: int) -> np.ndarray:
    """Unweighted least-squares gains (K,) of ``model`` onto ``data`` (both (Nb,) complex): the
    start before any error model exists."""
    return np.array([np.vdot(model[measurement == k], data[measurement == k])
                     / np.vdot(model[measurement == k], model[measurement == k]).real for k in range(n_measurements)])


#: a direction of the parameters, in units of their prior widths, whose information is below this
#: share of the largest is one the records do not see
BLIND_DIRECTION = 1e-12


def scaled_pseudo_inverse(J: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """J⁺ (n, m) of a whitened Jacobian ``J`` (m, n) over coordinates of prior ``widths`` (n,),
    and which coordinates the records do not see ((n,) bool).

    Computed in units of the widths: the coordinates' own units differ by ten orders of magnitude
    (Γ₁ per µs against γ in sites), and a pseudo-inverse's relative cut-off on the raw Jacobian
    drops real directions -- a variance of zero, a bound far too good (a 90° Hahn echo alone once
    gave γ to 10⁻⁵). A direction whose information is below BLIND_DIRECTION of the largest is
    left out of J⁺, and every coordinate with weight in it is marked unseen."""
    U, s, Vt = np.linalg.svd(J * widths, full_matrices=False)
    blind = s**2 <= BLIND_DIRECTION * np.max(s, initial=0.0) ** 2
    inverse = widths[:, None] * ((Vt[~blind].T / s[~blind]) @ U[:, ~blind].T)
    return inverse, np.any(np.abs(Vt[blind]) > 1e-6, axis=0)


def mark_unseen(covariance: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """``covariance`` with the ``unseen`` coordinates' variance infinite and no covariance with the others."""
    covariance = covariance.copy()
    covariance[unseen, :] = 0.0
    covariance[:, unseen] = 0.0
    covariance[unseen, unseen] = np.inf
    return covariance


def least_squares_covariance(J: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(JᵀJ)⁻¹ for a whitened Jacobian ``J`` (m, n) over coordinates of prior ``widths``: the
    inverse Fisher information, the estimate's covariance if the error model is right (infinite
    along a direction the records do not see, :func:`scaled_pseudo_inverse`)."""
    inverse, unseen = scaled_pseudo_inverse(J, widths)
    return mark_unseen(inverse @ inverse.T, unseen)


def sandwich(J: np.ndarray, error: ErrorModel, deviations: np.ndarray, mean_draws: int,
             widths: np.ndarray) -> np.ndarray:
    """The covariance of the estimate whose whitened Jacobian is ``J`` (2Nb, n; coordinates of
    prior ``widths``) when the record's draw scatter is what ``deviations`` (M, 2Nb: independent
    draws' records minus their mean, in record units) show, whatever the error model assumed:
    A (N + (1 + 1/D_m) S) Aᵀ with A = J⁺ L⁻¹ the estimate's linear response to the record, N the
    noise, S the deviations' covariance (its projection needs about as many draws as there are
    parameters, not as the record has values)."""
    inverse, unseen = scaled_pseudo_inverse(J, widths)
    # (J⁺ L⁻¹)ᵀ = L⁻ᵀ J⁺ᵀ: one triangular solve with n right-hand sides
    response = solve_triangular(error.chol, inverse.T, lower=True, trans="T", check_finite=False)
    noise_part = response.T @ (response * error.noise_var[:, None])
    errors = deviations @ response  # (M, n): each draw's error of the estimate
    draw_part = errors.T @ errors / (deviations.shape[0] - 1)
    return mark_unseen(noise_part + (1.0 + 1.0 / mean_draws) * draw_part, unseen)

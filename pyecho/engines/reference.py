"""NumPy reference engine: per-site 2x2 density matrices and direct lattice sums.

Written for clarity, not speed (SPEC §2 read literally): every step forms the mean field by an
explicit N x N sum over minimum-image distances, builds each site's Hamiltonian
H_i = -omega_i I^z - sum_d alpha_d F_i^d I^d and propagates rho_i <- U rho_i U^dagger with
U = exp(-i H_i dt) from a matrix exponential. Always float64; for lattices up to ~64 x 64.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from pyecho.physics.kernels import kernel_values
from pyecho.physics.lattice import pairwise_distances
from pyecho.physics.problem import EchoBatch
from pyecho.physics.pulses import spin_half_unitary

SPIN_OPS = 0.5 * np.array(
    [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex
)  # I^x, I^y, I^z


def expectations(rho: np.ndarray) -> np.ndarray:
    """<I^d> = tr(rho I^d) for rho of shape (N, 2, 2); returns (N, 3) real."""
    return np.einsum("nab,dba->nd", rho, SPIN_OPS).real


def _coupling_matrix(params, lattice: int) -> np.ndarray:
    """K(r_ij)/kappa for every site pair of one EchoParams, from coordinates (independent of the FFT grid)."""
    r = pairwise_distances(lattice)
    k = kernel_values(params.kernel, params.kernel_param, r)
    return k / k[0].sum()  # every row sums to kappa on the periodic lattice


def _simulate_one(batch: EchoBatch, b: int) -> np.ndarray:
    n_sites = batch.lattice**2
    coupling = _coupling_matrix(batch.params[b], batch.lattice)
    omega = batch.omega[b].reshape(n_sites)
    alpha = np.array([batch.alpha_xy[b], batch.alpha_xy[b], batch.alpha_z[b]])
    decay = batch.coherence_decay[b]
    theta = batch.theta[b]

    up = np.array([[1, 0], [0, 0]], dtype=complex)
    rho = np.repeat(up[None], n_sites, axis=0)

    def pulse(u: np.ndarray) -> None:
        nonlocal rho
        rho = u @ rho @ u.conj().T

    pulse(spin_half_unitary("x", theta))
    m = expectations(rho)
    series = np.empty(batch.n_samples, dtype=complex)
    for k in range(batch.n_samples):
        if k == batch.n_tau:
            pulse(spin_half_unitary("y", 2.0 * theta))
            m = expectations(rho)
        field = coupling @ m  # F_i = (1/kappa) sum_j K(r_ij) <I_j>, explicit in time
        hamiltonian = -omega[:, None, None] * SPIN_OPS[2] - np.einsum("nd,d,dab->nab", field, alpha, SPIN_OPS)
        u = expm(-1j * hamiltonian * batch.dt_us)
        rho = u @ rho @ np.conj(np.swapaxes(u, 1, 2))
        if decay != 1.0:
            rho[:, 0, 1] *= decay
            rho[:, 1, 0] *= decay
        m = expectations(rho)
        series[k] = m[:, 0].mean() + 1j * m[:, 1].mean()
    return series


class ReferenceEngine:
    name = "numpy"

    def availability(self, device: str = "cpu") -> str | None:
        return None if device == "cpu" else "the NumPy reference runs on the CPU only"

    def run(self, batch: EchoBatch, device: str = "cpu", dtype: str = "float64") -> np.ndarray:
        return np.stack([_simulate_one(batch, b) for b in range(batch.size)])


ENGINE = ReferenceEngine()

"""NumPy reference engine: per-site 2x2 density matrices and direct lattice sums.

Written for clarity, not speed (docs/model.md read literally): the mean field is an explicit
N x N sum over minimum-image distances computed from the sites' positions; each site's
Hamiltonian H_i = -omega_i I^z - sum_d alpha_d F_i^d I^d propagates rho_i <- U rho_i U^dagger
with U = exp(-i H_i dt) from a matrix exponential; pulses are 2x2 unitaries; relaxation is the
Lindblad superoperator exp(L_D dt) (a 4x4 matrix exponential) applied to every rho_i, derived
here from the jump operators, not from the Bloch-vector map the fast engines use.
Always float64; for lattices up to ~64 x 64.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from pyecho.physics.kernels import kernel_values
from pyecho.physics.lattice import pairwise_distances
from pyecho.physics.params import EchoParams
from pyecho.physics.problem import EchoBatch, site_group_means
from pyecho.physics.pulses import spin_half_unitary

SPIN_OPS = 0.5 * np.array(
    [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex
)  # I^x, I^y, I^z
RAISING = np.array([[0, 1], [0, 0]], dtype=complex)  # I+ = I^x + i I^y: |down> -> |up> (+z)


def expectations(rho: np.ndarray) -> np.ndarray:
    """<I^d> = tr(rho I^d) for rho of shape (N, 2, 2); returns (N, 3) real."""
    return np.einsum("nab,dba->nd", rho, SPIN_OPS).real


def _coupling_matrix(params: EchoParams) -> np.ndarray:
    """K(r_ij)/kappa for every site pair, from coordinates (independent of the FFT grid)."""
    r = pairwise_distances(params.lattice, params.geometry)
    k = kernel_values(params.kernel, params.kernel_param, r)
    return k / k[0].sum()  # every row sums to kappa on the periodic lattice


def lindblad_step(params: EchoParams) -> np.ndarray | None:
    """exp(L_D dt) as a 4x4 matrix on row-major vec(rho), or None without relaxation.

    L_D rho = sum_c (L_c rho L_c^+ - {L_c^+ L_c, rho}/2) for L = sqrt(G1) I+, sqrt(G2) I-,
    sqrt(G3) I^z, with vec(A rho B) = (A kron B^T) vec(rho).
    """
    rates = (params.gamma1_per_us, params.gamma2_per_us, params.gamma3_total_per_us)
    if not any(rates):
        return None
    eye = np.eye(2)
    generator = np.zeros((4, 4), dtype=complex)
    for rate, jump in zip(rates, (RAISING, RAISING.conj().T, SPIN_OPS[2])):
        jj = jump.conj().T @ jump
        generator += rate * (np.kron(jump, jump.conj()) - 0.5 * np.kron(jj, eye) - 0.5 * np.kron(eye, jj.T))
    return expm(generator * params.dt_us)


def _simulate_one(batch: EchoBatch, b: int) -> np.ndarray:
    params = batch.params[b]
    n_sites = batch.lattice**2
    coupling = _coupling_matrix(params)
    omega = batch.omega[b].reshape(n_sites)
    alpha = np.array([batch.alpha_xy[b], batch.alpha_xy[b], batch.alpha_z[b]])
    relax = lindblad_step(params)

    up = np.array([[1, 0], [0, 0]], dtype=complex)
    rho = np.repeat(up[None], n_sites, axis=0)
    series = np.empty((batch.n_groups, batch.n_steps), dtype=complex)
    n = batch.lattice
    k_every = batch.field_every
    for first, end, pulses in batch.segments():
        for p in pulses:
            u = spin_half_unitary(batch.pulse_angle[b, p], batch.pulse_phase[b, p])
            rho = u @ rho @ u.conj().T
        field_prev = None
        for step in range(first, end):
            if (step - first) % k_every == 0:  # a field evaluation from the current state
                field_prev, field_now = (None if step == first else field_now), coupling @ expectations(rho)
            if batch.scheme == "explicit" or field_prev is None:
                field = field_now  # held over the interval (always the case for explicit)
            else:  # linear extrapolation to the step's midpoint from the last two evaluations
                offset = (step - first) % k_every + 0.5
                field = field_now + offset / k_every * (field_now - field_prev)
            hamiltonian = -omega[:, None, None] * SPIN_OPS[2] - np.einsum("nd,d,dab->nab", field, alpha, SPIN_OPS)
            u = expm(-1j * hamiltonian * batch.dt_us)
            rho = u @ rho @ np.conj(np.swapaxes(u, 1, 2))
            if relax is not None:
                rho = (relax @ rho.reshape(n_sites, 4, 1)).reshape(n_sites, 2, 2)
            m = expectations(rho)
            series[:, step] = site_group_means((m[:, 0] + 1j * m[:, 1]).reshape(n, n), batch.site_groups)
    return series[0] if batch.site_groups == 1 else series


class ReferenceEngine:
    name = "numpy"

    def availability(self, device: str = "cpu") -> str | None:
        return None if device == "cpu" else "the NumPy reference runs on the CPU only"

    def run(self, batch: EchoBatch, device: str = "cpu", dtype: str = "float64") -> np.ndarray:
        return np.stack([_simulate_one(batch, b) for b in range(batch.size)])


ENGINE = ReferenceEngine()

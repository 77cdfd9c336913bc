"""Synthetic records with an obvious answer, shared by the model tests (not a test module).

:func:`make_learnable_echoes` writes complex records on a :class:`RecordGrid` of one or more
measurements: the kernel sets a carrier frequency, W the decay rate, L the height of a bump,
and every record gets a random receiver phase and gain. Analytic (no simulation), so fast.
"""
from __future__ import annotations

import numpy as np

from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets
from pyecho.physics.protocol import Protocol, RecordGrid

DT_US = 0.16
#: two measurements of different lengths: a Hahn echo (T = 300) and a CPMG train (T = 250)
TWO_MEASUREMENTS = RecordGrid(Protocol.parse("hahn@90/16,cpmg:2@90/8"), DT_US)
#: one measurement (T = 300)
ONE_MEASUREMENT = RecordGrid(Protocol.parse("hahn@90/16"), DT_US)
#: carrier frequency (rad/µs) of each kernel: the kernel is read off the oscillation
OMEGA = {"gaussian": 0.05, "power": 0.15, "rkky": 0.3}


def make_learnable_echoes(n: int, grid: RecordGrid = TWO_MEASUREMENTS, seed: int = 0, noise: float = 0.002,
                          omega_scale: float = 1.0, dtype=np.complex64):
    """``n`` records on ``grid`` whose labels are easy to read off.

    Measurement k of a sample: (0.5 exp(-W t / 2) + 0.2 (L / 15) bump(t)) exp(i ω t (k + 1)),
    ω by kernel (:data:`OMEGA`, times ``omega_scale``: > 1 gives a shifted distribution), the
    bump a Gaussian at the middle of the record; then one random receiver gain and phase per
    sample, then complex white noise of std ``noise`` per quadrature.

    Returns (records: tuple of ``dtype`` arrays (n, T_k), EchoTargets (W, L, alpha_xy,
    alpha_z), grid).
    """
    rng = np.random.default_rng(seed)
    kernel = np.array(KERNEL_CLASSES)[rng.permutation(np.arange(n) % 3)]
    omega = omega_scale * np.array([OMEGA[k] for k in kernel])
    a_xy, a_z = rng.uniform(0.01, 0.1, n), rng.uniform(0.01, 0.1, n)
    W = 2 * a_xy + a_z
    L = rng.uniform(5.0, 15.0, n)
    receiver = rng.uniform(0.2, 5.0, (n, 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (n, 1)))
    records = []
    for k in range(len(grid.protocol)):
        t = grid.times_us(k)
        bump = (L[:, None] / 15) * np.exp(-(((t - t[-1] / 2) / 3.0) ** 2))
        M = (0.5 * np.exp(-W[:, None] * t / 2) + 0.2 * bump) * np.exp(1j * (k + 1) * omega[:, None] * t)
        M = M * receiver + noise * (rng.standard_normal(M.shape) + 1j * rng.standard_normal(M.shape))
        records.append(M.astype(dtype))
    targets = EchoTargets(kernel=kernel, values={"W": W, "L": L, "alpha_xy": a_xy, "alpha_z": a_z})
    return tuple(records), targets, grid



def most_probable_kernel(pred: EchoPredictions) -> np.ndarray:
    """Each row's most probable kernel: a model's own 3-class skill (the predictor decides
    otherwise, :meth:`EchoPredictions.decide`)."""
    return np.asarray(KERNEL_CLASSES)[np.argmax(pred.kernel_proba, axis=1)]


def rows_of(records: tuple[np.ndarray, ...], index) -> tuple[np.ndarray, ...]:
    """Rows ``index`` of every measurement."""
    return tuple(R[index] for R in records)

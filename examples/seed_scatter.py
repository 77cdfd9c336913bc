"""How much of an echo is the lattice's random detunings rather than the parameters (README).

    python examples/seed_scatter.py [N_PARAMS] [LATTICE]

Draws N_PARAMS samples of the paper preset's protocol and simulates each twice, with two
detuning seeds (torch, extrapolated:4). The seed-to-seed half squared difference of a series,
averaged over the samples, is the scatter that no model can learn; the variance across the
samples is what the parameters move. Their ratio, for the min-max normalised |M| (the paper's
input) and for the phase-referenced complex echo (the models beyond the paper), is printed
for the whole series and for the 400-sample window around the echo; then the same against only
the variance the couplings do not explain (each time point regressed on a quadratic in α_xy
and α_z): what is left for the kernel's family and length L to move.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from pyecho import simulate_batch
from pyecho.data.sampling import PRESETS, draw_samples
from pyecho.learn.models.inputs import reference_phase_gain
from pyecho.physics.protocol import RecordGrid

WINDOW = 400


def scatter_ratio(a: np.ndarray, b: np.ndarray, design: np.ndarray | None = None) -> float:
    """mean over samples of |a - b|²/2, over the variance across samples (per time point, summed);
    with ``design`` (B, k), over the variance left after a least-squares fit on its columns."""
    within = 0.5 * np.mean(np.abs(a - b) ** 2, axis=0).sum()
    x = np.concatenate([a, b])
    if design is not None:
        d = np.concatenate([design, design])
        x = x - d @ np.linalg.lstsq(d, x, rcond=None)[0]
    return float(within / np.var(x, axis=0).sum())


def main(n_params: int = 96, lattice: int = 100) -> None:
    config = dataclasses.replace(PRESETS["paper"], lattice=lattice)
    indices = np.random.default_rng(0).choice(3 * config.n_per_kernel, size=n_params, replace=False)
    params, seeds = draw_samples(config, indices)
    first = simulate_batch(params, seeds=[int(s) for s in seeds])
    second = simulate_batch(params, seeds=[int(s) + 1 for s in seeds])
    echo = 2 * params[0].n_tau - 1
    window = slice(echo - WINDOW // 2, echo + WINDOW // 2)

    def minmax(M):
        a = np.abs(M)
        return (a - a.min(axis=1, keepdims=True)) / np.ptp(a, axis=1, keepdims=True)

    grid = RecordGrid(config.protocol, config.dt_us)

    def referenced(M):
        return reference_phase_gain((M,), grid).M[0]

    axy, az = np.array([p.alpha_xy for p in params]), np.array([p.alpha_z for p in params])
    couplings = np.stack([np.ones_like(axy), axy, az, axy ** 2, az ** 2, axy * az], axis=1)
    for name, view in (("|M| min-max (paper)", minmax), ("complex, referenced", referenced)):
        a, b = view(first), view(second)
        for label, design in (("all parameter variance", None), ("variance the couplings leave", couplings)):
            print(f"{name:20s} n = {lattice}, {n_params} samples: seed scatter / {label} = "
                  f"{scatter_ratio(a, b, design):.2e} (series), "
                  f"{scatter_ratio(a[:, window], b[:, window], design):.2e} (echo window)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

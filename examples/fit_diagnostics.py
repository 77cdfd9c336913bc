"""The measurements behind pyecho fit's error model and derivatives (docs/fit.md).

Usage::

    python examples/fit_diagnostics.py OUT.json [--lattice 64] [--draws 432]

At one point of the `range` prior (power law p = 2, alpha_xy = alpha_z = 0.05, T2 = 1000 µs,
carrier offset 0.1 kHz, Γ₁ = 5e-5 /µs), SNR 200:

1. *derivatives*: the forward-difference Jacobian of the records in float32 and float64 at two
   steps, each column's relative difference from float64 at the smaller step;
2. *the draw scatter*: the records of ``--draws`` independent detuning draws; 48 of them are
   test draws, the others build the error model's collective part from M = 8 ... 384 draws
   (beside the site-group part); for each M and bin size, the bound the error model claims for
   p and alpha_xy (the inverse Fisher information) against the spread of the generalised least
   squares estimate over the test draws -- where the error model under-states the scatter, the
   estimate spreads wider than claimed.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

from scipy.linalg import cho_factor, solve_triangular  # noqa: E402

from pyecho.data.sampling import PRESETS  # noqa: E402
from pyecho.fit.error_model import ErrorModel, Scatter, real_stack  # noqa: E402
from pyecho.fit.forward import Binning, DetuningDraws, Engine, simulate_points  # noqa: E402
from pyecho.fit.problem import FD_STEP, RecordProblem, default_site_groups  # noqa: E402
from pyecho.fit.space import FamilySpace  # noqa: E402
from pyecho.physics.protocol import RecordGrid  # noqa: E402

SNR = 200.0
DEAD_TIME_US = 20.0
TEST_DRAWS = 48
COLLECTIVE_DRAWS = (8, 32, 128, 384)
BIN_SIZES = (8, 16, 32, 64)


def derivatives(space, grid, x, binning) -> dict:
    """Each Jacobian column's relative difference from float64 at FD_STEP["float64"]."""
    draws = DetuningDraws.draw(4, space.config.lattice, space.config.linewidth_khz)
    identity = ErrorModel(np.eye(2 * binning.n_bins), np.ones(2 * binning.n_bins), 0.0)
    columns = {}
    for dtype in ("float64", "float32"):
        for step in (2e-3, 1e-2):
            FD_STEP[dtype] = step
            problem = RecordProblem(space, grid, binning, np.ones(binning.n_bins, complex), draws, identity,
                                    Engine(dtype=dtype))
            h = step * space.widths
            means = problem.means(np.vstack([x[None], x + np.diag(h)]))
            columns[(dtype, step)] = real_stack((means[1:] - means[0]) / h[:, None]).T
    reference = columns[("float64", 2e-3)]
    return {f"{dtype} step {step:g}": dict(zip(space.names, (np.linalg.norm(J - reference, axis=0)
                                                             / np.linalg.norm(reference, axis=0)).round(5).tolist()))
            for (dtype, step), J in columns.items()}


def merge(binning: Binning, factor: int) -> np.ndarray:
    """A matrix averaging ``factor`` adjacent bins of the same measurement (bins of bin_size x factor)."""
    starts, meas = np.concatenate(binning.starts), binning.measurement
    groups, j = [], 0
    while j + factor <= len(starts):
        if meas[j + factor - 1] == meas[j] and starts[j + factor - 1] - starts[j] == binning.bin_size * (factor - 1):
            groups.append(range(j, j + factor))
            j += factor
        else:
            j += 1
    S = np.zeros((len(groups), len(starts)))
    for i, g in enumerate(groups):
        S[i, list(g)] = 1.0 / factor
    return S


def scatter_study(space, grid, x, binning, n_draws: int) -> list[dict]:
    """The error model's claimed sd of p and alpha_xy against the GLS estimate's spread over test
    draws, for every number of collective draws and bin size."""
    n = space.config.lattice
    draws = DetuningDraws.draw(n_draws, n, space.config.linewidth_khz, seed=99)
    chunks = (DetuningDraws(draws.spreads_mhz[i:i + 48], draws.seed) for i in range(0, n_draws, 48))
    records = np.concatenate([binning.apply(simulate_points(space, grid, x, chunk, engine=Engine(dtype="float32")))[0]
                              for chunk in chunks])
    grouped = binning.apply(simulate_points(space, grid, x, DetuningDraws.draw(8, n, space.config.linewidth_khz),
                                            site_groups=default_site_groups(n), engine=Engine(dtype="float32")))[0]
    identity = ErrorModel(np.eye(2 * binning.n_bins), np.ones(2 * binning.n_bins), 0.0)
    problem = RecordProblem(space, grid, binning, records.mean(0), DetuningDraws.draw(4, n, space.config.linewidth_khz),
                            identity, Engine(dtype="float64"))
    h = FD_STEP["float64"] * space.widths
    means = problem.means(np.vstack([x[None], x + np.diag(h)]))
    derivative = (means[1:] - means[0]) / h[:, None]
    amplitude = 0.5  # |M| of the first sample after a 90-degree pulse
    out = []
    for factor in (b // binning.bin_size for b in BIN_SIZES):
        S = merge(binning, factor)
        recs, groups, D, m0 = records @ S.T, grouped @ S.T, derivative @ S.T, means[0] @ S.T
        sites = Scatter.of(groups).covariance - _collective(groups.mean(axis=1))
        noise = np.full(2 * S.shape[0], (amplitude / SNR) ** 2 / (binning.bin_size * factor))
        design = np.column_stack([real_stack(D).T, real_stack(m0), real_stack(1j * m0)])  # one gain: enough here
        test = real_stack(recs[:TEST_DRAWS] - recs.mean(0)).T
        for m in COLLECTIVE_DRAWS:
            if TEST_DRAWS + m > len(recs):
                continue
            C = sites + _collective(recs[TEST_DRAWS:TEST_DRAWS + m])
            C[np.diag_indices_from(C)] += noise
            L = np.tril(cho_factor(C, lower=True)[0])
            Dw, Tw = solve_triangular(L, design, lower=True), solve_triangular(L, test, lower=True)
            errors = np.linalg.pinv(Dw)[:2] @ Tw
            claimed = np.sqrt(np.diag(np.linalg.pinv(Dw.T @ Dw))[:2])
            out.append({"bin_us": binning.bin_size * factor * grid.dt_us, "collective_draws": m,
                        "p_claimed_sd": float(claimed[0]), "p_spread": float(errors[0].std()),
                        "alpha_xy_claimed_sd": float(claimed[1]), "alpha_xy_spread": float(errors[1].std())})
            print(out[-1], flush=True)
    return out


def _collective(records: np.ndarray) -> np.ndarray:
    deviations = real_stack(records - records.mean(axis=0))
    return deviations.T @ deviations / (len(records) - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--lattice", type=int, default=64)
    ap.add_argument("--draws", type=int, default=432)
    args = ap.parse_args()
    config = PRESETS["range"].replace(lattice=args.lattice)
    grid = RecordGrid(config.protocol, config.dt_us)
    space = FamilySpace("power", config)
    x = space.point(kernel_param=2.0, alpha_xy=0.05, alpha_z=0.05, t2_us=1000.0, center_khz=0.1, gamma1_per_us=5e-5)
    binning = Binning.of(grid, tuple(~grid.dead_mask(k, DEAD_TIME_US) for k in range(len(grid.protocol))), 8)
    t0 = time.perf_counter()
    result = {"lattice": args.lattice, "snr": SNR, "derivatives": derivatives(space, grid, x, binning)}
    print(json.dumps(result["derivatives"], indent=1), flush=True)
    result["scatter"] = scatter_study(space, grid, x, binning, args.draws)
    result["seconds"] = time.perf_counter() - t0
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()

"""Fixtures for the learning tests: a synthetic, EchoDataset-like set of echo-shaped series.

The series are analytic (no simulation, so the tests stay fast): a free-induction decay, then
an echo at t = 2 tau whose height falls with W, and -- for the power-law kernel only -- a
post-echo shoulder, so P vs NP is an obvious class difference.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from pyecho.physics.protocol import Measurement, Protocol

DT = 0.16
N_TAU = 250  # T = 750 samples, echo at index 499 (t = 80 us): clear of the default 20 us dead time
WINDOW = 120


def make_synthetic_dataset(n: int = 90, seed: int = 0, n_tau: int = N_TAU, noise: float = 0.01, *,
                           train: int = 0):
    """``n`` samples (kernels in turn) of a 90° Hahn echo; with ``train`` = N > 0 also a CPMG:N train
    at the same tau, whose echo tops decay with a per-sample T2 (log-uniform 300-3000 µs, a label)."""
    rng = np.random.default_rng(seed)
    T = 3 * n_tau
    t = DT * np.arange(1, T + 1)
    tau = n_tau * DT
    kernels = np.array(["gaussian", "power", "rkky"])[np.arange(n) % 3]
    a_xy = rng.uniform(0.01, 0.1, n)
    a_z = rng.uniform(0.01, 0.1, n)
    W = 2 * a_xy + a_z
    L = np.where(kernels == "power", rng.uniform(5, 15, n), rng.uniform(6, 10, n))
    M = np.empty((n, T), np.complex64)
    for i in range(n):
        fid = 0.5 * np.exp(-t / 15.0)
        echo = 0.5 * np.exp(-4.0 * W[i]) * np.exp(-np.abs(t - 2 * tau) / 1.5)
        shoulder = 0.15 * np.exp(-(((t - 2 * tau - 3.0) / 1.0) ** 2)) if kernels[i] == "power" else 0.0
        mag = np.where(t < tau, fid, echo + shoulder) + noise * rng.standard_normal(T)
        M[i] = np.abs(mag) * np.exp(1j * rng.uniform(0, 2 * np.pi, T))
    labels = pl.DataFrame({
        "sample_id": np.arange(n, dtype=np.int64),
        "seed": np.arange(n, dtype=np.uint64),
        "kernel": kernels.tolist(),
        "kernel_param": rng.uniform(1, 3, n),
        "alpha_x": a_xy, "alpha_y": a_xy, "alpha_z": a_z, "W": W, "L": L,
        "kappa": np.ones(n),
        "is_power": kernels == "power",
    })
    hahn = Measurement("hahn", np.pi / 2, tau)
    if not train:
        return SimpleNamespace(records=(M,), protocol=Protocol((hahn,)), dt_us=DT, labels=labels,
                               metadata={"lattice": 8})
    t2 = np.exp(rng.uniform(np.log(300.0), np.log(3000.0), n))
    t_train = DT * np.arange(1, (2 * train + 1) * n_tau + 1)
    tops = 2 * tau * np.arange(1, train + 1)
    shape = np.exp(-np.abs(t_train[None, :, None] - tops[None, None, :]) / 1.5)  # (1, T, N)
    heights = 0.5 * np.exp(-4.0 * W)[:, None, None] * np.exp(-tops[None, None, :] / t2[:, None, None])
    power = (kernels == "power")[:, None] * 0.1 * np.sin(t_train[None, :] / (2 * tau) * L[:, None])
    trains = (heights * shape).sum(axis=2) + power + noise * rng.standard_normal((n, len(t_train)))
    trains = trains.astype(np.complex64) * np.exp(1j * 0.3)
    trains[:, : 3 * n_tau] = M  # a train begins with its Hahn echo
    return SimpleNamespace(records=(M, trains), protocol=Protocol((hahn, Measurement(f"cpmg:{train}", np.pi / 2, tau))),
                           dt_us=DT, labels=labels.with_columns(t2_us=t2), metadata={"lattice": 8})


@pytest.fixture(scope="session")
def synthetic():
    return make_synthetic_dataset()


#: the seeds of the shared run's headline study (two, so mean ± std is exercised)
SEEDS = (0, 1)


#: echoes of the shared run: enough calibration rows (QUICK: 20 % of the training part) for 90 %
#: conformal sets, which need about 10 on each half
LEARNED_SIZE = 240


@pytest.fixture(scope="session")
def learned(tmp_path_factory):
    """One quick end-to-end `learn` run shared by the pipeline and predict tests: (out_dir, LearnRun)."""
    from pyecho.learn.pipeline import run_learn

    out = tmp_path_factory.mktemp("learn")
    run = run_learn(make_synthetic_dataset(LEARNED_SIZE), out, quick=True, seed=0, n_jobs=1, window=WINDOW, seeds=SEEDS,
                    learning_curve=True)
    return out, run

"""Shared fixtures: golden echoes, engine lists, small-lattice parameters."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from pyecho import EchoParams
from pyecho.engines.base import BACKENDS, availability

REPO = Path(__file__).resolve().parents[1]
#: the golden echoes of an independent implementation (docs/model.md); part of the repository
GOLDEN = REPO / "tests" / "golden" / "echoes.toml"

#: engines compared against the NumPy reference; those that cannot run here skip with why
COMPARED_ENGINES = [b for b in BACKENDS if b != "numpy"]


def engine_param(backend: str, device: str = "cpu"):
    reason = availability(backend, device)
    marks = [pytest.mark.skip(reason=f"{backend}/{device}: {reason}")] if reason else []
    if backend == "julia":
        marks.append(pytest.mark.julia)
    if device == "cuda":
        marks.append(pytest.mark.cuda)
    return pytest.param(backend, device, marks=marks, id=f"{backend}-{device}")


ENGINE_DEVICES = [engine_param(b, d) for b in COMPARED_ENGINES for d in ("cpu", "cuda")]


def load_golden() -> dict:
    """The golden file; a missing one fails the test (never skips: every clone has it)."""
    with GOLDEN.open("rb") as f:
        return tomllib.load(f)


def golden_cases():
    """(params, detuning_mhz, M) for every golden case."""
    g = load_golden()
    n = g["lattice"]
    detuning = np.array(g["detuning_mhz"]).reshape(n, n)
    for case in g["case"]:
        params = EchoParams(
            kernel=case["kernel"],
            kernel_param=case["kernel_param"] or 1.0,  # ignored for uniform
            alpha_xy=case["alpha_xy"],
            alpha_z=case["alpha_z"],
            lattice=n,
            tau_us=g["tau_us"],
            dt_us=g["dt_us"],
            theta=case["theta"],
            linewidth_khz=g["linewidth_khz"],
            t2_us=case["t2_us"] or None,  # 0 means no relaxation in the file
        )
        yield params, detuning, np.array(case["M_re"]) + 1j * np.array(case["M_im"])


def small_params(**changes) -> EchoParams:
    """A 6x6 lattice, 20 steps per tau, couplings strong enough to matter."""
    base = dict(
        kernel="gaussian", kernel_param=2.0, alpha_xy=0.3, alpha_z=0.2, lattice=6,
        tau_us=3.2, dt_us=0.16, theta=math.pi / 2, linewidth_khz=40.0,
    )
    return EchoParams(**{**base, **changes})


@pytest.fixture(scope="session")
def learned_protocol(tmp_path_factory):
    """A quick `learn` run on a protocol of two measurements (Hahn + CPMG:3) with T2 drawn per
    sample (synthetic records: tests/learn/conftest.py), shared by the predict and fit tests."""
    from pyecho.learn.pipeline import run_learn
    from tests.learn.conftest import LEARNED_SIZE, WINDOW, make_synthetic_dataset

    out = tmp_path_factory.mktemp("learn_protocol")
    run = run_learn(make_synthetic_dataset(LEARNED_SIZE, seed=5, train=3), out, quick=True, seed=0, n_jobs=1,
                    window=WINDOW)
    return out, run

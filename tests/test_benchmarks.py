"""Slow benchmarks, excluded from the default suite (``python -m pytest -m slow`` runs them).

They time the torch engine at the paper's lattice and compare within one run, so a shared or
slow machine changes the absolute rates but not what is asserted.
"""
from __future__ import annotations

import pytest

from pyecho.bench import BASELINE, Scheme, run_bench
from pyecho.data.sampling import PRESETS

pytestmark = pytest.mark.slow


def test_the_datasets_scheme_beats_the_plain_loop_at_100_x_100_and_prices_the_range_preset():
    rows, _ = run_bench(engines=("torch",), lattices=(100,), batch_sizes=(32,), schemes=(Scheme("extrapolated", 4),),
                        device="cpu", steps=150, torch_compile=("always",), baseline=True, sequence="cpmg:3")
    fast = next(r for r in rows if r.engine == "torch")
    loop = next(r for r in rows if r.engine == BASELINE)
    assert fast.speedup_vs_baseline is not None and fast.speedup_vs_baseline > 5.0, (fast, loop)
    hours = PRESETS["range"].spin_steps / fast.spin_steps_per_s / 3600
    assert hours < 6.0, f"the range preset would take {hours:.1f} h at {fast.spin_steps_per_s:.3g} spin-steps/s"


def test_a_fit_batches_its_points_and_runs_its_small_batches_on_one_thread():
    """pyecho fit's Jacobian as one engine call per measurement beats a call per point, and its
    single-point residual runs faster on one torch thread than on two (64 x 64, range protocol)."""
    from pyecho.bench import run_fit_bench

    rows = run_fit_bench(64, threads=(1, 2), device="cpu")
    get = lambda shape, dtype, threads, one_call: next(  # noqa: E731
        r for r in rows if (r.shape, r.dtype, r.threads, r.one_call) == (shape, dtype, threads, one_call))
    assert get("Jacobian", "float32", 1, True).seconds < get("Jacobian", "float32", 1, False).seconds
    assert get("residual", "float32", 1, True).seconds < get("residual", "float32", 2, True).seconds

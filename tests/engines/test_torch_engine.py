"""Torch-specific properties: norm conservation, chunking, CUDA equality."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyecho import simulate, simulate_batch
from pyecho.engines import base, torch_engine
from pyecho.engines.base import availability
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.problem import build_batch
from tests.conftest import small_params

torch = pytest.importorskip("torch")


def _evolve(params_list, dtype):
    """Run the engine's block function directly and return the final Bloch vectors (3, B, n, n)."""
    dets = [sample_detuning_mhz(i, p.lattice, p.linewidth_khz) for i, p in enumerate(params_list)]
    batch = build_batch(params_list, dets)
    real = torch.float32 if dtype == "float32" else torch.float64
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=real).view(batch.size, 1, 1)  # noqa: E731
    khat = torch.fft.rfft2(torch.as_tensor(batch.kernel_grid)).real.to(real)
    alpha = torch.as_tensor(np.stack([batch.alpha_xy, batch.alpha_xy, batch.alpha_z]), dtype=real).view(3, -1, 1, 1)
    relax = (t(batch.transverse_decay), t(batch.longitudinal_decay), t(batch.longitudinal_shift))
    omega = torch.as_tensor(batch.omega, dtype=real)
    m = torch.zeros((3, batch.size, batch.lattice, batch.lattice), dtype=real)
    m[2] = 0.5
    for first, end, pulses in batch.segments():
        for p in pulses:
            args = [t(f(batch.pulse_angle[:, p])) for f in (np.cos, np.sin)]
            args += [t(f(batch.pulse_phase[:, p])) for f in (np.cos, np.sin)]
            m = torch_engine.apply_pulse(m, *args)
        for _ in range(first, end):
            m, _, _ = torch_engine.block(m, None, None, khat, alpha, omega, relax, batch.dt_us, 1)
    return m


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-6), ("float64", 1e-13)])
def test_bloch_norm_conserved_without_t2(dtype, tol):
    params = [small_params(kernel=k, kernel_param=q, alpha_xy=0.5, tau_us=16.0, sequence="cpmg:2")
              for k, q in [("power", 1.2), ("rkky", 3.0)]]
    m = _evolve(params, dtype)
    norm = torch.linalg.vector_norm(m.double(), dim=0)
    assert torch.max(torch.abs(norm - 0.5)).item() < tol


def test_relaxation_reaches_its_fixed_point():
    """Strong G1 > G2 pumps every spin to m = (0, 0, (G1 - G2) / (2 (G1 + G2)))."""
    m = _evolve([small_params(gamma1_per_us=3.0, gamma2_per_us=1.0, tau_us=16.0)], "float64")
    np.testing.assert_allclose(m[:2].numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(m[2].numpy(), 0.25, atol=1e-12)


def test_compiled_step_matches_eager(monkeypatch):
    """The torch.compile path used for large runs gives the eager series (to float32 round-off)."""
    params = [small_params(kernel="power", kernel_param=1.5, scheme="extrapolated"),
              small_params(kernel="rkky", kernel_param=3.0, t2_us=3.0, scheme="extrapolated")]
    monkeypatch.setenv("PYECHO_TORCH_COMPILE", "never")
    eager = simulate_batch(params, backend="torch")
    monkeypatch.setenv("PYECHO_TORCH_COMPILE", "always")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")  # a fallback would make this vacuous
        compiled = simulate_batch(params, backend="torch")
    np.testing.assert_allclose(compiled, eager, atol=2e-6, rtol=0)


def test_bad_compile_policy_is_named(monkeypatch):
    monkeypatch.setenv("PYECHO_TORCH_COMPILE", "sometimes")
    with pytest.raises(ValueError, match="PYECHO_TORCH_COMPILE: got 'sometimes'"):
        simulate(small_params(), backend="torch")


def test_chunking_gives_identical_series(monkeypatch):
    params = [small_params(kernel_param=1.0 + 0.3 * i) for i in range(5)]
    whole = simulate_batch(params, backend="torch")
    monkeypatch.setattr(base, "CHUNK_BYTES", 1)  # one simulation per chunk
    assert base.chunk_size(6, "float32", torch_engine.ARRAYS_PER_SIM) == 1
    np.testing.assert_array_equal(simulate_batch(params, backend="torch"), whole)


@pytest.mark.cuda
@pytest.mark.skipif(availability("torch", "cuda") is not None, reason="no CUDA GPU for torch here")
def test_cuda_matches_cpu_at_100x100():
    params = [small_params(lattice=100, kernel="power", kernel_param=2.0, alpha_xy=0.05, alpha_z=0.03, tau_us=8.0)]
    cpu = simulate_batch(params, backend="torch", device="cpu", dtype="float64")
    gpu = simulate_batch(params, backend="torch", device="cuda", dtype="float64")
    np.testing.assert_allclose(gpu, cpu, atol=1e-10, rtol=0)

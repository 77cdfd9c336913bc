"""Torch-specific properties: norm conservation, chunking, CUDA equality."""
from __future__ import annotations

import numpy as np
import pytest

from pyecho import simulate, simulate_batch
from pyecho.engines import torch_engine
from pyecho.engines.base import availability
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.problem import build_batch
from tests.conftest import small_params

torch = pytest.importorskip("torch")


def _stepper(params_list, dtype, device="cpu"):
    dets = [sample_detuning_mhz(i, p.lattice, p.linewidth_khz) for i, p in enumerate(params_list)]
    return torch_engine._Stepper(build_batch(params_list, dets), device, dtype)


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-6), ("float64", 1e-13)])
def test_bloch_norm_conserved_without_t2(dtype, tol):
    params = [small_params(kernel=k, kernel_param=q, alpha_xy=0.5) for k, q in [("power", 1.2), ("rkky", 3.0)]]
    stepper = _stepper(params, dtype)
    with torch.inference_mode():
        for k in range(300):
            if k == 100:
                stepper.apply_refocusing_pulse()
            stepper.step()
    norm = torch.linalg.vector_norm(stepper.m.double(), dim=0)
    assert torch.max(torch.abs(norm - 0.5)).item() < tol


def test_t2_shrinks_coherences():
    stepper = _stepper([small_params(t2_us=1.0)], "float64")
    with torch.inference_mode():
        for _ in range(20):
            stepper.step()
    norm = torch.linalg.vector_norm(stepper.m, dim=0)
    assert torch.max(norm).item() < 0.5 - 1e-3


def test_chunking_gives_identical_series(monkeypatch):
    params = [small_params(kernel_param=1.0 + 0.3 * i) for i in range(5)]
    whole = simulate_batch(params, backend="torch")
    monkeypatch.setattr(torch_engine, "CHUNK_BYTES", 1)  # one simulation per chunk
    assert torch_engine.chunk_size(6, "float32") == 1
    np.testing.assert_array_equal(simulate_batch(params, backend="torch"), whole)


@pytest.mark.cuda
@pytest.mark.skipif(availability("torch", "cuda") is not None, reason="no CUDA GPU for torch here")
def test_cuda_matches_cpu_at_100x100():
    params = [small_params(lattice=100, kernel="power", kernel_param=2.0, alpha_xy=0.05, alpha_z=0.03, tau_us=8.0)]
    cpu = simulate_batch(params, backend="torch", device="cpu", dtype="float64")
    gpu = simulate_batch(params, backend="torch", device="cuda", dtype="float64")
    np.testing.assert_allclose(gpu, cpu, atol=1e-10, rtol=0)

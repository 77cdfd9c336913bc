"""Torch engine: batched Bloch vectors, FFT mean field, exact rotation per step.

For spin 1/2 the per-site propagator U = exp(-i H dt) with H = -b.I is exactly a rotation of
m = <I> about b = (alpha_xy F^x, alpha_xy F^y, omega + alpha_z F^z) by the angle -|b| dt
(SPEC §2). In half-angle (quaternion) form, with c = m x b, h = sin(|b|dt/2)/|b| and
w = cos(|b|dt/2), it reads

    m' = m + 2 h w c + 2 h^2 (c x b),

which needs one sin and one cos per site and has no 0/0 at b = 0.

The mean field F = (K/kappa) (*) m is a circular convolution on the periodic lattice: one
batched real FFT of the stacked (m_x, m_y[, m_z]) times the real transform of the even kernel
(the FFT step is :func:`step`). m_z is left out when every alpha_z is 0.

On a CPU the step is memory- and dispatch-bound: large runs compile :func:`step` with
``torch.compile`` so that its ~40 elementwise operations become one fused loop
(see :data:`COMPILE_MIN_SPIN_STEPS`); small runs, such as the tests, stay eager.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from pyecho.engines.base import check_dtype, chunks
from pyecho.physics.problem import EchoBatch

try:
    import torch
except ImportError:  # availability() reports it; importing pyecho must not fail
    torch = None

#: (n, n) real arrays alive per simulation during a step (state, field, b, cross products, ...)
ARRAYS_PER_SIM = 24
#: |b| below this is treated as 0 (h -> 0, the rotation is the identity to round-off)
_TINY_FIELD = 1e-30
#: compile policy: "auto" compiles chunks of at least COMPILE_MIN_SPIN_STEPS, "always", "never";
#: the environment variable PYECHO_TORCH_COMPILE overrides it
COMPILE = "auto"
#: below this many spin-steps per chunk (~1-2 s of eager work) compiling does not pay off: it
#: costs 10-30 s once per process and array shape, then every chunk of that shape reuses it
COMPILE_MIN_SPIN_STEPS = 5e7


def _cross(a, b):
    """a x b for vectors given as 3-tuples of equally shaped tensors."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def step(m, khat, alpha, omega, decay, dt: float):
    """Advance every site by one time step; returns (m', mean of (m'_x, m'_y) per simulation).

    m : (3, B, n, n) Bloch vectors; khat : (B, n, n//2+1) real DFT of K/kappa;
    alpha : (n_field, B, 1, 1) with rows alpha_xy, alpha_xy[, alpha_z] (n_field = 3 only when
    some alpha_z != 0); omega : (B, n, n) rad/us; decay : (B, 1, 1) exp(-dt/T2) or 1.
    """
    n_field = alpha.shape[0]
    field = torch.fft.irfft2(torch.fft.rfft2(m[:n_field]) * khat, s=m.shape[-2:]) * alpha
    b = (field[0], field[1], omega + field[2] if n_field == 3 else omega)
    bnorm = torch.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    half_angle = bnorm * (0.5 * dt)
    h = torch.sin(half_angle) / bnorm.clamp(min=_TINY_FIELD)  # sin(|b|dt/2) / |b|
    two_hw = 2.0 * h * torch.cos(half_angle)
    two_h2 = 2.0 * h * h
    mv = (m[0], m[1], m[2])
    c = _cross(mv, b)
    d = _cross(c, b)
    mx = (mv[0] + two_hw * c[0] + two_h2 * d[0]) * decay
    my = (mv[1] + two_hw * c[1] + two_h2 * d[1]) * decay
    mz = mv[2] + two_hw * c[2] + two_h2 * d[2]
    return torch.stack((mx, my, mz)), torch.stack((mx.mean(dim=(1, 2)), my.mean(dim=(1, 2))))


def pulse(m, phi, i: int, j: int):
    """Right-handed rotation of every Bloch vector by phi (B, 1, 1) in the (i, j) component plane.

    (i, j) = (1, 2) is a rotation about x, (2, 0) about y: exp(-i phi I^x) takes +z to -y.
    """
    c, s = torch.cos(phi), torch.sin(phi)
    out = m.clone()
    out[i] = c * m[i] - s * m[j]
    out[j] = s * m[i] + c * m[j]
    return out


def _compile_policy() -> str:
    policy = os.environ.get("PYECHO_TORCH_COMPILE", COMPILE)
    if policy not in ("auto", "always", "never"):
        raise ValueError(f"PYECHO_TORCH_COMPILE: got {policy!r}; allowed: auto, always, never")
    return policy


_compiled_step = None


def _step_function(spin_steps: float):
    """The compiled step for large chunks (falling back to eager if compiling fails), else eager."""
    global _compiled_step
    policy = _compile_policy()
    if policy == "never" or (policy == "auto" and spin_steps < COMPILE_MIN_SPIN_STEPS):
        return step
    if _compiled_step is None:
        # dynamic shapes: one graph serves every (B, n), so many shapes never exhaust the recompile limit
        _compiled_step = torch.compile(step, dynamic=True)
    return _compiled_step


def _run_chunk(batch: EchoBatch, device: str, dtype: str) -> np.ndarray:
    real = torch.float32 if dtype == "float32" else torch.float64
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=real, device=device)  # noqa: E731
    size, n = batch.size, batch.lattice
    n_field = 3 if np.any(batch.alpha_z != 0) else 2
    alpha = as_t(np.stack([batch.alpha_xy, batch.alpha_xy, batch.alpha_z])[:n_field]).view(n_field, size, 1, 1)
    decay = as_t(batch.coherence_decay).view(size, 1, 1)
    omega = as_t(batch.omega)
    theta = as_t(batch.theta).view(size, 1, 1)
    # K is even on the periodic lattice, so its DFT is real: keep the rfft half, computed in float64.
    kgrid = torch.as_tensor(batch.kernel_grid, dtype=torch.float64, device=device)
    khat = torch.fft.rfft2(kgrid).real.to(real).contiguous()

    m = torch.zeros((3, size, n, n), dtype=real, device=device)
    m[2] = 0.5
    m = pulse(m, theta, 1, 2)  # theta about x
    series = torch.empty((2, size, batch.n_samples), dtype=real, device=device)
    args = (khat, alpha, omega, decay, batch.dt_us)
    advance = _step_function(float(size) * n * n * batch.n_samples)
    try:
        with warnings.catch_warnings():  # compiling happens in the first call; the FFTs stay eager by design
            warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
            m, series[:, :, 0] = advance(m, *args)
    except Exception as exc:  # torch.compile needs a working C++ compiler (or triton on CUDA)
        if advance is step:
            raise
        warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running eager", stacklevel=2)
        advance = step
        m, series[:, :, 0] = advance(m, *args)
    for k in range(1, batch.n_samples):
        if k == batch.n_tau:
            m = pulse(m, 2.0 * theta, 2, 0)  # 2 theta about y
        m, series[:, :, k] = advance(m, *args)
    mxy = series.double().cpu().numpy()
    return mxy[0] + 1j * mxy[1]


class TorchEngine:
    name = "torch"

    def availability(self, device: str = "cpu") -> str | None:
        if torch is None:
            return "torch is not installed (pip install 'torch>=2.4')"
        if device == "cuda" and not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU"
        return None

    def run(self, batch: EchoBatch, device: str = "cpu", dtype: str = "float32") -> np.ndarray:
        check_dtype(dtype)
        with torch.inference_mode():
            return np.concatenate([_run_chunk(chunk, device, dtype) for chunk in chunks(batch, dtype, ARRAYS_PER_SIM)])


ENGINE = TorchEngine()

"""Torch engine: batched Bloch vectors, FFT mean field, exact rotation per step.

For spin 1/2 the per-site propagator U = exp(-i H dt) with H = -b.I is exactly a rotation of
m = <I> about b = (alpha_xy F^x, alpha_xy F^y, omega + alpha_z F^z) by the angle -|b| dt
(docs/model.md). In half-angle (quaternion) form, with c = m x b, h = sin(|b|dt/2)/|b| and
w = cos(|b|dt/2), it reads

    m' = m + 2 h w c + 2 h^2 (c x b),

which needs one sin and one cos per site and has no 0/0 at b = 0.

The mean field F = (K/kappa) (*) m is a circular convolution on the periodic lattice: one
batched real FFT of the stacked (m_x, m_y[, m_z]) times the real transform of the even kernel.
m_z is left out when every alpha_z is 0.

Time stepping works in *blocks*: a block evaluates the field once (the FFT) and then advances
up to ``field_every`` steps, each with the field held (explicit scheme, one step per block) or
extrapolated linearly to the step's midpoint from the last two evaluations (extrapolated
scheme). Between FFTs every operation is local to a site, so a compiled block
(``torch.compile``) fuses all of a block's rotations, relaxations and magnetisation sums into
one pass over memory: the state is read and written once per block, not once per step.
Small runs, such as the tests, stay eager (see :data:`COMPILE_MIN_SPIN_STEPS`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pyecho.engines.base import check_dtype, chunks
from pyecho.errors import ParameterError
from pyecho.physics.problem import EchoBatch

try:
    import torch
except ImportError:  # availability() reports it; importing pyecho must not fail
    torch = None

#: (n, n) real arrays alive per simulation during a block (state, two fields, b, FFT buffers, ...)
ARRAYS_PER_SIM = 28
#: |b| below this is treated as 0 (h -> 0, the rotation is the identity to round-off)
_TINY_FIELD = 1e-30
#: compile policy: "auto" compiles chunks of at least COMPILE_MIN_SPIN_STEPS, "always", "never";
#: the environment variable PYECHO_TORCH_COMPILE overrides it
COMPILE = "auto"
#: below this many spin-steps per chunk (~1-2 s of eager work) compiling does not pay off: it
#: costs seconds once per process (more without the compile cache), then every chunk reuses it
COMPILE_MIN_SPIN_STEPS = 5e7


def _cross(a, b):
    """a x b for vectors given as 3-tuples of equally shaped tensors."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def mean_field(m, khat, alpha):
    """alpha_d F^d for the first n_field = alpha.shape[0] components, shape (n_field, B, n, n).

    m : (3, B, n, n) Bloch vectors; khat : (B, n, n//2+1) real DFT of K/kappa; alpha :
    (n_field, B, 1, 1) with rows alpha_xy, alpha_xy[, alpha_z].
    """
    n_field = alpha.shape[0]
    return torch.fft.irfft2(torch.fft.rfft2(m[:n_field]) * khat, s=m.shape[-2:]) * alpha


def rotate(m, field, omega, dt: float):
    """One exact step of every Bloch vector m (3-tuple of (B, n, n)) about b = field + omega z."""
    b = (field[0], field[1], omega + field[2] if field.shape[0] == 3 else omega)
    bnorm = torch.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    half_angle = bnorm * (0.5 * dt)
    h = torch.sin(half_angle) / bnorm.clamp(min=_TINY_FIELD)  # sin(|b|dt/2) / |b|
    two_hw = 2.0 * h * torch.cos(half_angle)
    two_h2 = 2.0 * h * h
    c = _cross(m, b)
    d = _cross(c, b)
    return tuple(m[i] + two_hw * c[i] + two_h2 * d[i] for i in range(3))


def site_means(a, site_groups: int):
    """Mean of ``a`` (B, n, n) over all sites, (B,), or over each of g² interleaved site groups,
    (B, g²) (pyecho.physics.problem.site_group_means)."""
    if site_groups == 1:
        return a.mean(dim=(1, 2))
    size, n, g = a.shape[0], a.shape[1], site_groups
    return a.reshape(size, n // g, g, n // g, g).mean(dim=(1, 3)).reshape(size, g * g)


def block(m, field_prev, slope_weight, khat, alpha, omega, relax, dt: float, n_steps: int, site_groups: int = 1):
    """Evaluate the field F once and advance ``n_steps`` steps.

    Step j of the block uses F + (j + 1/2) w (F - F_prev) with w = ``slope_weight`` (a 0-d
    tensor: 1/field_every, or 0 where there is no history), or F when ``field_prev`` is None
    (the explicit scheme). ``relax`` is None or the (B, 1, 1) tensors (transverse,
    longitudinal, shift) of the per-step relaxation map.
    Returns (m', F, means) with means (n_steps, 2, B): the mean (m_x, m_y) after every step
    ((n_steps, 2, B, g²) per site group with ``site_groups`` g > 1); F is None for the explicit
    scheme (no later block needs it, so it is never written out).
    """
    field = mean_field(m, khat, alpha)
    extrapolate = field_prev is not None
    slope = (field - field_prev) * slope_weight if extrapolate else None
    mv = (m[0], m[1], m[2])
    means = []
    for j in range(n_steps):
        f = field + (j + 0.5) * slope if extrapolate else field
        mv = rotate(mv, f, omega, dt)
        if relax is not None:
            transverse, longitudinal, shift = relax
            mv = (mv[0] * transverse, mv[1] * transverse, mv[2] * longitudinal + shift)
        means.append(torch.stack((site_means(mv[0], site_groups), site_means(mv[1], site_groups))))
    return torch.stack(mv), field if extrapolate else None, torch.stack(means)


def apply_pulse(m, cos_phi, sin_phi, cos_phase, sin_phase):
    """Right-handed rotation of every Bloch vector by phi about (cos phase, sin phase, 0).

    Arguments are (B, 1, 1) tensors; exp(-i phi I^x) (phase 0) takes +z to -y.
    Rodrigues: m' = cos(phi) m + sin(phi) (n x m) + (1 - cos(phi)) (n.m) n.
    """
    nx, ny = cos_phase, sin_phase
    n_dot_m = nx * m[0] + ny * m[1]
    one_minus_cos = 1.0 - cos_phi
    return torch.stack((
        cos_phi * m[0] + sin_phi * ny * m[2] + one_minus_cos * n_dot_m * nx,
        cos_phi * m[1] - sin_phi * nx * m[2] + one_minus_cos * n_dot_m * ny,
        cos_phi * m[2] + sin_phi * (nx * m[1] - ny * m[0]),
    ))


def _compile_policy() -> str:
    policy = os.environ.get("PYECHO_TORCH_COMPILE", COMPILE)
    if policy not in ("auto", "always", "never"):
        raise ParameterError(f"PYECHO_TORCH_COMPILE: got {policy!r}; allowed: auto, always, never")
    return policy


_compiled_block = None


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its compiled kernels between processes: $PYECHO_CACHE_DIR, else
    $XDG_CACHE_HOME/pyecho or ~/.cache/pyecho, subfolder ``torchinductor`` (torch's own default
    lives in the temporary directory, which a reboot empties)."""
    root = os.environ.get("PYECHO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyecho"
    return Path(root) / "torchinductor"


def _block_function(spin_steps: float):
    """The compiled block for large chunks (falling back to eager if compiling fails), else eager."""
    global _compiled_block
    policy = _compile_policy()
    if policy == "never" or (policy == "auto" and spin_steps < COMPILE_MIN_SPIN_STEPS):
        return block
    if _compiled_block is None:
        # dynamic shapes: one graph serves every (B, n); the block length, the scheme, relaxation
        # and whether alpha_z is used specialise it, and a process that runs all of them (bench,
        # tests) needs more than dynamo's default of 8 graphs per function
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        # a persistent cache: a fresh process reuses the kernels compiled by an earlier one; a
        # cache directory the user chose (TORCHINDUCTOR_CACHE_DIR) wins
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
        _compiled_block = torch.compile(block, dynamic=True)
    return _compiled_block


def _run_chunk(batch: EchoBatch, device: str, dtype: str) -> np.ndarray:
    real = torch.float32 if dtype == "float32" else torch.float64
    as_t = lambda a, *shape: torch.as_tensor(np.asarray(a), dtype=real, device=device).view(*shape)  # noqa: E731
    size, n = batch.size, batch.lattice
    n_field = 3 if np.any(batch.alpha_z != 0) else 2
    alpha = as_t(np.stack([batch.alpha_xy, batch.alpha_xy, batch.alpha_z])[:n_field], n_field, size, 1, 1)
    omega = as_t(batch.omega, size, n, n)
    relax = None
    if batch.has_relaxation:
        relax = tuple(as_t(a, size, 1, 1)
                      for a in (batch.transverse_decay, batch.longitudinal_decay, batch.longitudinal_shift))
    pulse_args = [tuple(as_t(f(a[:, p]), size, 1, 1)
                        for f, a in ((np.cos, batch.pulse_angle), (np.sin, batch.pulse_angle),
                                     (np.cos, batch.pulse_phase), (np.sin, batch.pulse_phase)))
                  for p in range(len(batch.pulse_steps))]
    # K is even on the periodic lattice, so its DFT is real: keep the rfft half, computed in float64.
    kgrid = torch.as_tensor(batch.kernel_grid, dtype=torch.float64, device=device)
    khat = torch.fft.rfft2(kgrid).real.to(real).contiguous()
    k_every = batch.field_every
    # extrapolated: the slope weight is 0 in a segment's first block (no history), so that one
    # compiled graph serves every full block
    extrapolated = batch.scheme == "extrapolated"
    no_history = torch.zeros((), dtype=real, device=device)
    with_history = torch.full((), 1.0 / k_every, dtype=real, device=device)

    m = torch.zeros((3, size, n, n), dtype=real, device=device)
    m[2] = 0.5
    groups = (batch.n_groups,) if batch.site_groups > 1 else ()
    series = torch.empty((batch.n_steps, 2, size, *groups), dtype=real, device=device)
    advance = _block_function(float(size) * n * n * batch.n_steps)
    # entered once per chunk, not per block: for the explicit scheme a block is one step
    with warnings.catch_warnings():  # the FFTs stay eager by design
        warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
        for first, end, pulses in batch.segments():
            for p in pulses:
                m = apply_pulse(m, *pulse_args[p])
            field = None
            for start in range(first, end, k_every):
                n_block = min(k_every, end - start)
                if extrapolated:
                    prev, weight = ((field, with_history) if field is not None
                                    else (torch.zeros_like(m[:alpha.shape[0]]), no_history))
                else:
                    prev, weight = None, no_history
                args = (m, prev, weight, khat, alpha, omega, relax, batch.dt_us, n_block, batch.site_groups)
                # a segment's last, shorter block runs eager: it is rare and would need a graph of its own
                run = advance if n_block == k_every else block
                try:
                    m, field, series[start:start + n_block] = run(*args)
                except Exception as exc:  # torch.compile needs a working C++ compiler (or triton on CUDA)
                    if run is block:
                        raise
                    warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running eager", stacklevel=2)
                    advance = block
                    m, field, series[start:start + n_block] = block(*args)
    mxy = np.moveaxis(series.double().cpu().numpy(), 0, -1)  # (2, B[, g²], n_steps)
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

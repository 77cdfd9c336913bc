"""Torch engine: batched Bloch vectors, FFT mean field, exact rotation per step.

For spin 1/2 the per-site propagator U = exp(-i H dt) with H = -b.I is exactly a rotation of
m = <I> about b = (alpha_xy F^x, alpha_xy F^y, omega + alpha_z F^z) by the angle -|b| dt
(SPEC §2). In half-angle (quaternion) form, with c = m x b, h = sin(|b|dt/2)/|b| and
w = cos(|b|dt/2), it reads

    m' = m + 2 h w c + 2 h^2 (c x b),

which needs one sin and one cos per site and has no 0/0 at b = 0.

The mean field F = (K/kappa) (*) m is a circular convolution on the periodic lattice: one
batched real FFT of the stacked (m_x, m_y[, m_z]) times the real transform of the even kernel.
m_z is left out when every alpha_z is 0. All updates are in place on preallocated buffers:
on a CPU the step is memory- and dispatch-bound, not flop-bound.
"""
from __future__ import annotations

import numpy as np

from pyecho.engines.base import check_dtype
from pyecho.physics.problem import EchoBatch

try:
    import torch
except ImportError:  # availability() reports it; importing pyecho must not fail
    torch = None

#: simulations per chunk are capped so the state and buffers stay within this many bytes
CHUNK_BYTES = 512 * 2**20
#: live (B, n, n) real buffers per simulation (state, field, b, two cross products, scratch)
_BUFFERS_PER_SIM = 20
#: |b| below this is treated as 0 (h -> 0, the rotation is the identity to round-off)
_TINY_FIELD = 1e-30


def chunk_size(lattice: int, dtype: str, budget_bytes: int | None = None) -> int:
    """Simulations per chunk so that the working buffers fit ``budget_bytes`` (default CHUNK_BYTES)."""
    budget_bytes = CHUNK_BYTES if budget_bytes is None else budget_bytes
    per_sim = _BUFFERS_PER_SIM * lattice * lattice * (4 if dtype == "float32" else 8)
    return max(1, budget_bytes // per_sim)


def _cross(a, b, out) -> None:
    """out = a x b over dim 0 of (3, ...) tensors (explicit: linalg.cross is slow on CPU)."""
    torch.mul(a[1], b[2], out=out[0]).addcmul_(a[2], b[1], value=-1)
    torch.mul(a[2], b[0], out=out[1]).addcmul_(a[0], b[2], value=-1)
    torch.mul(a[0], b[1], out=out[2]).addcmul_(a[1], b[0], value=-1)


class _Stepper:
    """State m (3, B, n, n) and preallocated work buffers for one chunk of simulations."""

    def __init__(self, batch: EchoBatch, device: str, dtype: str):
        real = torch.float32 if dtype == "float32" else torch.float64
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=real, device=device)  # noqa: E731
        n, size = batch.lattice, batch.size
        self.shape = (n, n)
        self.dt = batch.dt_us
        self.theta = as_t(batch.theta).view(-1, 1, 1)
        # field components that need an FFT: z only when some alpha_z != 0
        self.n_field = 3 if np.any(batch.alpha_z != 0) else 2
        alpha = np.stack([batch.alpha_xy, batch.alpha_xy, batch.alpha_z])[: self.n_field]
        self.alpha = as_t(alpha).view(self.n_field, size, 1, 1)
        self.decay = as_t(batch.coherence_decay).view(size, 1, 1)
        self.use_decay = bool(np.any(batch.coherence_decay != 1.0))
        self.omega = as_t(batch.omega)
        # K is even on the periodic lattice, so its DFT is real: keep the rfft half of it.
        kgrid = torch.as_tensor(batch.kernel_grid, dtype=torch.float64, device=device)
        self.khat = torch.fft.rfft2(kgrid).real.to(real).contiguous()
        self.m = torch.zeros((3, size, n, n), dtype=real, device=device)
        self.m[2] = 0.5
        self.b = torch.empty_like(self.m)
        self.c = torch.empty_like(self.m)
        self.d = torch.empty_like(self.m)
        self.bnorm = torch.empty((size, n, n), dtype=real, device=device)
        self.h = torch.empty_like(self.bnorm)
        self.w = torch.empty_like(self.bnorm)
        self._rotate_pulse(self.theta, 1, 2)  # theta about x: (y, z) plane

    def _rotate_pulse(self, phi, i: int, j: int) -> None:
        """Right-handed rotation by phi (B, 1, 1) in the (i, j) component plane."""
        c, s = torch.cos(phi), torch.sin(phi)
        mi, mj = self.m[i].clone(), self.m[j]
        self.m[i] = c * mi - s * mj
        self.m[j] = s * mi + c * mj

    def apply_refocusing_pulse(self) -> None:
        """2 theta about y: rotation in the (z, x) plane."""
        self._rotate_pulse(2.0 * self.theta, 2, 0)

    def step(self) -> None:
        m, b, nf = self.m, self.b, self.n_field
        field = torch.fft.irfft2(torch.fft.rfft2(m[:nf]) * self.khat, s=self.shape)
        torch.mul(field, self.alpha, out=b[:nf])
        if nf == 3:
            b[2].add_(self.omega)
        else:
            b[2].copy_(self.omega)
        bnorm, h, w = self.bnorm, self.h, self.w
        torch.mul(b[0], b[0], out=bnorm).addcmul_(b[1], b[1]).addcmul_(b[2], b[2]).sqrt_()
        torch.mul(bnorm, 0.5 * self.dt, out=w)
        torch.sin(w, out=h).div_(bnorm.clamp_(min=_TINY_FIELD))  # h = sin(|b|dt/2)/|b|
        w.cos_()
        _cross(m, b, self.c)
        _cross(self.c, b, self.d)
        w.mul_(h).mul_(2.0)  # 2 h w
        h.mul_(h).mul_(2.0)  # 2 h^2
        m.addcmul_(self.c, w).addcmul_(self.d, h)
        if self.use_decay:
            m[:2].mul_(self.decay)

    def magnetisation(self):
        """(mean m_x, mean m_y) over the lattice, shape (2, B)."""
        return self.m[:2].mean(dim=(2, 3))


def _run_chunk(batch: EchoBatch, device: str, dtype: str) -> np.ndarray:
    stepper = _Stepper(batch, device, dtype)
    series = []
    for k in range(batch.n_samples):
        if k == batch.n_tau:
            stepper.apply_refocusing_pulse()
        stepper.step()
        series.append(stepper.magnetisation())
    mxy = torch.stack(series, dim=-1).double().cpu().numpy()  # (2, B, 3 n_tau)
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
        step = chunk_size(batch.lattice, dtype)
        with torch.inference_mode():
            return np.concatenate(
                [_run_chunk(batch.subset(i, i + step), device, dtype) for i in range(0, batch.size, step)]
            )


ENGINE = TorchEngine()

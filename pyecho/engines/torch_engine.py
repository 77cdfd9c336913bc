"""Torch engine: batched Bloch vectors, FFT mean field, exact rotation per step.

For spin 1/2 the per-site propagator U = exp(-i H dt) with H = -b.I is exactly a rotation of
m = <I> about b = (alpha_xy F^x, alpha_xy F^y, omega + alpha_z F^z) by |b| dt (SPEC §2):

    m' = cos(|b|dt) m + sin(|b|dt)/|b| (m x b) + (1 - cos(|b|dt))/|b|^2 (m.b) b

The mean field F = (K/kappa) (*) m is a circular convolution on the periodic lattice, done as
one complex FFT of m_x + i m_y (K is real and even, so its transform is real) and, only when
some alpha_z != 0, one real FFT of m_z.
"""
from __future__ import annotations

import numpy as np

from pyecho.engines.base import check_dtype
from pyecho.physics.problem import EchoBatch

try:
    import torch
except ImportError:  # availability() reports it; importing pyecho must not fail
    torch = None

#: simulations per chunk are capped so the state stays within this many bytes
CHUNK_BYTES = 512 * 2**20
#: below this |b| dt the rotation uses its Taylor form (avoids 0/0)
_SMALL_ANGLE = 1e-4


def _real_dtype(dtype: str):
    return torch.float32 if dtype == "float32" else torch.float64


def chunk_size(lattice: int, dtype: str, budget_bytes: int = CHUNK_BYTES) -> int:
    """Simulations per chunk: ~24 live (B, n, n) real buffers must fit ``budget_bytes``."""
    per_sim = 24 * lattice * lattice * (4 if dtype == "float32" else 8)
    return max(1, budget_bytes // per_sim)


class _Stepper:
    """State and preallocated work buffers for one chunk of simulations."""

    def __init__(self, batch: EchoBatch, device: str, dtype: str):
        real = _real_dtype(dtype)
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=real, device=device)  # noqa: E731
        n = batch.lattice
        self.dt = batch.dt_us
        self.n_tau = batch.n_tau
        self.theta = as_t(batch.theta)
        shape3 = (-1, 1, 1)
        self.alpha_xy = as_t(batch.alpha_xy).view(shape3)
        self.alpha_z = as_t(batch.alpha_z).view(shape3)
        self.use_z = bool(np.any(batch.alpha_z != 0))
        self.decay = as_t(batch.coherence_decay).view(shape3)
        self.use_decay = bool(np.any(batch.coherence_decay != 1.0))
        self.omega = as_t(batch.omega)
        # K is even on the periodic lattice, so its DFT is real: keep only that part.
        kgrid = torch.as_tensor(batch.kernel_grid, dtype=torch.float64, device=device)
        khat = torch.fft.fft2(kgrid).real
        self.khat = khat.to(real)
        self.khat_half = khat[..., : n // 2 + 1].to(real).contiguous()
        b = batch.size
        self.mx = torch.zeros((b, n, n), dtype=real, device=device)
        self.my = torch.zeros_like(self.mx)
        self.mz = torch.full_like(self.mx, 0.5)
        self._apply_pulse_x()

    def _apply_pulse_x(self) -> None:
        c, s = torch.cos(self.theta).view(-1, 1, 1), torch.sin(self.theta).view(-1, 1, 1)
        self.my, self.mz = c * self.my - s * self.mz, s * self.my + c * self.mz

    def apply_pulse_y(self) -> None:
        phi = 2.0 * self.theta
        c, s = torch.cos(phi).view(-1, 1, 1), torch.sin(phi).view(-1, 1, 1)
        self.mx, self.mz = c * self.mx + s * self.mz, -s * self.mx + c * self.mz

    def step(self) -> None:
        mx, my, mz = self.mx, self.my, self.mz
        fxy = torch.fft.ifft2(torch.fft.fft2(torch.complex(mx, my)) * self.khat)
        bx = self.alpha_xy * fxy.real
        by = self.alpha_xy * fxy.imag
        bz = self.omega
        if self.use_z:
            fz = torch.fft.irfft2(torch.fft.rfft2(mz) * self.khat_half, s=mz.shape[-2:])
            bz = bz + self.alpha_z * fz
        b2 = bx * bx + by * by + bz * bz
        bnorm = torch.sqrt(b2)
        angle = bnorm * self.dt
        small = angle < _SMALL_ANGLE
        safe_b = torch.where(small, torch.ones_like(bnorm), bnorm)
        cos_a = torch.cos(angle)
        sin_over_b = torch.where(small, self.dt - angle * angle * self.dt / 6.0, torch.sin(angle) / safe_b)
        one_minus_cos_over_b2 = torch.where(
            small, 0.5 * self.dt * self.dt * (1.0 - angle * angle / 12.0), (1.0 - cos_a) / (safe_b * safe_b)
        )
        dot = (mx * bx + my * by + mz * bz) * one_minus_cos_over_b2
        cx = my * bz - mz * by
        cy = mz * bx - mx * bz
        cz = mx * by - my * bx
        self.mx = cos_a * mx + sin_over_b * cx + dot * bx
        self.my = cos_a * my + sin_over_b * cy + dot * by
        self.mz = cos_a * mz + sin_over_b * cz + dot * bz
        if self.use_decay:
            self.mx = self.mx * self.decay
            self.my = self.my * self.decay

    def magnetisation(self):
        """M = mean over sites of m_x + i m_y, shape (B,) complex."""
        return torch.complex(self.mx.mean(dim=(1, 2)), self.my.mean(dim=(1, 2)))


def _run_chunk(batch: EchoBatch, device: str, dtype: str) -> np.ndarray:
    stepper = _Stepper(batch, device, dtype)
    series = []
    for k in range(batch.n_samples):
        if k == batch.n_tau:
            stepper.apply_pulse_y()
        stepper.step()
        series.append(stepper.magnetisation())
    return torch.stack(series, dim=1).cpu().numpy().astype(np.complex128)


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

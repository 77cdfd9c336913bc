"""Site detunings: i.i.d. truncated Lorentzian, sampled by inverse CDF (SPEC §1)."""
from __future__ import annotations

import numpy as np

#: detunings are truncated to |dnu| <= this (MHz)
DETUNING_CUTOFF_MHZ = 0.25


def sample_detuning_mhz(
    seed: int | np.random.Generator,
    lattice: int,
    linewidth_khz: float = 8.0,
    cutoff_mhz: float = DETUNING_CUTOFF_MHZ,
) -> np.ndarray:
    """Cyclic detunings Delta-nu (MHz), shape (lattice, lattice), float64.

    Lorentzian centred at 0 with full width at half maximum ``linewidth_khz`` (kHz),
    truncated to |Delta-nu| <= ``cutoff_mhz``: u ~ U(F(-b), F(b)),
    Delta-nu = (FWHM/2) tan(pi (u - 1/2)).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    half_width = linewidth_khz / 2000.0  # kHz FWHM -> MHz HWHM
    if half_width == 0.0:
        return np.zeros((lattice, lattice))
    cdf_b = 0.5 + np.arctan(cutoff_mhz / half_width) / np.pi
    u = rng.uniform(1.0 - cdf_b, cdf_b, size=(lattice, lattice))
    return half_width * np.tan(np.pi * (u - 0.5))

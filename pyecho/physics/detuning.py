"""Site detunings: i.i.d. truncated Lorentzian, sampled by inverse CDF."""
from __future__ import annotations

import numpy as np

#: detunings are truncated to |dnu - centre| <= this (MHz)
DETUNING_CUTOFF_MHZ = 0.25


def sample_detuning_mhz(
    seed: int | np.random.Generator,
    lattice: int,
    linewidth_khz: float = 8.0,
    cutoff_mhz: float = DETUNING_CUTOFF_MHZ,
    center_khz: float = 0.0,
) -> np.ndarray:
    """Cyclic detunings Delta-nu (MHz), shape (lattice, lattice), float64.

    Lorentzian centred at ``center_khz`` (kHz; a carrier offset) with full width at half maximum
    ``linewidth_khz`` (kHz), truncated to |Delta-nu - centre| <= ``cutoff_mhz``:
    u ~ U(F(-b), F(b)), Delta-nu = centre + (FWHM/2) tan(pi (u - 1/2)). The centre only shifts
    the draws, so the same seed gives the same spread for every centre.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    half_width = linewidth_khz / 2000.0  # kHz FWHM -> MHz HWHM
    center_mhz = center_khz / 1000.0
    if half_width == 0.0:
        return np.full((lattice, lattice), center_mhz)
    cdf_b = 0.5 + np.arctan(cutoff_mhz / half_width) / np.pi
    u = rng.uniform(1.0 - cdf_b, cdf_b, size=(lattice, lattice))
    spread = half_width * np.tan(np.pi * (u - 0.5))
    return spread + center_mhz if center_mhz else spread

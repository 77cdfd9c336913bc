"""Radial interaction kernels K(r), their normalisation kappa and length scale L (docs/model.md).

Every kernel has K(0) := 0 (no self-coupling). ``kernel_param`` is xi (gaussian), p (power)
or gamma (rkky); it is ignored for ``uniform``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from pyecho.physics.lattice import displacement_distances, parse_geometry

KERNELS = ("gaussian", "power", "rkky", "uniform")
#: kernel families with a long-range (power-law) tail: the "P" class of the paper
LONG_RANGE_KERNELS = ("power",)
#: |kappa| / sum|K| below this cannot normalise the mean field: K/kappa would amplify the
#: field by more than 1/MIN_RELATIVE_KAPPA (only sign-changing kernels such as RKKY get near)
MIN_RELATIVE_KAPPA = 1e-3


def kernel_values(kernel: str, kernel_param: float, r: np.ndarray) -> np.ndarray:
    """K(r) for distances ``r`` (any shape, lattice spacings); K = 0 where r == 0."""
    r = np.asarray(r, dtype=np.float64)
    nonzero = r > 0
    rr = np.where(nonzero, r, 1.0)  # placeholder avoids 0**-p; masked below
    if kernel == "gaussian":
        k = np.exp(-((rr / kernel_param) ** 2))
    elif kernel == "power":
        k = rr ** (-kernel_param)
    elif kernel == "rkky":
        x = 2.0 * rr / kernel_param
        k = (x * np.cos(x) - np.sin(x)) / x**4
    elif kernel == "uniform":
        k = np.ones_like(rr)
    else:
        raise ValueError(f"kernel: unknown kernel {kernel!r}; allowed: {', '.join(KERNELS)}")
    return np.where(nonzero, k, 0.0)


@lru_cache(maxsize=1024)
def _stats(kernel: str, kernel_param: float, lattice: int, geometry: str) -> tuple[float, float, float]:
    r = displacement_distances(lattice, geometry)
    k = kernel_values(kernel, kernel_param, r)
    kappa = float(k.sum())
    length = float((r * k).sum() / kappa) if kappa != 0.0 else float("nan")
    return kappa, length, float(np.abs(k).sum())


def kernel_stats(
    kernel: str, kernel_param: float = 0.0, lattice: int = 100, *, geometry: str = "square"
) -> tuple[float, float]:
    """Return ``(kappa, L)`` of a kernel on the n x n periodic lattice of ``geometry``.

    kappa = sum_{j != 0} K(r_0j) (may be negative for RKKY);
    L = (1/kappa) sum_j r_0j K(r_0j), dimensionless (units of the first lattice spacing).
    """
    return _cached_stats(kernel, kernel_param, lattice, geometry)[:2]


def relative_kappa(kernel: str, kernel_param: float, lattice: int, geometry: str = "square") -> float:
    """|kappa| / sum_j |K(r_0j)|: 1 for a positive kernel, near 0 when signs cancel."""
    kappa, _, abs_sum = _cached_stats(kernel, kernel_param, lattice, geometry)
    return abs(kappa) / abs_sum if abs_sum > 0 else 0.0


def _cached_stats(kernel: str, kernel_param: float, lattice: int, geometry: str) -> tuple[float, float, float]:
    if kernel == "uniform":
        kernel_param = 0.0
    return _stats(kernel, float(kernel_param), int(lattice), parse_geometry(geometry))


def normalized_kernel_grid(kernel: str, kernel_param: float, lattice: int, geometry: str = "square") -> np.ndarray:
    """K/kappa on the index-displacement grid, shape (n, n), float64.

    ``grid[di, dj]`` couples two sites whose indices differ by (di, dj); convolving the
    magnetisation with it on the periodic lattice gives the mean field F.
    """
    kappa, _ = kernel_stats(kernel, kernel_param, lattice, geometry=geometry)
    return kernel_values(kernel, kernel_param, displacement_distances(lattice, geometry)) / kappa


def is_long_range(kernel: str) -> bool:
    """True for the paper's "P" (power-law) class, False for "NP"."""
    return kernel in LONG_RANGE_KERNELS

"""Periodic square lattice geometry (spacing 1, minimum-image distances)."""
from __future__ import annotations

import numpy as np


def displacement_distances(lattice: int) -> np.ndarray:
    """Minimum-image distance for every lattice displacement.

    Returns an (n, n) float64 array ``r`` with ``r[dx, dy]`` the distance between two sites
    separated by ``(dx, dy)`` on the n x n periodic lattice; ``r[0, 0] == 0``.
    """
    d = np.arange(lattice)
    d = np.minimum(d, lattice - d).astype(np.float64)
    return np.sqrt(d[:, None] ** 2 + d[None, :] ** 2)


def pairwise_distances(lattice: int) -> np.ndarray:
    """Minimum-image distance between every pair of sites, shape (N, N) with N = n*n.

    Sites are numbered row-major (site = x * n + y). Built from coordinates, not from
    :func:`displacement_distances`, so the reference engine checks the FFT engines' grid.
    """
    x, y = np.divmod(np.arange(lattice * lattice), lattice)
    dx = np.abs(x[:, None] - x[None, :])
    dy = np.abs(y[:, None] - y[None, :])
    dx = np.minimum(dx, lattice - dx)
    dy = np.minimum(dy, lattice - dy)
    return np.sqrt(dx**2 + dy**2, dtype=np.float64)

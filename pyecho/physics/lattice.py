"""Periodic Bravais lattices (n x n sites, first spacing 1) and minimum-image distances.

Site (i, j) sits at i a1 + j a2. The n x n supercell is periodic along n a1 and n a2, and the
distance between two sites is the shortest over all periodic images (the minimum image).
Geometries (``EchoParams.geometry``):

=======================  ==========================================================
``square``               a1 = (1, 0), a2 = (0, 1) (the paper's lattice)
``rectangular:RATIO``    a1 = (1, 0), a2 = (0, RATIO): spacing RATIO = b/a along y
``triangular``           a1 = (1, 0), a2 = (1/2, sqrt(3)/2): six nearest neighbours
=======================  ==========================================================

The mean field is a circular convolution over the site indices (i, j) for every geometry;
only the distance attached to each index displacement changes.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from pyecho.errors import ParameterError

GEOMETRIES = ("square", "rectangular", "triangular")
#: periodic images searched per supercell vector: {-1, 0, 1} covers the minimum image of the
#: reduced bases above (angles of 60 or 90 degrees) for displacements wrapped into the cell
_IMAGES = (-1, 0, 1)


class GeometryError(ParameterError):
    """A lattice geometry spec is invalid; the message says what is allowed."""


def parse_geometry(spec: str) -> str:
    """Validate a geometry spec; returns its canonical text ("square", "rectangular:1.5", ...)."""
    if not isinstance(spec, str):
        raise GeometryError(f"geometry: got {spec!r}; allowed: square, rectangular:RATIO, triangular")
    name, sep, arg = spec.strip().lower().partition(":")
    if name in ("square", "triangular") and not sep:
        return name
    if name == "rectangular":
        try:
            ratio = float(arg)
        except ValueError:
            ratio = float("nan")
        if not (math.isfinite(ratio) and 0.1 <= ratio <= 10):
            raise GeometryError(f"geometry: got {spec!r}; rectangular:RATIO needs a number 0.1 <= RATIO <= 10 (b/a)")
        return "square" if ratio == 1.0 else f"rectangular:{ratio!r}"
    raise GeometryError(f"geometry: got {spec!r}; allowed: square, rectangular:RATIO, triangular")


def basis(geometry: str = "square") -> np.ndarray:
    """Primitive vectors a1, a2 as the rows of a (2, 2) array (units of the first spacing)."""
    name, _, arg = parse_geometry(geometry).partition(":")
    if name == "square":
        return np.array([[1.0, 0.0], [0.0, 1.0]])
    if name == "rectangular":
        return np.array([[1.0, 0.0], [0.0, float(arg)]])
    return np.array([[1.0, 0.0], [0.5, math.sqrt(3.0) / 2.0]])


def _minimum_image(di: np.ndarray, dj: np.ndarray, lattice: int, geometry: str) -> np.ndarray:
    """Shortest |(di + p n) a1 + (dj + q n) a2| over the images p, q in _IMAGES."""
    a1, a2 = basis(geometry)
    best = np.full(np.broadcast(di, dj).shape, np.inf)
    for p in _IMAGES:
        for q in _IMAGES:
            u, v = di + p * lattice, dj + q * lattice
            x = u * a1[0] + v * a2[0]
            y = u * a1[1] + v * a2[1]
            best = np.minimum(best, np.sqrt(x * x + y * y))
    return best


@lru_cache(maxsize=64)
def _displacement_distances(lattice: int, geometry: str) -> np.ndarray:
    if geometry == "square":
        d = np.arange(lattice)
        d = np.minimum(d, lattice - d).astype(np.float64)
        r = np.sqrt(d[:, None] ** 2 + d[None, :] ** 2)
    else:
        d = np.arange(lattice, dtype=np.float64)
        r = _minimum_image(d[:, None], d[None, :], lattice, geometry)
    r.setflags(write=False)
    return r


def displacement_distances(lattice: int, geometry: str = "square") -> np.ndarray:
    """Minimum-image distance for every index displacement, shape (n, n), float64 (read-only).

    ``r[di, dj]`` is the distance between sites (i, j) and (i + di, j + dj) mod n; ``r[0, 0] == 0``.
    """
    return _displacement_distances(int(lattice), parse_geometry(geometry))


def pairwise_distances(lattice: int, geometry: str = "square") -> np.ndarray:
    """Minimum-image distance between every pair of sites, shape (N, N) with N = n*n.

    Sites are numbered row-major (site = i * n + j). Built from the sites' Cartesian positions
    and an explicit search over periodic images, not from :func:`displacement_distances`, so the
    reference engine checks the FFT engines' grid.
    """
    a1, a2 = basis(geometry)
    i, j = np.divmod(np.arange(lattice * lattice), lattice)
    pos = i[:, None] * a1 + j[:, None] * a2  # (N, 2)
    diff = pos[:, None, :] - pos[None, :, :]  # (N, N, 2)
    best = np.full(diff.shape[:2], np.inf)
    for p in (-1, 0, 1):
        for q in (-1, 0, 1):
            shift = lattice * (p * a1 + q * a2)
            best = np.minimum(best, np.linalg.norm(diff + shift, axis=-1))
    return best

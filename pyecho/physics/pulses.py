"""Ideal pulses as rotations of the Bloch vector m = <I>.

U = exp(-i phi I^a) acts on m as the right-handed rotation by phi about axis a, so the
90-degree x pulse takes (0, 0, 1/2) to (0, -1/2, 0).
"""
from __future__ import annotations

import numpy as np


def rotation_x(phi: float) -> np.ndarray:
    """3x3 rotation of the Bloch vector by ``phi`` (rad) about x."""
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(phi: float) -> np.ndarray:
    """3x3 rotation of the Bloch vector by ``phi`` (rad) about y."""
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def spin_half_unitary(axis: str, phi: float) -> np.ndarray:
    """2x2 unitary exp(-i phi I^axis) for spin 1/2 (I = sigma/2)."""
    c, s = np.cos(phi / 2), np.sin(phi / 2)
    if axis == "x":
        return np.array([[c, -1j * s], [-1j * s, c]])
    if axis == "y":
        return np.array([[c, -s], [s, c]], dtype=complex)
    raise ValueError(f"axis: got {axis!r}; allowed: 'x', 'y'")

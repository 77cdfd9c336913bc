"""Ideal pulses as rotations of the Bloch vector m = <I>.

A pulse of angle phi and phase p is U = exp(-i phi (cos p I^x + sin p I^y)); it acts on m as
the right-handed rotation by phi about the axis (cos p, sin p, 0), so the 90-degree x pulse
(p = 0) takes (0, 0, 1/2) to (0, -1/2, 0).
"""
from __future__ import annotations

import numpy as np


def pulse_rotation(phi: float, phase: float = 0.0) -> np.ndarray:
    """3x3 rotation of the Bloch vector by ``phi`` (rad) about (cos phase, sin phase, 0)."""
    n = np.array([np.cos(phase), np.sin(phase), 0.0])
    cross = np.array([[0.0, -n[2], n[1]], [n[2], 0.0, -n[0]], [-n[1], n[0], 0.0]])  # cross @ m = n x m
    return np.cos(phi) * np.eye(3) + np.sin(phi) * cross + (1.0 - np.cos(phi)) * np.outer(n, n)


def spin_half_unitary(phi: float, phase: float = 0.0) -> np.ndarray:
    """2x2 unitary exp(-i phi (cos(phase) I^x + sin(phase) I^y)) for spin 1/2 (I = sigma/2)."""
    c, s = np.cos(phi / 2), np.sin(phi / 2)
    e = np.exp(-1j * phase)
    return np.array([[c, -1j * s * e], [-1j * s * np.conj(e), c]])

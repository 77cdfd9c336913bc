"""Lindblad relaxation of a spin 1/2 as an exact affine map of the Bloch vector.

Channels on every site (rates in 1/us): sqrt(G1) I+ (pumps towards +z), sqrt(G2) I- (towards
-z) and sqrt(G3) I^z (pure dephasing). For spin 1/2 the dissipator D[rho] = sum_c L rho L^+ -
{L^+ L, rho}/2 acts on m = <I> as

    dm_x/dt = -G_perp m_x,   dm_y/dt = -G_perp m_y,   dm_z/dt = -G_par (m_z - m_eq),

with G_perp = (G1 + G2 + G3)/2, G_par = G1 + G2 and m_eq = (G1 - G2) / (2 (G1 + G2)). Over a
step dt this integrates exactly to m_xy <- e_perp m_xy, m_z <- e_par m_z + m_eq (1 - e_par),
e = exp(-G dt). G3 alone multiplies the coherences by exp(-G3 dt / 2): T2 = 2 / G3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BlochRelaxation:
    """One step of relaxation: m_xy *= ``transverse``; m_z = ``longitudinal`` m_z + ``shift``."""

    transverse: float
    longitudinal: float
    shift: float

    @property
    def is_identity(self) -> bool:
        return self.transverse == 1.0 and self.longitudinal == 1.0 and self.shift == 0.0


def bloch_relaxation(gamma1_per_us: float, gamma2_per_us: float, gamma3_per_us: float, dt_us: float) -> BlochRelaxation:
    """The exact step map of the three channels over ``dt_us`` (derivation in the module docstring)."""
    g_par = gamma1_per_us + gamma2_per_us
    g_perp = 0.5 * (g_par + gamma3_per_us)
    longitudinal = math.exp(-g_par * dt_us)
    m_eq = (gamma1_per_us - gamma2_per_us) / (2.0 * g_par) if g_par > 0 else 0.0
    return BlochRelaxation(math.exp(-g_perp * dt_us), longitudinal, m_eq * (1.0 - longitudinal))

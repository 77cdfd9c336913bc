"""EchoParams: one Hahn-echo experiment, validated on construction (SPEC §1-3).

Units are in the field names: times in microseconds, linewidth in kHz; alpha_xy and
alpha_z are couplings in rad/us.
"""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

import numpy as np

from pyecho.physics.kernels import KERNELS, MIN_RELATIVE_KAPPA, is_long_range, kernel_stats, relative_kappa


def steps_per_tau(tau_us: float, dt_us: float) -> int:
    """n_tau = round(tau_us / dt_us): time steps between the two pulses."""
    return int(round(tau_us / dt_us))


#: largest lattice side: the n x n kernel grid and state must fit in memory (16.8 M sites)
MAX_LATTICE = 4096


class ParameterError(ValueError):
    """A parameter is outside what the model allows; the message names field, value and rule."""


def _fail(field: str, value, allowed: str) -> None:
    raise ParameterError(f"{field}: got {value!r}; {allowed}")


def _integer(field: str, value) -> int:
    if isinstance(value, bool):
        _fail(field, value, f"must be an integer from 2 to {MAX_LATTICE}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
    _fail(field, value, f"must be an integer from 2 to {MAX_LATTICE}")


def _finite(field: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        _fail(field, value, "must be a finite number")
    if not math.isfinite(x):
        _fail(field, value, "must be a finite number (not NaN or inf)")
    return x


@dataclass(frozen=True)
class EchoParams:
    """Parameters of one Hahn-echo simulation.

    Attributes
    ----------
    kernel : {"gaussian", "power", "rkky", "uniform"}
        Radial form of the interaction K(r).
    kernel_param : float
        xi (gaussian, lattice spacings), p (power, dimensionless) or gamma (rkky, lattice
        spacings); ignored for uniform.
    alpha_xy : float
        In-plane coupling alpha_x = alpha_y (rad/us).
    alpha_z : float
        Out-of-plane coupling (rad/us).
    lattice : int
        Side n of the n x n periodic lattice (>= 2).
    tau_us, dt_us : float
        Pulse spacing and time step (us); n_tau = round(tau_us / dt_us) >= 1.
    theta : float
        Excitation angle (rad); the refocusing pulse is 2*theta about y.
    linewidth_khz : float
        FWHM of the Lorentzian detuning distribution (kHz, >= 0).
    t2_us : float or None
        Transverse relaxation time (us, > 0); None for no relaxation.
    """

    kernel: str = "gaussian"
    kernel_param: float = 8.0
    alpha_xy: float = 0.05
    alpha_z: float = 0.03
    lattice: int = 100
    tau_us: float = 100.0
    dt_us: float = 0.16
    theta: float = math.pi / 2
    linewidth_khz: float = 8.0
    t2_us: float | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731 (frozen)
        if self.kernel not in KERNELS:
            _fail("kernel", self.kernel, f"allowed: {', '.join(KERNELS)}")
        set_("lattice", _integer("lattice", self.lattice))
        if not 2 <= self.lattice <= MAX_LATTICE:
            _fail("lattice", self.lattice, f"must be an integer from 2 to {MAX_LATTICE}")
        for name in ("kernel_param", "alpha_xy", "alpha_z", "tau_us", "dt_us", "theta", "linewidth_khz"):
            set_(name, _finite(name, getattr(self, name)))
        if self.tau_us <= 0:
            _fail("tau_us", self.tau_us, "must be > 0")
        if self.dt_us <= 0:
            _fail("dt_us", self.dt_us, "must be > 0")
        if steps_per_tau(self.tau_us, self.dt_us) < 1:
            _fail("tau_us", self.tau_us, f"round(tau_us / dt_us) must be >= 1 (dt_us = {self.dt_us})")
        if self.linewidth_khz < 0:
            _fail("linewidth_khz", self.linewidth_khz, "must be >= 0")
        if self.t2_us is not None:
            set_("t2_us", _finite("t2_us", self.t2_us))
            if self.t2_us <= 0:
                _fail("t2_us", self.t2_us, "must be > 0, or None for no relaxation")
        if self.kernel == "uniform":
            set_("kernel_param", 0.0)
        elif self.kernel_param <= 0:
            _fail("kernel_param", self.kernel_param, f"the {self.kernel} kernel needs kernel_param > 0")
        if not relative_kappa(self.kernel, self.kernel_param, self.lattice) >= MIN_RELATIVE_KAPPA:
            kappa = self.kappa
            _fail(
                "kernel_param",
                self.kernel_param,
                f"the {self.kernel} kernel on a {self.lattice}x{self.lattice} lattice has kappa = {kappa:.3g}, "
                f"too small to normalise the mean field (need |kappa| >= {MIN_RELATIVE_KAPPA:g} * sum|K|)",
            )

    @property
    def n_tau(self) -> int:
        """Steps between pulses, round(tau_us / dt_us)."""
        return steps_per_tau(self.tau_us, self.dt_us)

    @property
    def n_samples(self) -> int:
        """Length of the recorded series, 3 * n_tau."""
        return 3 * self.n_tau

    @property
    def alpha_x(self) -> float:
        return self.alpha_xy

    @property
    def alpha_y(self) -> float:
        return self.alpha_xy

    @property
    def W(self) -> float:  # noqa: N802 (the paper's name)
        """Total interaction strength alpha_x + alpha_y + alpha_z (rad/us)."""
        return 2.0 * self.alpha_xy + self.alpha_z

    @property
    def kappa(self) -> float:
        return kernel_stats(self.kernel, self.kernel_param, self.lattice)[0]

    @property
    def L(self) -> float:  # noqa: N802
        """Dimensionless kernel length scale (lattice spacings)."""
        return kernel_stats(self.kernel, self.kernel_param, self.lattice)[1]

    @property
    def is_power(self) -> bool:
        return is_long_range(self.kernel)

    def time_grid_us(self):
        """Sample times t_k = k * dt_us, k = 1 .. 3 n_tau (us)."""
        return self.dt_us * np.arange(1, self.n_samples + 1)

    def replace(self, **changes) -> "EchoParams":
        return EchoParams(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)

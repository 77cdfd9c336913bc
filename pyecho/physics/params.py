"""EchoParams: one spin-echo experiment, validated on construction (docs/model.md).

Units are in the field names: times in microseconds, linewidth and carrier offset in kHz,
relaxation rates in 1/us; alpha_xy and alpha_z are couplings in rad/us.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, fields

import numpy as np

from pyecho.errors import ParameterError
from pyecho.physics.kernels import KERNELS, MIN_RELATIVE_KAPPA, is_long_range, kernel_stats, relative_kappa
from pyecho.physics.lattice import GeometryError, parse_geometry
from pyecho.physics.relaxation import BlochRelaxation, bloch_relaxation
from pyecho.physics.sequence import PulseSequence, SequenceError, StepPlan, parse_sequence, sequence_text, step_plan

#: integration schemes: the contract's first-order step, and the second-order multi-rate step
SCHEMES = ("explicit", "extrapolated")
#: field_every of the extrapolated scheme when none is given: 4 steps per field evaluation was
#: 4x closer to the converged echo than the explicit step at a quarter of its FFTs (docs/model.md)
DEFAULT_FIELD_EVERY = 4


def steps_per_tau(tau_us: float, dt_us: float) -> int:
    """n_tau = round(tau_us / dt_us): time steps between the two pulses."""
    return int(round(tau_us / dt_us))


#: largest lattice side: the n x n kernel grid and state must fit in memory (16.8 M sites)
MAX_LATTICE = 4096


#: the Lindblad rate fields (1/us)
GAMMA_FIELDS = ("gamma1_per_us", "gamma2_per_us", "gamma3_per_us")


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


def _count(field: str, value, minimum: int) -> int:
    number = None
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            if isinstance(value, float) and value.is_integer():
                number = int(value)
    if number is None or number < minimum:
        _fail(field, value, f"must be an integer >= {minimum}")
    return number


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
    """Parameters of one spin-echo simulation (the Hahn echo unless ``sequence`` says otherwise).

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
        Excitation angle (rad) of the preset sequences; their refocusing pulses are 2 theta.
        Simulated as given; the measurement it names (:meth:`pyecho.physics.protocol.Measurement.of`)
        reads it to 0.1 degree.
    linewidth_khz : float
        FWHM of the Lorentzian detuning distribution (kHz, >= 0).
    t2_us : float or None
        Transverse relaxation time (us, > 0); None for no relaxation. The special case
        gamma3_per_us = 2 / t2_us of the Lindblad channels (give one or the other).
    scheme : {"explicit", "extrapolated"}
        "explicit": the mean field from the state at the start of every step (first order; the
        contract's step and the golden echoes). "extrapolated": the field is recomputed every
        ``field_every`` steps and linearly extrapolated to each step's midpoint (second order).
    field_every : int or None
        Steps per field evaluation of the extrapolated scheme (>= 1; default 4). The explicit
        scheme always evaluates every step (stored as 1).
    sequence : str or PulseSequence
        "hahn" (default), "cpmg:N", "cp:N" or a free pulse list (see pyecho.physics.sequence).
    gamma1_per_us, gamma2_per_us, gamma3_per_us : float
        Lindblad rates (1/us, >= 0) of the channels sqrt(G1) I+, sqrt(G2) I-, sqrt(G3) I^z.
    geometry : str
        "square" (default), "rectangular:RATIO" (b/a) or "triangular" periodic lattice.
    center_khz : float
        Centre of the detuning Lorentzian (kHz): a carrier offset.
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
    scheme: str = "explicit"
    field_every: int | None = None
    sequence: str | PulseSequence = "hahn"
    gamma1_per_us: float = 0.0
    gamma2_per_us: float = 0.0
    gamma3_per_us: float = 0.0
    geometry: str = "square"
    center_khz: float = 0.0

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731 (frozen)
        if self.kernel not in KERNELS:
            _fail("kernel", self.kernel, f"allowed: {', '.join(KERNELS)}")
        for name, parse in (("geometry", parse_geometry), ("sequence", parse_sequence)):
            try:
                set_(name, parse(getattr(self, name)))
            except (GeometryError, SequenceError) as exc:
                raise ParameterError(str(exc)) from None
        if self.scheme not in SCHEMES:
            _fail("scheme", self.scheme, f"allowed: {', '.join(SCHEMES)}")
        if self.scheme == "explicit":
            set_("field_every", 1)
        elif self.field_every is None:
            set_("field_every", DEFAULT_FIELD_EVERY)
        else:
            set_("field_every", _count("field_every", self.field_every, 1))
        set_("lattice", _integer("lattice", self.lattice))
        if not 2 <= self.lattice <= MAX_LATTICE:
            _fail("lattice", self.lattice, f"must be an integer from 2 to {MAX_LATTICE}")
        for name in ("kernel_param", "alpha_xy", "alpha_z", "tau_us", "dt_us", "theta", "linewidth_khz",
                     "center_khz", *GAMMA_FIELDS):
            set_(name, _finite(name, getattr(self, name)))
        for name in GAMMA_FIELDS:
            if getattr(self, name) < 0:
                _fail(name, getattr(self, name), "must be >= 0 (a rate in 1/us)")
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
            if self.gamma3_per_us != 0:
                _fail("t2_us", self.t2_us, "give t2_us or gamma3_per_us (= 2 / t2_us), not both")
        try:
            self.step_plan()
        except SequenceError as exc:
            raise ParameterError(str(exc)) from None
        if self.kernel == "uniform":
            set_("kernel_param", 0.0)
        elif self.kernel_param <= 0:
            _fail("kernel_param", self.kernel_param, f"the {self.kernel} kernel needs kernel_param > 0")
        if not relative_kappa(self.kernel, self.kernel_param, self.lattice, self.geometry) >= MIN_RELATIVE_KAPPA:
            kappa = self.kappa
            _fail(
                "kernel_param",
                self.kernel_param,
                f"the {self.kernel} kernel on a {self.lattice}x{self.lattice} {self.geometry} lattice has kappa = {kappa:.3g}, "
                f"too small to normalise the mean field (need |kappa| >= {MIN_RELATIVE_KAPPA:g} * sum|K|)",
            )

    @property
    def n_tau(self) -> int:
        """Steps between pulses, round(tau_us / dt_us)."""
        return steps_per_tau(self.tau_us, self.dt_us)

    def step_plan(self) -> StepPlan:
        """The pulse sequence on this experiment's step grid."""
        return step_plan(self.sequence, self.theta, self.n_tau, self.dt_us)

    @property
    def n_samples(self) -> int:
        """Length of the recorded series (3 n_tau for the Hahn echo)."""
        return self.step_plan().n_steps

    @property
    def echo_samples(self) -> tuple[int, ...]:
        """0-based sample indices of the echo tops (Hahn: (2 n_tau - 1,))."""
        return self.step_plan().echo_samples

    @property
    def gamma3_total_per_us(self) -> float:
        """The dephasing rate G3 including the t2_us special case (2 / T2)."""
        return self.gamma3_per_us + (2.0 / self.t2_us if self.t2_us is not None else 0.0)

    def relaxation(self) -> BlochRelaxation:
        """The exact per-step map of the Lindblad channels (identity without relaxation)."""
        return bloch_relaxation(self.gamma1_per_us, self.gamma2_per_us, self.gamma3_total_per_us, self.dt_us)

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
        return kernel_stats(self.kernel, self.kernel_param, self.lattice, geometry=self.geometry)[0]

    @property
    def L(self) -> float:  # noqa: N802
        """Dimensionless kernel length scale (lattice spacings)."""
        return kernel_stats(self.kernel, self.kernel_param, self.lattice, geometry=self.geometry)[1]

    @property
    def is_power(self) -> bool:
        return is_long_range(self.kernel)

    def time_grid_us(self):
        """Sample times t_k = k * dt_us, k = 1 .. n_samples (us)."""
        return self.dt_us * np.arange(1, self.n_samples + 1)

    def replace(self, **changes) -> "EchoParams":
        """A copy with ``changes``; changing ``scheme`` alone resets field_every to its default."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if "scheme" in changes and "field_every" not in changes:
            values["field_every"] = None
        return EchoParams(**{**values, **changes})

    def to_dict(self) -> dict:
        """Field values with the sequence as text (a preset name or a pulse list's JSON)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "sequence": sequence_text(self.sequence)}

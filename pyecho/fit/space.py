"""What a fit estimates: one kernel family's parameters, inside the prior of a dataset.

A point of a family's space is a vector x of the *fitted coordinates*, in this order: the
kernel's parameter (ξ, p or γ), alpha_xy and alpha_z (rad/µs), and each nuisance the prior
draws per sample: log T2 (natural log of µs), the carrier offset center_khz (kHz) and the I+
Lindblad rate gamma1_per_us (1/µs). The bounds are the prior's box (`pyecho sim`'s ranges;
log T2 uniform is the log-uniform T2 prior); the prior's W window (W = 2 alpha_xy + alpha_z
in w_range) is not a bound of the fit: it cuts a corner of the (alpha_xy, alpha_z) box, and
the records pin both to ~1e-4 of its width.
What a point does not hold is the experiment (lattice, time step, scheme, linewidth, fixed
relaxation), taken from the prior's :class:`~pyecho.data.sampling.DatasetConfig`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from pyecho.data.sampling import KERNEL_PARAM_FIELDS, DatasetConfig
from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError, ParameterError
from pyecho.physics.kernels import kernel_stats
from pyecho.physics.params import EchoParams
from pyecho.physics.protocol import Measurement

#: the fitted coordinates' names; KERNEL_PARAM is xi, p or gamma by family
KERNEL_PARAM, ALPHA_XY, ALPHA_Z, LOG_T2, CENTER, GAMMA1 = ("kernel_param", "alpha_xy", "alpha_z", "log_t2_us",
                                                          "center_khz", "gamma1_per_us")
#: the kernel parameter's symbol and unit per family (lattice spacings, or none for p)
KERNEL_PARAM_SYMBOL = {"gaussian": ("xi", "lattice spacings"), "power": ("p", ""), "rkky": ("gamma", "lattice spacings")}
#: the families a fit can compare (the uniform kernel has no parameter and no prior range)
FAMILIES = tuple(KERNEL_PARAM_FIELDS)
#: points of the kernel parameter at which L is tabulated to invert L -> kernel_param
_L_TABLE_POINTS = 257
#: the prior a learned model was trained on, saved beside it (pyecho learn) for pyecho fit
PRIOR_FILE = "prior.json"


def save_prior(config: DatasetConfig, directory: str | Path) -> Path:
    """Write ``config`` (the prior and experiment of a dataset) as ``directory``/prior.json."""
    path = Path(directory) / PRIOR_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=1))
    return path


def load_prior(directory: str | Path) -> DatasetConfig:
    """The prior saved by :func:`save_prior`; InputFileError if there is none or it is unreadable."""
    path = Path(directory) / PRIOR_FILE
    if not path.is_file():
        raise InputFileError(f"{path.parent}: holds no {PRIOR_FILE} (the dataset's prior, saved by pyecho learn since "
                             "pyecho fit exists); rerun pyecho learn on the dataset")
    try:
        return DatasetConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(f"{path}: not a readable prior ({exc})") from None


@dataclass(frozen=True)
class Parameter:
    """One fitted coordinate: ``name``, its ``unit`` and the prior's bounds [lo, hi]."""

    name: str
    unit: str
    lo: float
    hi: float

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass(frozen=True)
class FamilySpace:
    """The parameter space of kernel family ``kernel`` under the prior ``config``.

    ``config`` supplies the bounds (its ranges) and the experiment (lattice, dt, scheme,
    linewidth, fixed relaxation); ``lattice`` overrides the config's lattice (a larger lattice
    for measured records: its detuning-draw scatter is smaller).
    """

    kernel: str
    config: DatasetConfig
    lattice: int | None = None

    def __post_init__(self) -> None:
        if self.kernel not in FAMILIES:
            raise ParameterError(f"kernel: got {self.kernel!r}; a fit compares {', '.join(FAMILIES)}")
        if self.lattice is not None:
            object.__setattr__(self, "config", self.config.replace(lattice=int(self.lattice)))
            object.__setattr__(self, "lattice", None)

    @cached_property
    def ranges(self) -> tuple[Parameter, ...]:
        """Every coordinate's prior range, fitted or not (a point range is a fixed value)."""
        c = self.config
        t2 = () if c.t2_us_range is None else (Parameter(LOG_T2, "ln us", *np.log(c.t2_us_range)),)
        return (Parameter(KERNEL_PARAM, KERNEL_PARAM_SYMBOL[self.kernel][1], *c.kernel_param_range(self.kernel)),
                Parameter(ALPHA_XY, "rad/us", *c.alpha_xy_range), Parameter(ALPHA_Z, "rad/us", *c.alpha_z_range), *t2,
                Parameter(CENTER, "kHz", *c.center_khz_range), Parameter(GAMMA1, "1/us", *c.gamma1_per_us_range))

    @cached_property
    def parameters(self) -> tuple[Parameter, ...]:
        """The fitted coordinates: those whose prior range is not a point."""
        return tuple(p for p in self.ranges if p.hi > p.lo)

    @cached_property
    def fixed(self) -> dict[str, float]:
        """The coordinates the prior fixes, and their values."""
        return {p.name: p.lo for p in self.ranges if p.hi == p.lo}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def symbol(self) -> str:
        """The kernel parameter's symbol: xi, p or gamma."""
        return KERNEL_PARAM_SYMBOL[self.kernel][0]

    @property
    def lower(self) -> np.ndarray:
        return np.array([p.lo for p in self.parameters])

    @property
    def upper(self) -> np.ndarray:
        return np.array([p.hi for p in self.parameters])

    @property
    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def log_prior_volume(self) -> float:
        """log of the prior box's volume in the fitted coordinates (the prior density is its inverse)."""
        return float(np.sum(np.log(self.widths)))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def clip(self, x) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float64), self.lower, self.upper)

    def require_inside(self, x) -> np.ndarray:
        """``x`` as float64 if it lies in the prior's box; else a ParameterError naming the first
        coordinate outside (in physical units: t2_us in µs) and the range allowed."""
        x = np.asarray(x, dtype=np.float64)
        slack = 1e-9 * self.widths  # a point written out and read back at a bound is still inside
        for p, v, ok in zip(self.parameters, x, (x >= self.lower - slack) & (x <= self.upper + slack)):
            if not ok:
                name, v, lo, hi = ("t2_us", *np.exp([v, p.lo, p.hi])) if p.name == LOG_T2 else (p.name, v, p.lo, p.hi)
                raise ParameterError(f"{name}: got {v:.6g}; the {self.kernel} prior allows {lo:.6g} to {hi:.6g}")
        return x

    def center(self) -> np.ndarray:
        """The middle of the prior box."""
        return 0.5 * (self.lower + self.upper)

    def values(self, x) -> dict[str, float]:
        """The physical values of point ``x``, fitted and fixed: kernel_param, alpha_xy, alpha_z,
        center_khz, gamma1_per_us and, where the prior has a T2, t2_us (µs, not its log)."""
        out = dict(self.fixed)
        out.update({p.name: float(v) for p, v in zip(self.parameters, np.asarray(x, dtype=np.float64))})
        if LOG_T2 in out:
            out["t2_us"] = float(math.exp(out.pop(LOG_T2)))
        return out

    def point(self, **values) -> np.ndarray:
        """The fitted coordinates of physical values (t2_us in µs); a fitted coordinate left out
        takes the middle of its prior range. Unknown names are a ParameterError."""
        x = self.center()
        for name, v in values.items():
            coordinate, value = (LOG_T2, math.log(v)) if name == "t2_us" else (name, v)
            if coordinate not in self.names:
                raise ParameterError(f"{name}: not a fitted parameter of this prior (fitted: "
                                     f"{', '.join(self.names)})")
            x[self.index(coordinate)] = value
        return x

    def echo_params(self, x, measurement: Measurement) -> EchoParams:
        """The EchoParams of point ``x`` measured by ``measurement`` (carrier offset included)."""
        v = self.values(x)
        nuisance = {k: v[k] for k in ("t2_us", GAMMA1) if k in v and not (k == GAMMA1 and v[k] == 0.0)}
        return self.config.echo_params(self.kernel, v[KERNEL_PARAM], v[ALPHA_XY], v[ALPHA_Z], measurement=measurement,
                                       center_khz=v[CENTER], **nuisance)

    # ---- derived quantities --------------------------------------------------------------------
    def length(self, kernel_param: float) -> float:
        """L (lattice spacings) of this family's kernel at ``kernel_param`` on the config's lattice."""
        return kernel_stats(self.kernel, float(kernel_param), self.config.lattice, geometry=self.config.geometry)[1]

    def length_slope(self, kernel_param: float) -> float:
        """dL/d(kernel_param) by a central difference (for the delta method); 0 where the prior fixes it."""
        lo, hi = self.ranges[0].lo, self.ranges[0].hi
        if hi == lo:
            return 0.0
        h = 1e-4 * (hi - lo)
        a, b = max(lo, kernel_param - h), min(hi, kernel_param + h)
        return (self.length(b) - self.length(a)) / (b - a)

    @cached_property
    def _length_table(self) -> tuple[np.ndarray, np.ndarray]:
        grid = np.linspace(self.ranges[0].lo, self.ranges[0].hi, _L_TABLE_POINTS)
        return grid, np.array([self.length(k) for k in grid])

    def matching(self, values: dict, length: float) -> np.ndarray:
        """This family's point (clipped to its prior) with another family's shared physical
        ``values`` (alphas, t2_us, carrier offset, Γ₁; from :meth:`values`) and the kernel
        parameter whose L is ``length``: where this family's records come nearest another's."""
        values = {k: v for k, v in values.items() if k in self.names or (k == "t2_us" and LOG_T2 in self.names)}
        if KERNEL_PARAM in self.names:
            values[KERNEL_PARAM] = self.kernel_param_of_length(length)
        return self.clip(self.point(**values))

    def kernel_param_of_length(self, length: float) -> float:
        """The kernel parameter whose L is closest to ``length`` within the prior (L is monotone
        in each family's parameter over its prior; outside L's range, the nearer end)."""
        grid, lengths = self._length_table
        order = np.argsort(lengths)
        return float(np.interp(length, lengths[order], grid[order]))

"""Parameter sweeps: a grid over any EchoParams fields, written like a `pyecho sim` dataset.

A :class:`SweepConfig` is a base experiment and a list of axes ``(field, values)``; its samples
are the grid points in C order (the last axis varies fastest), sample i being
``np.unravel_index(i, shape)``. Every point gets the same detunings by default
(``same_detunings``), so the only difference between two echoes of a sweep is the swept value;
otherwise point i draws its own from ``SeedSequence([seed, i])``. The rows carry every
EchoParams field, so the swept values are ordinary columns of the dataset.

Fields that set the time grid (tau_us, dt_us) cannot be swept, and a swept sequence must keep
the series length and the echo times (cpmg:N against cp:N, say): one dataset has one time axis.
"""
from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pyecho.data.sampling import ConfigError, check_known_options
from pyecho.physics.params import EchoParams, ParameterError
from pyecho.physics.protocol import Measurement, Protocol

#: EchoParams fields that fix the time axis of a series: not sweepable
TIME_GRID_FIELDS = ("tau_us", "dt_us")
#: fields whose values are text (all others are numbers)
TEXT_FIELDS = ("kernel", "scheme", "geometry", "sequence")
SWEEPABLE = tuple(f.name for f in dataclasses.fields(EchoParams) if f.name not in TIME_GRID_FIELDS)
#: largest number of grid points of one sweep
MAX_POINTS = 1_000_000


def grid_value(field: str, text):
    """A grid value of ``field`` from text or a number (t2_us also takes none)."""
    if field in TEXT_FIELDS:
        return str(text).strip()
    if field == "t2_us" and (text is None or str(text).strip().lower() == "none"):
        return None
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise ConfigError("axes", f"{field}: got {text!r}; must be a number") from None
    return int(number) if field in ("lattice", "field_every") and number.is_integer() else number


def parse_axis(text: str) -> tuple[str, tuple]:
    """``"FIELD=v1,v2,..."`` or ``"FIELD=start:stop:count"`` (count values, endpoints included)."""
    field, sep, values = text.partition("=")
    field = field.strip()
    if field in TIME_GRID_FIELDS:
        raise ConfigError("axes", f"{field} cannot be swept: it sets the time grid, and one dataset has one")
    if not sep or field not in SWEEPABLE:
        raise ConfigError("axes", f"got {text!r}; use FIELD=v1,v2,... or FIELD=start:stop:count with FIELD one of "
                                  f"{', '.join(SWEEPABLE)}")
    parts = values.split(":")
    if len(parts) == 3 and field not in TEXT_FIELDS:
        start, stop = (grid_value(field, p) for p in parts[:2])
        try:
            count = operator.index(int(parts[2]))
        except ValueError:
            count = 0
        if count < 2:
            raise ConfigError("axes", f"{text!r}: start:stop:count needs an integer count >= 2")
        return field, tuple(float(v) for v in np.linspace(start, stop, count))
    return field, tuple(grid_value(field, v) for v in values.split(",") if v.strip())


@dataclass(frozen=True)
class SweepConfig:
    """A grid of experiments; validated on construction (every grid point is a valid EchoParams).

    Attributes
    ----------
    base : EchoParams
        The experiment every grid point starts from.
    axes : tuple of (field, values)
        The swept EchoParams fields and their values, in grid order.
    seed : int
        Seeds the detunings (>= 0).
    same_detunings : bool
        One detuning field for every point (default) or one per point.
    part_size : int
        Grid points per Parquet part file.
    """

    base: EchoParams
    axes: tuple[tuple[str, tuple], ...]
    seed: int = 0
    same_detunings: bool = True
    part_size: int = 64

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731 (frozen)
        if not isinstance(self.base, EchoParams):
            raise ConfigError("base", f"got {type(self.base).__name__}; must be EchoParams")
        axes = tuple(parse_axis(a) if isinstance(a, str) else (a[0], tuple(grid_value(a[0], v) for v in a[1]))
                     for a in self.axes)
        names = [name for name, _ in axes]
        if not axes:
            raise ConfigError("axes", "got none; give at least one FIELD=values")
        for name, values in axes:
            if name not in SWEEPABLE:
                raise ConfigError("axes", f"{name!r} cannot be swept; allowed: {', '.join(SWEEPABLE)}")
            if not values or len(set(values)) != len(values):
                raise ConfigError("axes", f"{name}: got {values!r}; need at least one value, each once")
        if len(set(names)) != len(names):
            raise ConfigError("axes", f"got {names}; each field may be swept once")
        set_("axes", axes)
        for name, value, minimum in (("seed", self.seed, 0), ("part_size", self.part_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(name, f"got {value!r}; must be an integer >= {minimum}")
        if self.n_total > MAX_POINTS:
            raise ConfigError("axes", f"the grid has {self.n_total} points; at most {MAX_POINTS}")
        grids = set()
        for i in range(self.n_total):  # every point must be a valid experiment on one time axis
            try:
                point = self.point(i)
            except ParameterError as exc:
                raise ConfigError("axes", f"grid point {self.coordinates(i)}: {exc}") from None
            grids.add((point.n_samples, point.echo_samples))
        if len(grids) != 1:
            raise ConfigError("axes", "the grid's series lengths or echo times differ; sweep one time axis")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for _, values in self.axes)

    @property
    def n_total(self) -> int:
        return math.prod(self.shape)

    def coordinates(self, index: int) -> dict:
        """The swept values of grid point ``index``."""
        at = np.unravel_index(index, self.shape)
        return {name: values[j] for (name, values), j in zip(self.axes, at)}

    def point(self, index: int) -> EchoParams:
        return self.base.replace(**self.coordinates(index))

    # ---- the interface pyecho.data.factory and store use (shared with DatasetConfig) -------

    @property
    def protocol(self) -> Protocol:
        """One measurement, the base's (rows of a sweep over theta, tau or sequence carry their own)."""
        return Protocol((Measurement.of(self.base),))

    @property
    def lattice(self) -> int:
        """The largest lattice of the grid (it sizes engine batches)."""
        return max(self.point(i).lattice for i in range(self.n_total)) if "lattice" in dict(self.axes) else self.base.lattice

    @property
    def record_lengths(self) -> tuple[int, ...]:
        return (self.base.n_samples,)

    @property
    def dt_us(self) -> float:
        return self.base.dt_us

    def measured(self, params: EchoParams, k: int) -> EchoParams:
        """A grid point is its own (single) measurement: its sequence, theta and tau may be swept."""
        if k != 0:
            raise IndexError(f"measurement {k}: a sweep has one measurement per grid point")
        return params

    def draw(self, indices: Iterable[int]) -> tuple[list[EchoParams], np.ndarray]:
        """Parameters and detuning seeds (uint64) of grid points ``indices``."""
        indices = list(indices)
        params = [self.point(int(i)) for i in indices]
        if self.same_detunings:
            shared = np.random.SeedSequence([self.seed]).generate_state(1, np.uint64)[0]
            return params, np.full(len(indices), shared, dtype=np.uint64)
        seeds = [np.random.SeedSequence([self.seed, int(i)]).generate_state(1, np.uint64)[0] for i in indices]
        return params, np.array(seeds, dtype=np.uint64)

    def to_dict(self) -> dict:
        """JSON-ready dict; :meth:`from_dict` inverts it."""
        return {"base": self.base.to_dict(), "axes": [[name, list(values)] for name, values in self.axes],
                "seed": self.seed, "same_detunings": self.same_detunings, "part_size": self.part_size}

    @classmethod
    def from_dict(cls, values: dict) -> "SweepConfig":
        """Build from :meth:`to_dict`'s keys; an unknown key is a ConfigError naming it."""
        check_known_options(cls, values, "sweep")
        base = values.get("base", {})
        try:
            base = base if isinstance(base, EchoParams) else EchoParams(**base)
        except (TypeError, ParameterError) as exc:
            raise ConfigError("base", str(exc)) from None
        axes = tuple((name, tuple(v)) for name, v in values.get("axes", ()))
        return cls(**{**values, "base": base, "axes": axes})

    def differing_keys(self, other) -> list[str]:
        """Option names whose values differ ("kind" for a dataset's config)."""
        if type(other) is not type(self):
            return ["kind"]
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if mine[k] != theirs[k]]


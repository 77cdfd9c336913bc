"""Measurement protocols: the ordered measurements a spectrometer makes on one sample.

A :class:`Measurement` is a pulse sequence at an excitation angle and a pulse spacing τ; a
:class:`Protocol` is an ordered tuple of them, every one made on the same sample (the same
couplings, kernel, relaxation and detunings). The text form, used on the command line and in
TOML configs, is a comma-separated list of ``SEQUENCE@ANGLE_DEG[/TAU_US]``::

    hahn@90,cpmg:8@90,hahn@75      # tau from the default (100 us)
    cpmg:16@90/50                  # a CPMG train of 16 refocusing pulses at tau = 50 us

SEQUENCE is ``hahn``, ``cpmg:N`` or ``cp:N`` (pyecho.physics.sequence); ANGLE_DEG is the
excitation angle in degrees (refocusing pulses are twice it); TAU_US the pulse spacing in µs.
A free pulse list can also be a measurement (its own angles and times; built in Python or from
``--sequence FILE.toml``), but it has no text form.

**Angles.** A measurement's angle is read to :data:`ANGLE_RESOLUTION_DEG` (0.1°), however it
is given (degrees in the text form, radians in Python, ``--thetas`` and TOML files): 1.5708,
1.57 and π/2 rad all make ``hahn@90``. Every comparison of measurements (equality, prefixes,
a model's grid against records, a protocol's lookups) is then exact. An
:class:`~pyecho.physics.params.EchoParams` keeps its angle as given (the angle a simulation
runs at); :meth:`Measurement.apply` sets the measurement's rounded angle, and
:meth:`Measurement.of` rounds the parameters' angle to name their measurement.

**Prefixes.** A shorter train is the beginning of a longer one made at the same angle and τ:
the first (2M + 1) τ of ``cpmg:N`` *is* ``cpmg:M`` (M <= N; ``hahn`` is ``cpmg:1``), and the
same holds for ``cp:M`` within ``cp:N``. :meth:`Protocol.simulated` uses it: a protocol that
holds both simulates only the longer one and slices the shorter one out of it, exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyecho.errors import ParameterError
from pyecho.physics.params import EchoParams, steps_per_tau
from pyecho.physics.sequence import PulseSequence, SequenceError, parse_sequence, sequence_text, step_plan

#: the pulse spacing of a measurement written without /TAU_US (the paper's, us)
DEFAULT_TAU_US = 100.0
#: a receiver's dead time after a pulse (blanking and ring-down) lasts a few µs, up to ~20 µs:
#: the dead time learned models do without unless told otherwise (µs)
DEFAULT_DEAD_TIME_US = 20.0
#: a measurement's angle is read to this many degrees: a spectrometer's flip angles are
#: calibrated to ~1 degree, so 0.1 degree tells apart every measurement anyone makes, while an
#: angle typed in radians to the precision people type names the one they mean (1.57 rad =
#: 89.954 degrees is hahn@90; 1.5708 rad = 90.0002 degrees too)
ANGLE_RESOLUTION_DEG = 0.1
#: text separators: measurements, sequence@angle, angle/tau
SEPARATOR, AT, SLASH = ",", "@", "/"
#: the preset families whose shorter trains are prefixes of longer ones; hahn is cpmg:1
_PREFIX_FAMILY = {"hahn": "cpmg", "cpmg": "cpmg", "cp": "cp"}


class ProtocolError(ParameterError):
    """A protocol or measurement cannot be built; the message names the part and what is allowed."""


def canonical_angle(theta: float) -> float:
    """``theta`` (rad) rounded to :data:`ANGLE_RESOLUTION_DEG`, in rad. Whole tenths of a degree
    come back as ``math.radians`` of them, so 90 degrees is exactly ``math.pi / 2``."""
    steps_per_degree = round(1 / ANGLE_RESOLUTION_DEG)  # an integer: n / 10 is exact where n * 0.1 is not
    return math.radians(round(math.degrees(theta) * steps_per_degree) / steps_per_degree)


def _train(sequence: str | PulseSequence) -> tuple[str, int] | None:
    """(family, refocusing pulses) of a preset; None for a free pulse list."""
    if isinstance(sequence, PulseSequence):
        return None
    name, _, count = sequence.partition(":")
    return _PREFIX_FAMILY[name], int(count) if count else 1


@dataclass(frozen=True)
class Measurement:
    """One acquisition: ``sequence`` at excitation angle ``theta`` (rad) and pulse spacing
    ``tau_us`` (µs). Validated on construction (the sequence as in EchoParams); ``theta`` is
    stored rounded to :data:`ANGLE_RESOLUTION_DEG` (:func:`canonical_angle`), so measurements
    given at 1.5708, 1.57 or π/2 rad are the same one, ``hahn@90``."""

    sequence: str | PulseSequence = "hahn"
    theta: float = math.pi / 2
    tau_us: float = DEFAULT_TAU_US

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "sequence", parse_sequence(self.sequence))
        except SequenceError as exc:
            raise ProtocolError(str(exc)) from None
        for name in ("theta", "tau_us"):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ProtocolError(f"{name}: got {getattr(self, name)!r}; must be a finite number")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "theta", canonical_angle(self.theta))
        if self.tau_us <= 0:
            raise ProtocolError(f"tau_us: got {self.tau_us:g}; must be > 0 (us)")

    @property
    def theta_deg(self) -> float:
        return math.degrees(self.theta)

    @property
    def text(self) -> str:
        """``SEQUENCE@ANGLE_DEG/TAU_US`` (a free pulse list: ``list@ANGLE_DEG/TAU_US``)."""
        name = "list" if isinstance(self.sequence, PulseSequence) else self.sequence
        return f"{name}{AT}{_short(self.theta_deg)}{SLASH}{_short(self.tau_us)}"

    @property
    def n_refocusing(self) -> int:
        """Refocusing pulses of a preset train (hahn: 1); 0 for a free pulse list."""
        train = _train(self.sequence)
        return 0 if train is None else train[1]

    def n_samples(self, dt_us: float) -> int:
        """Recorded samples at step ``dt_us``: (2N + 1) round(tau / dt) for a preset train."""
        return step_plan(self.sequence, self.theta, steps_per_tau(self.tau_us, dt_us), dt_us).n_steps

    def duration_us(self, dt_us: float) -> float:
        """Spectrometer time of the record (µs): its samples times the step."""
        return self.n_samples(dt_us) * dt_us

    def apply(self, params: EchoParams) -> EchoParams:
        """``params`` (a sample: couplings, kernel, relaxation, lattice) measured this way: at
        this measurement's (rounded) angle."""
        return params.replace(sequence=self.sequence, theta=self.theta, tau_us=self.tau_us)

    @classmethod
    def of(cls, params: EchoParams) -> "Measurement":
        """The measurement an EchoParams describes: its angle rounded to :data:`ANGLE_RESOLUTION_DEG`
        (the parameters themselves keep theirs)."""
        return cls(params.sequence, params.theta, params.tau_us)

    def is_prefix_of(self, other: "Measurement") -> bool:
        """True when this record is exactly the beginning of ``other``'s (same angle, τ, family,
        no more refocusing pulses); a measurement is a prefix of itself."""
        mine, theirs = _train(self.sequence), _train(other.sequence)
        if mine is None or theirs is None:
            return self == other
        return (self.theta == other.theta and self.tau_us == other.tau_us and mine[0] == theirs[0]
                and mine[1] <= theirs[1])

    def to_dict(self) -> dict:
        return {"sequence": sequence_text(self.sequence), "theta": self.theta, "tau_us": self.tau_us}

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        try:
            return cls(d["sequence"], d["theta"], d["tau_us"])
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"measurement: got {d!r}; needs sequence, theta (rad) and tau_us ({exc})") from None

    @classmethod
    def parse(cls, text: str, default_tau_us: float = DEFAULT_TAU_US) -> "Measurement":
        """One ``SEQUENCE@ANGLE_DEG[/TAU_US]``."""
        spec = str(text).strip()
        sequence, at, rest = spec.partition(AT)
        angle, slash, tau = rest.partition(SLASH)
        if not at or not sequence or not angle:
            raise ProtocolError(f"protocol: measurement {spec!r} must be SEQUENCE@ANGLE_DEG[/TAU_US], "
                                "e.g. hahn@90, cpmg:8@90/50")
        try:
            theta = math.radians(float(angle))
            tau_us = float(tau) if slash else float(default_tau_us)
        except ValueError:
            raise ProtocolError(f"protocol: measurement {spec!r}: ANGLE_DEG and TAU_US must be numbers "
                                "(degrees, us)") from None
        try:
            measurement = cls(sequence.strip(), theta, tau_us)
        except ProtocolError as exc:
            raise ProtocolError(f"protocol: measurement {spec!r}: {exc}") from None
        if not 0 < measurement.theta_deg < 180:
            raise ProtocolError(f"protocol: measurement {spec!r}: ANGLE_DEG must be in (0, 180) degrees, read to "
                                f"{ANGLE_RESOLUTION_DEG:g} degree")
        return measurement


def _short(x: float) -> str:
    """A number as short text that reads back to (almost) the same value."""
    return f"{x:.6g}"


@dataclass(frozen=True)
class SimulatedRecord:
    """How to get measurement ``index`` of a protocol: the first ``n_samples`` samples of the
    simulation of measurement ``source`` (itself, or a longer train it is a prefix of)."""

    index: int
    source: int
    n_samples: int


@dataclass(frozen=True)
class Protocol:
    """An ordered tuple of distinct :class:`Measurement`, all made on the same sample."""

    measurements: tuple[Measurement, ...]

    def __post_init__(self) -> None:
        ms = tuple(self.measurements)
        if not ms or not all(isinstance(m, Measurement) for m in ms):
            raise ProtocolError(f"protocol: got {self.measurements!r}; need one or more measurements")
        if len(set(ms)) != len(ms):
            repeated = sorted({m.text for m in ms if ms.count(m) > 1})
            raise ProtocolError(f"protocol: measurement(s) {', '.join(repeated)} given twice; each once")
        object.__setattr__(self, "measurements", ms)

    def __len__(self) -> int:
        return len(self.measurements)

    def __iter__(self):
        return iter(self.measurements)

    def __getitem__(self, index: int) -> Measurement:
        return self.measurements[index]

    @property
    def text(self) -> str:
        """The comma-separated text form (``Protocol.parse`` reads it back for presets)."""
        return SEPARATOR.join(m.text for m in self.measurements)

    @property
    def thetas(self) -> tuple[float, ...]:
        return tuple(m.theta for m in self.measurements)

    def n_samples(self, dt_us: float) -> tuple[int, ...]:
        """Record length of every measurement at step ``dt_us``."""
        return tuple(m.n_samples(dt_us) for m in self.measurements)

    def duration_us(self, dt_us: float) -> float:
        """Spectrometer time of one sample's records (µs), summed over the measurements."""
        return sum(m.duration_us(dt_us) for m in self.measurements)

    def simulated(self, dt_us: float) -> tuple[SimulatedRecord, ...]:
        """For every measurement, the simulation it is read from: the longest measurement of the
        protocol that it is a prefix of (the first such, in protocol order, on a tie)."""
        lengths = self.n_samples(dt_us)
        out = []
        for i, m in enumerate(self.measurements):
            covering = [j for j, other in enumerate(self.measurements) if m.is_prefix_of(other)]
            source = max(covering, key=lambda j: (lengths[j], -j))
            out.append(SimulatedRecord(i, source, lengths[i]))
        return tuple(out)

    def sources(self, dt_us: float) -> tuple[int, ...]:
        """Indices of the measurements that are simulated (the others are sliced from them)."""
        return tuple(sorted({r.source for r in self.simulated(dt_us)}))

    def index(self, measurement: Measurement) -> int:
        try:
            return self.measurements.index(measurement)
        except ValueError:
            raise ProtocolError(f"protocol: {measurement.text} is not one of {self.text}") from None

    def covering(self, measurement: Measurement) -> int | None:
        """Index of the first measurement whose record begins with ``measurement``'s, or None."""
        return next((i for i, m in enumerate(self.measurements) if measurement.is_prefix_of(m)), None)

    def hahn_90(self) -> tuple[int, Measurement] | None:
        """(index, echo) of the first measurement whose record begins with a 90° Hahn echo at that
        measurement's own τ (hahn@90/τ itself, or a CPMG/CP train at 90° and τ), or None."""
        for i, m in enumerate(self.measurements):
            hahn = Measurement("hahn", HAHN_90.theta, m.tau_us)
            if hahn.is_prefix_of(m):
                return i, hahn
        return None

    def to_list(self) -> list[dict]:
        return [m.to_dict() for m in self.measurements]

    @classmethod
    def from_list(cls, items) -> "Protocol":
        return cls(tuple(m if isinstance(m, Measurement) else Measurement.from_dict(m) for m in items))

    @classmethod
    def parse(cls, text: str, default_tau_us: float = DEFAULT_TAU_US) -> "Protocol":
        """A protocol from ``SEQUENCE@ANGLE_DEG[/TAU_US],...`` (module docstring)."""
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError(f"protocol: got {text!r}; give SEQUENCE@ANGLE_DEG[/TAU_US],... e.g. hahn@90,cpmg:8@90")
        return cls(tuple(Measurement.parse(part, default_tau_us) for part in text.split(SEPARATOR)))

    @classmethod
    def of(cls, value, default_tau_us: float = DEFAULT_TAU_US) -> "Protocol":
        """A Protocol from a Protocol, its text, a Measurement, or a list of measurements, their
        texts or dicts (what configs and TOML files hold)."""
        if isinstance(value, Protocol):
            return value
        if isinstance(value, Measurement):
            return cls((value,))
        if isinstance(value, str):
            return cls.parse(value, default_tau_us)
        if isinstance(value, (list, tuple)):
            return cls(tuple(Measurement.parse(v, default_tau_us) if isinstance(v, str)
                             else v if isinstance(v, Measurement) else Measurement.from_dict(v) for v in value))
        raise ProtocolError(f"protocol: got {type(value).__name__}; give SEQUENCE@ANGLE_DEG[/TAU_US],... text")


#: the paper's single measurement: the Hahn echo at 90 degrees, tau = 100 us
HAHN_90 = Measurement("hahn", math.pi / 2, DEFAULT_TAU_US)


@dataclass(frozen=True)
class RecordGrid:
    """The time grid of a protocol's records: measurement k records T_k samples at
    t_j = (j + 1) dt_us (µs after its excitation pulse), j = 0 .. T_k - 1.

    Pulses act between samples: a pulse acting after step s (pyecho.physics.sequence) falls
    between sample s - 1 and sample s, at t = s dt_us.
    """

    protocol: Protocol
    dt_us: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", Protocol.of(self.protocol))
        dt = float(self.dt_us)
        if not (math.isfinite(dt) and dt > 0):
            raise ProtocolError(f"dt_us: got {self.dt_us!r}; must be > 0 (us)")
        object.__setattr__(self, "dt_us", dt)

    @property
    def lengths(self) -> tuple[int, ...]:
        return self.protocol.n_samples(self.dt_us)

    def times_us(self, k: int):
        """Sample times of measurement ``k`` (µs), shape (T_k,)."""
        return self.dt_us * np.arange(1, self.lengths[k] + 1)

    def _plan(self, k: int):
        m = self.protocol[k]
        return step_plan(m.sequence, m.theta, steps_per_tau(m.tau_us, self.dt_us), self.dt_us)

    def pulse_samples(self, k: int) -> tuple[int, ...]:
        """For every pulse of measurement ``k``, the index of the first sample after it."""
        return self._plan(k).pulse_steps

    def echo_samples(self, k: int) -> tuple[int, ...]:
        """0-based sample indices of the echo tops of measurement ``k``."""
        return self._plan(k).echo_samples

    def dead_mask(self, k: int, dead_time_us: float):
        """bool (T_k,): True for the samples of measurement ``k`` within ``dead_time_us`` after
        any of its pulses (the receiver is blanked after every pulse, and rings down)."""
        T = self.lengths[k]
        mask = np.zeros(T, dtype=bool)
        n_dead = int(round(float(dead_time_us) / self.dt_us))
        for s in self.pulse_samples(k):
            mask[s:min(T, s + n_dead)] = True
        return mask

    def mismatches(self, other: "RecordGrid") -> tuple[str, ...]:
        """Short reasons why records on ``other`` are not on this (a model's) grid; () if they are."""
        out = []
        if not math.isclose(other.dt_us, self.dt_us, rel_tol=1e-6):
            out.append(f"dt_us {other.dt_us:g} != model {self.dt_us:g}")
        if len(other.protocol) != len(self.protocol):
            out.append(f"{len(other.protocol)} measurement(s) != model {len(self.protocol)} ({self.protocol.text})")
            return tuple(out)
        for k, (a, b) in enumerate(zip(other.protocol, self.protocol)):
            same = (sequence_text(a.sequence) == sequence_text(b.sequence) and a.theta == b.theta  # both rounded
                    and math.isclose(a.tau_us, b.tau_us, rel_tol=1e-6))
            if not same:
                out.append(f"measurement {k}: {a.text} != model {b.text}")
        return tuple(out)

    def to_dict(self) -> dict:
        return {"protocol": self.protocol.to_list(), "dt_us": self.dt_us}

    @classmethod
    def from_dict(cls, d: dict) -> "RecordGrid":
        try:
            return cls(Protocol.from_list(d["protocol"]), d["dt_us"])
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"record grid: got {d!r}; needs protocol and dt_us ({exc})") from None

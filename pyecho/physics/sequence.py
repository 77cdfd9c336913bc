"""Pulse sequences: ideal pulses (time, angle, phase) and the acquisition grid.

A pulse of angle ``angle`` (rad) and phase ``phase`` (rad) is the ideal rotation
U = exp(-i angle (cos(phase) I^x + sin(phase) I^y)): phase 0 is a pulse about x, pi/2 about y.
Pulses act between time steps; the series is recorded after every step k = 1 .. n_steps.

Presets (``EchoParams.sequence``; theta and tau come from the EchoParams):

=============  ==========================================================================
``hahn``       theta about x at 0, 2 theta about y at tau; record to 3 tau; echo at 2 tau
``cpmg:N``     theta about x at 0, N refocusing 2 theta pulses about y at tau, 3 tau, 5 tau, ...;
               record to (2N + 1) tau; echo tops at 2 tau, 4 tau, ... (``cpmg:1`` is ``hahn``)
``cp:N``       the same with refocusing pulses about x (Carr-Purcell): a flip-angle error
               accumulates, while CPMG's y pulses cancel it to first order
=============  ==========================================================================

A free list is a :class:`PulseSequence` of explicit pulses (absolute angles) and a total time.
Preset pulses sit on the step grid by construction (tau is n_tau steps); a free list's times
must be multiples of dt_us.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pyecho.errors import ParameterError

#: preset names; "hahn" is the experiment of the paper
SEQUENCE_PRESETS = ("hahn", "cpmg", "cp")
#: the refocusing-pulse phase of each train preset (rad): y for CPMG, x for CP
_REFOCUS_PHASE = {"hahn": math.pi / 2, "cpmg": math.pi / 2, "cp": 0.0}
#: largest number of refocusing pulses in a train preset (each adds 2 tau of recorded series)
MAX_TRAIN_PULSES = 1000
#: a pulse time is on the step grid when |t / dt - round(t / dt)| is below this
_GRID_TOLERANCE = 1e-6


class SequenceError(ParameterError):
    """A pulse sequence cannot be built; the message says which part and what is allowed."""


@dataclass(frozen=True)
class Pulse:
    """One ideal pulse: at ``time_us`` (us) a rotation by ``angle`` (rad) about the in-plane
    axis (cos phase, sin phase, 0), ``phase`` in rad."""

    time_us: float
    angle: float
    phase: float = 0.0


@dataclass(frozen=True)
class PulseSequence:
    """A free pulse list: ``pulses`` in time order and the recorded duration ``total_us`` (us).

    ``echo_times_us`` (optional) marks the times whose samples are the echo tops.
    """

    pulses: tuple[Pulse, ...]
    total_us: float
    echo_times_us: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        pulses = tuple(p if isinstance(p, Pulse) else Pulse(*p) for p in self.pulses)
        object.__setattr__(self, "pulses", pulses)
        object.__setattr__(self, "echo_times_us", tuple(float(t) for t in self.echo_times_us))
        if not pulses:
            raise SequenceError("sequence: a pulse list needs at least one pulse")
        for i, p in enumerate(pulses):
            for name in ("time_us", "angle", "phase"):
                value = getattr(p, name)
                if not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise SequenceError(f"sequence: pulse {i} {name} got {value!r}; must be a finite number")
        times = [p.time_us for p in pulses]
        if times[0] < 0 or any(b < a for a, b in zip(times, times[1:])):
            raise SequenceError(f"sequence: pulse times {times} must be >= 0 and in time order")
        if not (math.isfinite(self.total_us) and self.total_us > times[-1]):
            raise SequenceError(
                f"sequence: total_us got {self.total_us!r}; must exceed the last pulse time ({times[-1]:g} us)"
            )
        for t in self.echo_times_us:
            if not 0 < t <= self.total_us:
                raise SequenceError(f"sequence: echo time {t:g} us is outside (0, total_us = {self.total_us:g}]")

    def to_text(self) -> str:
        """Canonical JSON text (what datasets store); :func:`parse_sequence` reads it back."""
        return json.dumps(
            {"pulses": [[p.time_us, p.angle, p.phase] for p in self.pulses], "total_us": self.total_us,
             "echo_times_us": list(self.echo_times_us)},
            separators=(",", ":"),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> "PulseSequence":
        """Read ``total_us``, optional ``echo_times_us`` and ``[[pulse]]`` tables (time_us, angle,
        phase) from a TOML file."""
        import tomllib

        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SequenceError(f"sequence: cannot read {path}: {exc}") from None
        return _from_mapping(doc, str(path))


def _from_mapping(doc: dict, where: str) -> PulseSequence:
    pulses = doc.get("pulse", doc.get("pulses"))
    if not isinstance(pulses, list) or "total_us" not in doc:
        raise SequenceError(f"sequence: {where} needs total_us and a list of pulses (time_us, angle, phase)")
    try:
        built = [
            Pulse(float(p["time_us"]), float(p["angle"]), float(p.get("phase", 0.0))) if isinstance(p, dict)
            else Pulse(*(float(v) for v in p))
            for p in pulses
        ]
        return PulseSequence(tuple(built), float(doc["total_us"]), tuple(doc.get("echo_times_us", ())))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SequenceError):
            raise
        raise SequenceError(f"sequence: {where} has a malformed pulse ({exc}); each needs time_us, angle, phase") from None


def parse_sequence(spec: "str | PulseSequence") -> "str | PulseSequence":
    """Validate a sequence spec; returns the canonical preset string or a PulseSequence.

    Accepts "hahn", "cpmg:N", "cp:N" (N >= 1), JSON text from :meth:`PulseSequence.to_text`,
    or a PulseSequence.
    """
    if isinstance(spec, PulseSequence):
        return spec
    if not isinstance(spec, str):
        raise SequenceError(f"sequence: got {spec!r}; allowed: hahn, cpmg:N, cp:N or a pulse list")
    text = spec.strip()
    if text.startswith("{"):
        try:
            return _from_mapping(json.loads(text), "the JSON pulse list")
        except json.JSONDecodeError as exc:
            raise SequenceError(f"sequence: invalid JSON pulse list ({exc})") from None
    name, _, count = text.partition(":")
    name = name.lower()
    if name == "hahn" and not count:
        return "hahn"
    if name in ("cpmg", "cp"):
        try:
            n = int(count)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_TRAIN_PULSES:
            raise SequenceError(f"sequence: got {spec!r}; {name}:N needs an integer 1 <= N <= {MAX_TRAIN_PULSES}")
        return f"{name}:{n}"
    raise SequenceError(f"sequence: got {spec!r}; allowed: hahn, cpmg:N, cp:N or a pulse list (TOML/JSON)")


def sequence_text(sequence: "str | PulseSequence") -> str:
    """The sequence as stored in datasets: the preset string, or the list's JSON text."""
    return sequence.to_text() if isinstance(sequence, PulseSequence) else sequence


@dataclass(frozen=True)
class StepPlan:
    """A sequence on the step grid of one simulation.

    ``pulse_steps[i]``: pulse i acts after ``pulse_steps[i]`` steps (0: before the first step);
    ``pulse_angle``, ``pulse_phase`` (rad) in the same order; ``n_steps``: recorded samples;
    ``echo_samples``: 0-based sample indices of the echo tops.
    """

    pulse_steps: tuple[int, ...]
    pulse_angle: tuple[float, ...]
    pulse_phase: tuple[float, ...]
    n_steps: int
    echo_samples: tuple[int, ...]


def step_plan(sequence: "str | PulseSequence", theta: float, n_tau: int, dt_us: float) -> StepPlan:
    """Place a validated sequence on the grid of ``n_tau`` steps per tau and step ``dt_us``."""
    if isinstance(sequence, PulseSequence):
        steps = [_on_grid(p.time_us, dt_us, f"pulse at {p.time_us:g} us") for p in sequence.pulses]
        n_steps = _on_grid(sequence.total_us, dt_us, "total_us")
        if steps[-1] >= n_steps:
            raise SequenceError("sequence: the last pulse must come before the last recorded step")
        echoes = tuple(_on_grid(t, dt_us, f"echo time {t:g} us") - 1 for t in sequence.echo_times_us)
        return StepPlan(tuple(steps), tuple(p.angle for p in sequence.pulses),
                        tuple(p.phase for p in sequence.pulses), n_steps, echoes)
    name, _, count = sequence.partition(":")
    n_refocus = int(count) if count else 1
    refocus = [(2 * j + 1) * n_tau for j in range(n_refocus)]
    return StepPlan(
        pulse_steps=(0, *refocus),
        pulse_angle=(theta, *([2.0 * theta] * n_refocus)),
        pulse_phase=(0.0, *([_REFOCUS_PHASE[name]] * n_refocus)),
        n_steps=(2 * n_refocus + 1) * n_tau,
        echo_samples=tuple(2 * (j + 1) * n_tau - 1 for j in range(n_refocus)),
    )


def _on_grid(t_us: float, dt_us: float, what: str) -> int:
    k = t_us / dt_us
    if abs(k - round(k)) > _GRID_TOLERANCE * max(1.0, abs(k)):
        raise SequenceError(f"sequence: {what} is not a multiple of dt_us = {dt_us:g}")
    return int(round(k))

"""What a spectrometer gives, made ready for the learned models.

A measured record is complex (both quadratures), carries an arbitrary global receiver phase
and gain, noise, and a dead time after every pulse. Conventions used everywhere here:

* *records*: as in :mod:`pyecho.data.records` (one complex array (B, T_k) per measurement,
  NaN where a sample is missing), which also holds their noise model and its estimate;
* the *dead time* D (µs) of a model: the samples within D after every pulse are never read
  (blanking and ring-down; :meth:`RecordGrid.dead_mask`). A model trained with D takes records
  whose first point comes up to D after the excitation (``pyecho predict --start-us``).

What is here:

* :func:`reference_phase_gain` -- divide each record by the mean of its first ``n_ref``
  samples after the dead time: invariant to a global phase e^{iφ} and a gain g > 0, while the
  phase's evolution over time (α_z, W at θ ≠ 90°, a carrier offset) is kept.
* :class:`InputView` -- the float32 channels a model sees: referenced Re, Im (and |M|) of every
  measurement, dead samples dropped, block-averaged in time.
* :func:`check_readable`, :func:`check_fit_inputs`, :func:`unreadable` -- whether a model with
  a dead time can read a grid, its fit rows, or given records.

What the models learn and return: :mod:`pyecho.learn.models.targets`; their saved files:
:mod:`pyecho.learn.models.model_files`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pyecho.data.records import NoisyRecords, as_noisy_records, as_records, check_grid, check_int
from pyecho.errors import ParameterError
from pyecho.learn.models.targets import EchoTargets
from pyecho.physics.protocol import RecordGrid

#: samples averaged for the phase/gain reference (1.28 µs at dt = 0.16 µs): enough to keep
#: the reference's own noise 1/sqrt(8) of one sample's, short against the FID's decay
DEFAULT_N_REF = 8
#: channel sets of :class:`InputView`, per measurement, in this order
CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "abs": ("abs",),
    "reim": ("re", "im"),
    "reim_abs": ("re", "im", "abs"),
}
#: at most this many time points per measurement reach a model (longer records are averaged
#: in longer blocks); a CPMG train of 10 000 samples would otherwise dominate every model's cost
DEFAULT_MAX_POINTS = 1024


def _check_dead_time(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"dead_time_us: got {value!r}; allowed: a number >= 0 (µs)")
    return float(value)


def check_readable(grid: RecordGrid, dead_time_us: float, n_ref: int = DEFAULT_N_REF) -> None:
    """ParameterError naming the measurement when a dead time leaves a record no phase reference
    (fewer than ``n_ref`` samples between the excitation's dead time and the next pulse)."""
    for k, m in enumerate(grid.protocol):
        try:
            reference_window(grid, k, dead_time_us, n_ref)
        except ValueError:
            raise ParameterError(f"{m.text}: a dead time of {dead_time_us:g} µs after each pulse leaves fewer than "
                                 f"{n_ref} samples before its next pulse for the phase reference; use a longer tau "
                                 "or a shorter dead time (pyecho learn --dead-time-us)") from None


def check_fit_inputs(M, targets: EchoTargets, grid: RecordGrid) -> NoisyRecords:
    """The rows of a model's fit() (arrays, see :func:`as_records`, or :class:`NoisyRecords`):
    checked against ``targets`` (one row each) and ``grid``; ValueError naming what is wrong."""
    if not isinstance(targets, EchoTargets):
        raise ValueError(f"targets: got {type(targets).__name__}; allowed: an EchoTargets")
    if not isinstance(grid, RecordGrid):
        raise ValueError(f"grid: got {type(grid).__name__}; allowed: a RecordGrid")
    R = as_noisy_records(M)
    check_grid(R.records, grid)
    if len(targets) != len(R):
        raise ValueError(f"targets: {len(targets)} rows for {len(R)} records")
    return R



def unreadable(records: tuple[np.ndarray, ...], grid: RecordGrid, dead_time_us: float,
               n_ref: int = DEFAULT_N_REF) -> str | None:
    """Why a model with this dead time cannot read the records (a missing sample outside the
    dead time, a zero phase reference), or None when it can."""
    for k, R in enumerate(records):
        missing = np.isnan(R.real) | np.isnan(R.imag)
        outside = missing & ~grid.dead_mask(k, dead_time_us)
        window = reference_window(grid, k, dead_time_us, n_ref)
        zero_ref = np.abs(np.nan_to_num(R[:, window]).mean(axis=1)) == 0
        for bad, why in ((outside.any(axis=1), f"misses samples outside the model's dead time of {dead_time_us:g} µs "
                                                "after each pulse (the record starts too late, or has gaps)"),
                         (zero_ref, "is zero where the model takes its phase reference")):
            if bad.any():
                b = int(np.flatnonzero(bad)[0])
                first = int(np.flatnonzero(outside[b])[0]) if why.startswith("misses") else window.start
                return (f"record {b} of {grid.protocol[k].text} {why} (sample {first}, t = "
                        f"{(first + 1) * grid.dt_us:g} µs)")
    return None


@dataclass(frozen=True)
class ReferencedEchoes:
    """Records with the receiver's phase and gain removed (see :func:`reference_phase_gain`).

    Attributes
    ----------
    M : tuple of complex128 arrays (B, T_k) -- each record divided by its reference r
    phase_rad, gain : float arrays (B, K) -- arg r (rad) and |r| (units of the input) per measurement
    """

    M: tuple[np.ndarray, ...]
    phase_rad: np.ndarray
    gain: np.ndarray


def reference_window(grid: RecordGrid, k: int, dead_time_us: float, n_ref: int = DEFAULT_N_REF) -> slice:
    """The samples of measurement ``k`` its phase/gain reference averages: the first ``n_ref``
    after the excitation's dead time."""
    dead = grid.dead_mask(k, dead_time_us)
    start = int(np.argmin(dead))
    if dead[start] or dead[start:start + n_ref].any() or start + n_ref > grid.lengths[k]:
        raise ValueError(f"dead_time_us: {dead_time_us:g} µs leaves fewer than {n_ref} samples of "
                         f"{grid.protocol[k].text} between the excitation's dead time and the next pulse's, for "
                         "the phase reference")
    return slice(start, start + n_ref)


def reference_phase_gain(records, grid: RecordGrid, *, dead_time_us: float = 0.0,
                         n_ref: int = DEFAULT_N_REF, first_row: int = 0) -> ReferencedEchoes:
    """Remove the arbitrary global receiver phase and gain of every record.

    Each record (each measurement on its own) is divided by its reference r, the mean of the
    :func:`reference_window` (the first ``n_ref`` samples after the dead time): there the
    result is real and positive with magnitude 1, and M·g·e^{iφ} gives the same result as M
    for any g > 0 and φ. The phase's evolution over time is kept.

    Raises ValueError if a reference is zero or holds a missing (NaN) sample (naming the record
    as ``first_row`` + its row: the records may be a chunk of a larger set).
    """
    X = as_records(records)
    check_grid(X, grid)
    n_ref = check_int("n_ref", n_ref, 1)
    out, phase, gain = [], [], []
    for k, R in enumerate(X):
        window = reference_window(grid, k, dead_time_us, n_ref)
        r = R[:, window].mean(axis=1)
        bad = ~np.isfinite(r) | (np.abs(r) == 0)
        if np.any(bad):
            b = first_row + int(np.flatnonzero(bad)[0])
            raise ValueError(f"M: record {b} of {grid.protocol[k].text} has a zero or missing phase reference "
                             f"(samples {window.start}..{window.stop - 1}, after a dead time of {dead_time_us:g} µs)")
        out.append(R / r[:, None])
        phase.append(np.angle(r))
        gain.append(np.abs(r))
    return ReferencedEchoes(M=tuple(out), phase_rad=np.column_stack(phase), gain=np.column_stack(gain))


@dataclass(frozen=True)
class InputView:
    """The float32 channels a model sees, from complex records.

    Parameters
    ----------
    channels : "reim_abs" (default: Re, Im and |M| of the referenced record), "reim" or "abs"
        ("abs" is the paper's |M| route, gain-normalised to ~1 at the reference)
    decimate : block-average every ``decimate`` samples (1 = none); averaging (not
        subsampling) also lowers white noise by sqrt(decimate)
    max_points : at most this many blocks per measurement: a longer record is averaged in
        blocks of ceil(T_k / max_points) samples
    n_ref : samples of the phase/gain reference (see :func:`reference_phase_gain`)
    dead_time_us : samples within this time after any pulse are dropped (µs, >= 0); a block
        touching one is dropped whole

    Output of :meth:`transform`: a list with one float32 array (B, C, T'_k) per measurement.
    """

    channels: str = "reim_abs"
    decimate: int = 2
    max_points: int = DEFAULT_MAX_POINTS
    n_ref: int = DEFAULT_N_REF
    dead_time_us: float = 0.0

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_SETS:
            raise ValueError(f"channels: got {self.channels!r}; allowed: {', '.join(CHANNEL_SETS)}")
        check_int("decimate", self.decimate, 1)
        check_int("max_points", self.max_points, 1)
        check_int("n_ref", self.n_ref, 1)
        object.__setattr__(self, "dead_time_us", _check_dead_time(self.dead_time_us))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return CHANNEL_SETS[self.channels]

    def block(self, n_samples: int) -> int:
        """Samples per block of a record of ``n_samples``."""
        return max(self.decimate, -(-n_samples // self.max_points))

    def kept_blocks(self, grid: RecordGrid, k: int) -> np.ndarray:
        """Indices of the blocks of measurement ``k`` that hold no dead sample."""
        d = self.block(grid.lengths[k])
        n_blocks = grid.lengths[k] // d
        dead = grid.dead_mask(k, self.dead_time_us)[: n_blocks * d].reshape(n_blocks, d).any(axis=1)
        kept = np.flatnonzero(~dead)
        if kept.size == 0:
            raise ValueError(f"dead_time_us: {self.dead_time_us:g} µs leaves no sample of {grid.protocol[k].text}")
        return kept

    def n_timepoints(self, grid: RecordGrid) -> tuple[int, ...]:
        """T'_k of every measurement."""
        return tuple(len(self.kept_blocks(grid, k)) for k in range(len(grid.protocol)))

    def transform(self, records, grid: RecordGrid) -> list[np.ndarray]:
        """Channels of the referenced records: one float32 array (B, C, T'_k) per measurement.

        ``records``: arrays (see :func:`as_records`) or :class:`NoisyRecords`; made
        :data:`CHUNK_ROWS` rows at a time. Raises ValueError for a missing (NaN) sample outside
        the dead time."""
        rows = as_noisy_records(records)
        check_grid(rows.records, grid)
        kept = [self.kept_blocks(grid, k) for k in range(len(grid.protocol))]
        C = len(self.channel_names)
        out = [np.empty((len(rows), C, len(kk)), dtype=np.float32) for kk in kept]
        for start, chunk in rows.chunks():
            for X, part in zip(out, self._transform_chunk(chunk, grid, kept, start)):
                X[start:start + len(part)] = part
        return out

    def _transform_chunk(self, records: tuple[np.ndarray, ...], grid: RecordGrid, kept: list[np.ndarray],
                         first_row: int) -> list[np.ndarray]:
        R = reference_phase_gain(records, grid, dead_time_us=self.dead_time_us, n_ref=self.n_ref,
                                 first_row=first_row).M
        out = []
        for k, Mk in enumerate(R):
            d = self.block(Mk.shape[1])
            B, T = Mk.shape
            blocks = Mk[:, : (T // d) * d].reshape(B, T // d, d)[:, kept[k]]  # (B, T', d)
            if np.isnan(blocks.real).any() or np.isnan(blocks.imag).any():
                b = first_row + int(np.flatnonzero(np.isnan(blocks).any(axis=(1, 2)))[0])
                raise ValueError(f"M: record {b} of {grid.protocol[k].text} misses samples outside the model's dead "
                                 f"time of {self.dead_time_us:g} µs after each pulse")
            parts = {"re": blocks.real, "im": blocks.imag, "abs": np.abs(blocks)}
            out.append(np.stack([parts[c].mean(axis=-1) for c in self.channel_names], axis=1).astype(np.float32))
        return out

    def flat(self, records, grid: RecordGrid) -> np.ndarray:
        """:meth:`transform`, every measurement's channels flattened side by side: float32 (B, F)."""
        return np.concatenate([X.reshape(X.shape[0], -1) for X in self.transform(records, grid)], axis=1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputView":
        return cls(**d)

"""Records as arrays, their noise and its estimate: what a receiver gives, before anything is
learned from it.

*Records* are a tuple with one complex array per measurement of a protocol, each (B, T_k): B
samples (the same physical sample in row b of every array), T_k samples of measurement k on
the :class:`~pyecho.physics.protocol.RecordGrid` t_j = (j + 1) dt. Missing samples (the
receiver's dead time) are NaN. :func:`as_records` also takes one series (T,), (B, T), or
(B, A, T) for A measurements of equal length.

What is here:

* :func:`as_records`, :func:`check_grid` -- records checked against each other and a grid;
* :func:`add_complex_noise` -- complex white Gaussian noise at a defined SNR;
  :class:`NoisyRecords` -- rows of records, clean or noised (noisy copies of training rows, test
  rows at an SNR), made a chunk at a time with each row's noise fixed by its own seed, so the
  records may be memory-mapped and no noisy copy of a large set is ever held;
  :func:`draw_snr` -- SNRs drawn from a list or a log-uniform range;
* :func:`estimate_noise` -- a record's noise level and SNR measured from the record itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pyecho.physics.protocol import RecordGrid

#: x[j-1] - 2 x[j] + x[j+1] of complex white noise (sigma per quadrature) has sigma sqrt(6) per
#: quadrature, so its magnitude is Rayleigh with median sqrt(6) sigma sqrt(2 ln 2)
_MEDIAN_TO_SIGMA = 1.0 / math.sqrt(6.0 * 2.0 * math.log(2.0))
#: samples averaged when reading a record's peak amplitude for its SNR
_PEAK_SMOOTHING = 8
#: rows put through a transform at a time: the transforms' complex temporaries stay a few times
#: CHUNK_ROWS records, whatever the number of rows (the output is what grows with them)
CHUNK_ROWS = 512


def as_records(M, n_measurements: int | None = None) -> tuple[np.ndarray, ...]:
    """Records as a tuple of complex128 arrays (B, T_k), one per measurement.

    Accepts a tuple/list of arrays (each (T,) or (B, T), one per measurement), or one array
    (T,), (B, T) (one measurement) or (B, A, T) (A measurements of equal length). Missing
    samples may be NaN (a dead time); infinite values are refused. complex64 (and float32)
    input stays complex64, anything else becomes complex128.
    Raises ValueError for another shape, non-numbers, unequal B, or a count other than
    ``n_measurements``.
    """
    if isinstance(M, (list, tuple)):
        parts = [np.asarray(m) for m in M]
    else:
        a = np.asarray(M)
        parts = [a[:, k] for k in range(a.shape[1])] if a.ndim == 3 else [a]
    out = []
    for k, a in enumerate(parts):
        if not (np.issubdtype(a.dtype, np.number) and a.ndim in (1, 2)) or a.size == 0:
            raise ValueError(f"M: measurement {k}: expected a numeric array (T,) or (B, T); got {a.dtype} {a.shape}")
        # single precision stays single (a dataset's complex64 records, noised, are half the memory)
        # no copy when the precision is already right: a memory-mapped dataset stays on disk
        a = np.atleast_2d(a).astype(np.complex64 if a.dtype in (np.complex64, np.float32) else np.complex128,
                                    copy=False)
        if np.isinf(a).any():
            raise ValueError(f"M: measurement {k} contains infinite values")
        out.append(a)
    if len({a.shape[0] for a in out}) != 1:
        raise ValueError(f"M: the measurements hold {[a.shape[0] for a in out]} records; each needs one per sample")
    if n_measurements is not None and len(out) != n_measurements:
        raise ValueError(f"M: {len(out)} measurement(s) given; the model takes {n_measurements}")
    return tuple(out)


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: got {value!r}; allowed: an integer >= {minimum}")
    return int(value)


def check_grid(records: tuple[np.ndarray, ...], grid: RecordGrid) -> None:
    """ValueError unless ``records`` hold one (B, T_k) array per measurement of ``grid``."""
    if len(records) != len(grid.protocol) or any(r.shape[1] != T for r, T in zip(records, grid.lengths)):
        raise ValueError(f"M: records of lengths {[r.shape[1] for r in records]}; the model's protocol "
                         f"{grid.protocol.text} records T = {list(grid.lengths)} samples")



def _first_finite(A: np.ndarray) -> np.ndarray:
    """Each row's first non-NaN value (the first sample after a dead time)."""
    finite = ~np.isnan(A)
    return np.where(finite.any(axis=1), A[np.arange(len(A)), np.argmax(finite, axis=1)], 0.0)


def _check_snr(snr, B: int) -> np.ndarray:
    snr = np.broadcast_to(np.asarray(snr, dtype=float), (B,)) if np.ndim(snr) == 0 else np.asarray(snr, float)
    if snr.shape != (B,) or np.any(np.isnan(snr)) or np.any(snr <= 0):
        raise ValueError(f"snr: got {snr if snr.size <= 4 else snr.shape}; allowed: a value > 0 (inf allowed) "
                         f"or one per record, shape ({B},)")
    return snr


def _noise_sigma(records: tuple[np.ndarray, ...], snr: np.ndarray) -> np.ndarray:
    """σ (B,) of the noise at ``snr`` (the definition in :func:`add_complex_noise`); 0 where snr is inf."""
    return np.max(np.column_stack([_first_finite(np.abs(R)) for R in records]), axis=1) / snr


def add_complex_noise(records, snr, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Add complex white Gaussian noise at a given signal-to-noise ratio.

    SNR definition: snr = A0 / σ, where A0 = max over the measurements of |M_k[b, 0]| (the
    first sample of each noise-free record, the first one recorded where a dead time hides the
    start: one spectrometer, one σ for all measurements of a sample) and σ is the standard
    deviation of each quadrature of the noise: Re and Im of every sample get independent
    N(0, σ²) draws. snr = inf adds nothing.

    Parameters
    ----------
    records : noise-free records (see :func:`as_records`)
    snr : float or array (B,), each > 0 (inf allowed)
    rng : numpy Generator (the only source of randomness)

    Returns
    -------
    tuple of new complex arrays (B, T_k), the input's precision (the input is never modified).
    :class:`NoisyRecords` makes the same noise row by row, a chunk at a time.
    """
    X = as_records(records)
    snr = _check_snr(snr, X[0].shape[0])
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: got {type(rng).__name__}; allowed: a numpy.random.Generator")
    sigma = _noise_sigma(X, snr)
    return tuple((R + sigma[:, None] * (rng.standard_normal(R.shape) + 1j * rng.standard_normal(R.shape)))
                 .astype(R.dtype) for R in X)


@dataclass(frozen=True)
class NoisyRecords:
    """Rows of records, each clean or with its own noise, made a chunk at a time.

    Row i is row ``source[i]`` of ``records`` plus complex white Gaussian noise at SNR
    ``snr[i]`` (inf: clean; the definition of :func:`add_complex_noise`) drawn from a generator
    seeded by (``seed``, ``key[i]``) alone: a row is the same whichever chunk, subset or order it
    is made in, and nothing holds more than a chunk of noisy records. ``records`` may be
    memory-mapped (:func:`pyecho.data.store.load_dataset` with ``mmap_dir``): a chunk reads
    only its rows.

    Attributes
    ----------
    records : tuple of complex arrays (B, T_k), one per measurement (never modified)
    source : int array (N,) -- the row of ``records`` each row is made from
    snr : float array (N,) -- each row's SNR, > 0 (inf: clean)
    key : int array (N,) -- each row's noise key (with ``seed``: its noise)
    seed : int >= 0
    """

    records: tuple[np.ndarray, ...]
    source: np.ndarray
    snr: np.ndarray
    key: np.ndarray
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", _record_tuple(self.records))
        B = self.records[0].shape[0]
        source = np.asarray(self.source)
        if source.ndim != 1 or not np.issubdtype(source.dtype, np.integer) or (
                source.size and (source.min() < 0 or source.max() >= B)):
            raise ValueError(f"source: expected a 1-D integer array of rows in [0, {B}); got {source.dtype} {source.shape}")
        n = source.size
        key = np.asarray(self.key)
        if key.shape != (n,) or not np.issubdtype(key.dtype, np.integer) or (n and key.min() < 0):
            raise ValueError(f"key: expected {n} integers >= 0; got {key.dtype} {key.shape}")
        object.__setattr__(self, "source", source.astype(np.int64))
        object.__setattr__(self, "snr", _check_snr(self.snr, n).copy())
        object.__setattr__(self, "key", key.astype(np.int64))
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0))

    @classmethod
    def clean(cls, records, rows=None) -> "NoisyRecords":
        """The rows ``rows`` (default: all) of ``records``, without noise. A tuple of complex
        (B, T_k) arrays (a dataset's records) is used as it is, unread: a memory map stays on
        disk; anything else goes through :func:`as_records`."""
        X = _record_tuple(records)
        rows = np.arange(X[0].shape[0]) if rows is None else np.asarray(rows)
        return cls(X, rows, np.full(len(rows), np.inf), np.zeros(len(rows), dtype=np.int64))

    @classmethod
    def with_copies(cls, records: tuple[np.ndarray, ...], rows, *, copies: int, snr_range: tuple[float, float],
                    seed: int) -> "NoisyRecords":
        """The rows ``rows`` clean, then ``copies`` noisy copies of each (copy c of every row
        after copy c - 1's), SNRs log-uniform in ``snr_range`` drawn from ``seed``."""
        rows = np.asarray(rows)
        copies = check_int("copies", copies, 0)
        snr = draw_snr(np.random.default_rng(seed), len(rows) * copies, snr_range=snr_range)
        n = len(rows) * (copies + 1)
        return cls(records, np.tile(rows, copies + 1), np.concatenate([np.full(len(rows), np.inf), snr]),
                   np.arange(n), seed)

    def __len__(self) -> int:
        return len(self.source)

    def take(self, index) -> "NoisyRecords":
        """The rows ``index`` (int array), each with its own noise."""
        index = np.asarray(index)
        return NoisyRecords(self.records, self.source[index], self.snr[index], self.key[index], self.seed)

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """The records of rows [start, stop), noised: complex arrays (stop - start, T_k), the
        records' precision."""
        src = self.source[start:stop]
        order = np.argsort(src, kind="stable")  # a memory map is read fastest in order
        clean = tuple(np.empty((len(src), R.shape[1]), dtype=R.dtype) for R in self.records)
        for out, R in zip(clean, self.records):
            out[order] = R[src[order]]
        snr = self.snr[start:stop]
        noisy = np.flatnonzero(np.isfinite(snr))
        if noisy.size == 0:
            return clean
        sigma = _noise_sigma(tuple(X[noisy] for X in clean), snr[noisy])
        for i, s in zip(noisy, sigma):
            rng = np.random.default_rng([self.seed, int(self.key[start + i])])
            for X in clean:
                T = X.shape[1]
                X[i] = X[i] + s * (rng.standard_normal(T) + 1j * rng.standard_normal(T))
        return clean

    def chunks(self, size: int | None = None):
        """(first row, records of the next ``size`` rows; default :data:`CHUNK_ROWS`) over every row, in order."""
        size = CHUNK_ROWS if size is None else check_int("size", size, 1)
        for start in range(0, len(self), size):
            yield start, self.rows(start, min(start + size, len(self)))

    def blocks(self, size: int) -> Iterator["NoisyRecords"]:
        """The rows in consecutive blocks of ``size`` (the last one shorter): fixed by the row
        numbers alone, so sums and products over them do not depend on :data:`CHUNK_ROWS`."""
        size = check_int("size", size, 1)
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))

    def materialize(self) -> tuple[np.ndarray, ...]:
        """Every row at once (memory: all of them)."""
        return self.rows(0, len(self))


def _record_tuple(records) -> tuple[np.ndarray, ...]:
    """A tuple of complex (B, T_k) arrays as it is (unread: a memory map stays on disk); anything
    else through :func:`as_records`."""
    ready = (isinstance(records, tuple) and len(records) > 0
             and all(isinstance(R, np.ndarray) and R.ndim == 2 and R.dtype in (np.complex64, np.complex128)
                     for R in records)
             and len({R.shape[0] for R in records}) == 1)
    return records if ready else as_records(records)


def as_noisy_records(records) -> NoisyRecords:
    """``records`` as :class:`NoisyRecords`: itself, or every row of arrays, checked by
    :func:`as_records`, clean."""
    return records if isinstance(records, NoisyRecords) else NoisyRecords.clean(as_records(records))


@dataclass(frozen=True)
class NoiseEstimate:
    """A record's noise, measured from the record alone (see :func:`estimate_noise`).

    sigma : array (B,) -- the noise standard deviation per quadrature (units of the input)
    amplitude : array (B,) -- the record's peak |M| (averaged over 8 samples), same units
    snr : array (B,) -- amplitude / sigma (inf where no noise is seen)
    """

    sigma: np.ndarray
    amplitude: np.ndarray
    snr: np.ndarray


def estimate_noise(records, grid: RecordGrid, *, dead_time_us: float = 0.0) -> NoiseEstimate:
    """Each sample's noise level and SNR, read off its records.

    σ: the median of |x[j-1] - 2x[j] + x[j+1]| (complex), over every measurement's samples away
    from the pulses and the dead time, divided by sqrt(6 · 2 ln 2) (complex white noise makes it
    Rayleigh; an echo's own curvature over three samples is some 10⁻⁵ of its height, so a
    noise-free record reads SNR ~10⁵ and more). The amplitude: the largest |M| after averaging
    8 samples. Both are invariant to the receiver's phase; their ratio also to its gain.
    ``records``: arrays (see :func:`as_records`) or :class:`NoisyRecords`, read a chunk at a time.
    """
    rows = as_noisy_records(records)
    check_grid(rows.records, grid)
    sigma, amplitude = np.empty(len(rows)), np.empty(len(rows))
    for start, chunk in rows.chunks():
        stop = start + chunk[0].shape[0]
        sigma[start:stop], amplitude[start:stop] = _noise_and_peak(chunk, grid, dead_time_us)
    with np.errstate(divide="ignore"):
        snr = np.where(sigma > 0, amplitude / np.where(sigma > 0, sigma, 1.0), np.inf)
    return NoiseEstimate(sigma=sigma, amplitude=amplitude, snr=snr)


def _noise_and_peak(X: tuple[np.ndarray, ...], grid: RecordGrid, dead_time_us: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(σ, peak amplitude) of each row of a chunk of records (see :func:`estimate_noise`)."""
    d2_all, peaks = [], []
    for k, R in enumerate(X):
        keep = ~grid.dead_mask(k, max(dead_time_us, grid.dt_us))  # never across a pulse
        inner = keep[1:-1] & keep[:-2] & keep[2:]
        d2_all.append(np.abs(R[:, :-2] - 2 * R[:, 1:-1] + R[:, 2:])[:, inner])
        T = (R.shape[1] // _PEAK_SMOOTHING) * _PEAK_SMOOTHING
        blocks = np.abs(R[:, :T]).reshape(R.shape[0], -1, _PEAK_SMOOTHING)
        full = keep[:T].reshape(-1, _PEAK_SMOOTHING).all(axis=1)  # blocks clear of pulses and dead time
        peaks.append(blocks[:, full].mean(axis=2).max(axis=1) if full.any() else np.zeros(R.shape[0]))
    sigma = np.nanmedian(np.concatenate(d2_all, axis=1), axis=1) * _MEDIAN_TO_SIGMA
    return sigma, np.max(np.column_stack(peaks), axis=1)


def check_snr_options(snr_choices, snr_range, *, required: bool, prefix: str = ""):
    """Validated (snr_choices, snr_range) as float tuples (or None): at most one given, exactly
    one if ``required``; choices > 0 (inf allowed), range (lo, hi) with 0 < lo <= hi < inf.
    ``prefix`` is prepended to the option names in the error messages."""
    names = f"{prefix}snr_choices", f"{prefix}snr_range"
    if snr_choices is not None and snr_range is not None or (required and snr_choices is None and snr_range is None):
        raise ValueError(f"{names[0]} / {names[1]}: give {'exactly' if required else 'at most'} one of them")
    if snr_choices is not None:
        try:
            choices = tuple(float(v) for v in snr_choices)
        except (TypeError, ValueError):
            choices = ()
        if not choices or not all(v > 0 for v in choices):  # NaN fails v > 0
            raise ValueError(f"{names[0]}: got {snr_choices!r}; allowed: a non-empty list of values > 0 (inf allowed)")
        return choices, None
    if snr_range is not None:
        try:
            lo, hi = (float(v) for v in snr_range)
        except (TypeError, ValueError):
            lo = hi = np.nan
        if not 0 < lo <= hi < np.inf:
            raise ValueError(f"{names[1]}: got {snr_range!r}; allowed: (lo, hi) with 0 < lo <= hi < inf")
        return None, (lo, hi)
    return None, None


def draw_snr(rng: np.random.Generator, size: int, *, snr_choices=None, snr_range=None) -> np.ndarray:
    """``size`` SNRs drawn uniformly from ``snr_choices`` or log-uniformly from ``snr_range``."""
    choices, bounds = check_snr_options(snr_choices, snr_range, required=True)
    if choices is not None:
        return rng.choice(np.asarray(choices), size=size)
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size=size))

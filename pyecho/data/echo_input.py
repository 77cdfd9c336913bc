"""Records a user gives `pyecho predict`, read onto a learned model's protocol.

A model's grid is a :class:`~pyecho.physics.protocol.RecordGrid`: its protocol (the
measurements, each a sequence at an angle and tau) and the step dt; measurement k records
samples t_j = (j + 1) dt, j = 0 .. T_k - 1, after its excitation. :func:`read_echoes` returns
one complex array (B, T_k) per measurement, NaN where a sample is missing (before the record's
first point: the receiver's dead time). It reads

* a `pyecho sim` dataset (a .parquet file or a directory of parts): every sample as stored;
  each of the model's measurements is read from the dataset's measurement that holds it (the
  same, or a longer train it begins), so a dataset that lacks one is refused naming it;
* one NPY per measurement, complex (T_k,) or (B, T_k) on the model's grid -- or, for a model
  whose measurements all have T samples, one NPY (B, K, T). With ``start_us`` a record may also
  be n samples shorter, n the grid samples before ``start_us``: what a receiver that opens late
  writes, its first point at the first grid sample from ``start_us`` on;
* one CSV (``t_us``, ``re_M``, ``im_M``: the `pyecho echo` file) per measurement: one echo,
  resampled onto the model's grid (:func:`pyecho.io.to_model_grid`, a cubic spline between
  pulses);
* one Bruker or Varian/Agilent experiment directory or NMRPipe file per measurement
  (:func:`pyecho.io.read_acquisition`, then :func:`pyecho.io.to_model_grid`): one echo per
  record of a ``ser`` or arrayed ``fid``.

Several files are the model's measurements in its order; a file set that does not match the
model's protocol is refused with one line that names the protocol the model needs.
``start_us`` (``pyecho predict --start-us``): the time of a record's first point after the
excitation; for every input kind, the samples before it are missing (a dead time), which the
model accepts up to its own dead time. Anything that cannot match the model raises one
:class:`~pyecho.errors.InputFileError` (or, for an option, :class:`~pyecho.errors.ParameterError`)
naming the file and what was expected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from pyecho.data.echo_file import CSV_HEADER
from pyecho.data.store import load_dataset
from pyecho.errors import InputFileError, ParameterError
from pyecho.io import Acquisition, read_acquisition, spectrometer_format, to_model_grid
from pyecho.physics.protocol import RecordGrid

T_COLUMN, RE_COLUMN, IM_COLUMN, ABS_COLUMN = CSV_HEADER.split(",")
#: the kinds of input, as :attr:`EchoRecords.kind` names them (spectrometer files: pyecho.io.SOURCES)
DATASET, CSV, NPY = "dataset", "csv", "npy"
#: several paths: one per measurement
PER_MEASUREMENT = "one file per measurement"
#: the latest first-point time a record may have (µs): what a receiver's dead time can be
MAX_START_US = 1000.0


@dataclass(frozen=True)
class EchoRecords:
    """Records ready for a model, and the grid they were recorded on.

    Attributes
    ----------
    M : tuple of complex arrays, one (B, T_k) per measurement of ``grid`` (NaN: missing)
    grid : the records' own grid: the model's for resampled inputs, a dataset's otherwise
    kind : what was read: "dataset", "csv", "npy", "bruker", "varian", "nmrpipe" or
        "one file per measurement"
    paths : the files read
    read_as : how each of ``paths`` was read, one short line each (e.g. "starts at 20 µs: 1750
        samples padded to 1875")
    """

    M: tuple[np.ndarray, ...]
    grid: RecordGrid
    kind: str
    paths: tuple[Path, ...]
    read_as: tuple[str, ...]

    def __len__(self) -> int:
        return self.M[0].shape[0]


def _needs(grid: RecordGrid) -> str:
    """What the model takes, for error messages."""
    lengths = ", ".join(map(str, grid.lengths))
    return (f"the model needs {len(grid.protocol)} measurement(s) {grid.protocol.text} (T = {lengths} samples, "
            f"dt {grid.dt_us:g} µs), one file per measurement in that order")


def input_kind(path: Path) -> str:
    """Which reader takes ``path``: dataset, csv, npy or a spectrometer format (pyecho.io.SOURCES)."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory")
    source = spectrometer_format(path)
    if source is not None:
        return source
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".parquet":
        return DATASET
    if suffix in (".csv", ".npy"):
        return suffix[1:]
    raise InputFileError(f"{path}: not an input pyecho predict reads: a `pyecho sim` dataset (.parquet or a "
                         "directory of parts), a .csv (t_us, re_M, im_M), a .npy of complex records, a Bruker or "
                         "Varian experiment directory or an NMRPipe file")


def _check_start(start_us) -> float:
    try:
        start = float(start_us)
    except (TypeError, ValueError):
        start = math.nan
    if not 0 <= start <= MAX_START_US:
        raise ParameterError(f"--start-us {start_us}: must be a time from 0 to {MAX_START_US:g} µs after the "
                             "excitation (the record's first point)")
    return start


def _samples_before(grid: RecordGrid, k: int, start_us: float) -> int:
    """How many samples of measurement ``k`` come before ``start_us`` (a record's first point)."""
    return int(np.count_nonzero(grid.times_us(k) < start_us - 1e-9 * grid.dt_us))


def _missing_dtype(M: np.ndarray):
    """The complex type that holds ``M`` and NaN: complex64 stays, anything else is complex128."""
    return np.complex64 if M.dtype == np.complex64 else np.complex128


def _blank_before(M: np.ndarray, grid: RecordGrid, k: int, start_us: float) -> tuple[np.ndarray, str]:
    """``M`` (..., T_k) with the samples of measurement ``k`` before ``start_us`` set missing (NaN),
    and how it was read."""
    n = _samples_before(grid, k, start_us)
    if n == 0:
        return M, ""
    out = np.array(M, dtype=_missing_dtype(M))
    out[..., :n] = np.nan
    return out, f", {n} samples before {start_us:g} µs discarded"


def _npy_on_grid(M: np.ndarray, grid: RecordGrid, k: int, start_us: float) -> tuple[np.ndarray, str] | None:
    """NPY records (..., T') as measurement ``k``'s T samples, and how they were read: T' = T
    (the samples before ``start_us`` discarded), or T - n for the n samples before ``start_us``
    (a record that starts there, padded with NaN); None for another length."""
    T, n = grid.lengths[k], _samples_before(grid, k, start_us)
    if M.shape[-1] == T:
        out, discarded = _blank_before(M, grid, k, start_us)
        return out, f"full length T = {T}{discarded}"
    if n and M.shape[-1] == T - n:
        padded = np.full((*M.shape[:-1], T), np.nan, dtype=_missing_dtype(M))
        padded[..., n:] = M
        return padded, f"starts at {start_us:g} µs: {T - n} samples padded to {T}"
    return None


def _npy_lengths(grid: RecordGrid, k: int, start_us: float, got: int) -> str:
    """The lengths :func:`_npy_on_grid` takes for measurement ``k``, for the error message about
    a record of ``got`` samples."""
    T, n = grid.lengths[k], _samples_before(grid, k, start_us)
    if n:
        return f"T = {T} (the whole record) or {T - n} (a record that starts at {start_us:g} µs)"
    return f"T = {T}" + (" (a shorter record that starts late: give its start, --start-us)" if got < T else "")


def read_echoes(paths: Sequence[str | Path], grid: RecordGrid, *, tau_us: float | None = None,
                start_us: float | None = None) -> EchoRecords:
    """Read the records ``paths`` name onto the model's ``grid`` (see the module docstring).

    Parameters
    ----------
    paths : one dataset or NPY (B, K, T), or one file per measurement of the model's protocol
    grid : the model's :class:`RecordGrid`
    tau_us : the records' pulse spacing (µs) where a file does not record it: a CSV (default:
        the model's) or a spectrometer file (default: the file's, Bruker D6 or Varian tau).
        A τ more than half a model step off the model's is refused.
    start_us : the records' first point after the excitation (µs; default 0): earlier samples
        are missing

    Returns
    -------
    :class:`EchoRecords` with one (B, T_k) array per measurement of ``grid``.
    """
    paths = tuple(Path(p) for p in paths)
    if not paths:
        raise ParameterError("INPUT: give at least one file or directory")
    kinds = [input_kind(p) for p in paths]
    for p, k in zip(paths, kinds):
        if tau_us is not None and k in (DATASET, NPY):
            raise ParameterError(f"--tau-us {tau_us}: {p} ({k}) is on its own time grid; --tau-us is for CSV and "
                                 "spectrometer files")
    start = 0.0 if start_us is None else _check_start(start_us)
    if start_us is not None and DATASET in kinds:
        raise ParameterError(f"--start-us {start_us}: a dataset's records start at the excitation; --start-us is for "
                             "CSV, NPY and spectrometer files")
    K = len(grid.protocol)
    if kinds[0] == DATASET:
        if len(paths) > 1:
            raise InputFileError(f"{paths[0]}: a dataset holds every measurement of its samples; give it alone")
        return _read_dataset(paths[0], grid)
    single = _read_npy(paths[0]) if len(paths) == 1 and kinds[0] == NPY else None
    if single is not None and (K > 1 or single.ndim == 3):  # one NPY (B, K, T) holds every measurement
        equal = len(set(grid.lengths)) == 1
        fitted = ([_npy_on_grid(single[:, k], grid, k, start) for k in range(K)]
                  if equal and single.ndim == 3 and single.shape[1] == K else [None])
        if None in fitted:
            stacked = (f"with {_npy_lengths(grid, 0, start, single.shape[-1])}" if equal
                       else "when every measurement has T samples")
            raise InputFileError(f"{paths[0]}: holds complex records of shape {single.shape}; {_needs(grid)} (or one "
                                 f"NPY (B, K, T) {stacked})")
        return EchoRecords(tuple(M for M, _ in fitted), grid, NPY, paths, (fitted[0][1],))
    if len(paths) != K:
        raise InputFileError(f"{len(paths)} file(s) given; {_needs(grid)}")
    records, read_as = [], []
    for k, (path, kind) in enumerate(zip(paths, kinds)):
        if kind == DATASET:
            raise InputFileError(f"{path}: a dataset holds its own measurements; give it alone, not as one of "
                                 "several inputs")
        try:
            M, how = _read_measurement(path, kind, grid, k, single, tau_us, start)
        except InputFileError as exc:  # a file in the wrong place is the likeliest cause: say what goes where
            raise type(exc)(f"{exc}; {_needs(grid)}") from None
        records.append(np.atleast_2d(M))
        read_as.append(how)
    sizes = {r.shape[0] for r in records}
    if len(sizes) != 1:
        raise InputFileError(f"the files hold {[r.shape[0] for r in records]} records; each measurement needs one "
                             "record per sample")
    return EchoRecords(tuple(records), grid, kinds[0] if len(paths) == 1 else PER_MEASUREMENT, paths, tuple(read_as))


def _read_measurement(path: Path, kind: str, grid: RecordGrid, k: int, single, tau_us,
                      start: float) -> tuple[np.ndarray, str]:
    """Measurement ``k`` of the model's protocol from one file (an NPY, a CSV or a spectrometer
    file), and how it was read."""
    if kind == NPY:
        M = single if single is not None else _read_npy(path)
        fitted = _npy_on_grid(M, grid, k, start) if M.ndim <= 2 else None
        if fitted is None:
            raise InputFileError(f"{path}: holds complex records of shape {M.shape}; as measurement {k + 1} "
                                 f"({grid.protocol[k].text}) it must be (T,) or (B, T) with "
                                 f"{_npy_lengths(grid, k, start, M.shape[-1])}")
        return fitted
    if kind == CSV:
        M, what = _read_csv(path, grid, k, tau_us), "one echo"
    else:
        M, what = _read_spectrometer(path, grid, k, tau_us, start), f"{kind} records"
    out, discarded = _blank_before(M, grid, k, start)
    return out, f"{what} resampled onto the model's grid, T = {grid.lengths[k]}{discarded}"


def _check_finite(path: Path, a: np.ndarray) -> None:
    """Infinite values are refused; NaN marks a missing sample (a dead time)."""
    if np.any(np.isinf(a.real) | np.isinf(a.imag)):
        raise InputFileError(f"{path}: contains infinite values")
    missing = np.isnan(a.real) | np.isnan(a.imag)
    if np.any(missing.all(axis=-1)):
        raise InputFileError(f"{path}: a record holds no value at all (every sample is NaN)")
    if np.any(np.all(np.where(missing, True, a == 0), axis=-1)):
        raise InputFileError(f"{path}: a record is all zero; it holds no signal")


def _read_npy(path: Path) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is one user error
        raise InputFileError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.number):
        raise InputFileError(f"{path}: holds {getattr(a, 'dtype', type(a).__name__)}, not numbers")
    if not np.iscomplexobj(a):
        raise InputFileError(f"{path}: holds real values ({a.dtype}); the model needs both quadratures: save M as a "
                             "complex array (re + 1j im)")
    if a.ndim not in (1, 2, 3) or a.shape[-1] < 2:
        raise InputFileError(f"{path}: holds an array of shape {a.shape}; expected (T,), (B, T) or (B, A, T)")
    _check_finite(path, a)
    return a


def _read_csv(path: Path, grid: RecordGrid, k: int, tau_us: float | None) -> np.ndarray:
    try:
        df = pl.read_csv(path, infer_schema_length=None)
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(f"{path}: not a readable CSV ({exc})") from None
    cols = set(df.columns)
    if {T_COLUMN, ABS_COLUMN} <= cols and not {RE_COLUMN, IM_COLUMN} <= cols:
        raise InputFileError(f"{path}: holds |M| only ({ABS_COLUMN}); the model needs both quadratures, columns "
                             f"{RE_COLUMN} and {IM_COLUMN} (the paper's |M| model reads it: --model paper)")
    if not {T_COLUMN, RE_COLUMN, IM_COLUMN} <= cols:
        raise InputFileError(f"{path}: needs columns {T_COLUMN}, {RE_COLUMN} and {IM_COLUMN}; found "
                             f"{', '.join(df.columns)}")
    try:
        t, re, im = (df[c].cast(pl.Float64).to_numpy() for c in (T_COLUMN, RE_COLUMN, IM_COLUMN))
    except pl.exceptions.PolarsError:
        raise InputFileError(f"{path}: columns {T_COLUMN}, {RE_COLUMN} and {IM_COLUMN} must be numbers") from None
    M = re + 1j * im
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(M))):
        raise InputFileError(f"{path}: contains NaN or infinite values (leave missing samples out of a CSV)")
    _check_finite(path, M[None])
    order = np.argsort(t, kind="stable")
    t, M = t[order], M[order]
    if len(t) < 2 or np.any(np.diff(t) <= 0):
        raise InputFileError(f"{path}: {T_COLUMN} needs two or more distinct times; found {len(t)} rows with "
                             f"{len(np.unique(t))} distinct times")
    # a CSV does not record tau: the user's (tau_us), else the model's
    m = grid.protocol[k]
    acq = Acquisition(t_us=t, M=M, dwell_us=float(np.diff(t).max()), tau_us=m.tau_us, source=CSV, path=path,
                      start_us=float(t[0]), tau_origin="the model's: a CSV does not record it")
    return _on_grid(acq, grid, k, tau_us)


def _on_grid(acq: Acquisition, grid: RecordGrid, k: int, tau_us: float | None) -> np.ndarray:
    """An acquisition resampled onto measurement ``k`` of the model's grid."""
    pulses = [s * grid.dt_us for s in grid.pulse_samples(k)[1:]]  # the refocusing pulses (the first excites)
    return to_model_grid(acq, t_us_model=grid.times_us(k), tau_us_model=grid.protocol[k].tau_us,
                         pulse_times_us=pulses or None, tau_us=tau_us)


def _read_spectrometer(path: Path, grid: RecordGrid, k: int, tau_us, start_us: float) -> np.ndarray:
    acq = read_acquisition(path, tau_us=tau_us, start_us=start_us)
    return _on_grid(acq, grid, k, None)


def _read_dataset(path: Path, grid: RecordGrid) -> EchoRecords:
    """The model's measurements, each from the dataset's measurement that holds it; a dataset on
    another protocol of as many measurements and lengths is passed on for the guard to flag."""
    ds = load_dataset(path, columns=("sample_id",))
    own = RecordGrid(ds.protocol, ds.dt_us)
    sources = [own.protocol.covering(m) if math.isclose(own.dt_us, grid.dt_us, rel_tol=1e-9) else None
               for m in grid.protocol]
    if all(s is not None for s in sources):
        records = tuple(ds.records[s][:, :T] for s, T in zip(sources, grid.lengths))
        return EchoRecords(records, grid, DATASET, (path,), (f"a dataset of {own.protocol.text}",))
    if own.lengths != grid.lengths:
        missing = ", ".join(m.text for m, s in zip(grid.protocol, sources) if s is None)
        raise InputFileError(f"{path}: holds {own.protocol.text} (dt {own.dt_us:g} µs), not {missing}; {_needs(grid)}")
    return EchoRecords(tuple(ds.records), own, DATASET, (path,),
                       (f"a dataset of {own.protocol.text}, not the model's protocol: read on its own grid",))

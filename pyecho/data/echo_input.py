"""Echoes a user gives `pyecho predict`, read into complex records on a learned model's grid.

A model's grid is any object with ``tau_us``, ``dt_us``, ``n_samples`` and ``thetas`` (such as
``pyecho.learn.domain.EchoGrid``): samples t_k = k·dt_us, k = 1 .. n_samples, after the
excitation; the refocusing pulse at tau_us; one record per excitation angle in ``thetas``.

:func:`read_echoes` reads

* a `pyecho sim` dataset (a .parquet file or a directory of parts): every sample as stored,
  with no resampling; its own grid is returned beside the records, so that a model can flag a
  different τ, dt or angle. A multi-angle dataset that holds every angle of the model gives
  those angles, in the model's order;
* a CSV with ``t_us``, ``re_M`` and ``im_M`` (the `pyecho echo` file): one echo, resampled
  onto the model's grid (:func:`pyecho.io.to_model_grid`: a cubic spline through Re and Im on
  each side of the refocusing pulse);
* an NPY of complex records (T,), (B, T) or (B, A, T) already on the model's grid;
* a Bruker or Varian/Agilent experiment directory or an NMRPipe file
  (:func:`pyecho.io.read_acquisition`, then :func:`pyecho.io.to_model_grid`): one echo per
  record;
* several paths: one echo per angle of a multi-angle model, in the model's angle order, each
  a CSV, an NPY (T,) or a one-record spectrometer file.

Anything that cannot match the model raises one :class:`~pyecho.errors.InputFileError` (or,
for an option, :class:`~pyecho.errors.ParameterError`) naming the file and what was expected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import polars as pl

from pyecho.data.echo_file import CSV_HEADER
from pyecho.data.store import load_dataset
from pyecho.errors import InputFileError, ParameterError
from pyecho.io import Acquisition, read_acquisition, spectrometer_format, to_model_grid

T_COLUMN, RE_COLUMN, IM_COLUMN, ABS_COLUMN = CSV_HEADER.split(",")
#: the kinds of input, as :attr:`EchoRecords.kind` names them (spectrometer files: pyecho.io.SOURCES)
DATASET, CSV, NPY = "dataset", "csv", "npy"
#: several paths: one echo per angle
PER_ANGLE = "one file per angle"
#: dataset angles this close to a model's (rad; 0.0002°) are that angle
ANGLE_TOLERANCE_RAD = 1e-6


class ModelGrid(Protocol):
    """The grid a model was trained on (``pyecho.learn.domain.EchoGrid`` is one)."""

    tau_us: float
    dt_us: float
    n_samples: int
    thetas: tuple[float, ...]


@dataclass(frozen=True)
class EchoRecords:
    """Echoes ready for a model, and the grid they were recorded on.

    Attributes
    ----------
    M : complex array (B, A, T) -- B echoes, A angles (the model's), T samples at
        t_k = k·dt_us (µs), k = 1..T (complex64 as a dataset or NPY stores it, else complex128)
    tau_us, dt_us : the records' pulse spacing and sample step (µs): the model's for resampled
        inputs, a dataset's own otherwise
    thetas : the records' excitation angles (rad), one per angle of M
    kind : what was read: "dataset", "csv", "npy", "bruker", "varian", "nmrpipe" or
        "one file per angle"
    paths : the files read
    """

    M: np.ndarray
    tau_us: float
    dt_us: float
    thetas: tuple[float, ...]
    kind: str
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return self.M.shape[0]

    @property
    def n_samples(self) -> int:
        return self.M.shape[-1]


def model_times_us(grid: ModelGrid) -> np.ndarray:
    """The model's sample times t_k = k·dt_us, k = 1..n_samples (µs), shape (T,)."""
    return grid.dt_us * np.arange(1, grid.n_samples + 1)


def _degrees(thetas) -> str:
    return ", ".join(f"{math.degrees(t):.4g}°" for t in thetas)


def _needs(grid: ModelGrid) -> str:
    """What the model takes, for error messages."""
    A, T = len(grid.thetas), grid.n_samples
    shapes = f"(T,), (B, T) or (B, 1, T) with T = {T}" if A == 1 else f"(B, {A}, {T})"
    return (f"the model needs {A} angle(s) ({_degrees(grid.thetas)}) x T = {T} samples (tau {grid.tau_us:g} µs, "
            f"dt {grid.dt_us:g} µs); an NPY of shape {shapes}")


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


def read_echoes(paths: Sequence[str | Path], grid: ModelGrid, *, tau_us: float | None = None,
                start_us: float | None = None) -> EchoRecords:
    """Read the echoes ``paths`` name into records on ``grid`` (see the module docstring).

    Parameters
    ----------
    paths : one input, or one per angle of a multi-angle model (in the model's angle order)
    grid : the model's grid (tau_us, dt_us, n_samples, thetas)
    tau_us : the records' pulse spacing (µs) where a file does not record it: a CSV (default:
        the model's) or a spectrometer file (default: the file's, Bruker D6 or Varian tau).
        A τ more than half a model step off the model's is refused.
    start_us : time of a spectrometer record's first point after the excitation (µs, default 0)

    Returns
    -------
    :class:`EchoRecords` with M of shape (B, len(grid.thetas), grid.n_samples).
    """
    paths = tuple(Path(p) for p in paths)
    if not paths:
        raise ParameterError("INPUT: give at least one file or directory")
    kinds = [input_kind(p) for p in paths]
    for p, k in zip(paths, kinds):
        if tau_us is not None and k in (DATASET, NPY):
            raise ParameterError(f"--tau-us {tau_us}: {p} ({k}) is on its own time grid; --tau-us is for CSV and "
                                 "spectrometer files")
        if start_us is not None and k in (DATASET, NPY, CSV):
            raise ParameterError(f"--start-us {start_us}: {p} ({k}) has its own time axis; --start-us is for "
                                 "spectrometer files")
    n_angles = len(grid.thetas)
    if len(paths) > 1:
        if len(paths) != n_angles:
            give = "one input" if n_angles == 1 else f"one input, or {n_angles} in that order"
            raise InputFileError(f"{len(paths)} inputs given; several inputs are one echo per angle, and the model has "
                                 f"{n_angles} angle(s) ({_degrees(grid.thetas)}): give {give}")
        M = np.stack([_one_echo(p, k, grid, tau_us, start_us) for p, k in zip(paths, kinds)])[None]
        return EchoRecords(M, grid.tau_us, grid.dt_us, tuple(grid.thetas), PER_ANGLE, paths)
    path, kind = paths[0], kinds[0]
    if kind == DATASET:
        return _read_dataset(path, grid)
    if kind == NPY:
        M = _read_npy(path)
        shape = M.shape
        if M.ndim < 3:
            M = M.reshape(-1, 1, M.shape[-1])  # (T,) or (B, T): one angle
        if M.shape[1:] != (n_angles, grid.n_samples):
            raise InputFileError(f"{path}: holds complex records of shape {shape}; {_needs(grid)}")
    else:
        M = _read_csv(path, grid, tau_us) if kind == CSV else _read_spectrometer(path, grid, tau_us, start_us)
        M = M.reshape(-1, 1, grid.n_samples)  # one echo, or one per record of a ser / arrayed fid
        if n_angles != 1:
            raise InputFileError(f"{path}: holds {len(M)} echo(es) at one angle; the model takes one echo per angle, "
                                 f"{n_angles} ({_degrees(grid.thetas)}): give one file per angle in that order")
    return EchoRecords(M, grid.tau_us, grid.dt_us, tuple(grid.thetas), kind, paths)


def _one_echo(path: Path, kind: str, grid: ModelGrid, tau_us, start_us) -> np.ndarray:
    """One echo (T,) on the model's grid, from one of several per-angle inputs."""
    if kind == CSV:
        return _read_csv(path, grid, tau_us)
    if kind == NPY:
        M = _read_npy(path)
        if M.shape != (grid.n_samples,):
            raise InputFileError(f"{path}: holds complex records of shape {M.shape}; as one of several inputs (one "
                                 f"per angle) it must be one echo of shape ({grid.n_samples},)")
        return M
    if kind == DATASET:
        raise InputFileError(f"{path}: a dataset holds its own angles; give it alone, not as one of several inputs")
    M = _read_spectrometer(path, grid, tau_us, start_us)
    if M.ndim != 1:
        raise InputFileError(f"{path}: holds {M.shape[0]} records; as one of several inputs (one per angle) it must "
                             "hold one")
    return M


def _check_finite(path: Path, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise InputFileError(f"{path}: contains NaN or infinite values")


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


def _read_csv(path: Path, grid: ModelGrid, tau_us: float | None) -> np.ndarray:
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
    _check_finite(path, t)
    _check_finite(path, M)
    order = np.argsort(t, kind="stable")
    t, M = t[order], M[order]
    if len(t) < 2 or np.any(np.diff(t) <= 0):
        raise InputFileError(f"{path}: {T_COLUMN} needs two or more distinct times; found {len(t)} rows with "
                             f"{len(np.unique(t))} distinct times")
    # a CSV does not record tau: the user's (tau_us), else the model's
    acq = Acquisition(t_us=t, M=M, dwell_us=float(np.diff(t).max()), tau_us=grid.tau_us, source=CSV, path=path,
                      start_us=float(t[0]), tau_origin="the model's: a CSV does not record it")
    return to_model_grid(acq, t_us_model=model_times_us(grid), tau_us_model=grid.tau_us, tau_us=tau_us)


def _read_spectrometer(path: Path, grid: ModelGrid, tau_us, start_us) -> np.ndarray:
    acq = read_acquisition(path, tau_us=tau_us, start_us=0.0 if start_us is None else start_us)
    return to_model_grid(acq, t_us_model=model_times_us(grid), tau_us_model=grid.tau_us)


def _read_dataset(path: Path, grid: ModelGrid) -> EchoRecords:
    ds = load_dataset(path, columns=("sample_id",))
    thetas = tuple(float(t) for t in ds.thetas)
    series = ds.series
    # the model's angles where the dataset holds them all (in the model's order); else, as many
    # angles as the model's are passed on for the domain guard to flag
    pick = [int(np.argmin(np.abs(np.asarray(thetas) - t))) for t in grid.thetas]
    if all(abs(thetas[i] - t) <= ANGLE_TOLERANCE_RAD for i, t in zip(pick, grid.thetas)):
        series, thetas = series[:, pick], tuple(thetas[i] for i in pick)
    elif len(thetas) != len(grid.thetas):
        raise InputFileError(f"{path}: holds echoes at {len(thetas)} angle(s) ({_degrees(thetas)}); {_needs(grid)}")
    tau_us, dt_us = float(ds.metadata["tau_us"]), float(ds.metadata["dt_us"])
    if series.shape[-1] != grid.n_samples:
        raise InputFileError(f"{path}: its echoes have T = {series.shape[-1]} samples (tau {tau_us:g} µs, dt "
                             f"{dt_us:g} µs); {_needs(grid)}")
    _check_finite(path, series)
    return EchoRecords(series, tau_us, dt_us, thetas, DATASET, (path,))

"""Echo datasets on disk: Parquet part files with labels, series and run metadata.

A dataset is one Parquet file or a directory of ``part-{first:06d}-{last:06d}.parquet`` files
(sample ids first..last inclusive), all written from one :class:`DatasetConfig`. Columns
(schema version 1):

=============  =====================  ===============================================
column         dtype                  meaning
=============  =====================  ===============================================
sample_id      Int64                  global sample index i
seed           UInt64                 detuning seed: ``simulate(params, seed=seed)``
kernel         Utf8                   gaussian, power, rkky (or uniform)
kernel_param   Float64                xi, p or gamma
alpha_x/y/z    Float64                couplings (rad/us), alpha_x == alpha_y
W              Float64                alpha_x + alpha_y + alpha_z (rad/us)
L              Float64                kernel length scale (lattice spacings)
kappa          Float64                kernel normalisation sum_j K(r_0j)
is_power       Boolean                the paper's "P" (long-range) class
M_re, M_im     Array(Float32, T)      M(t_k), k = 1..T = 3 n_tau, t_k = k dt_us
=============  =====================  ===============================================

File-level key/value metadata (Arrow schema metadata, so polars, pyarrow and pandas all see
it) holds JSON values under ``pyecho.<key>``: version, schema_version, engine, device, dtype,
lattice, tau_us, dt_us, theta, linewidth_khz, t2_us, seed, config (the full DatasetConfig)
and created (UTC ISO time).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from pyecho.atomic import atomic_path
from pyecho.data.sampling import ConfigError, DatasetConfig
from pyecho.physics.params import EchoParams

SCHEMA_VERSION = 1
#: prefix of pyecho's keys in the Parquet key/value metadata
META_PREFIX = "pyecho."
#: glob of part files inside a dataset directory
PART_GLOB = "part-*.parquet"
#: label columns and their dtypes, in file order (M_re, M_im follow)
LABEL_SCHEMA: dict[str, pl.DataType] = {
    "sample_id": pl.Int64,
    "seed": pl.UInt64,
    "kernel": pl.Utf8,
    "kernel_param": pl.Float64,
    "alpha_x": pl.Float64,
    "alpha_y": pl.Float64,
    "alpha_z": pl.Float64,
    "W": pl.Float64,
    "L": pl.Float64,
    "kappa": pl.Float64,
    "is_power": pl.Boolean,
}
SERIES_COLUMNS = ("M_re", "M_im")


class DatasetError(ValueError):
    """A dataset file or directory cannot be used; the message names the file and why."""


def dataset_schema(n_samples: int) -> dict[str, pl.DataType]:
    """Full column -> dtype mapping for series of length ``n_samples`` (T = 3 n_tau)."""
    return {**LABEL_SCHEMA, **{c: pl.Array(pl.Float32, n_samples) for c in SERIES_COLUMNS}}


def build_frame(
    sample_ids: Sequence[int], params: Sequence[EchoParams], seeds: np.ndarray, series: np.ndarray
) -> pl.DataFrame:
    """One part's rows: labels from ``params``, M from ``series`` (complex, shape (B, T))."""
    series = np.asarray(series)
    n = series.shape[1]
    return pl.DataFrame(
        {
            "sample_id": np.asarray(sample_ids, dtype=np.int64),
            "seed": np.asarray(seeds, dtype=np.uint64),
            "kernel": [p.kernel for p in params],
            "kernel_param": [p.kernel_param for p in params],
            "alpha_x": [p.alpha_x for p in params],
            "alpha_y": [p.alpha_y for p in params],
            "alpha_z": [p.alpha_z for p in params],
            "W": [p.W for p in params],
            "L": [p.L for p in params],
            "kappa": [p.kappa for p in params],
            "is_power": [p.is_power for p in params],
            "M_re": pl.Series(series.real.astype(np.float32), dtype=pl.Array(pl.Float32, n)),
            "M_im": pl.Series(series.imag.astype(np.float32), dtype=pl.Array(pl.Float32, n)),
        },
        schema=dataset_schema(n),
    )


def run_metadata(config: DatasetConfig, engine: str, device: str, dtype: str, created: str) -> dict:
    """The metadata dict that :func:`write_part` stores and :func:`read_metadata` returns."""
    import pyecho  # deferred: pyecho/__init__ imports the engines, not this module

    return {
        "version": pyecho.__version__,
        "schema_version": SCHEMA_VERSION,
        "engine": engine,
        "device": device,
        "dtype": dtype,
        **{k: getattr(config, k) for k in ("lattice", "tau_us", "dt_us", "theta", "linewidth_khz", "t2_us", "seed")},
        "config": config.to_dict(),
        "created": created,
    }


def write_part(path: str | Path, frame: pl.DataFrame, metadata: dict) -> Path:
    """Write ``frame`` to ``path`` atomically, with ``metadata`` (JSON-able values) attached.

    A reader never sees a half-written file: it is written to a temporary sibling and renamed.
    """
    table = frame.to_arrow()
    encoded = {f"{META_PREFIX}{k}": json.dumps(v) for k, v in metadata.items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **encoded})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


@dataclass(frozen=True)
class PartInfo:
    """What a part's footer says: its metadata (parsed), config and row count."""

    path: Path
    metadata: dict
    config: DatasetConfig
    num_rows: int


def inspect_part(path: str | Path) -> PartInfo:
    """Read and check one part's footer (cheap: no data pages); DatasetError names the file."""
    path = Path(path)
    try:
        footer = pq.ParquetFile(path)
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc}); delete it and rerun to redo it") from None
    raw = {k.decode(): v.decode() for k, v in (footer.schema_arrow.metadata or {}).items()}
    meta = {k[len(META_PREFIX):]: json.loads(v) for k, v in raw.items() if k.startswith(META_PREFIX)}
    if "config" not in meta or "schema_version" not in meta:
        raise DatasetError(f"{path}: not a pyecho dataset file (no pyecho metadata)")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: schema version {meta['schema_version']}, this pyecho reads version {SCHEMA_VERSION}"
        )
    try:
        config = DatasetConfig.from_dict(meta["config"])
    except ConfigError as exc:
        raise DatasetError(f"{path}: stored config is invalid here ({exc})") from None
    expected = dataset_schema(config.n_samples)
    found = pl.from_arrow(footer.schema_arrow.empty_table()).schema
    if dict(found) != expected:
        raise DatasetError(f"{path}: columns {dict(found)} do not match schema version {SCHEMA_VERSION}")
    return PartInfo(path, meta, config, footer.metadata.num_rows)


def part_files(path: str | Path) -> list[Path]:
    """The Parquet files of a dataset: ``[path]`` for a file, sorted parts for a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such dataset file or directory")
    files = sorted(path.glob(PART_GLOB))
    if not files:
        raise FileNotFoundError(f"{path}: directory holds no {PART_GLOB} files")
    return files


def inspect_dataset(path: str | Path) -> list[PartInfo]:
    """Check every part of a dataset and that all were written from one config."""
    parts = [inspect_part(f) for f in part_files(path)]
    first = parts[0]
    for part in parts[1:]:
        if part.config != first.config:
            keys = ", ".join(part.config.differing_keys(first.config))
            raise DatasetError(
                f"{part.path}: written with a different config than {first.path.name} (differs in: {keys})"
            )
    return parts


def scan_dataset(path: str | Path) -> pl.LazyFrame:
    """Lazy frame over a dataset file or directory of parts (checked first, then scanned)."""
    return _scan(inspect_dataset(path))


def _scan(parts: Sequence[PartInfo]) -> pl.LazyFrame:
    return pl.scan_parquet([p.path for p in parts])


def _merge_metadata(parts: Sequence[PartInfo]) -> dict:
    """One metadata dict: shared values as is, run values that differ between parts
    (engine, device, dtype, version) as the sorted list of distinct values; created is the
    earliest; n_parts and n_rows are added."""
    merged = {}
    for key in parts[0].metadata:
        values = [p.metadata.get(key) for p in parts]
        distinct = {json.dumps(v, sort_keys=True): v for v in values}
        if key == "created":
            merged[key] = min(values)
        else:
            merged[key] = values[0] if len(distinct) == 1 else [distinct[k] for k in sorted(distinct)]
    merged["n_parts"] = len(parts)
    merged["n_rows"] = sum(p.num_rows for p in parts)
    return merged


def read_metadata(path: str | Path) -> dict:
    """Parsed metadata of a dataset file or directory (see :func:`_merge_metadata`)."""
    return _merge_metadata(inspect_dataset(path))


@dataclass
class EchoDataset:
    """A dataset in memory.

    Attributes
    ----------
    M : complex64 ndarray, shape (B, T)
        M(t_k) per row, rows sorted by sample_id.
    labels : pl.DataFrame
        The label columns (B rows, same order as ``M``).
    metadata : dict
        As returned by :func:`read_metadata`.
    """

    M: np.ndarray
    labels: pl.DataFrame
    metadata: dict

    def __len__(self) -> int:
        return self.M.shape[0]

    @property
    def n_tau(self) -> int:
        """Steps between the pulses; T = 3 n_tau."""
        return self.M.shape[1] // 3

    @property
    def t_us(self) -> np.ndarray:
        """Sample times t_k = k dt_us, k = 1..T (us), shape (T,)."""
        return self.metadata["dt_us"] * np.arange(1, self.M.shape[1] + 1)

    @property
    def echo_index(self) -> int:
        """0-based column of M at t = 2 tau (the echo), 2 n_tau - 1."""
        return 2 * self.n_tau - 1


def load_dataset(path: str | Path, columns: Sequence[str] | None = None) -> EchoDataset:
    """Load a dataset file or directory into memory.

    ``columns`` picks label columns (default: all of them); sample_id is always loaded.
    """
    columns = list(LABEL_SCHEMA) if columns is None else ["sample_id", *(c for c in columns if c != "sample_id")]
    unknown = [c for c in columns if c not in LABEL_SCHEMA]
    if unknown:
        raise ValueError(f"columns: unknown {unknown}; label columns are {', '.join(LABEL_SCHEMA)}")
    parts = inspect_dataset(path)
    frame = _scan(parts).select(*columns, *SERIES_COLUMNS).sort("sample_id").collect()
    series = np.empty((frame.height, parts[0].config.n_samples), dtype=np.complex64)
    series.real = frame["M_re"].to_numpy()
    series.imag = frame["M_im"].to_numpy()
    return EchoDataset(M=series, labels=frame.drop(SERIES_COLUMNS), metadata=_merge_metadata(parts))

"""Echo datasets on disk: Parquet part files with labels, series and run metadata.

A dataset is one Parquet file or a directory of ``part-{first:06d}-{last:06d}.parquet`` files
(sample ids first..last inclusive), all written from one :class:`DatasetConfig` (or one
:class:`~pyecho.data.sweep.SweepConfig`: a grid of experiments, ``pyecho sweep``). Every row is
one record, one measurement of one sample, and carries every EchoParams field, so a row alone
says how to reproduce it (``simulate(params_from_row(row), seed=row["seed"])``). A protocol of
several measurements (pyecho.physics.protocol) has one row per (sample, measurement): rows with
the same ``sample_id`` share parameters and detunings and differ in ``sequence``, ``theta`` and
``tau_us`` (``measurement`` is the index in the config's protocol); their records may differ in
length. Columns (schema version 3):

==============  =====================  ===============================================
column          dtype                  meaning
==============  =====================  ===============================================
sample_id       Int64                  global sample index i
measurement     Int32                  index of the row's measurement in the protocol
seed            UInt64                 detuning seed: ``simulate(params, seed=seed)``
kernel          Utf8                   gaussian, power, rkky (or uniform)
kernel_param    Float64                xi, p or gamma
alpha_x/y/z     Float64                couplings (rad/us), alpha_x == alpha_y
W               Float64                alpha_x + alpha_y + alpha_z (rad/us)
L               Float64                kernel length scale (lattice spacings)
kappa           Float64                kernel normalisation sum_j K(r_0j)
is_power        Boolean                the paper's "P" (long-range) class
lattice         Int64                  side n of the n x n lattice
tau_us, dt_us   Float64                pulse spacing and step (us)
theta           Float64                excitation angle (rad)
linewidth_khz   Float64                detuning FWHM (kHz)
center_khz      Float64                detuning centre, the carrier offset (kHz)
t2_us           Float64 (null: none)   transverse relaxation (us)
gamma1/2/3_...  Float64                Lindblad rates gamma1_per_us, ... (1/us)
scheme          Utf8                   explicit or extrapolated
field_every     Int64                  steps per field evaluation
sequence        Utf8                   hahn, cpmg:N, cp:N or a pulse list's JSON
geometry        Utf8                   square, rectangular:RATIO or triangular
M_re, M_im      List(Float32)          M(t_k), k = 1..T, t_k = k dt_us (T: the measurement's)
==============  =====================  ===============================================

File-level key/value metadata (Arrow schema metadata, so polars, pyarrow and pandas all see
it) holds JSON values under ``pyecho.<key>``: version, schema_version, kind (dataset or sweep),
engine, device, dtype, the experiment's fields (lattice, dt_us, linewidth_khz, t2_us, scheme,
field_every, gamma rates, geometry), protocol (a list of {sequence, theta, tau_us}), seed,
config (the full DatasetConfig) and created (UTC ISO time).
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
from pyecho.errors import InputFileError, ParameterError
from pyecho.data.sampling import EXPERIMENT_FIELDS, ConfigError, DatasetConfig
from pyecho.data.sweep import SweepConfig
from pyecho.physics.params import EchoParams
from pyecho.physics.protocol import Protocol

SCHEMA_VERSION = 3
#: prefix of pyecho's keys in the Parquet key/value metadata
META_PREFIX = "pyecho."
#: glob of part files inside a dataset directory
PART_GLOB = "part-*.parquet"
#: the labels learned from an echo (derived from the parameters)
TARGET_SCHEMA: dict[str, pl.DataType] = {
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
#: the EchoParams fields of the experiment, one column each
PARAM_SCHEMA: dict[str, pl.DataType] = {
    "lattice": pl.Int64,
    "tau_us": pl.Float64,
    "dt_us": pl.Float64,
    "theta": pl.Float64,
    "linewidth_khz": pl.Float64,
    "center_khz": pl.Float64,
    "t2_us": pl.Float64,
    "gamma1_per_us": pl.Float64,
    "gamma2_per_us": pl.Float64,
    "gamma3_per_us": pl.Float64,
    "scheme": pl.Utf8,
    "field_every": pl.Int64,
    "sequence": pl.Utf8,
    "geometry": pl.Utf8,
}
#: label columns and their dtypes, in file order (M_re, M_im follow)
LABEL_SCHEMA: dict[str, pl.DataType] = {
    "sample_id": pl.Int64,
    "measurement": pl.Int32,
    "seed": pl.UInt64,
    **TARGET_SCHEMA,
    **PARAM_SCHEMA,
}
SERIES_COLUMNS = ("M_re", "M_im")


class DatasetError(InputFileError):
    """A dataset file or directory cannot be used; the message names the file and why."""


def dataset_schema() -> dict[str, pl.DataType]:
    """Full column -> dtype mapping (records of any length: lists of float32)."""
    return {**LABEL_SCHEMA, **{c: pl.List(pl.Float32) for c in SERIES_COLUMNS}}


def build_frame(
    sample_ids: Sequence[int], params: Sequence[EchoParams], seeds: np.ndarray, records: Sequence[np.ndarray],
    measurements: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Rows for ``records`` (R complex 1-D arrays, lengths may differ) of ``params`` (R), sample
    ids and detuning seeds (R); ``measurements`` (R) indexes each row's measurement in the
    protocol (default 0)."""
    records = [np.asarray(r) for r in records]
    rows = len(params)
    as_list = lambda part: pl.Series([part(r).astype(np.float32) for r in records],  # noqa: E731
                                     dtype=pl.List(pl.Float32))
    dicts = [p.to_dict() for p in params]
    columns = {
        "sample_id": np.asarray(sample_ids, dtype=np.int64),
        "measurement": np.zeros(rows, np.int32) if measurements is None else np.asarray(measurements, dtype=np.int32),
        "seed": np.asarray(seeds, dtype=np.uint64),
        "alpha_x": [p.alpha_x for p in params],
        "alpha_y": [p.alpha_y for p in params],
        "W": [p.W for p in params],
        "L": [p.L for p in params],
        "kappa": [p.kappa for p in params],
        "is_power": [p.is_power for p in params],
        **{name: [d[name] for d in dicts] for name in ("kernel", "kernel_param", "alpha_z", *PARAM_SCHEMA)},
        "M_re": as_list(np.real),
        "M_im": as_list(np.imag),
    }
    return pl.DataFrame(columns, schema=dataset_schema())


def column_of(field: str) -> str:
    """The dataset column of an EchoParams field (alpha_xy is stored as alpha_x and alpha_y)."""
    return "alpha_x" if field == "alpha_xy" else field


def params_from_row(row: dict) -> EchoParams:
    """The EchoParams of one dataset row (a dict of its columns, e.g. from ``frame.row(i, named=True)``)."""
    return EchoParams(kernel=row["kernel"], kernel_param=row["kernel_param"], alpha_xy=row["alpha_x"],
                      alpha_z=row["alpha_z"], **{name: row[name] for name in PARAM_SCHEMA})


#: the kinds of configuration a dataset can be written from (metadata key "kind")
CONFIG_KINDS = {"dataset": DatasetConfig, "sweep": SweepConfig}


def config_kind(config: DatasetConfig | SweepConfig) -> str:
    return next(kind for kind, cls in CONFIG_KINDS.items() if isinstance(config, cls))


def run_metadata(config: DatasetConfig | SweepConfig, engine: str, device: str, dtype: str, created: str) -> dict:
    """The metadata dict that :func:`write_part` stores and :func:`read_metadata` returns."""
    import pyecho  # deferred: pyecho/__init__ imports the engines, not this module

    experiment = config.base if isinstance(config, SweepConfig) else config.echo_params()
    return {
        "version": pyecho.__version__,
        "schema_version": SCHEMA_VERSION,
        "kind": config_kind(config),
        "engine": engine,
        "device": device,
        "dtype": dtype,
        **{k: experiment.to_dict()[k] for k in EXPERIMENT_FIELDS},
        "protocol": config.protocol.to_list(),
        "seed": config.seed,
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
    config: DatasetConfig | SweepConfig
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
    kind = meta.get("kind", "dataset")
    if kind not in CONFIG_KINDS:
        raise DatasetError(f"{path}: unknown dataset kind {kind!r}; this pyecho reads {', '.join(CONFIG_KINDS)}")
    try:
        config = CONFIG_KINDS[kind].from_dict(meta["config"])
    except ConfigError as exc:
        raise DatasetError(f"{path}: stored config is invalid here ({exc})") from None
    expected = dataset_schema()
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
        raise DatasetError(f"{path}: no such dataset file or directory")
    files = sorted(path.glob(PART_GLOB))
    if not files:
        raise DatasetError(f"{path}: directory holds no {PART_GLOB} files")
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
    """A loaded dataset, one record per sample and measurement.

    Attributes
    ----------
    records : tuple of complex64 ndarrays (or read-only memory maps), one per measurement, each (B, T_k)
        M(t) of every sample (sorted by sample_id) as measured by measurement k of the protocol.
    labels : pl.DataFrame
        The label and parameter columns, one row per sample (same order; the measurement
        columns sequence, theta and tau_us are the first measurement's).
    metadata : dict
        As returned by :func:`read_metadata`.
    config : DatasetConfig or SweepConfig
        The configuration every part was written from.
    """

    records: tuple[np.ndarray, ...]
    labels: pl.DataFrame
    metadata: dict
    config: DatasetConfig | SweepConfig

    def __len__(self) -> int:
        return self.records[0].shape[0]

    @property
    def protocol(self) -> Protocol:
        return self.config.protocol

    @property
    def dt_us(self) -> float:
        return self.config.dt_us

    @property
    def M(self) -> np.ndarray:  # noqa: N802 (the physics name)
        """The first measurement's records, complex (B, T_0)."""
        return self.records[0]

    @property
    def t_us(self) -> np.ndarray:
        """Sample times of the first measurement, t_k = k dt_us, k = 1..T_0 (us), shape (T_0,)."""
        return self.dt_us * np.arange(1, self.records[0].shape[-1] + 1)

    @property
    def echo_index(self) -> int:
        """0-based sample of the first measurement's (first) echo top; 2 n_tau - 1 for the Hahn echo."""
        return self.measurement_params(0).echo_samples[0]

    def measurement_params(self, k: int) -> EchoParams:
        """An EchoParams of measurement ``k`` on this dataset's experiment (for its time grid,
        pulse times and echo samples; the kernel and couplings are placeholders)."""
        return self.config.protocol[k].apply(self.config.echo_params() if isinstance(self.config, DatasetConfig)
                                             else self.config.base)


#: files of a memory-mapped record cache (``load_dataset(..., mmap_dir=...)``)
_CACHE_MANIFEST = "manifest.json"
_CACHE_RECORDS = "records-{k}.npy"


def _part_fingerprint(parts: Sequence[PartInfo]) -> list[dict]:
    """What identifies the parts a cache was read from: name, size, modification time."""
    return [{"name": p.path.name, "bytes": p.path.stat().st_size, "mtime_ns": p.path.stat().st_mtime_ns}
            for p in parts]


def _cached_records(directory: Path, fingerprint: list[dict], shapes: list[tuple[int, int]]
                    ) -> tuple[np.ndarray, ...] | None:
    """The records of a complete cache read from exactly these parts (read-only memory maps), or None."""
    try:
        manifest = json.loads((directory / _CACHE_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest != {"parts": fingerprint, "shapes": [list(s) for s in shapes]}:
        return None
    return tuple(np.load(directory / _CACHE_RECORDS.format(k=k), mmap_mode="r") for k in range(len(shapes)))


def load_dataset(path: str | Path, columns: Sequence[str] | None = None, *,
                 mmap_dir: str | Path | None = None) -> EchoDataset:
    """Load a dataset file or directory: labels in memory, records in memory or memory-mapped.

    ``columns`` picks label columns (default: all of them); sample_id is always loaded. The
    parts are read one at a time into arrays allocated once (the records of every part, one
    array per measurement), so the peak memory is the dataset's records plus one part.

    ``mmap_dir``: the records go to ``records-{k}.npy`` files there instead of memory, and come
    back as read-only memory maps: a dataset larger than memory is read part by part, and the
    operating system pages in the rows a computation touches. A complete cache read from the
    same part files (names, sizes, modification times: ``manifest.json``) is reused; a cache
    is complete only once its manifest is written, the last step.
    """
    columns = list(LABEL_SCHEMA) if columns is None else ["sample_id", *(c for c in columns if c != "sample_id")]
    unknown = [c for c in columns if c not in LABEL_SCHEMA]
    if unknown:
        raise ParameterError(f"columns: unknown {unknown}; label columns are {', '.join(LABEL_SCHEMA)}")
    parts = inspect_dataset(path)
    config = parts[0].config
    n_meas = len(config.protocol)
    n_rows = sum(p.num_rows for p in parts)
    if n_rows % n_meas:
        raise _missing_rows(path, n_meas)
    shapes = [(n_rows // n_meas, length) for length in config.record_lengths]
    wanted = list(dict.fromkeys([*columns, "measurement"]))
    cache = None if mmap_dir is None else Path(mmap_dir)
    fingerprint = None if cache is None else _part_fingerprint(parts)
    records = None if cache is None else _cached_records(cache, fingerprint, shapes)
    if records is None and cache is None:
        records = tuple(np.empty(shape, dtype=np.complex64) for shape in shapes)
        labels = _read_parts(path, parts, wanted, columns, records)
    elif records is None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / _CACHE_MANIFEST).unlink(missing_ok=True)  # incomplete until rewritten below
        files = [cache / _CACHE_RECORDS.format(k=k) for k in range(n_meas)]
        maps = tuple(np.lib.format.open_memmap(f, mode="w+", dtype=np.complex64, shape=s) for f, s in zip(files, shapes))
        labels = _read_parts(path, parts, wanted, columns, maps)
        for m in maps:
            m.flush()
        del maps
        with atomic_path(cache / _CACHE_MANIFEST) as tmp:
            tmp.write_text(json.dumps({"parts": fingerprint, "shapes": [list(s) for s in shapes]}))
        records = tuple(np.load(f, mmap_mode="r") for f in files)
    else:
        labels = _read_parts(path, parts, wanted, columns, None)
    return EchoDataset(records=tuple(records), labels=labels, metadata=_merge_metadata(parts), config=config)


def _missing_rows(path, n_meas: int) -> DatasetError:
    return DatasetError(f"{path}: every sample needs one row per measurement ({n_meas}); some are missing or "
                        "repeated")


def _read_parts(path, parts: Sequence[PartInfo], wanted: list[str], columns: list[str],
                records: tuple[np.ndarray, ...] | None) -> pl.DataFrame:
    """The label frame of every part, read one part at a time; each part's records are written
    into ``records`` (None: the labels only, the records are cached already)."""
    config = parts[0].config
    n_meas = len(config.protocol)
    labels, offset = [], 0
    for part in parts:
        series = [*SERIES_COLUMNS] if records is not None else []
        frame = pl.read_parquet(part.path, columns=[*wanted, *series]).sort("sample_id", "measurement")
        measurement = frame["measurement"].to_numpy()
        if frame.height % n_meas or not np.array_equal(measurement, np.tile(np.arange(n_meas), frame.height // n_meas)):
            raise _missing_rows(path, n_meas)
        b = frame.height // n_meas
        for k, M in enumerate(records or ()):
            rows = frame.filter(pl.col("measurement") == k)
            for out, column in ((M.real, "M_re"), (M.imag, "M_im")):
                flat = rows[column].explode().to_numpy()
                if flat.size != b * M.shape[1]:
                    raise DatasetError(f"{part.path}: records of measurement {k} ({config.protocol[k].text}) are not "
                                       f"all {M.shape[1]} samples long")
                out[offset:offset + b] = flat.reshape(b, -1)
        labels.append(frame.filter(pl.col("measurement") == 0).drop(*series,
                                                                     *([] if "measurement" in columns else ["measurement"])))
        offset += b
    labels = pl.concat(labels)
    if not labels["sample_id"].is_sorted() or labels["sample_id"].n_unique() != labels.height:
        raise DatasetError(f"{path}: parts overlap (a sample id appears in two parts)")
    return labels

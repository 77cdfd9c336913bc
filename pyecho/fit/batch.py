"""Many records fitted: one result file per record, resumable, here or on a Dask cluster.

A run's folder holds ``fit.json`` (what the run fits with: the prior, the protocol, the
settings; a rerun with other settings is refused unless it starts over), ``records/`` with one
JSON per record (written atomically when its fit ends: an interrupted run keeps every finished
record and a rerun fits only the rest), ``figures/`` with one PNG per record (measured vs
fitted, each measurement, with residuals), and ``fits.parquet`` + ``fits.csv``, the table of
every record, assembled from ``records/``.

Which families a record is fitted by: those whose probability under the learned model is at
least ``min_probability`` (docs/fit.md measures how often that excludes the true family), or
those the caller names.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from pyecho.atomic import atomic_path
from pyecho.data.factory import SERIAL, Executor, PartsLost, dask_client, map_on_dask
from pyecho.data.sampling import DatasetConfig
from pyecho.errors import InputFileError, ParameterError
from pyecho.fit.defaults import DEFAULT_MIN_PROBABILITY
from pyecho.fit.estimate import (REPORTED, FamilyComparison, FamilyFit, FitSettings, RecordFit, better_of,
                                 compare_families, fit_family, restart_points)
from pyecho.fit.forward import Engine
from pyecho.fit.space import ALPHA_XY, ALPHA_Z, FAMILIES, KERNEL_PARAM, FamilySpace
from pyecho.physics.protocol import RecordGrid

RUN_FILE, RECORD_DIR, FIGURE_DIR, TABLE_NAME = "fit.json", "records", "figures", "fits"
RUN_FORMAT = "pyecho.fit"
#: the fit settings a run folder has kept only since they existed, with what a run written
#: before did (no plain draws; the likelihood ratios read under the best-fitting family's error
#: model): such a folder resumes with these values and is refused, naming them, with others
SETTINGS_BEFORE_THEY_WERE_KEPT = {"more_draws": 0, "family_rule": "reference"}


def record_name(index: int) -> str:
    return f"record-{index:06d}"


@dataclass(frozen=True)
class FitJob:
    """What every record of a run is fitted with: the prior (``config``: bounds and experiment),
    the records' ``grid``, the ``settings``, the simulation ``lattice`` (default the prior's),
    ``families`` (None: by the learned model's probability, at least ``min_probability``) and
    whether to draw ``figures``."""

    config: DatasetConfig
    grid: RecordGrid
    settings: FitSettings = FitSettings()
    lattice: int | None = None
    families: tuple[str, ...] | None = None
    min_probability: float = DEFAULT_MIN_PROBABILITY
    figures: bool = True

    def __post_init__(self) -> None:
        if self.families is not None:
            unknown = [f for f in self.families if f not in FAMILIES or f not in self.config.kernels]
            if unknown or not self.families:
                raise ParameterError(f"--families: got {','.join(self.families) or 'none'}; the prior's families are "
                                     f"{','.join(k for k in self.config.kernels if k in FAMILIES)}")
        if not 0 <= self.min_probability < 1:
            raise ParameterError(f"--min-probability: got {self.min_probability}; must be in [0, 1)")

    def spaces(self) -> dict[str, FamilySpace]:
        return {k: FamilySpace(k, self.config, self.lattice) for k in self.config.kernels if k in FAMILIES}

    def to_dict(self) -> dict:
        s = asdict(self.settings)
        s["engine"] = asdict(self.settings.engine)
        return {"format": RUN_FORMAT, "prior": self.config.to_dict(), "grid": self.grid.to_dict(), "settings": s,
                "lattice": self.lattice, "families": None if self.families is None else list(self.families),
                "min_probability": self.min_probability}


@dataclass(frozen=True)
class RecordInput:
    """One sample to fit: its ``index`` in the input, its ``records`` (one complex (T_k,) array
    per measurement, NaN where missing), the learned model's ``prediction`` (name -> value of
    W, L, alpha_xy, alpha_z, t2_us; they start the fit) and its family ``probability``."""

    index: int
    records: tuple[np.ndarray, ...] = field(repr=False)
    prediction: dict
    probability: dict


@dataclass(frozen=True)
class RecordResult:
    """What a run keeps of one record's fit (one row of the table).

    kernel : the most probable family; probability : family -> probability from the fitted
    likelihoods (0 where not fitted); model_probability : the learned model's; fits : whether
    the mean-field model describes the record (gof_p_value above the settings' gof_level);
    chi2_by_measurement : χ²/n of each measurement; estimates : name -> (value, lo, hi) at
    ``level``; families : those fitted; by_family : family -> its own fit (chi2_per_dof, and
    value and sd of its kernel parameter and L); seconds, simulations; comparison : what the
    family probabilities are made of (None in runs written before it was kept), from which every
    rule of FAMILY_RULES can be read again."""

    index: int
    kernel: str
    probability: dict
    model_probability: dict
    fits: bool
    chi2_per_dof: float
    gof_p_value: float
    chi2_by_measurement: tuple[float, ...]
    estimates: dict
    level: float
    families: tuple[str, ...]
    by_family: dict
    seconds: float
    simulations: int
    comparison: FamilyComparison | None = None

    @classmethod
    def of(cls, item: RecordInput, fit: RecordFit) -> "RecordResult":
        chosen = fit.family(fit.kernel)
        return cls(item.index, fit.kernel, {k: fit.probability.get(k, 0.0) for k in FAMILIES},
                   dict(item.probability), fit.fits, fit.chi2_per_dof, fit.gof_p_value,
                   tuple(c / n for c, n in zip(chosen.chi2_by_measurement, chosen.n_by_measurement)),
                   {k: tuple(e) for k, e in fit.estimates.items()}, fit.level,
                   tuple(f.kernel for f in fit.families),
                   {f.kernel: {"chi2_per_dof": f.chi2_per_dof,
                               **{q: (f.value[q], f.sd[q]) for q in (KERNEL_PARAM, "L") if q in f.value}}
                    for f in fit.families},
                   fit.seconds, sum(f.simulations for f in fit.families), fit.comparison)

    def row(self) -> dict:
        """The table's columns for this record."""
        out = {"index": self.index, "kernel": self.kernel, **{f"p_{k}": self.probability[k] for k in FAMILIES},
               "fits": self.fits, "chi2_per_dof": self.chi2_per_dof, "gof_p_value": self.gof_p_value}
        for name in (*REPORTED, KERNEL_PARAM):
            value, lo, hi = self.estimates.get(name, (math.nan,) * 3)
            out |= {name: value, f"{name}_lo": lo, f"{name}_hi": hi}
        out |= {f"chi2_m{k + 1}": c for k, c in enumerate(self.chi2_by_measurement)}
        out |= {f"model_p_{k}": self.model_probability.get(k, math.nan) for k in FAMILIES}
        for k in FAMILIES:
            own = self.by_family.get(k, {})
            out |= {f"{k}_chi2_per_dof": own.get("chi2_per_dof", math.nan),
                    f"{k}_kernel_param": own.get(KERNEL_PARAM, (math.nan,))[0], f"{k}_L": own.get("L", (math.nan,))[0]}
        return out | {"families": ",".join(self.families), "seconds": self.seconds, "simulations": self.simulations}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "RecordResult":
        d = json.loads(text)
        d["chi2_by_measurement"] = tuple(d["chi2_by_measurement"])
        d["families"] = tuple(d["families"])
        d["estimates"] = {k: tuple(v) for k, v in d["estimates"].items()}
        d["by_family"] = {k: {q: tuple(v) if isinstance(v, list) else v for q, v in own.items()}
                          for k, own in d["by_family"].items()}
        if d.get("comparison") is not None:
            d["comparison"] = FamilyComparison.from_dict(d["comparison"])
        return cls(**d)


def read_record(path: Path) -> RecordResult:
    """A record's result file; InputFileError naming it if it cannot be read as one."""
    try:
        return RecordResult.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputFileError(f"{path}: not a readable fit record ({type(exc).__name__}: {exc}); delete it to fit "
                             "that record again") from None


def starts(spaces: dict[str, FamilySpace], prediction: dict) -> dict[str, np.ndarray]:
    """Each family's starting point from the learned model's ``prediction`` (W, L, alpha_xy,
    alpha_z, t2_us): the kernel parameter whose L is the predicted L, the alphas and T2 as
    predicted (clipped to the prior), the other nuisances at the prior's middle."""
    out = {}
    for kernel, space in spaces.items():
        values = {ALPHA_XY: prediction[ALPHA_XY], ALPHA_Z: prediction[ALPHA_Z]}
        if KERNEL_PARAM in space.names:
            values[KERNEL_PARAM] = space.kernel_param_of_length(prediction["L"])
        if "t2_us" in prediction and "log_t2_us" in space.names:
            values["t2_us"] = prediction["t2_us"]
        out[kernel] = space.clip(space.point(**{k: v for k, v in values.items()
                                                if (k == "t2_us" or k in space.names)}))
    return out


def families_to_fit(job: FitJob, item: RecordInput) -> tuple[str, ...]:
    """The families a record is fitted by: the job's, or those the learned model gives at least
    ``min_probability`` (the likeliest one where none does)."""
    spaces = job.spaces()
    chosen = job.families or tuple(k for k in spaces if item.probability.get(k, 0.0) >= job.min_probability)
    return chosen or (max(spaces, key=lambda k: item.probability.get(k, 0.0)),)


def fit_one_family(job: FitJob, item: RecordInput, kernel: str, start: np.ndarray | None = None) -> FamilyFit:
    """One record fitted by one family, from ``start`` (default: the learned model's prediction)."""
    space = job.spaces()[kernel]
    if start is None:
        start = starts({kernel: space}, item.prediction)[kernel]
    return fit_family(space, job.grid, item.records, start, job.settings)


def finish_record(job: FitJob, item: RecordInput, fits: list[FamilyFit], out: Path | None) -> RecordResult:
    """A record's family fits compared, written under ``out`` (its JSON, and its figure)."""
    spaces = job.spaces()
    fit = compare_families(fits, {f.kernel: spaces[f.kernel] for f in fits}, job.grid, job.settings)
    result = RecordResult.of(item, fit)
    if out is not None:
        if job.figures:
            from pyecho.fit.figures import plot_record_fit

            plot_record_fit(fit, job.grid, out / FIGURE_DIR / f"{record_name(item.index)}.png",
                            title=f"record {item.index}")
        with atomic_path(out / RECORD_DIR / f"{record_name(item.index)}.json") as tmp:
            tmp.write_text(result.to_json())
    return result


def differences(have: dict, wanted: dict) -> list[str]:
    """What differs between a run folder's ``have`` and this run's ``wanted`` (both :meth:`FitJob.to_dict`):
    each fit setting with its two values (a value that is itself a mapping, and every other part
    -- the prior, the records' grid, the families -- by its name only)."""
    out = []
    for key in union(wanted, have):
        there, now = have.get(key), wanted.get(key)
        if there == now:
            continue
        if key == "settings" and isinstance(there, dict) and isinstance(now, dict):
            out += [name if isinstance(there.get(name), dict) or isinstance(now.get(name), dict)
                    else f"{name}: {there.get(name, 'none')} there, {now.get(name, 'none')} now"
                    for name in union(now, there) if there.get(name) != now.get(name)]
        else:
            out.append(key)
    return out


def union(first: dict, second: dict) -> list:
    """The keys of ``first``, then those only ``second`` has (a folder of a newer version's may
    hold settings this one does not write)."""
    return [*first, *(key for key in second if key not in first)]


def prepare_run(job: FitJob, out: Path, *, overwrite: bool = False) -> set[int]:
    """Create (or check) the run folder; returns the indices already fitted there."""
    run_file = out / RUN_FILE
    wanted = json.loads(json.dumps(job.to_dict()))
    if run_file.is_file() and not overwrite:
        try:
            have = json.loads(run_file.read_text())
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{run_file}: not readable ({exc}); use --overwrite to start over") from None
        if isinstance(have.get("settings"), dict):
            # what a run written before the setting existed did: no plain draws, the reference rule
            for name, before in SETTINGS_BEFORE_THEY_WERE_KEPT.items():
                have["settings"].setdefault(name, before)
            # and every draw of the model's mean steered the minimiser
            have["settings"].setdefault("steering_draws", have["settings"].get("mean_draws"))
        if have != wanted:
            raise ParameterError(f"--out {out}: holds a fit run with other settings ({'; '.join(differences(have, wanted))}); "
                                 "use another folder, the same options, or --overwrite to start over")
    elif overwrite and out.exists():
        for folder in (RECORD_DIR, FIGURE_DIR):
            for path in (out / folder).glob("record-*"):
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_file) as tmp:
        tmp.write_text(json.dumps(wanted, indent=1))
    return {int(p.stem.split("-")[1]) for p in (out / RECORD_DIR).glob("record-*.json")}


def run_fits(job: FitJob, items: list[RecordInput], out: Path | None, *, executor: Executor = SERIAL,
             on_record: Callable[[RecordResult], None] | None = None) -> list[RecordResult]:
    """Fit every item and return their results in index order: one task per record and family,
    here one after another or on a Dask cluster (a local one: a single-threaded worker per core;
    the fits' small simulation batches run faster on one thread each than on several), then, once
    a record's families are in, one task per family to fit again from the best one's optimum
    (:func:`pyecho.fit.estimate.restart_points`, where the settings ask for restarts); each record
    compared and written as soon as its last fit is in. With ``out``, records already fitted there
    are read back, not fitted again. ``on_record(result)`` after each record."""
    done = {}
    if out is not None:
        for index in prepare_run(job, out) & {item.index for item in items}:
            done[index] = read_record(out / RECORD_DIR / f"{record_name(index)}.json")
    todo = {item.index: item for item in items if item.index not in done}
    wanted = {index: families_to_fit(job, item) for index, item in todo.items()}
    fitted: dict[int, dict[str, FamilyFit]] = {index: {} for index in todo}
    again: dict[int, set[str]] = {}  # the families of a record being fitted again
    spaces = job.spaces()

    def family_done(key, fit: FamilyFit) -> dict | None:
        index, kernel, *restart = key
        if restart:
            fitted[index][kernel] = better_of(fitted[index][kernel], fit)
            again[index].discard(kernel)
        else:
            fitted[index][kernel] = fit
            if len(fitted[index]) == len(wanted[index]) and job.settings.restarts:
                points = restart_points(list(fitted[index].values()), spaces)
                if points:
                    again[index] = set(points)
                    return {(index, k, "again"): (job, todo[index], k, x) for k, x in points.items()}
        if len(fitted[index]) == len(wanted[index]) and not again.get(index):
            own = fitted.pop(index)
            fits = [own[k] for k in wanted[index]]
            done[index] = finish_record(job, todo[index], fits, out)
            if on_record is not None:
                on_record(done[index])
        return None

    tasks = {(index, kernel): (job, todo[index], kernel) for index in todo for kernel in wanted[index]}
    if executor.kind == "dask":
        with dask_client(executor, job.settings.engine.device) as client:
            lost = map_on_dask(client, fit_one_family, tasks, name=f"fit-{out.name if out else 'records'}",
                               on_done=family_done)
        if lost:
            raise PartsLost(f"{len(lost)} record-and-family fit(s) did not come back from the Dask cluster "
                            f"({lost[0][0]}: {lost[0][1]}); every record written under {out} is complete, "
                            "rerun the same command to fit the rest")
    else:
        queue = list(tasks.items())
        while queue:  # a record's restarts first: it is written before the next record begins
            key, args = queue.pop(0)
            queue[:0] = (family_done(key, fit_one_family(*args)) or {}).items()
    return [done[item.index] for item in items]


def results_frame(results: list[RecordResult]) -> pl.DataFrame:
    """One row per record (:meth:`RecordResult.row`)."""
    return pl.DataFrame([r.row() for r in results])


def write_table(results: list[RecordResult], out: Path) -> tuple[Path, Path]:
    """``fits.parquet`` and ``fits.csv`` of every record of the run folder ``out`` (atomically)."""
    frame = results_frame(results)
    paths = out / f"{TABLE_NAME}.parquet", out / f"{TABLE_NAME}.csv"
    with atomic_path(paths[0]) as tmp:
        frame.write_parquet(tmp)
    with atomic_path(paths[1]) as tmp:
        frame.write_csv(tmp)
    return paths


def engine_for(device: str, backend: str = "torch") -> Engine:
    """The fit's engine on ``device`` (auto: a GPU where torch sees one)."""
    from pyecho.engines.base import resolve_device

    return Engine(backend=backend, device=resolve_device(device))

"""`pyecho learn` orchestration: a short list of stages, each returning a frozen result, collected
into :class:`~pyecho.learn.results.LearnResults`; then saved models, metrics.json, figures, report.md.

The dataset is a `pyecho sim` path or anything with the :class:`pyecho.data.store.EchoDataset`
attributes (``records``, ``protocol``, ``dt_us``, ``labels``, ``metadata``), read into a
:class:`~pyecho.learn.base.LearnData`. The paper's stages read its 90° Hahn echo; the models
beyond the paper read every measurement of its protocol, and again the Hahn echo alone (the
same samples and split) where the protocol holds more.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import pyecho
from pyecho.atomic import atomic_path
from pyecho.errors import ParameterError
from pyecho.learn.base import FULL, QUICK, Budget, LearnData, Split, Task, make_split
from pyecho.data.sampling import DatasetConfig
from pyecho.fit.space import save_prior
from pyecho.learn.calibration.conformal import DEFAULT_LEVEL
from pyecho.learn.calibration.trust import run_trust_check
from pyecho.learn.design.identifiability import HAHN_ALONE, run_measurement_study
from pyecho.learn.design.limits import run_limits
from pyecho.learn.models.candidates import (check_calibration_rows, model_rows, run_candidate_seeds, run_candidates,
                                           targets_of)
from pyecho.learn.models.inputs import check_readable
from pyecho.learn.models.curves import run_learning_curves
from pyecho.learn.predictor import HEADLINE_DIR, EchoPredictor
from pyecho.learn.paper.classify import run_classifier, run_pruning, run_zoo
from pyecho.learn.paper.features import build_features, default_window, window_bounds
from pyecho.learn.paper.leak import run_leak
from pyecho.learn.paper.models import save_models
from pyecho.learn.paper.regress import run_regression
from pyecho.learn.results import LearnResults, RunInfo, StageTime, run_peak_rss_gb
from pyecho.learn.paper.screening import run_wscreen
from pyecho.learn.paper.seeds import HEADLINE_FEATURES, check_seeds, headline_scores, run_seed_study
from pyecho.learn.paper.unsupervised import run_unsupervised
from pyecho.learn.paper.vae import VaeInput, run_vae

__all__ = ["Budget", "FULL", "QUICK", "LearnRun", "run_learn"]

#: the progress bar's stages, in order
STAGES = ("features", "PCA + k-means", "VAE (full series)", "VAE (window)", "P vs NP", "pruning curves",
          "Table I zoo", "3-class kernel", "regression", "W screening", "seeds", "paper's leak", "beyond the paper",
          "Hahn echo alone", "measurements", "learning curves", "trust on measured echoes", "information limits",
          "report")


#: where ``run_learn(..., stream=True)`` keeps its scratch files, inside the report directory: the
#: memory-mapped records, and the linear and MiniRocket models' and the guard's training features
#: (unlinked files)
SCRATCH = Path("cache")
RECORDS_CACHE = SCRATCH / "records"


def load_data(path: str | Path, mmap_dir: str | Path | None = None):
    """Load a `pyecho sim` Parquet file or directory (pyecho.data.store.load_dataset); the
    records memory-mapped in ``mmap_dir`` when given."""
    from pyecho.data.store import load_dataset

    return load_dataset(path, mmap_dir=mmap_dir)


def _reset_peak_rss() -> bool:
    """Start a new peak of the resident memory (Linux: /proc/self/clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_gb() -> float | None:
    """The resident memory's peak since the last reset (GB), or None where the system cannot tell."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return None if kb is None else round(kb / 1e6, 2)


class _Stages:
    """Rich progress over the pipeline stages, with wall time and peak memory per stage."""

    def __init__(self, names: Sequence[str], console: Console | None):
        self.names, self.times, self._t, self._current = tuple(names), [], None, ""
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
                                 transient=False, disable=console is None)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("starting", total=len(self.names))
        return self

    def __exit__(self, *exc):
        self.done_current()
        self.progress.__exit__(*exc)

    def start(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"unknown stage {name!r}")
        self.done_current()
        self._current, self._t = name, time.perf_counter()
        self._peak_known = _reset_peak_rss()
        self.progress.update(self.task, description=name)

    def note(self, detail: str) -> None:
        self.progress.update(self.task, description=f"{self._current} {detail}")

    def done_current(self) -> None:
        if self._t is not None:
            self.times.append(StageTime(self._current, round(time.perf_counter() - self._t, 2),
                                        _peak_rss_gb() if self._peak_known else None))
            self.progress.advance(self.task)
            self._t = None


@dataclass(frozen=True)
class LearnRun:
    """What :func:`run_learn` returns: the typed results and the metrics written to metrics.json."""

    results: LearnResults
    metrics: dict
    out_dir: Path


def run_learn(
    data,
    out_dir: str | Path,
    quick: bool = False,
    seed: int = 0,
    n_jobs: int = 1,
    window: int | None = None,
    console: Console | None = None,
    budget: Budget | None = None,
    *,
    seeds: Sequence[int] | None = None,
    level: float = DEFAULT_LEVEL,
    learning_curve: bool = False,
    stream: bool = False,
) -> LearnRun:
    """Run the whole learning pipeline and write ``out_dir/{report.md, metrics.json, figures/, models/}``.

    Parameters
    ----------
    data : path of a `pyecho sim` Parquet file/directory, or an EchoDataset-like object
    out_dir : report directory (created; files inside are replaced atomically)
    quick : small models for tiny datasets and tests
    seed : seeds the main split, SMOTE, every model and the VAE
    n_jobs : parallel workers of the forests / kNN, torch and OpenMP/BLAS threads
    window : area-of-interest width in samples (default 400, or smaller when the series is short
        and ``quick``)
    budget : model sizes (default ``QUICK`` if ``quick`` else ``FULL``)
    level : level of the conformal intervals and sets (default 0.9)
    learning_curve : also refit every model on growing training subsets (``budget.curve_sizes``)
    seeds : seeds of the headline study (the paper's random forests for P vs NP, 3-class and the
        four regressions, each seed with its own split), reported as mean ± std; default
        ``(seed,)``, which reuses the main run's models and costs nothing
    stream : read ``data`` (a path) part by part into memory-mapped records under
        ``out_dir/cache/records`` (reused by a rerun on the same dataset) instead of memory: for
        datasets larger than memory, and keep the linear and MiniRocket models' and the domain
        guard's training features in unlinked scratch files there. Every stage reads the records a chunk of rows at a time
        either way; the paper's pipeline reads at most ``budget.paper_max_samples`` samples.

    Returns
    -------
    :class:`LearnRun` (results, the metrics dictionary also written to ``metrics.json``, out_dir)
    """
    from threadpoolctl import threadpool_limits

    seeds = check_seeds((seed,) if seeds is None else seeds)
    # OpenMP/BLAS pools (HistGradientBoosting, numpy) follow n_jobs as well
    with threadpool_limits(limits=int(n_jobs)):
        return _run_learn(data, Path(out_dir), quick, int(seed), int(n_jobs), window, console,
                          budget or (QUICK if quick else FULL), seeds, level, learning_curve, stream)


@dataclass(frozen=True)
class _Checked:
    """What :func:`_read_and_check` gives the stages: the data, the simulation's config (None for
    data given in memory without one), the split, what the paper's pipeline reads, the window."""

    data: LearnData
    config: object
    split: Split
    paper: LearnData
    paper_split: Split
    width: int


def _read_and_check(data, out: Path, quick: bool, seed: int, window: int | None, budget: Budget, level: float,
                    learning_curve: bool, stream: bool) -> _Checked:
    """Everything before any work: the data read (memory-mapped under ``out`` when streaming) and
    checked, the split, the paper pipeline's samples."""
    if stream and not isinstance(data, (str, Path)):
        raise ParameterError("stream: reads a dataset path part by part; got data already in memory")
    dataset = load_data(data, out / RECORDS_CACHE if stream else None) if isinstance(data, (str, Path)) else data
    ld = LearnData.from_dataset(dataset)
    width = default_window(ld.n_times, quick) if window is None else int(window)
    check_readable(ld.grid, budget.dead_time_us)  # before any work: a dead time a measurement cannot afford
    try:  # ... and an area of interest the Hahn echo cannot hold
        window_bounds(ld.echo_index, ld.n_times, width)
    except ValueError as exc:
        raise ParameterError(f"--window: {exc} (the 90° Hahn echo's record; or a longer tau)") from None
    split = make_split(ld.labels, budget.test_size, seed)
    # before any work: a dataset too small for calibrated intervals is one line, and no directory
    check_calibration_rows(ld.labels.kernel, model_rows(split, ld.labels.kernel, budget).calibration, level)
    # the paper's pipeline (|M| of the 90° Hahn echo in memory) on at most paper_max_samples samples
    paper_rows = split.subsample(ld.labels.kernel, budget.paper_max_samples)
    if paper_rows is not None and learning_curve:
        raise ParameterError(f"--learning-curve: the paper's forests need every sample's features, and the paper's "
                             f"pipeline reads {budget.paper_max_samples} of the {ld.n_samples} samples; drop "
                             "--learning-curve (examples/learning_curve.py draws the candidates' curves)")
    paper, paper_split = (ld, split) if paper_rows is None else (ld.hahn_only().take(paper_rows),
                                                                split.restrict(paper_rows))
    return _Checked(ld, getattr(dataset, "config", None), split, paper, paper_split, width)


def _run_learn(data, out: Path, quick: bool, seed: int, n_jobs: int, window: int | None, console: Console | None,
               budget: Budget, seeds: tuple[int, ...], level: float, learning_curve: bool, stream: bool) -> LearnRun:
    from pyecho.learn.report.figures import make_figures  # matplotlib only when needed
    from pyecho.learn.report.metrics import build_metrics
    from pyecho.learn.report.markdown import write_report

    t_start = time.perf_counter()
    out_existed = out.exists()
    try:
        checked = _read_and_check(data, out, quick, seed, window, budget, level, learning_curve, stream)
    except BaseException:
        if stream and not out_existed:  # bad input leaves no directory, not even the records' cache
            shutil.rmtree(out, ignore_errors=True)
        raise
    ld, split, paper, paper_split, width = (checked.data, checked.split, checked.paper, checked.paper_split,
                                            checked.width)
    lab = paper.labels
    out.mkdir(parents=True, exist_ok=True)  # only once the data has been read and checked
    with _Stages(STAGES, console) as st:
        st.start("features")
        feats = build_features(paper, width)
        st.start("PCA + k-means")
        unsup = run_unsupervised(feats.X_norm, seed, budget.kmeans_max_samples)
        st.start("VAE (full series)")
        vae_full = run_vae(feats.X_norm, VaeInput.FULL, budget.vae_full_hidden, lab.W, budget.vae_max_epochs,
                           budget.vae_batch, seed, n_jobs, st.note)
        st.start("VAE (window)")
        vae_window = run_vae(feats.X_window, VaeInput.WINDOW, budget.vae_window_hidden, lab.W, budget.vae_max_epochs,
                             budget.vae_batch, seed, n_jobs, st.note)
        st.start("P vs NP")
        pvnp = run_classifier(feats, lab, paper_split, Task.PVNP, budget, n_jobs, budget.cv_folds, st.note)
        st.start("pruning curves")
        pruning = run_pruning(feats, lab, paper_split, pvnp, budget, n_jobs, st.note)
        st.start("Table I zoo")
        zoo = run_zoo(feats, lab, paper_split, pvnp.pointwise, budget, n_jobs, st.note)
        st.start("3-class kernel")
        kernel3 = run_classifier(feats, lab, paper_split, Task.KERNEL3, budget, n_jobs, note=st.note)
        st.start("regression")
        regression = run_regression(feats, lab, paper_split, budget, n_jobs, st.note)
        st.start("W screening")
        wscreen = run_wscreen(feats, lab, paper_split, regression.W_test_predictions(), budget, n_jobs, st.note)
        st.start("seeds")
        main_scores = headline_scores(feats, pvnp[HEADLINE_FEATURES], kernel3[HEADLINE_FEATURES], regression, seed)
        seed_study = run_seed_study(feats, lab, paper_split, main_scores, seeds, budget, n_jobs, st.note)
        st.start("paper's leak")
        leak = run_leak(feats, lab, paper_split, budget, n_jobs)
        st.start("beyond the paper")
        scratch = out / SCRATCH if stream else None
        candidates = run_candidates(ld, split, budget, n_jobs, level=level, label=ld.protocol.text, note=st.note,
                                    feature_dir=scratch)
        candidate_seeds = run_candidate_seeds(candidates, ld, seeds, budget, n_jobs, level=level, note=st.note,
                                              feature_dir=scratch)
        st.start("Hahn echo alone")
        hahn = ld.hahn_only() if ld.protocol != ld.hahn_only().protocol else None
        hahn_seeds = None
        if hahn is not None:
            hahn_main = run_candidates(hahn, split, budget, n_jobs, level=level, label=HAHN_ALONE, note=st.note,
                                       feature_dir=scratch)
            hahn_seeds = run_candidate_seeds(hahn_main, hahn, seeds, budget, n_jobs, level=level, note=st.note,
                                             feature_dir=scratch)
        st.start("measurements")
        measurements = run_measurement_study(ld, seed=seed, max_samples=budget.design_max_samples,
                                             dead_time_us=budget.dead_time_us, note=st.note)
        st.start("learning curves")
        studies = [(ld, candidates)] + ([(hahn, hahn_seeds.results[0])] if hahn is not None else [])
        curves = run_learning_curves(ld, feats, studies, budget, n_jobs, note=st.note) if learning_curve else None

        st.start("trust on measured echoes")
        predictor = EchoPredictor.from_result(candidates, ld.grid, budget.dead_time_us)
        config = checked.config  # fresh echoes need the simulation's own prior
        trust = (run_trust_check(predictor, config, n_per_kernel=budget.trust_per_kernel, seed=seed, note=st.note)
                 if isinstance(config, DatasetConfig) else None)
        st.start("information limits")
        limits = (run_limits(config, candidates, targets_of(ld).take(candidates.rows.test), budget, note=st.note)
                  if isinstance(config, DatasetConfig) else None)

        st.start("report")
        models = save_models(out / "models", feats.layout, pvnp, kernel3, regression, (vae_full, vae_window), seed)
        predictor.save(out / "models" / HEADLINE_DIR)
        if isinstance(config, DatasetConfig):  # pyecho fit's prior and experiment
            save_prior(config, out / "models" / HEADLINE_DIR)
        info = RunInfo(pyecho_version=pyecho.__version__, n_samples=ld.n_samples, n_times=ld.n_times,
                       protocol=ld.protocol.text, seed=seed, n_jobs=n_jobs, budget=budget,
                       paper_samples=paper.n_samples,
                       metadata=dict(ld.metadata), stage_seconds=tuple(st.times),
                       wall_seconds_before_report=round(time.perf_counter() - t_start, 1))
        results = LearnResults(info=info, split=split, paper_split=paper_split, features=feats, unsupervised=unsup, vae_full=vae_full,
                               vae_window=vae_window, pvnp=pvnp, pruning=pruning, zoo=zoo, kernel3=kernel3,
                               regression=regression, wscreen=wscreen, seeds=seed_study, leak=leak, candidates=candidates,
                               candidate_seeds=candidate_seeds, hahn_seeds=hahn_seeds, measurements=measurements,
                               curves=curves, trust=trust, limits=limits, models=models, data=ld,
                               paper_data=paper)
        metrics = build_metrics(results)
        write_report(out, results, make_figures(results, out / "figures"))
    metrics["stage_seconds"] = [{"stage": s.stage, "seconds": s.seconds, "peak_rss_gb": s.peak_rss_gb}
                                for s in st.times]
    metrics["peak_rss_gb"] = run_peak_rss_gb(st.times)
    metrics["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return LearnRun(results=results, metrics=metrics, out_dir=out)

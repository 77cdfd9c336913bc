"""`pyecho fit` checked on fresh records: accuracy, efficiency, intervals, families, goodness of fit.

Usage::

    python examples/fit_check.py MODEL_DIR OUT [--sets main200,repeat,outside,main50] [--n 30] [--workers 2]
                                 [--lattice N] [--families gaussian,rkky]
                                 [--per-group N] [--draws 8 --mean-draws 2 --more-draws 0]

MODEL_DIR is a `pyecho learn` output (its prior and its predictor start every fit; with
``--lattice`` the records are made and fitted on another lattice than the prior's); OUT gets one
`pyecho fit` run folder per set (resumable: rerun the same command to continue) and summary.json.
The records are made fresh for the check, never a training row: samples drawn from the model's
prior with another seed, simulated by the same engine on the prior's lattice, and handed over as
a spectrometer gives them -- complex white noise at the set's SNR, then a random receiver gain
(log-uniform 0.1-10) and phase *per measurement*, and the first 20 µs after every pulse missing.

Sets:
* ``main200`` / ``main50``: ``--n`` samples per family at SNR 200 (``--n // 2`` at SNR 50);
* ``repeat``: 12 records at each of two points (power p = 2, gaussian xi = 12), each with its
  own detuning draw and noise, for the fit's scatter against the Cramér-Rao bound there;
* ``repeat_own``: the same records fitted by their true family alone (one run folder per point
  under ``repeat_own/``): the estimator's scatter where the bound's family is given, at about a
  third of the cost of every plausible family;
* ``outside``: records the model does not describe: detunings from a Gaussian of the same FWHM
  instead of the Lorentzian, and an exponential kernel exp(-r/xi), ``--outside`` each.

``--families gaussian,rkky`` fits only those families, and only the records whose true family is
one of them (a run folder of its own: its settings differ). Each set's summary scores every
family rule of ``pyecho.fit.defaults.FAMILY_RULES`` beside the default (``rules``), read from the
comparison each record keeps; ``examples/family_rules.py`` chooses among them on part of a run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

from pyecho.data.factory import Executor  # noqa: E402
from pyecho.data.records import add_complex_noise  # noqa: E402
from pyecho.data.sampling import draw_sample  # noqa: E402
from pyecho.engines.base import get_engine  # noqa: E402
from pyecho.errors import ParameterError  # noqa: E402
from pyecho.fit.batch import FitJob, RecordInput, results_frame, run_fits, write_table  # noqa: E402
from pyecho.fit.defaults import FAMILY_RULES, MIN_FIT_LATTICE  # noqa: E402
from pyecho.fit.estimate import FitSettings  # noqa: E402
from pyecho.fit.limits import BoundSettings, cramer_rao  # noqa: E402
from pyecho.fit.space import FAMILIES, FamilySpace, load_prior  # noqa: E402
from pyecho.learn.predict import headline_dir  # noqa: E402
from pyecho.learn.predictor import EchoPredictor  # noqa: E402
from pyecho.physics.detuning import DETUNING_CUTOFF_MHZ, sample_detuning_mhz  # noqa: E402
from pyecho.physics.lattice import displacement_distances  # noqa: E402
from pyecho.physics.problem import build_batch  # noqa: E402
from pyecho.physics.protocol import RecordGrid  # noqa: E402

#: the learned model and the check run that the follow-up scripts (check_separation.py,
#: fit_from_truth.py) read unless told otherwise
CHECK_MODEL, CHECK_RUN = Path("runs/learn_range64"), Path("runs/fitcheck64_v2")
#: the check's samples come from the prior's seed plus this (the trust check uses +1 000 003)
CHECK_SEED_OFFSET = 2_000_003
GAIN_RANGE = (0.1, 10.0)
DEAD_TIME_US = 20.0
#: the two points of the repeated records, with the other parameters of the prior's middle
REPEAT_POINTS = {"power": 2.0, "gaussian": 12.0}
REPEATS = 12
SETS = ("main200", "main50", "repeat", "repeat_own", "outside")


def simulate_protocol(params_list, detunings, grid, kernel_grids=None):
    """Records (B, T_k) per measurement of ``grid``: the torch engine, float32, as datasets are
    made; ``kernel_grids`` (B, n, n) replaces the kernels (a kernel pyecho does not offer)."""
    engine = get_engine("torch")
    out = []
    for m in grid.protocol:
        batch = build_batch([m.apply(p) for p in params_list], detunings)
        if kernel_grids is not None:
            batch = replace(batch, kernel_grid=kernel_grids)
        out.append(engine.run(batch, dtype="float32"))
    return tuple(out)


def as_measured(records, grid, snr: float, rng):
    """Noise at ``snr``, then one random gain and phase per measurement, the dead time missing."""
    noisy = add_complex_noise(records, snr, rng) if math.isfinite(snr) else records
    out = []
    for k, R in enumerate(noisy):
        g = np.exp(rng.uniform(*np.log(GAIN_RANGE), R.shape[0])) * np.exp(1j * rng.uniform(0, 2 * np.pi, R.shape[0]))
        R = (R * g[:, None]).astype(np.complex128)
        R[:, grid.dead_mask(k, DEAD_TIME_US)] = np.nan
        out.append(R)
    return tuple(out)


def check_truth(model_dir: Path, n_per_family: int = 30):
    """(prior, its record grid, params, detunings, truth rows) of the ``main200`` set's samples of
    a check run from ``model_dir``: the same samples the check drew, drawn again from its seed."""
    config = load_prior(headline_dir(model_dir))
    params, detunings, truth = prior_samples(config, n_per_family, config.seed + CHECK_SEED_OFFSET)
    return config, RecordGrid(config.protocol, config.dt_us), params, detunings, truth


def true_point(config, p) -> tuple[FamilySpace, np.ndarray]:
    """A check sample's family (its space) and its true point in that space's coordinates."""
    space = FamilySpace(p.kernel, config)
    return space, space.point(kernel_param=p.kernel_param, alpha_xy=p.alpha_xy, alpha_z=p.alpha_z, t2_us=p.t2_us,
                              center_khz=p.center_khz, gamma1_per_us=p.gamma1_per_us)


def prior_samples(config, n_per_family: int, seed: int):
    """(params, detunings, truth rows) of ``n_per_family`` fresh samples of every family."""
    fresh = config.replace(n_per_kernel=n_per_family, seed=seed, part_size=n_per_family)
    params, detunings, truth = [], [], []
    for i in range(fresh.n_total):
        p, s = draw_sample(fresh, i)
        params.append(p)
        detunings.append(sample_detuning_mhz(int(s), p.lattice, p.linewidth_khz, center_khz=p.center_khz))
        truth.append({"kernel": p.kernel, "kernel_param": p.kernel_param, "L": p.L, "W": p.W, "alpha_xy": p.alpha_xy,
                      "alpha_z": p.alpha_z, "t2_us": p.t2_us})
    return params, detunings, truth


def repeat_point(kernel: str, config):
    """The family's space and its repeated point (REPEAT_POINTS), fitted coordinates."""
    space = FamilySpace(kernel, config)
    return space, space.point(kernel_param=REPEAT_POINTS[kernel], alpha_xy=0.05, alpha_z=0.05, t2_us=1000.0,
                              center_khz=0.1, gamma1_per_us=5e-5)


def make_sets(config, grid, n: int, n_outside: int, rng):
    """Every set's records and truth (see the module docstring)."""
    seed = config.seed + CHECK_SEED_OFFSET
    sets = {}
    params, det, truth = prior_samples(config, n, seed)
    clean = simulate_protocol(params, det, grid)
    sets["main200"] = (as_measured(clean, grid, 200.0, rng), truth)
    half = [i for i, t in enumerate(truth) if i % n < n // 2]
    sets["main50"] = (as_measured(tuple(R[half] for R in clean), grid, 50.0, rng), [truth[i] for i in half])
    rep_params, rep_det, rep_truth = [], [], []
    for kernel, value in REPEAT_POINTS.items():
        space, x = repeat_point(kernel, config)
        for r in range(REPEATS):
            p = space.echo_params(x, grid.protocol[0])
            rep_params.append(p)
            rep_det.append(sample_detuning_mhz(np.random.default_rng([seed, 7, len(rep_det)]), p.lattice,
                                               p.linewidth_khz, center_khz=p.center_khz))
            rep_truth.append({"kernel": kernel, "kernel_param": value, "L": p.L, "W": p.W, "alpha_xy": p.alpha_xy,
                              "alpha_z": p.alpha_z, "t2_us": p.t2_us, "point": kernel})
    sets["repeat"] = (as_measured(simulate_protocol(rep_params, rep_det, grid), grid, 200.0, rng), rep_truth)
    sets["repeat_own"] = sets["repeat"]
    # outside the model: Gaussian detunings of the same FWHM; an exponential kernel (samples of
    # every family's first half, their couplings and nuisances)
    chosen = [i for i in range(len(params)) if i % n < n_outside][:n_outside]
    out_params, out_truth = [params[i] for i in chosen], []
    sd_mhz = config.linewidth_khz / 1000.0 / (2 * math.sqrt(2 * math.log(2)))
    gauss_det = [np.clip(np.random.default_rng([seed, 11, i]).normal(0, sd_mhz, (config.lattice,) * 2),
                         -DETUNING_CUTOFF_MHZ, DETUNING_CUTOFF_MHZ) + p.center_khz / 1000 for i, p in enumerate(out_params)]
    gauss = simulate_protocol(out_params, gauss_det, grid)
    out_truth += [{"outside": "gaussian detunings"} for _ in out_params]
    r = displacement_distances(config.lattice, config.geometry)
    xis = np.random.default_rng([seed, 13]).uniform(4.0, 12.0, len(out_params))
    grids = []
    for xi in xis:
        k = np.where(r > 0, np.exp(-r / xi), 0.0)
        grids.append(k / k.sum())
    expo = simulate_protocol(out_params, [det[i] for i in chosen], grid, kernel_grids=np.stack(grids))
    out_truth += [{"outside": "exponential kernel", "xi": float(xi)} for xi in xis]
    both = tuple(np.concatenate([a, b]) for a, b in zip(gauss, expo))
    sets["outside"] = (as_measured(both, grid, 200.0, rng), out_truth)
    return sets


#: the learned model's family probabilities at which the screening is measured
SCREEN_THRESHOLDS = (0.005, 0.01, 0.02, 0.05, 0.1)


def screening(predictor, config, grid, n: int, rng) -> dict:
    """How often a family screen at each threshold would drop the true family, and how many
    families it keeps, on fresh records of another seed than every set's (SNR 200 and 50)."""
    params, det, truth = prior_samples(config, n, config.seed + CHECK_SEED_OFFSET + 1)
    clean = simulate_protocol(params, det, grid)
    kernels = np.array([t["kernel"] for t in truth])
    out = {}
    for snr in (200.0, 50.0):
        proba = predictor.predict(as_measured(clean, grid, snr, rng)).kernel_proba
        true_p = proba[np.arange(len(kernels)), [FAMILIES.index(k) for k in kernels]]
        out[f"snr{snr:g}"] = {f"{t:g}": {"true_family_dropped": float(np.mean(true_p < t)),
                                         "families_kept": float(np.mean(np.sum(proba >= t, axis=1)))}
                              for t in SCREEN_THRESHOLDS}
    out["n"] = len(kernels)
    return out


def first_of_each_group(truth, per_group: int | None) -> np.ndarray:
    """Indices of the first ``per_group`` records of each family (each repeated point, each kind
    outside the model), in order; all of them when None. A run grows by rerunning with a larger one."""
    if per_group is None:
        return np.arange(len(truth))
    keys = [t.get("point", t.get("kernel", t.get("outside"))) for t in truth]
    return np.array([i for i, key in enumerate(keys) if keys[:i].count(key) < per_group])


def r2(y, yhat):
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(1 - np.sum((y - yhat) ** 2) / np.sum((y - np.mean(y)) ** 2))


def log_loss(p_true) -> float:
    """The mean log-loss of the true family's probabilities (knowing nothing: ln of the families)."""
    return float(-np.mean(np.log(np.maximum(p_true, 1e-12))))


def family_scores(kernels: np.ndarray, called: np.ndarray, p_true) -> dict:
    """How well the families were told: the share called right per true family and overall, F1 of
    the power law, macro-F1 over the families among the truth or the calls, the log-loss of the
    true family's probability ``p_true``."""
    out = {"family_accuracy": float(np.mean(called == kernels)),
           "log_loss": log_loss(p_true), "mean_probability_true": float(np.mean(p_true))}
    f1 = {}
    for k in FAMILIES:
        a, b = kernels == k, called == k
        if a.any():
            out[f"accuracy_{k}"] = float(np.mean(called[a] == k))
        if a.any() or b.any():
            f1[k] = float(2 * np.sum(a & b) / (np.sum(a) + np.sum(b)))
    out["f1_power"] = f1.get("power", 0.0)
    out["macro_f1"] = float(np.mean(list(f1.values())))
    return out


def rule_scores(comparisons, kernels: np.ndarray, rule: str) -> dict:
    """:func:`family_scores` of the records' kept ``comparisons`` read by family ``rule``."""
    probability = [c.probability(rule) for c in comparisons]
    return family_scores(kernels, np.array([max(p, key=p.get) for p in probability]),
                         [p.get(k, 0.0) for p, k in zip(probability, kernels)])


def summarise(name, frame, truth, table, results) -> dict:
    """Scores of one set's fits against the truth (and of pyecho predict on the same records).
    Beside the reported estimates (the families' mixture), each record's fit by its *true*
    family (``_own``): what the fit reaches once the family is right, apart from the family's
    confusion."""
    out = {"n": frame.height, "seconds_per_record": float(frame["seconds"].mean()),
           "seconds_max": float(frame["seconds"].max()), "fits": float(frame["fits"].mean())}
    if "kernel" not in truth[0]:
        return out
    kernels = np.array([t["kernel"] for t in truth])
    out |= family_scores(kernels, frame["kernel"].to_numpy(),
                         [results[i].probability.get(k, 0.0) for i, k in enumerate(kernels)])
    out["log_loss_predict"] = log_loss([table.kernel_proba[i, FAMILIES.index(k)] for i, k in enumerate(kernels)])
    # every family rule read again from the kept comparisons (FitSettings.family_rule)
    if all(r.comparison is not None for r in results):
        out["rules"] = {rule: rule_scores([r.comparison for r in results], kernels, rule) for rule in FAMILY_RULES}
    for k in FAMILIES:
        rows = kernels == k
        if not rows.any():
            continue
        L = np.array([t["L"] for t in truth])[rows]
        own = [results[i].by_family.get(k) for i in np.flatnonzero(rows)]
        fitted = np.array([o is not None for o in own])
        kp = np.array([t["kernel_param"] for t in truth])[rows]
        L_own = np.array([o["L"][0] if o else np.nan for o in own])
        kp_own = np.array([o["kernel_param"][0] if o else np.nan for o in own])
        kp_sd_own = np.array([o["kernel_param"][1] if o else np.nan for o in own])
        per = {"n": int(rows.sum()), "r2_L_fit": r2(L, frame["L"].to_numpy()[rows]),
               "true_family_fitted": float(fitted.mean()),
               "r2_L_own": r2(L[fitted], L_own[fitted]),
               "rmse_kernel_param_own": float(np.sqrt(np.mean((kp_own[fitted] - kp[fitted]) ** 2))),
               "median_sd_kernel_param_own": float(np.median(kp_sd_own[fitted])),
               "coverage_kernel_param_own": float(np.mean(np.abs(kp_own[fitted] - kp[fitted])
                                                          <= 1.645 * kp_sd_own[fitted])),
               "chosen_family_share": float(np.mean(frame["kernel"].to_numpy()[rows] == k)),
               "r2_L_predict": r2(L, table.values["L"][rows]),
               "rmse_kernel_param": float(np.sqrt(np.mean((frame["kernel_param"].to_numpy()[rows]
                                                           - np.array([t["kernel_param"] for t in truth])[rows]) ** 2)))}
        for q in ("L", "kernel_param", "W", "alpha_xy", "alpha_z", "t2_us"):
            y = np.array([t[q] for t in truth])[rows]
            lo, hi = frame[f"{q}_lo"].to_numpy()[rows], frame[f"{q}_hi"].to_numpy()[rows]
            per[f"coverage_{q}"] = float(np.mean((y >= lo) & (y <= hi)))
        out[k] = per
    return out


def repeated_points(truth: list[dict]) -> list[str]:
    """The repeated points among a set's records (``--families`` may leave some out)."""
    return [kernel for kernel in REPEAT_POINTS if any(t["point"] == kernel for t in truth)]


def fit_set(job: FitJob, name: str, items: list[RecordInput], truth: list[dict], out: Path, executor) -> list:
    """One set's records fitted under ``out / name`` (resumable), results in the items' order;
    ``repeat_own``: each repeated point's records by its true family alone, in a folder of its own."""
    def on_record(r):
        print(f"{name} {r.index}: {r.kernel} {r.seconds:.0f} s", flush=True)

    if name != "repeat_own":
        results = run_fits(job, items, out / name, executor=executor, on_record=on_record)
        write_table(results, out / name)
        return results
    by_index = {}
    for kernel in repeated_points(truth):
        mine = [item for item, t in zip(items, truth) if t["point"] == kernel]
        folder = out / name / kernel
        results = run_fits(replace(job, families=(kernel,)), mine, folder, executor=executor, on_record=on_record)
        write_table(results, folder)
        by_index |= {r.index: r for r in results}
    return [by_index[item.index] for item in items]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sets", default="main200,repeat,outside,main50",
                    help=f"of {', '.join(SETS)}")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--outside", type=int, default=10, help="records of each kind outside the model")
    ap.add_argument("--per-group", type=int, default=None,
                    help="fit only the first N records of each family / point / kind (rerun with more to grow)")
    ap.add_argument("--lattice", type=int, default=None,
                    help="records made and fitted on this lattice (default the prior's; the model still starts them)")
    ap.add_argument("--families", default=None,
                    help="fit only these families (comma-separated), and only the records of them (default: every "
                         "family the learned model finds plausible, every record)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bound-draws", type=int, default=256)
    ap.add_argument("--screen", type=int, default=100, help="fresh samples per family for the screening study")
    ap.add_argument("--draws", type=int, default=FitSettings.draws, help="the error model's detuning draws")
    ap.add_argument("--mean-draws", type=int, default=FitSettings.mean_draws,
                    help="of them, the draws the model's mean averages")
    ap.add_argument("--more-draws", type=int, default=FitSettings.more_draws,
                    help="plain draws added to the error model's scatter")
    ap.add_argument("--steering-draws", type=int, default=FitSettings.steering_draws,
                    help="of the mean's draws, those whose mean's Jacobian steers the minimiser")
    args = ap.parse_args()
    try:  # refused before any record is made or file written
        settings = FitSettings(draws=args.draws, mean_draws=args.mean_draws, more_draws=args.more_draws,
                               steering_draws=args.steering_draws)
    except ParameterError as exc:
        option, _, detail = str(exc).partition(": ")
        ap.error(f"--{option.replace('_', '-')}: {detail}")
    unknown = [name for name in args.sets.split(",") if name not in SETS]
    if unknown:
        ap.error(f"--sets: got {','.join(unknown)}; the sets are {','.join(SETS)}")
    predictor = EchoPredictor.load(headline_dir(args.model_dir))
    config = load_prior(headline_dir(args.model_dir))
    if args.lattice is not None:
        if args.lattice < MIN_FIT_LATTICE:
            ap.error(f"--lattice: got {args.lattice}; must be at least {MIN_FIT_LATTICE}, as pyecho fit --lattice")
        config = config.replace(lattice=args.lattice)
    grid = predictor.grid
    try:
        job = FitJob(config, grid, settings, families=None if args.families is None else tuple(args.families.split(",")))
    except ParameterError as exc:
        ap.error(str(exc))
    rng = np.random.default_rng([config.seed, CHECK_SEED_OFFSET])
    t0 = time.perf_counter()
    sets = make_sets(config, grid, args.n, args.outside, rng)
    print(f"records made in {time.perf_counter() - t0:.0f} s", flush=True)
    summary_path = args.out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    args.out.mkdir(parents=True, exist_ok=True)
    if "screen" not in summary and args.screen:
        summary["screen"] = screening(predictor, config, grid, args.screen, rng)
        summary_path.write_text(json.dumps(summary, indent=1))
        print(json.dumps({"screen": summary["screen"]}, indent=1), flush=True)
    executor = Executor("dask", workers=args.workers) if args.workers > 1 else Executor()
    for name in args.sets.split(","):
        records, truth = sets[name]
        np.savez_compressed(args.out / f"{name}_records.npz", *records)
        candidates = np.array([i for i, t in enumerate(truth) if job.families is None
                               or t.get("kernel", job.families[0]) in job.families])
        rows = candidates[first_of_each_group([truth[i] for i in candidates], args.per_group)]
        records, truth = tuple(R[rows] for R in records), [truth[i] for i in rows]
        table = predictor.predict(records)
        items = [RecordInput(int(rows[i]), tuple(R[i] for R in records), {t: float(table.values[t][i]) for t in table.values},
                 {k: float(table.kernel_proba[i, j]) for j, k in enumerate(FAMILIES)}) for i in range(len(truth))]
        t1 = time.perf_counter()
        results = fit_set(job, name, items, truth, args.out, executor)
        frame = results_frame(results)
        previous = summary.get(name, {})  # its repeated points' bounds are reused, not recomputed
        summary[name] = summarise(name, frame, truth, table, results)
        # every invocation's fitting time on this set, resumes included (a rerun with nothing left
        # to fit re-scores the set and adds seconds)
        summary[name]["wall_s"] = previous.get("wall_s", 0.0) + time.perf_counter() - t1
        if name == "outside":
            kinds = np.array([t["outside"] for t in truth])
            summary[name]["flagged"] = {k: float(1 - frame["fits"].to_numpy()[kinds == k].mean()) for k in set(kinds)}
        if name in ("repeat", "repeat_own"):
            per_point = {}
            for kernel in repeated_points(truth):
                rows = np.array([t["point"] == kernel for t in truth])
                space, x = repeat_point(kernel, config)
                cached = previous.get("points", {}).get(kernel)
                bound = (SimpleNamespace(sd={q: v["bound_sd"] for q, v in cached.items()}) if cached else
                         cramer_rao(space, grid, x, 200.0, BoundSettings(more_draws=args.bound_draws,
                                                                         engine=job.settings.engine)))
                per_point[kernel] = {q: {"fit_sd": float(np.std(frame[q].to_numpy()[rows], ddof=1)),
                                         "fit_rmse": float(np.sqrt(np.mean((frame[q].to_numpy()[rows]
                                                                             - truth[int(np.flatnonzero(rows)[0])][q]) ** 2))),
                                         "bound_sd": bound.sd[q],
                                         "mean_reported_sd": float(np.mean((frame[f"{q}_hi"].to_numpy()[rows]
                                                                            - frame[f"{q}_lo"].to_numpy()[rows]) / 3.29))}
                                     for q in ("kernel_param", "L", "W", "alpha_xy", "alpha_z", "t2_us")}
                for q in ("kernel_param", "L"):  # the true family's own fit, wherever it was fitted
                    own = np.array([results[i].by_family[kernel][q][0] for i in np.flatnonzero(rows)
                                    if kernel in results[i].by_family])
                    per_point[kernel][q]["fit_sd_own"] = float(np.std(own, ddof=1))
                    per_point[kernel][q]["fit_rmse_own"] = float(np.sqrt(np.mean((own - truth[int(np.flatnonzero(rows)[0])][q]) ** 2)))
            summary[name]["points"] = per_point
        summary_path.write_text(json.dumps(summary, indent=1))
        print(json.dumps({name: summary[name]}, indent=1), flush=True)


if __name__ == "__main__":
    main()

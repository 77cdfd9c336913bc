"""How well could any rule tell the families apart on the fit check's records? Their separations.

Usage::

    python examples/check_separation.py INDEX... [--others gaussian,rkky] [--mean-draws 2]

INDEX: rows of the ``main200`` set of ``examples/fit_check.py runs/learn_range64 runs/fitcheck64_v2``
(the check's prior samples are drawn again from its seed). For each record's true point, the
distance D² from its family's mean record to the nearest mean record of each other family
(``pyecho.fit.limits.family_separation``: SNR 200, the bound's error model of 8 grouped + 128
plain draws), the variance V of the likelihood-ratio statistic along that gap measured on 32
independent draws, and Φ(−D²/2√V), the measured error of the likelihood-ratio test between the
two points; beside them what the run's fit chose. One line of JSON per record and family, appended to
``runs/fitcheck64_v2/separation.jsonl`` (pairs already there are skipped: the run resumes).

With ``--own-draw N`` (and ``--run``, the check run whose fits are compared), the statistic is
taken apart instead, into ``separation_own_draw.jsonl``. The test between the true point and its
nearest other-family point reads a record y through ``D² + 2 dᵀC⁻¹(y − ȳ)`` (positive: the true
family; ȳ the true point's mean record). Given: its value on the record's *own* detuning draw
without noise (the check draws it again from the sample's seed), on the measured record itself
(noise, gain and phase as the fit read it; the gains by least squares on ȳ), its sd over N
independent draws and the noise's, the draws' excess kurtosis, and the share of records (draws
and noise) on which the test errs; beside them the run's fit (its χ² gap between the two families,
each under its own error model, and its probabilities): whether a miss was the record's or the fit's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kurtosis, norm  # noqa: E402

from pyecho.fit.error_model import plain_gains, real_stack  # noqa: E402
from pyecho.fit.forward import CHECK_DRAWS, SCATTER_DTYPE, Binning, DetuningDraws, simulate_points  # noqa: E402
from pyecho.fit.limits import BoundSettings, Separation, family_separation  # noqa: E402
from pyecho.fit.space import FAMILIES, FamilySpace  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fit_check as fc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=int, nargs="+")
    ap.add_argument("--others", default=",".join(FAMILIES), help="families to measure each record against")
    ap.add_argument("--mean-draws", type=int, default=2, help="draws of the two mean records (common to both)")
    ap.add_argument("--own-draw", type=int, default=0, metavar="N",
                    help="take the gap apart: the record's own draw against N independent ones")
    ap.add_argument("--run", type=Path, default=fc.CHECK_RUN, help="the check run whose fits are compared")
    args = ap.parse_args()
    if args.own_draw and args.own_draw < 2:
        ap.error(f"--own-draw: got {args.own_draw}; need at least 2 independent draws (0: no own-draw analysis)")
    torch.set_num_threads(1)
    config, grid, params, detunings, truth = fc.check_truth(fc.CHECK_MODEL)
    settings = BoundSettings(mean_draws=args.mean_draws)
    out = args.run / ("separation_own_draw.jsonl" if args.own_draw else "separation.jsonl")
    if args.own_draw:
        with np.load(args.run / "main200_records.npz") as f:
            measured = tuple(f[k] for k in f.files)  # as the fit read them: noise, gains, dead time
    done = {(r["index"], r["other"], r["mean_draws"]) for r in map(json.loads, out.read_text().splitlines())} \
        if out.exists() else set()
    for i in args.index:
        p = params[i]
        space, x = fc.true_point(config, p)
        fitted = json.loads((args.run / "main200" / "records" / f"record-{i:06d}.json").read_text())
        for other in (k for k in args.others.split(",") if k != p.kernel):
            if (i, other, args.mean_draws) in done:
                continue
            t = time.time()
            s = family_separation(space, FamilySpace(other, config), grid, x, 200.0, settings)
            if args.own_draw:
                own = detunings[i] - p.center_khz / 1000.0  # zero-centred: the point's offset shifts it
                line = {"index": i, "kernel": p.kernel, "other": other, "mean_draws": args.mean_draws,
                        **own_draw_parts(s, space, grid, x, own, tuple(R[i] for R in measured), fitted, args.own_draw,
                                          settings),
                        "seconds": time.time() - t}
                with out.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)
                continue
            line = {"index": i, "kernel": p.kernel, "kernel_param": p.kernel_param, "L": truth[i]["L"],
                    "other": other, "other_kernel_param": s.other_value["kernel_param"],
                    "other_L": s.other_value["L"], "distance2": s.distance2, "variance": s.variance,
                    "calibrated_distance2": s.calibrated_distance2, "error_rate": s.error_rate,
                    "claimed_error_rate": s.claimed_error_rate,
                    "mean_draws": args.mean_draws, "fit_kernel": fitted["kernel"],
                    "fit_probability": fitted["probability"], "seconds": time.time() - t}
            with out.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)


def own_draw_parts(s: Separation, space: FamilySpace, grid, x, own: np.ndarray, measured: tuple, fitted: dict,
                   n_draws: int, settings: BoundSettings) -> dict:
    """The separation's statistic taken apart on the record's own draw ``own`` (MHz, zero-centred)
    and on the ``measured`` record itself (per measurement (T_k,), gains free; module docstring)."""
    config = space.config
    independent = DetuningDraws.draw(n_draws, config.lattice, config.linewidth_khz, settings.seed + 1, CHECK_DRAWS)
    draws = DetuningDraws(np.concatenate([own[None], independent.spreads_mhz]), settings.seed)
    binning = Binning.outside_dead_time(grid, settings.dead_time_us, settings.bin_size)  # the separation's own bins
    binned = binning.apply(simulate_points(space, grid, x, draws, engine=settings.engine.at(SCATTER_DTYPE)))[0]
    mean = binned[1:].mean(axis=0)  # (Nb,) over the N independent draws; binned[0] is the own draw's
    spread = real_stack(binned[1:] - mean) @ s.direction
    y = binning.apply(measured)
    y /= plain_gains(y, mean, binning.measurement, len(grid.protocol))[binning.measurement]  # its gain and phase
    statistic = s.distance2 + 2 * spread  # each independent draw's, noise left out
    noise_sd = 2 * s.noise_variance ** 0.5
    dof = len(s.direction) - len(space.names) - 2 * len(grid.protocol)
    chi2 = {k: f["chi2_per_dof"] * dof for k, f in fitted["by_family"].items()}
    return {"distance2": s.distance2,
            "own_draw_statistic": float(s.distance2 + 2 * real_stack(binned[0] - mean) @ s.direction),
            "record_statistic": float(s.distance2 + 2 * real_stack(y - mean) @ s.direction),
            "draw_sd": 2 * float(spread.std(ddof=1)), "noise_sd": noise_sd,
            "draw_excess_kurtosis": float(kurtosis(spread)),
            "share_wrong": float(np.mean(norm.cdf(-statistic / noise_sd))),
            "fit_chi2_gap": chi2.get(s.other, np.nan) - chi2.get(s.kernel, np.nan),
            "n_draws": n_draws, "fit_kernel": fitted["kernel"], "fit_probability": fitted["probability"]}


if __name__ == "__main__":
    main()

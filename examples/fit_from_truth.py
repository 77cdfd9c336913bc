"""Is a fit's miss the optimiser's or the error model's? Records of the fit check refitted.

Usage::

    python examples/fit_from_truth.py INDEX...                 # the true family, from the truth and the learned start
    python examples/fit_from_truth.py --from-model --draws 16 --mean-draws 4 --more-draws 0 INDEX...

INDEX: rows of the `main200` set of ``examples/fit_check.py runs/learn_range64
runs/fitcheck64_v2`` (``--run`` another check run; its records file is read). The true family is
fitted twice, from the *true* point and from the learned model's start, and each end point's χ²
is printed under both fits' error models (each fit builds its error model at its own first
optimum, so two fits' own χ² do not compare): if the two ends give the same χ² under one error
model, the optimiser found from the learned start what it finds from the truth, and a miss is
the error model's. With ``--from-model``, the gaussian and RKKY families are fitted from the
learned model's start instead. ``--draws D --mean-draws M --more-draws P``: the fit's error model
of D grouped draws and P plain ones, a model mean of M.
One line of JSON per record.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

import torch  # noqa: E402

from pyecho.fit.batch import starts  # noqa: E402
from pyecho.fit.estimate import FitSettings, fit_family, fit_record, profile_under  # noqa: E402
from pyecho.fit.space import FamilySpace  # noqa: E402
from pyecho.learn.predict import headline_dir  # noqa: E402
from pyecho.learn.predictor import EchoPredictor  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fit_check as fc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=int, nargs="+")
    ap.add_argument("--from-model", action="store_true", help="gaussian + RKKY from the learned model's start")
    ap.add_argument("--draws", type=int, default=FitSettings.draws)
    ap.add_argument("--mean-draws", type=int, default=FitSettings.mean_draws)
    ap.add_argument("--more-draws", type=int, default=FitSettings.more_draws)
    ap.add_argument("--run", type=Path, default=fc.CHECK_RUN, help="the check run whose records are refitted")
    args = ap.parse_args()
    settings = FitSettings(draws=args.draws, mean_draws=args.mean_draws, more_draws=args.more_draws)
    torch.set_num_threads(1)
    predictor = EchoPredictor.load(headline_dir(fc.CHECK_MODEL))
    config, grid, params, _, truth = fc.check_truth(fc.CHECK_MODEL)
    stored = np.load(args.run / "main200_records.npz")
    records = [stored[k] for k in stored.files]

    def prediction(i: int) -> dict:
        table = predictor.predict(tuple(r[i:i + 1] for r in records))
        return {t: float(table.values[t][0]) for t in table.values}

    for i in args.index:
        p = params[i]
        one = tuple(r[i] for r in records)
        t = time.time()
        if not args.from_model:
            space, x_true = fc.true_point(config, p)
            ends = {"truth": fit_family(space, grid, one, x_true, settings),
                    "model": fit_family(space, grid, one, starts({p.kernel: space}, prediction(i))[p.kernel], settings)}
            line = {"index": i, "kernel": p.kernel, "truth_kp": p.kernel_param, "truth_L": truth[i]["L"],
                    "dof": ends["truth"].dof,
                    "kp": {start: f.value["kernel_param"] for start, f in ends.items()},
                    "chi2_own": {start: f.chi2 for start, f in ends.items()},
                    "chi2_under": {under: {start: profile_under(e, f.model, len(grid.protocol)).chi2
                                           for start, f in ends.items()} for under, e in ends.items()}}
        else:
            spaces = {k: FamilySpace(k, config) for k in ("gaussian", "rkky")}
            fit = fit_record(spaces, grid, one, starts(spaces, prediction(i)), settings)
            line = {"index": i, "truth": truth[i]["kernel"], "truth_L": truth[i]["L"], "draws": args.draws,
                    "mean_draws": args.mean_draws, "more_draws": args.more_draws,
                    "chi2": {f.kernel: f.chi2 for f in fit.families}, "dof": fit.families[0].dof,
                    "L": {f.kernel: [f.value["L"], f.sd["L"]] for f in fit.families},
                    "probability": fit.probability}
        print(json.dumps({**line, "seconds": time.time() - t}), flush=True)


if __name__ == "__main__":
    main()

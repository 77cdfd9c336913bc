"""Is a fit's miss the optimiser's or the error model's? Records of the fit check refitted.

Usage::

    python examples/fit_from_truth.py INDEX...                 # the true family, from the true point
    python examples/fit_from_truth.py --from-model --draws 16 --mean-draws 4 --more-draws 0 INDEX...

INDEX: rows of the `main200` set of ``examples/fit_check.py runs/learn_range64
runs/fitcheck64_v2`` (``--run`` another check run; its records file and record JSONs are read).
The true family is fitted from the *true* point and its χ² is printed beside the χ² the run's fit
of that family reached from the learned model's start, and the best family's: if the fit from the
truth ends no lower, no valley nearer the truth exists under the error model and the miss is the
error model's (compare like with like: ``runs/fitcheck64_v2`` was made with ``--more-draws 0``,
``runs/fitcheck64_v4`` with the defaults). With ``--from-model``, the gaussian and
RKKY families are fitted from the learned model's start instead. ``--draws D --mean-draws M
--more-draws P``: the fit's error model of D grouped draws and P plain ones, a model mean of M.
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
from pyecho.fit.estimate import FitSettings, fit_family, fit_record  # noqa: E402
from pyecho.fit.space import FamilySpace  # noqa: E402
from pyecho.learn.predict import headline_dir  # noqa: E402
from pyecho.learn.predictor import EchoPredictor  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fit_check as fc  # noqa: E402

MODEL, RUN = Path("runs/learn_range64"), Path("runs/fitcheck64_v2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=int, nargs="+")
    ap.add_argument("--from-model", action="store_true", help="gaussian + RKKY from the learned model's start")
    ap.add_argument("--draws", type=int, default=FitSettings.draws)
    ap.add_argument("--mean-draws", type=int, default=FitSettings.mean_draws)
    ap.add_argument("--more-draws", type=int, default=FitSettings.more_draws)
    ap.add_argument("--run", type=Path, default=RUN, help="the check run whose records and fits are compared")
    args = ap.parse_args()
    settings = FitSettings(draws=args.draws, mean_draws=args.mean_draws, more_draws=args.more_draws)
    torch.set_num_threads(1)
    predictor = EchoPredictor.load(headline_dir(MODEL))
    config, grid, params, _, truth = fc.check_truth(MODEL)
    stored = np.load(args.run / "main200_records.npz")
    records = [stored[k] for k in stored.files]
    for i in args.index:
        p = params[i]
        one = tuple(r[i] for r in records)
        t = time.time()
        if not args.from_model:
            space, x = fc.true_point(config, p)
            f = fit_family(space, grid, one, x, settings)
            run = json.loads((args.run / "main200" / "records" / f"record-{i:06d}.json").read_text())
            best = min(b["chi2_per_dof"] for b in run["by_family"].values())
            own = run["by_family"][p.kernel]
            line = {"index": i, "kernel": p.kernel, "truth_kp": p.kernel_param, "truth_L": truth[i]["L"],
                    "from_truth_kp": f.value["kernel_param"], "from_truth_chi2": f.chi2, "dof": f.dof,
                    "from_model_chi2": own["chi2_per_dof"] * f.dof, "best_family_chi2": best * f.dof,
                    "from_model_kp": own["kernel_param"][0]}
        else:
            table = predictor.predict(tuple(r[i:i + 1] for r in records))
            prediction = {t: float(table.values[t][0]) for t in table.values}
            spaces = {k: FamilySpace(k, config) for k in ("gaussian", "rkky")}
            fit = fit_record(spaces, grid, one, starts(spaces, prediction), settings)
            line = {"index": i, "truth": truth[i]["kernel"], "truth_L": truth[i]["L"], "draws": args.draws,
                    "mean_draws": args.mean_draws, "more_draws": args.more_draws,
                    "chi2": {f.kernel: f.chi2 for f in fit.families}, "dof": fit.families[0].dof, "L": {f.kernel: [f.value["L"], f.sd["L"]] for f in fit.families},
                    "probability": fit.probability}
        print(json.dumps({**line, "seconds": time.time() - t}), flush=True)


if __name__ == "__main__":
    main()

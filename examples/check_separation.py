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
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYECHO_TORCH_COMPILE", "always")

import torch  # noqa: E402

from pyecho.fit.limits import BoundSettings, family_separation  # noqa: E402
from pyecho.fit.space import FAMILIES, FamilySpace  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fit_check as fc  # noqa: E402

MODEL, RUN = Path("runs/learn_range64"), Path("runs/fitcheck64_v2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=int, nargs="+")
    ap.add_argument("--others", default=",".join(FAMILIES), help="families to measure each record against")
    ap.add_argument("--mean-draws", type=int, default=2, help="draws of the two mean records (common to both)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config, grid, params, truth = fc.check_truth(MODEL)
    settings = BoundSettings(mean_draws=args.mean_draws)
    out = RUN / "separation.jsonl"
    done = {(r["index"], r["other"], r["mean_draws"]) for r in map(json.loads, out.read_text().splitlines())} \
        if out.exists() else set()
    for i in args.index:
        p = params[i]
        space, x = fc.true_point(config, p)
        fitted = json.loads((RUN / "main200" / "records" / f"record-{i:06d}.json").read_text())
        for other in (k for k in args.others.split(",") if k != p.kernel):
            if (i, other, args.mean_draws) in done:
                continue
            t = time.time()
            s = family_separation(space, FamilySpace(other, config), grid, x, 200.0, settings)
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


if __name__ == "__main__":
    main()

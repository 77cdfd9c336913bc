"""The learning curve of chosen candidates on a protocol dataset, without the rest of `pyecho learn`.

    python examples/learning_curve.py runs/range100 --models linear,cnn --sizes 1000,2000,4000,9000

Split, fit rows, noise and scores are those of `pyecho learn --seed SEED` on the same dataset
(its main split and the fit rows of its candidate stage), so the largest size, all the fit rows,
reproduces that run's candidate on the test rows; add `--hahn` for the 90° Hahn echo alone on the
same samples. Prints F1 of the power-law class, weighted F1 and R² L (noise-free test rows)
per model and training size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from pyecho.data.store import load_dataset
from pyecho.errors import PyechoError
from pyecho.learn.base import FULL, LearnData, make_split
from pyecho.learn.models.candidates import Candidate, model_rows, targets_of
from pyecho.learn.models.curves import candidate_point, curve_subset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--models", default="linear,cnn")
    ap.add_argument("--sizes", default="1000,2000,4000,8000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--hahn", action="store_true", help="also the 90° Hahn echo alone")
    args = ap.parse_args()
    names = args.models.split(",")
    if unknown := sorted(set(names) - {c.value for c in Candidate}):
        ap.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(c.value for c in Candidate)}")
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 30:
        ap.error(f"--sizes: got {args.sizes!r}; must be comma-separated integers >= 30 (training samples)")
    try:
        data = LearnData.from_dataset(load_dataset(args.data))
    except PyechoError as exc:
        ap.error(str(exc))
    split = make_split(data.labels, FULL.test_size, args.seed)
    rows = model_rows(split, data.labels.kernel, FULL)
    threshold = float(np.mean(targets_of(data).is_power[rows.fit]))  # the candidate stage's P threshold
    studies = [(data, data.protocol.text)] + ([(data.hahn_only(), "Hahn 90° alone")] if args.hahn else [])
    print(f"{data.n_samples} samples; {len(rows.fit)} fit rows, {len(rows.test)} test rows; seed {args.seed}")
    print("model | training samples | F1 of the power-law class | weighted F1 | R² L | seconds")
    for size in sizes:
        sub = curve_subset(rows.fit, min(size, len(rows.fit)), data.labels.kernel, args.seed)
        for study, label in studies:
            for name in names:
                start = time.perf_counter()
                p = candidate_point(Candidate(name), study, label, sub, rows.test, threshold, FULL, args.seed,
                                    args.n_jobs)
                print(f"{p.model} | {p.n_train} | {p.pvnp.f1_power:.3f} | {p.pvnp.f1_weighted:.3f} | {p.L.r2:.3f} | "
                      f"{time.perf_counter() - start:.0f}", flush=True)


if __name__ == "__main__":
    main()

"""Which rule should turn the families' fits into their probabilities? Chosen on some records, confirmed on others.

Usage::

    python examples/family_rules.py RUN [--model runs/learn_range64] [--set main200] [--dev 10]

RUN is an ``examples/fit_check.py`` output whose records kept their family comparison (each
record's ``comparison``: every family's fitted record under every family's error model, code
ba77645 on). Each record's true family is drawn again from the check's seed (``--model``, the
learned model the check ran from). The records are split by their place within their true family:
the first ``--dev`` of each family choose the rule (the lowest mean log-loss of the true family's
probability, a proper score: the share called right moves in steps of a record), the rest
confirm it. Every rule of ``pyecho.fit.defaults.FAMILY_RULES`` is scored on both halves (one JSON
object, printed and written as ``RUN/family_rules.json``); the default rule changes only where
the chosen one is no worse on the confirming half.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_check import CHECK_MODEL, check_truth, rule_scores  # noqa: E402

from pyecho.errors import InputFileError  # noqa: E402
from pyecho.fit.batch import RECORD_DIR, read_record  # noqa: E402
from pyecho.fit.defaults import DEFAULT_FAMILY_RULE, FAMILY_RULES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--model", type=Path, default=CHECK_MODEL)
    ap.add_argument("--set", default="main200", help="the check's set whose records are read (main200 or main50)")
    ap.add_argument("--n", type=int, default=30, help="the check's --n (its samples per family)")
    ap.add_argument("--dev", type=int, default=10, help="records of each true family that choose the rule")
    args = ap.parse_args()
    folder = args.run / args.set / RECORD_DIR
    try:
        results = [read_record(p) for p in sorted(folder.glob("record-*.json"))]
    except InputFileError as exc:
        ap.error(str(exc))
    if not results or any(r.comparison is None for r in results):
        ap.error(f"{folder}: needs records that kept their family comparison (fit_check from code ba77645 on); "
                 f"found {len(results)} record(s), {sum(r.comparison is None for r in results)} without one")
    truth = check_truth(args.model, args.n)[-1]
    kernels = np.array([truth[r.index]["kernel"] for r in results])
    place = np.array([sum(truth[i]["kernel"] == truth[r.index]["kernel"] for i in range(r.index)) for r in results])
    halves = {"dev": place < args.dev, "confirm": place >= args.dev}
    if not all(rows.any() for rows in halves.values()):
        ap.error(f"--dev: got {args.dev}; the run's {len(results)} records (at most {place.max() + 1} of a family) "
                 "leave one half empty")
    out = {"run": str(args.run), "set": args.set, "dev_per_family": args.dev}
    for half, rows in halves.items():
        comparisons = [r.comparison for r, keep in zip(results, rows) if keep]
        out[half] = {"n": int(rows.sum())} | {rule: rule_scores(comparisons, kernels[rows], rule)
                                              for rule in FAMILY_RULES}
    chosen = min(FAMILY_RULES, key=lambda rule: out["dev"][rule]["log_loss"])
    confirm, default = out["confirm"][chosen], out["confirm"][DEFAULT_FAMILY_RULE]
    out["chosen_on_dev"] = chosen
    out["confirmed"] = bool(confirm["log_loss"] <= default["log_loss"]
                            and confirm["family_accuracy"] >= default["family_accuracy"])
    (args.run / "family_rules.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

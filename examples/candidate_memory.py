"""The peak memory of the models beyond the paper (the candidate stage of `pyecho learn`) alone.

    python examples/candidate_memory.py runs/range100 --stream --n-jobs 1

Loads the dataset (in memory, or with ``--stream`` memory-mapped under ``--cache``, where the
linear and MiniRocket models then also keep their training features, as `pyecho learn --stream`
does), then runs the candidate stage with the full budget on seed 0's split. Prints one JSON
line per step of the stage (each candidate's fit and scoring, the calibration, the guard): its
peak resident memory (GB, Linux's VmHWM, reset when the step starts), the resident memory at its
end split into anonymous memory and file-backed pages (RssAnon, RssFile: pages of the
memory-mapped records, which the system reclaims under pressure) and its seconds; then a last
line with the samples, the resident memory before the stage, the stage's peak, its seconds and
each candidate's noise-free test F1 of the power-law class.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pyecho.data.store import load_dataset
from pyecho.errors import PyechoError
from pyecho.learn.base import FULL, LearnData, make_split
from pyecho.learn.models.candidates import run_candidates


def _status_gb(field: str) -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return round(int(line.split()[1]) / 1e6, 2)


class _Steps:
    """The candidate stage's notes as step boundaries: each step's peak, memory and seconds."""

    def __init__(self) -> None:
        self.step, self.start, self.peak = "rows and their SNR estimates", time.perf_counter(), 0.0
        Path("/proc/self/clear_refs").write_text("5")  # the peak from here on

    def __call__(self, text: str) -> None:
        peak = _status_gb("VmHWM")
        self.peak = max(self.peak, peak)
        print(json.dumps({"step": self.step, "peak_gb": peak, "anon_gb": _status_gb("RssAnon"),
                          "file_gb": _status_gb("RssFile"), "seconds": round(time.perf_counter() - self.start, 1)}),
              flush=True)
        self.step, self.start = text, time.perf_counter()
        Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--stream", action="store_true", help="memory-map the records, features in scratch files "
                                                          "(pyecho learn --stream)")
    ap.add_argument("--cache", default=None, help="where --stream maps them (default: DATA.records-cache)")
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        ap.error("needs Linux: the peak memory is read from /proc/self/status")
    cache = (args.cache or f"{args.data.rstrip('/')}.records-cache") if args.stream else None
    try:
        data = LearnData.from_dataset(load_dataset(args.data, mmap_dir=cache))
    except PyechoError as exc:
        ap.error(str(exc))
    split = make_split(data.labels, FULL.test_size, 0)
    before = _status_gb("VmRSS")
    start = time.perf_counter()
    steps = _Steps()
    result = run_candidates(data, split, FULL, args.n_jobs, note=steps, feature_dir=cache)
    steps("end")
    print(json.dumps({"samples": data.n_samples, "stream": args.stream, "rss_before_gb": before,
                      "stage_peak_gb": steps.peak, "seconds": round(time.perf_counter() - start, 1),
                      "test_f1_power": {r.name: round(r.test_at(np.inf).pvnp.f1_power, 3) for r in result.runs}}))


if __name__ == "__main__":
    main()

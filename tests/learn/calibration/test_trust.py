"""The predictor as a user meets it: fresh simulated records with a random receiver, noise and a
dead time; coverage and in-domain rates with tolerances from the binomial distribution."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pyecho.data.factory import plan_run, run_plan
from pyecho.data.sampling import NUISANCE_PRIOR, DatasetConfig
from pyecho.learn.base import QUICK
from pyecho.learn.calibration.trust import FRESH_SNRS, as_measured
from pyecho.learn.pipeline import run_learn
from pyecho.physics.protocol import RecordGrid

#: a small protocol dataset on 8 x 8: tau 40 us keeps each record clear of the 20 us dead time
CONFIG = DatasetConfig(protocol="hahn@90/40,cpmg:2@90/40", lattice=8, n_per_kernel=150, part_size=150, seed=11,
                       **NUISANCE_PRIOR)
BUDGET = dataclasses.replace(QUICK, candidates=("linear",), trust_per_kernel=60)


def binomial_floor(p: float, n: int, z: float = 3.0, n_calibration: int | None = None) -> float:
    """The lowest rate an event of probability ``p`` shows in ``n`` trials, at ``z`` standard
    errors; with ``n_calibration``, the spread of a split-conformal interval's own coverage (a
    Beta law of variance ~ p(1 - p) / (n_calibration + 2)) is added."""
    var = p * (1 - p) / n + (0.0 if n_calibration is None else p * (1 - p) / (n_calibration + 2))
    return p - z * math.sqrt(var)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    run_plan(plan_run(CONFIG, root / "data", device="cpu"))
    return run_learn(root / "data", root / "out", quick=True, seed=0, n_jobs=1, window=120, budget=BUDGET)


def test_intervals_cover_fresh_records_at_two_snrs(run):
    trust = run.results.trust
    n = trust.at(math.inf).n
    assert n == 3 * BUDGET.trust_per_kernel and [f.snr for f in trust.fresh] == list(FRESH_SNRS)
    intervals = run.results.candidates.calibrated.calibration
    for snr in (math.inf, 50.0):
        for target, coverage in trust.at(snr).coverage.items():
            fewest = min(intervals.interval(target).n_calibration)  # the smallest SNR band's calibration rows
            assert coverage >= binomial_floor(0.9, n, n_calibration=fewest), (snr, target, coverage)


def test_fresh_rotated_rescaled_noisy_records_are_in_domain(run):
    trust = run.results.trust
    n = trust.at(200.0).n
    for snr in (math.inf, 200.0, 50.0):
        assert trust.at(snr).in_domain >= binomial_floor(0.95, n), (snr, trust.at(snr).in_domain)


def test_records_outside_the_prior_are_flagged_more_often_than_fresh_ones(run):
    trust = run.results.trust
    shifted = {s.name: s.flagged for s in trust.shifted}
    assert shifted["W and alpha_xy above the prior"] > 1 - trust.at(200.0).in_domain
    assert shifted["tau x 0.85"] >= binomial_floor(0.95, trust.shifted[0].n)
    text = (run.out_dir / "report.md").read_text()
    assert "## Trust on measured echoes" in text and "tau x 0.85" in text


def test_a_dead_time_within_the_models_changes_nothing(run):
    from pyecho.learn.predictor import EchoPredictor

    predictor = EchoPredictor.load(run.out_dir / "models" / "headline")
    grid = RecordGrid(CONFIG.protocol, CONFIG.dt_us)
    records = tuple(r[:12] for r in run.results.data.records)
    rng = np.random.default_rng(0)
    clean = predictor.predict(records)
    blanked = predictor.predict(as_measured(records, grid, rng, snr=math.inf, dead_time_us=20.0))
    # the receiver's phase and gain (and the dead samples) change nothing but float32 round-off
    np.testing.assert_allclose(blanked.kernel_proba, clean.kernel_proba, rtol=1e-5, atol=1e-7)
    for t in clean.values:
        np.testing.assert_allclose(blanked.values[t], clean.values[t], rtol=1e-5)
    np.testing.assert_array_equal(blanked.in_domain, clean.in_domain)

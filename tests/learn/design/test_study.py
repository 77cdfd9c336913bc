"""The design study: known physics ranks protocols the right way round; budgets are respected."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pyecho.data.factory import plan_run, run_plan
from pyecho.data.sampling import NUISANCE_PRIOR, DatasetConfig
from pyecho.data.store import load_dataset
from pyecho.errors import ParameterError
from pyecho.learn.base import LearnData
from pyecho.learn.design.identifiability import identifiability_map
from pyecho.learn.design.output import design_frame, write_design
from pyecho.learn.design.study import DesignBudget, ProtocolProbe, forward_selection

CANDIDATES = "hahn@90/40,hahn@60/40,cpmg:4@90/40"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    config = DatasetConfig(protocol=CANDIDATES, lattice=8, n_per_kernel=40, part_size=60, seed=3, **NUISANCE_PRIOR)
    out = tmp_path_factory.mktemp("design")
    run_plan(plan_run(config, out / "cache", device="cpu"))
    return ProtocolProbe(LearnData.from_dataset(load_dataset(out / "cache")), snr=200.0, seed=0, folds=3)


def test_a_second_angle_is_ranked_above_the_90_degree_echo_alone_for_alpha_z(probe):
    """At 90 degrees m_z ~ 0 through the echo, so alpha_z barely shows; at 60 degrees the echo's
    phase turns with alpha_z <m_z>: the probe must see the difference, in the score too."""
    alone = probe.evaluate((0,))
    pair = probe.evaluate((0, 1))
    assert pair.cv.regression["alpha_z"].r2 > alone.cv.regression["alpha_z"].r2 + 0.3
    assert pair.score > alone.score
    assert pair.time_us == pytest.approx(2 * alone.time_us)


def test_forward_selection_keeps_the_budget_and_records_every_protocol(probe):
    result = forward_selection(probe, DesignBudget(max_measurements=2))
    assert [len(e.measurements) for e in result.path] == [1, 2]
    assert len(result.evaluations) == 3 + 2  # every single, then every pair with the first pick
    best_single = max((e for e in result.evaluations if len(e.measurements) == 1), key=lambda e: e.score)
    assert result.path[0] is best_single and result.best.score == max(e.score for e in result.path)
    # a time budget below the CPMG train's 360 us leaves it out (a Hahn echo at tau 40 us takes 120 us)
    timed = forward_selection(probe, DesignBudget(max_measurements=3, max_time_us=300.0))
    assert all("cpmg:4@90/40" not in e.measurements for e in timed.evaluations)
    with pytest.raises(ParameterError, match="allows no candidate"):
        forward_selection(probe, DesignBudget(max_measurements=1, max_time_us=10.0))


def test_the_test_rows_never_choose(probe):
    result = forward_selection(probe, DesignBudget(max_measurements=1))
    ranked = result.ranked()
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)
    assert not set(probe.design.tolist()) & set(probe.test.tolist())


def test_outputs_and_identifiability(probe, tmp_path):
    result = forward_selection(probe, DesignBudget(max_measurements=2))
    csv, js, png = write_design(result, tmp_path)
    frame = pl.read_csv(csv)
    assert frame["rank"].to_list() == list(range(1, len(result.evaluations) + 1))
    assert frame.filter(pl.col("greedy_path")).height == 2 and png.stat().st_size > 0
    assert design_frame(result)["design_score"].is_sorted(descending=True)
    m = identifiability_map(probe, {"hahn": (0,), "all": (0, 1, 2)}, bins=2)
    panel = m.panel("power", "L", "all")
    assert panel.width.shape == (2, 2) and panel.count.sum() == np.sum(probe.data.labels.kernel == "power")
    assert np.all(np.isnan(panel.width[panel.count < 5]))


def test_bad_budgets_are_refused():
    with pytest.raises(ParameterError, match="max_measurements"):
        DesignBudget(max_measurements=0)
    with pytest.raises(ParameterError, match="max_time_us"):
        DesignBudget(max_time_us=-1.0)

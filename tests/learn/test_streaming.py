"""Learning that streams: memory-mapped records, made a chunk of rows at a time, give exactly
the models, predictions, intervals and guard of the same dataset held in memory."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

import pyecho.data.records as records_module
from pyecho.data.factory import plan_run, run_plan
from pyecho.data.sampling import DatasetConfig
from pyecho.data.store import load_dataset
from pyecho.learn.base import QUICK, LearnData, make_split
from pyecho.learn.models.candidates import run_candidates
from pyecho.learn.pipeline import run_learn
from pyecho_cli.app import app

#: two measurements (T = 75 and 125 samples) of 60 samples per kernel on a 4 x 4 lattice: seconds
CONFIG = DatasetConfig(n_per_kernel=60, lattice=4, protocol="hahn@90/4,cpmg:2@90/4", part_size=40)
#: records of 4 us pulse spacing cannot afford the default 20 us dead time
BUDGET = replace(QUICK, dead_time_us=0.0, cnn_max_epochs=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "ds"
    run_plan(plan_run(CONFIG, out, backend="torch", device="cpu", batch_size=60))
    return out


def test_candidates_on_memory_mapped_records_a_few_rows_at_a_time_equal_those_in_memory(dataset, tmp_path,
                                                                                        monkeypatch):
    in_memory = LearnData.from_dataset(load_dataset(dataset))
    split = make_split(in_memory.labels, BUDGET.test_size, seed=0)
    a = run_candidates(in_memory, split, BUDGET, n_jobs=1)
    monkeypatch.setattr(records_module, "CHUNK_ROWS", 7)  # every set made in many chunks
    mapped = LearnData.from_dataset(load_dataset(dataset, mmap_dir=tmp_path / "cache"))
    assert not any(r.flags.writeable for r in mapped.records)  # read-only maps of the cache, not copies
    b = run_candidates(mapped, split, BUDGET, n_jobs=1)
    assert [r.name for r in a.runs] == [r.name for r in b.runs] == list(BUDGET.candidates)
    for ra, rb in zip(a.runs, b.runs):
        for pa, pb in zip((ra.calibration_pred, *ra.test_pred), (rb.calibration_pred, *rb.test_pred)):
            np.testing.assert_array_equal(pa.kernel_proba, pb.kernel_proba, err_msg=ra.name)
            for t in pa.targets:
                np.testing.assert_array_equal(pa[t], pb[t], err_msg=f"{ra.name} {t}")
        assert ra.validation == rb.validation and ra.test == rb.test
    assert a.headline == b.headline
    assert a.calibrated.coverage == b.calibrated.coverage
    assert a.guard.thresholds == b.guard.thresholds


def test_learn_stream_and_a_paper_subsample(dataset, tmp_path):
    """`pyecho learn --stream` maps the records into OUT/cache/records; a run in memory whose
    paper pipeline reads a subsample (paper_max_samples) fits the same models beyond the paper."""
    streamed = CliRunner().invoke(app, ["learn", str(dataset), "--quick", "--dead-time-us", "0", "--out",
                                        str(tmp_path / "streamed"), "--stream"])
    assert streamed.exit_code == 0, streamed.output
    assert (tmp_path / "streamed" / "cache" / "records" / "manifest.json").is_file()
    sub = run_learn(dataset, tmp_path / "sub", quick=True, budget=replace(QUICK, dead_time_us=0.0, paper_max_samples=150))
    r = sub.results
    assert r.info.paper_samples == r.paper_data.n_samples == 150 and r.data.n_samples == 180
    assert r.paper_split.n_train + r.paper_split.n_test == 150 and r.paper_split.n_test == 30
    assert not (tmp_path / "sub" / "cache").exists()
    assert "The paper's pipeline read a stratified subsample of 150 samples" in (tmp_path / "sub" / "report.md").read_text()
    metrics = json.loads((tmp_path / "streamed" / "metrics.json").read_text())
    assert metrics["results"]["candidate_seeds"] == sub.metrics["results"]["candidate_seeds"]
    assert metrics["results"]["paper_split"]["n_test"] == 36 and metrics["results"]["split"]["n_test"] == 36
    stages = metrics["stage_seconds"]
    assert [s["stage"] for s in stages][:2] == ["features", "PCA + k-means"]
    assert all(s["peak_rss_gb"] is None or s["peak_rss_gb"] > 0 for s in stages)
    peaks = [s["peak_rss_gb"] for s in stages]
    assert metrics["peak_rss_gb"] == (None if None in peaks else max(peaks))
    # the models against the Cramér-Rao bound of the dataset's own prior, lattice and protocol
    limits = metrics["results"]["limits"]
    assert {(row["kernel"], row["target"]) for row in limits["rows"]} >= {("power", "L"), ("gaussian", "W")}
    assert all(row["bound_sd"] > 0 and row["model_rmse"] > 0 for row in limits["rows"])
    assert len(limits["points"]) == 3 * QUICK.limit_points and limits["lattice"] == CONFIG.lattice
    report = (tmp_path / "streamed" / "report.md").read_text()
    assert "## Information limits" in report and (tmp_path / "streamed" / "figures" / "fig_limits.png").is_file()


def test_learn_refuses_a_window_the_hahn_echo_cannot_hold_in_one_line(dataset, tmp_path):
    """... and leaves no directory, not even the records' cache of --stream."""
    res = CliRunner().invoke(app, ["learn", str(dataset), "--quick", "--dead-time-us", "0", "--window", "400",
                                   "--stream", "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "--window: a 400-sample window" in res.output
    assert "internal error" not in res.output and not (tmp_path / "out").exists()

"""`pyecho design` on a tiny case: the candidates' simulations, the ranked table and the figures."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from pyecho.data.factory import plan_run
from pyecho.data.sampling import NUISANCE_PRIOR, PRESETS
from pyecho.data.store import load_dataset
from pyecho.physics.protocol import Protocol
from pyecho_cli.app import app

CANDIDATES = "hahn@90/20,cpmg:4@90/20,hahn@45/20"
#: 90 samples on 6 x 6 with tau = 20 us: about a second of simulation
TINY = ["--lattice", "6", "--n-per-kernel", "30", "--folds", "3", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(app, ["design", *args], env={"COLUMNS": "1000"})


@pytest.fixture(scope="module")
def design_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("design")
    # one BLAS thread: the probe's many small fits run 3x faster on a busy machine than with a thread per core
    # (threadpoolctl limits the libraries loaded so far: load scikit-learn's and SciPy's first)
    import pyecho.learn.design.identifiability  # noqa: F401
    import pyecho.learn.design.study  # noqa: F401

    with threadpool_limits(limits=1, user_api="blas"):
        result = invoke("--cache", str(root / "cache"), "--out", str(root / "out"), "--candidates", CANDIDATES, *TINY)
    return root, result


def test_identifiability_map_sets_the_hahn_echo_at_the_candidates_tau_beside_the_best(tmp_path, monkeypatch):
    """The candidates' τ is 20 µs: the map's 'Hahn alone' is hahn@90/20 itself, read from its own
    features (the probe reads whole candidates, so not from the CPMG train it begins)."""
    import pyecho.learn.design.identifiability as identifiability

    seen = {}

    def record(probe, protocols, **options):
        seen.update(protocols)
        return real(probe, protocols, **options)

    real = identifiability.identifiability_map
    monkeypatch.setattr(identifiability, "identifiability_map", record)
    with threadpool_limits(limits=1, user_api="blas"):
        result = invoke("--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--candidates",
                        "cpmg:4@90/20,hahn@90/20", *TINY, "--max-measurements", "1")
    assert result.exit_code == 0, result.output
    hahn = [label for label in seen if label.endswith(" alone")]
    if hahn:  # when the best protocol is the Hahn echo, the map has it once, as the best
        assert hahn == ["hahn@90/20 alone"] and seen["hahn@90/20 alone"] == (1,)
    else:
        assert list(seen) == ["hahn@90/20"]


def test_design_writes_a_ranked_table_and_figures(design_run):
    root, result = design_run
    assert result.exit_code == 0, result.output
    out = root / "out"
    assert sorted(p.name for p in out.iterdir()) == ["design.csv", "design.json", "design.png", "identifiability.png"]
    for png in ("design.png", "identifiability.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pl.read_csv(out / "design.csv")
    assert table["rank"].to_list() == list(range(1, table.height + 1))
    scores = table["design_score"].to_numpy()
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0), scores  # best first
    # greedy forward selection with 3 candidates and the default budget of 3: 3 + 2 + 1 protocols
    assert table.height == 6 and sorted(table["n_measurements"].to_list()) == [1, 1, 1, 2, 2, 3]
    assert table["greedy_path"].sum() == 3
    candidates = CANDIDATES.split(",")
    for protocol in table["protocol"].to_list():
        assert set(protocol.split(",")) <= set(candidates)
    # spectrometer time: hahn 3 tau, cpmg:4 9 tau (tau = 125 steps of 0.16 us)
    times = dict(zip(table["protocol"].to_list(), table["time_us"].to_list()))
    assert times["hahn@90/20"] == pytest.approx(60.0) and times["cpmg:4@90/20"] == pytest.approx(180.0)
    doc = json.loads((out / "design.json").read_text())
    assert doc["candidates"] == candidates and doc["folds"] == 3
    assert doc["n_design"] + doc["n_test"] == 90
    assert doc["best"]["score"] == pytest.approx(max(e["score"] for e in doc["path"]))
    assert "best protocol:" in result.output


def test_design_cache_is_a_dataset_of_every_candidate(design_run):
    root, result = design_run
    assert result.exit_code == 0, result.output
    ds = load_dataset(root / "cache", columns=["kernel", "t2_us", "gamma1_per_us", "center_khz"])
    assert ds.protocol == Protocol.parse(CANDIDATES) and len(ds) == 90
    # hahn@90/20 is the beginning of cpmg:4@90/20: sliced from it
    np.testing.assert_array_equal(ds.records[0], ds.records[1][:, :ds.records[0].shape[1]])
    # the nuisance prior is drawn per sample
    lo, hi = NUISANCE_PRIOR["t2_us_range"]
    t2 = ds.labels["t2_us"].to_numpy()
    assert np.all((t2 >= lo) & (t2 <= hi)) and len(set(t2)) == 90
    config = PRESETS["design"].replace(protocol=CANDIDATES, lattice=6, n_per_kernel=30)
    assert ds.config == config
    # a rerun reuses the simulations
    assert plan_run(config, root / "cache", device="cpu").todo == ()


@pytest.mark.parametrize("candidates, needle", [
    ("hahn@200", "measurement 'hahn@200'"),
    ("cpmg:x@90/20", "cpmg:x"),
    ("hahn@90/20,hahn@90/20", "given twice"),
    ("hahn@90/0.01", "round(tau_us / dt_us)"),
    ("", "give SEQUENCE@ANGLE_DEG"),
])
def test_bad_candidates_are_one_line_and_write_nothing(tmp_path, tmp_path_factory, monkeypatch, candidates, needle):
    monkeypatch.setenv("PYECHO_CACHE_DIR", str(tmp_path_factory.mktemp("pyecho-cache")))  # where a bug's log goes
    result = invoke("--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--candidates", candidates,
                    *TINY)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --candidates: ") and needle in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, option", [(["--lattice", "1"], "--lattice"), (["--n-per-kernel", "0"], "--n-per-kernel"),
                                          (["--folds", "1"], "--folds"), (["--snr", "0"], "--snr"),
                                          (["--max-measurements", "0"], "--max-measurements")])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, option):
    result = invoke("--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--candidates", CANDIDATES,
                    *TINY, *args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_design_ranks_protocols_by_their_bound_on_l(design_run, tmp_path, monkeypatch):
    """--bound-top: the probe's best protocol and the 90° Hahn echo ranked by their Cramér-Rao
    bound on L (the cached simulations are reused)."""
    root, _ = design_run
    monkeypatch.setenv("PYECHO_TORCH_COMPILE", "never")  # tiny simulations: compiling would cost more
    with threadpool_limits(limits=1, user_api="blas"):
        result = invoke("--cache", str(root / "cache"), "--out", str(tmp_path / "out"), "--candidates", CANDIDATES,
                        *TINY, "--bound-top", "1", "--bound-points", "1", "--bound-more-draws", "0")
    assert result.exit_code == 0, result.output
    table = pl.read_csv(tmp_path / "out" / "design_bound.csv")
    assert "hahn@90/20" in table["protocol"].to_list() and 1 <= table.height <= 2
    scores = table["bound_score"].to_numpy()
    assert np.all(scores > 0) and np.all(np.diff(scores) >= 0)  # best (lowest) first
    assert {"L_sd_over_prior_gaussian", "L_sd_over_prior_power", "L_sd_over_prior_rkky"} <= set(table.columns)
    assert "protocols by their Cramér-Rao bound on L" in result.output

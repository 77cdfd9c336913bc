"""`pyecho sweep`: grids of experiments written as datasets, and their figures."""
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pyecho import EchoParams, simulate
from pyecho.data.factory import plan_run, run_plan
from pyecho.data.sampling import ConfigError, DatasetConfig
from pyecho.data.store import DatasetError, load_dataset, params_from_row, scan_dataset
from pyecho.data.sweep import SweepConfig, parse_axis
from pyecho.physics.protocol import Measurement, Protocol
from pyecho_cli.app import app

BASE = EchoParams(lattice=6, tau_us=0.8, kernel_param=2.0, scheme="extrapolated")
RUN = {"backend": "torch", "device": "cpu"}
runner = CliRunner()


def test_grid_order_values_and_detunings(tmp_path):
    config = SweepConfig(BASE, ("theta=0.5:1.5:3", "alpha_xy=0.05,0.2"), part_size=4)
    assert config.shape == (3, 2) and config.n_total == 6
    assert config.coordinates(1) == {"theta": 0.5, "alpha_xy": 0.2}  # the last axis varies fastest
    result = run_plan(plan_run(config, tmp_path / "sw", **RUN))
    assert result.samples_written == 6 and len(list((tmp_path / "sw").glob("part-*.parquet"))) == 2
    ds = load_dataset(tmp_path / "sw")
    assert ds.labels["theta"].to_list() == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    assert ds.labels["alpha_x"].to_list() == [0.05, 0.2] * 3
    seeds = ds.labels["seed"].unique()
    assert seeds.len() == 1  # one detuning field for the whole grid
    row = ds.labels.row(3, named=True)
    params = params_from_row(row)
    assert params == config.point(3)
    np.testing.assert_allclose(ds.M[3], simulate(params, seed=row["seed"], device="cpu"), atol=1e-6)


def test_a_sweep_is_one_measurement_per_grid_point(tmp_path):
    """The interface the factory and store share with DatasetConfig: one measurement, the base's."""
    base = BASE.replace(sequence="cpmg:2", theta=1.2)
    config = SweepConfig(base, ("alpha_z=0,0.1", "theta=1.2,0.8"), part_size=4)
    assert config.protocol == Protocol((Measurement("cpmg:2", 1.2, 0.8),))
    assert config.record_lengths == (base.n_samples,) == (5 * 5,)
    assert config.dt_us == base.dt_us and config.protocol.sources(config.dt_us) == (0,)
    for name in ("thetas", "n_angles", "n_samples", "n_tau", "echo_samples"):
        assert not hasattr(config, name), name
    params, _ = config.draw(range(config.n_total))
    # a grid point is its own measurement: a swept theta stays the point's
    assert config.measured(params[1], 0) is params[1] and params[1].theta == 0.8
    with pytest.raises(IndexError):
        config.measured(params[1], 1)
    plan = plan_run(config, tmp_path / "sw", **RUN)
    assert plan.simulations_todo == 4
    run_plan(plan)
    ds = load_dataset(tmp_path / "sw")
    assert ds.protocol == config.protocol and len(ds.records) == 1 and ds.M.shape == (4, 25)
    assert ds.labels["theta"].to_list() == [1.2, 0.8, 1.2, 0.8] and ds.labels["measurement"].to_list() == [0] * 4
    assert ds.measurement_params(0).echo_samples == (9, 19) and ds.echo_index == 9
    np.testing.assert_allclose(ds.M[1], simulate(params[1], seed=int(ds.labels["seed"][1]), device="cpu"), atol=1e-6)


def test_own_detunings_and_text_axes(tmp_path):
    config = SweepConfig(BASE, ("kernel=gaussian,power", "geometry=square,triangular"), same_detunings=False)
    run_plan(plan_run(config, tmp_path / "sw", **RUN))
    frame = scan_dataset(tmp_path / "sw").select("kernel", "geometry", "seed").collect()
    assert frame["seed"].n_unique() == 4
    assert frame.select(pl.concat_str("kernel", "geometry")).to_series().to_list() == [
        "gaussiansquare", "gaussiantriangular", "powersquare", "powertriangular"]


def test_resume_and_kind_mismatch(tmp_path):
    config = SweepConfig(BASE, ("alpha_z=0,0.1,0.2",), part_size=1)
    run_plan(plan_run(config, tmp_path / "sw", **RUN))
    assert plan_run(config, tmp_path / "sw", **RUN).samples_todo == 0
    with pytest.raises(DatasetError, match="differs in: kind"):
        plan_run(DatasetConfig(n_per_kernel=1, lattice=4, protocol="hahn@90/1"), tmp_path / "sw", **RUN)


@pytest.mark.parametrize("axes, message", [
    (("tau_us=1,2",), "cannot be swept"),
    (("dt_us=0.1,0.2",), "cannot be swept"),
    (("W=0.1,0.2",), "FIELD=v1"),
    (("theta=1,1",), "each once"),
    (("theta=1,2", "theta=3"), "swept once"),
    (("sequence=hahn,cpmg:2",), "one time axis"),
    (("lattice=1,6",), "grid point"),
    (("alpha_xy=a,b",), "must be a number"),
    (("theta=0:1:1",), "count >= 2"),
    ((), "at least one"),
])
def test_bad_axes_are_refused(axes, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(BASE, axes)


def test_parse_axis():
    assert parse_axis("t2_us=none,20") == ("t2_us", (None, 20.0))
    assert parse_axis("lattice=4,8") == ("lattice", (4, 8))
    assert parse_axis("geometry=rectangular:1.5,square") == ("geometry", ("rectangular:1.5", "square"))


def test_cli_sweep_and_plot(tmp_path):
    out = tmp_path / "sw"
    result = runner.invoke(app, ["sweep", "--out", str(out), "--lattice", "6", "--tau-us", "0.8", "--kernel-param",
                                 "2", "--axis", "theta=0.5,1.0,1.5", "--axis", "alpha_xy=0.05,0.2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for extra in ([], ["--tops", "--hue", "alpha_xy"], ["--at", "alpha_xy=0.2"]):
        png = tmp_path / f"fig{len(extra)}.png"
        result = runner.invoke(app, ["sweep-plot", str(out), "--axis", "theta", "-o", str(png), *extra])
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["sweep-plot", str(out), "--axis", "lattice", "-o", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "this sweep varies theta, alpha_xy" in bad.output
    assert not (tmp_path / "x.png").exists()
    bad = runner.invoke(app, ["sweep", "--out", str(tmp_path / "y"), "--axis", "dt_us=0.1,0.2"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "y").exists()

"""`pyecho sim` through typer's CliRunner."""
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from pyecho.data.store import load_dataset, read_metadata, scan_dataset
from pyecho.learn.base import LearnData
from pyecho.physics.protocol import Measurement, Protocol
from pyecho_cli.app import app

#: a few-millisecond dataset: 2 kernels x 2 samples on 4 x 4, T = 18
TINY = ["--preset", "quick", "--lattice", "4", "--tau-us", "1", "--n-per-kernel", "2",
        "--kernels", "gaussian,power", "--part-size", "3", "--device", "cpu"]


def invoke(*args):
    # wide console: a long error message stays on one line
    return CliRunner().invoke(app, ["sim", *args], env={"COLUMNS": "1000"})


def test_tiny_run_writes_a_readable_dataset(tmp_path):
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY)
    assert result.exit_code == 0, result.output
    assert "samples written" in result.output
    ds = load_dataset(out)
    assert ds.M.shape == (4, 18) and len(ds.records) == 1
    assert ds.protocol == Protocol.parse("hahn@90/1")  # --tau-us: the paper's Hahn echo at tau = 1 us
    assert "protocol hahn@90/1 (T = 18 samples)" in result.output
    assert ds.labels["kernel"].to_list() == ["gaussian", "gaussian", "power", "power"]
    assert read_metadata(out)["config"]["lattice"] == 4
    again = invoke("--out", str(out), *TINY)
    assert again.exit_code == 0 and "0 samples to simulate, 4 already done" in again.output


def test_config_file_sits_between_preset_and_options(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "quick"\nlattice = 4\ntau_us = 1.0\nn_per_kernel = 1\nseed = 7\n'
                    'w_range = [0.1, 0.2]\nkernels = ["rkky"]\ndevice = "cpu"\n')
    out = tmp_path / "ds"
    result = invoke("--out", str(out), "--config", str(toml), "--seed", "8")
    assert result.exit_code == 0, result.output
    config = read_metadata(out)["config"]
    assert (config["seed"], config["w_range"], config["kernels"], config["n_per_kernel"]) == (8, [0.1, 0.2], ["rkky"], 1)
    assert Protocol.from_list(config["protocol"]) == Protocol.parse("hahn@90/1")


@pytest.mark.parametrize("value", ['"hahn@90/1,cpmg:2@90/1"', '["hahn@90/1", "cpmg:2@90/1"]'])
def test_config_file_protocol_as_text_or_list(tmp_path, value):
    toml = tmp_path / "run.toml"
    toml.write_text(f'preset = "quick"\nlattice = 4\nn_per_kernel = 1\nkernels = ["power"]\nprotocol = {value}\n'
                    'device = "cpu"\n')
    out = tmp_path / "ds"
    result = invoke("--out", str(out), "--config", str(toml))
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    assert ds.protocol == Protocol.parse("hahn@90/1,cpmg:2@90/1")
    assert [r.shape for r in ds.records] == [(1, 18), (1, 30)]
    # the command line's --protocol wins over the file's
    again = invoke("--out", str(tmp_path / "ds2"), "--config", str(toml), "--protocol", "hahn@60/1")
    assert again.exit_code == 0, again.output
    assert load_dataset(tmp_path / "ds2").protocol == Protocol.parse("hahn@60/1")


def test_config_file_thetas_sequence_and_tau_build_a_protocol(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "quick"\nlattice = 4\nn_per_kernel = 1\nkernels = ["power"]\nthetas = [1.5708, 0.7854]\n'
                    'sequence = "cpmg:2"\ntau_us = 2.0\ndevice = "cpu"\n')
    result = invoke("--out", str(tmp_path / "ds"), "--config", str(toml))
    assert result.exit_code == 0, result.output
    assert load_dataset(tmp_path / "ds").protocol == Protocol((Measurement("cpmg:2", 1.5708, 2.0),
                                                               Measurement("cpmg:2", 0.7854, 2.0)))


@pytest.mark.parametrize(("args", "toml", "protocol"), [
    (["--thetas", "1.5708,0.7854"], "", "hahn@90/1,hahn@45/1"),  # the --help's default, and 45 degrees
    (["--thetas", "1.57"], "", "hahn@90/1"),
    ([], "thetas = [1.5707963267948966]\n", "hahn@90/1"),  # pi / 2 in a TOML file
    (["--protocol", "hahn@90"], "", "hahn@90/1"),
])
def test_an_angle_in_radians_names_the_measurement_learn_reads(tmp_path, args, toml, protocol):
    """Angles typed in radians are read to 0.1 degree: the dataset holds hahn@90, the Hahn echo
    at 90 degrees that `pyecho learn`'s paper pipeline looks up (it refused hahn@90.0002)."""
    config = tmp_path / "run.toml"
    config.write_text(toml)
    out = tmp_path / "ds"
    result = invoke("--out", str(out), "--config", str(config), "--preset", "quick", "--lattice", "4", "--tau-us", "1",
                    "--n-per-kernel", "7", "--device", "cpu", *args)  # 21 samples: what learn needs
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    assert ds.protocol.text == protocol and f"protocol {protocol} " in result.output
    data = LearnData.from_dataset(ds)
    assert data.hahn_measurement.text == "hahn@90/1" and data.hahn_source == (0, 18)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--n-per-kernel", "0"], "--n-per-kernel"),
        (["--lattice", "1"], "--lattice"),
        (["--alpha-xy-range", "0.1,0.01"], "--alpha-xy-range"),
        (["--alpha-z-range", "0.1"], "--alpha-z-range"),
        (["--w-range", "0.5,0.9"], "--w-range"),
        (["--xi-range", "-1,8"], "--xi-range"),
        (["--shard", "3/2"], "--shard"),
        (["--kernels", "gaussian,yukawa"], "--kernels"),
        (["--backend", "fortran"], "backend"),
        (["--device", "tpu"], "device"),
        (["--dtype", "float16"], "dtype"),
        (["--batch-size", "0"], "--batch-size"),
        (["--preset", "huge"], "--preset"),
        (["--config", "missing.toml"], "--config"),
        (["--protocol", "hahn@90", "--thetas", "1.0"], "--protocol: --thetas also set the measurements"),
        (["--protocol", "hahn@90", "--sequence", "cpmg:2"], "--protocol: --sequence also set the measurements"),
        (["--protocol", "hahn@200"], "--protocol: measurement 'hahn@200'"),
        (["--protocol", "cpmg:x@90"], "--protocol: measurement 'cpmg:x@90'"),
        (["--protocol", "hahn@90,hahn@90/1"], "--protocol: measurement(s) hahn@90/1 given twice"),
        (["--protocol", "hahn@90/0.01"], "--protocol: "),
        (["--thetas", "1.0,1.0"], "--thetas: "),
        (["--thetas", "a"], "--thetas: got 'a'"),
        (["--sequence", "cpmg:x"], "cpmg:x"),
        (["--tau-us", "-1"], "--tau-us: "),
        (["--t2-us-range", "5"], "--t2-us-range: got '5'"),
        (["--t2-us-range", "0,5"], "--t2-us-range: "),
        (["--t2-us", "10", "--t2-us-range", "1,5"], "--t2-us-range: "),
        (["--gamma1-per-us-range", "1,0"], "--gamma1-per-us-range: "),
        (["--gamma1-per-us", "0.1", "--gamma1-per-us-range", "0,1e-3"], "--gamma1-per-us-range: "),
        (["--center-khz-range", "1,-1"], "--center-khz-range: "),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, option):
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY, *args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_unknown_config_key_names_it(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("latice = 4\n")
    result = invoke("--out", str(tmp_path / "ds"), "--config", str(toml))
    assert result.exit_code == 2 and "unknown key 'latice'" in result.stderr
    assert not (tmp_path / "ds").exists()


def test_mismatched_rerun_is_refused(tmp_path):
    out = tmp_path / "ds"
    assert invoke("--out", str(out), *TINY).exit_code == 0
    result = invoke("--out", str(out), *TINY, "--seed", "3")
    assert result.exit_code == 2 and "differs in: seed" in result.stderr
    assert invoke("--out", str(out), *TINY, "--seed", "3", "--overwrite").exit_code == 0
    assert read_metadata(out)["seed"] == 3


def test_protocol_option(tmp_path):
    """--protocol: the measurements; --tau-us is the tau of those without /TAU."""
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY, "--protocol", "hahn@90,cpmg:2@90,hahn@60/2")
    assert result.exit_code == 0, result.output
    assert "4 samples to simulate" in result.output
    ds = load_dataset(out)
    assert ds.protocol == Protocol.parse("hahn@90/1,cpmg:2@90/1,hahn@60/2")
    assert [r.shape for r in ds.records] == [(4, 18), (4, 30), (4, 36)]
    np.testing.assert_array_equal(ds.records[0], ds.records[1][:, :18])  # the Hahn echo begins the train
    rows = scan_dataset(out).collect()
    assert rows.height == 12 and sorted(set(rows["measurement"].to_list())) == [0, 1, 2]
    assert read_metadata(out)["protocol"] == ds.protocol.to_list()


def test_thetas_and_sequence_are_one_measurement_per_angle(tmp_path):
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY, "--thetas", "1.5708,0.7854", "--sequence", "cpmg:2")
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    assert ds.protocol == Protocol((Measurement("cpmg:2", 1.5708, 1.0), Measurement("cpmg:2", 0.7854, 1.0)))
    assert [r.shape for r in ds.records] == [(4, 30), (4, 30)]
    # the angles measure the same samples differently
    assert np.abs(ds.records[0] - ds.records[1]).max() > 1e-3
    # simulated at the measurement's angle, hahn@90's (the first's label columns)
    np.testing.assert_array_equal(ds.labels["theta"].to_numpy(), [math.pi / 2] * 4)


def test_nuisance_ranges_are_drawn_per_sample(tmp_path):
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY, "--t2-us-range", "20,2000", "--gamma1-per-us-range", "0,1e-3",
                    "--center-khz-range=-0.5,0.5")
    assert result.exit_code == 0, result.output
    config = read_metadata(out)["config"]
    assert (config["t2_us_range"], config["gamma1_per_us_range"], config["center_khz_range"]) == (
        [20.0, 2000.0], [0.0, 1e-3], [-0.5, 0.5])
    labels = load_dataset(out).labels
    t2, g1 = labels["t2_us"].to_numpy(), labels["gamma1_per_us"].to_numpy()
    assert np.all((t2 >= 20) & (t2 <= 2000)) and len(set(t2)) == 4
    assert np.all((g1 >= 0) & (g1 <= 1e-3)) and len(set(g1)) == 4
    # the couplings are those of the run without nuisances
    plain = tmp_path / "plain"
    assert invoke("--out", str(plain), *TINY).exit_code == 0
    other = load_dataset(plain).labels
    for column in ("alpha_x", "alpha_z", "kernel_param", "seed"):
        assert labels[column].to_list() == other[column].to_list(), column
    assert other["t2_us"].null_count() == 4 and other["gamma1_per_us"].to_list() == [0.0] * 4


def test_malformed_measurement_is_one_line(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PYECHO_CACHE_DIR", str(tmp_path_factory.mktemp("pyecho-cache")))  # where a bug's log goes
    out = tmp_path / "ds"
    result = invoke("--out", str(out), *TINY, "--protocol", "hahn")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --protocol: measurement 'hahn'"), result.stderr
    assert not out.exists()

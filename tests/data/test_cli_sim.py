"""`pyecho sim` through typer's CliRunner."""
import pytest
from typer.testing import CliRunner

from pyecho.data.store import load_dataset, read_metadata
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
    assert ds.M.shape == (4, 18)
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

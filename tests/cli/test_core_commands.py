"""`pyecho echo`, `pyecho info`, `pyecho bench`: outputs and one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pyecho import EchoParams, simulate
from pyecho_cli.app import app

runner = CliRunner()
SMALL = ["--lattice", "6", "--tau-us", "3.2", "--kernel-param", "2.0", "--alpha-xy", "0.3"]


def test_echo_writes_csv_and_png_matching_simulate(tmp_path):
    out = tmp_path / "e.csv"
    result = runner.invoke(app, ["echo", *SMALL, "--seed", "4", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert open(out).readline().strip() == "t_us,re_M,im_M,abs_M"
    p = EchoParams(lattice=6, tau_us=3.2, kernel_param=2.0, alpha_xy=0.3)
    m = simulate(p, seed=4)
    np.testing.assert_allclose(table[:, 0], p.time_grid_us(), rtol=1e-9)
    np.testing.assert_allclose(table[:, 1] + 1j * table[:, 2], m, atol=1e-8)
    np.testing.assert_allclose(table[:, 3], np.abs(m), atol=1e-8)
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_echo_and_sweep_take_the_echo_params_options_from_one_set(tmp_path):
    """Every EchoParams field is an option of both, from one table (the --scheme default their
    own); a command still runs when called from Python with keywords and defaults."""
    import inspect
    from dataclasses import fields

    from pyecho_cli.echo import echo
    from pyecho_cli.options import ECHO_PARAM_HELP
    from pyecho_cli.sweep import sweep

    assert sorted(ECHO_PARAM_HELP) == sorted(f.name for f in fields(EchoParams))
    for command, scheme in ((echo, "explicit"), (sweep, "extrapolated")):
        parameters = inspect.signature(command).parameters
        assert "params" not in parameters and parameters["scheme"].default == scheme
        assert all(parameters[f.name].default == f.default for f in fields(EchoParams) if f.name != "scheme")
        text = " ".join(runner.invoke(app, [command.__name__, "--help"], env={"COLUMNS": "200"}).output.split())
        assert all(f"--{name.replace('_', '-')}" in text for name in ECHO_PARAM_HELP), text
    echo(lattice=4, tau_us=1.0, device="cpu", out=tmp_path / "e.csv")
    np.testing.assert_allclose(np.loadtxt(tmp_path / "e.csv", delimiter=",", skiprows=1)[:, 3],
                               np.abs(simulate(EchoParams(lattice=4, tau_us=1.0), seed=0)), atol=1e-8)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lattice", "1"], "lattice: got 1"),
        (["--kernel", "yukawa"], "kernel: got 'yukawa'"),
        (["--dt-us", "-0.1"], "dt_us: got -0.1"),
        (["--t2-us", "nan"], "t2_us: got nan"),
        (["--backend", "fortran"], "unknown backend"),
        (["--out", "x.txt"], "--out: got"),
    ],
)
def test_echo_bad_input_one_line_no_files(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["echo", *SMALL, *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


def test_info_lists_every_engine():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    for name in ("numpy", "torch", "julia"):
        assert name in result.output


def test_bench_measures_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--engines", "numpy,torch", "--lattices", "4,8", "--batch-sizes", "2",
                                 "--steps", "6", "--reference-steps", "3", "--device", "cpu", "--torch-compile", "never",
                                 "--schemes", "explicit,extrapolated:2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    torch_rows = [r for r in rows if r["engine"] == "torch"]
    assert {(r["lattice"], r["scheme"]) for r in torch_rows} == {(n, s) for n in (4, 8) for s in ("explicit", "extrapolated:2")}
    assert all(r["spin_steps_per_s"] > 0 and r["speedup_vs_reference"] > 0 and r["speedup_vs_baseline"] > 0
               for r in torch_rows)
    assert all(r["speedup_vs_explicit"] > 0 for r in torch_rows if r["scheme"] != "explicit")
    assert {r["engine"] for r in rows} == {"numpy", "torch", "torch-loop"}


@pytest.mark.parametrize("args, option", [(["--lattices", "8,x"], "--lattices"),
                                          (["--schemes", "explicit,rk4"], "--schemes"),
                                          (["--schemes", "extrapolated:0"], "--schemes")])
def test_bench_rejects_bad_lists(args, option):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2 and option in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_output_under_a_file_is_one_line_and_writes_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["sim", "--preset", "quick", "--out", str(blocker / "data")])
    assert result.exit_code == 2
    assert result.output.startswith("error: --out: ") and "is not a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_learn_on_a_truncated_file_leaves_no_output_directory(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 truncated")
    result = runner.invoke(app, ["learn", str(bad), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2
    assert "bad.parquet" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "report").exists()


def test_a_bug_is_reported_as_an_internal_error_with_a_log(tmp_path, monkeypatch):
    """Only pyecho's own errors become the one-line 'error:'; anything else is a bug, said so."""
    import pyecho_cli.echo as echo_module

    def broken(*args, **kwargs):
        raise TypeError("unexpected keyword 'x'")

    monkeypatch.setattr(echo_module, "simulate", broken)
    monkeypatch.setenv("PYECHO_CACHE_DIR", str(tmp_path / "cache"))
    result = runner.invoke(app, ["echo", *SMALL, "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 1
    assert "internal error" in result.output and "TypeError: unexpected keyword 'x'" in result.output
    assert "error:" not in result.output
    logs = list((tmp_path / "cache" / "logs").glob("internal-error-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and str(logs[0]) in result.output.replace("\n", "")
    assert not (tmp_path / "e.csv").exists()


def test_a_value_error_inside_the_library_is_not_dressed_up_as_bad_input(tmp_path, monkeypatch):
    import pyecho_cli.echo as echo_module

    monkeypatch.setattr(echo_module, "simulate", lambda *a, **k: (_ for _ in ()).throw(ValueError("shape mismatch")))
    monkeypatch.setenv("PYECHO_CACHE_DIR", str(tmp_path / "cache"))
    result = runner.invoke(app, ["echo", *SMALL, "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 1 and "internal error" in result.output and "ValueError: shape mismatch" in result.output


def test_every_command_can_be_called_from_python_with_its_defaults():
    """`pyecho demo` calls sim, learn, predict and fit as functions: a default written as
    ``typer.Option(default, ...)`` would reach them as an OptionInfo object, not the value
    (the demo once failed so). Annotated options keep plain defaults."""
    import inspect

    from typer.models import ArgumentInfo, OptionInfo

    from pyecho_cli.app import app as the_app

    commands = [c.callback for c in the_app.registered_commands]
    commands += [c.callback for g in the_app.registered_groups for c in g.typer_instance.registered_commands]
    assert len(commands) >= 10
    for callback in commands:
        for name, param in inspect.signature(callback).parameters.items():
            assert not isinstance(param.default, (OptionInfo, ArgumentInfo)), f"{callback.__name__}: {name}"


@pytest.mark.parametrize("command", [
    "echo", "sweep", "sweep-plot", "sim", "design", "limits", "learn", "predict", "fit", "demo", "bench", "converge", "info",
    "julia",
])
def test_every_command_prints_its_help(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output

"""The julia backend from Python.

Without Julia (this repository's CI): the backend says plainly why it cannot run, never imports
juliacall (which would download Julia), and everything else keeps working. With Julia (marker
``julia``; skipped elsewhere with the reason): EchoSim.jl reproduces the golden echoes and the
NumPy reference. The engine-independent contract lives in test_contract.py.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pyecho import BackendUnavailable, simulate
from pyecho.engines import julia_engine as je
from pyecho.engines.base import availability
from pyecho.physics.detuning import sample_detuning_mhz
from tests.conftest import golden_cases, small_params

JULIA_SETTINGS = (
    "PYTHON_JULIACALL_EXE",
    "PYTHON_JULIACALL_PROJECT",
    "PYTHON_JULIACALL_BINDIR",
    "PYTHON_JULIAPKG_EXE",
)
TOLERANCE = {"float32": 5e-4, "float64": 1e-10}


def _fake_julia(folder, version: str = "1.11.2"):
    """An executable that answers ``--version`` like Julia (it can do nothing else)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "julia"
    exe.write_text(f"#!/bin/sh\necho 'julia version {version}'\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def no_julia(monkeypatch, tmp_path):
    """A deterministic machine without Julia: empty PATH, no settings, empty juliapkg folders."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for key in JULIA_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sys, "_xoptions", {})
    state = {"meta": str(tmp_path / "pyjuliapkg" / "meta.json"), "install": str(tmp_path / "pyjuliapkg" / "install")}
    monkeypatch.setattr(je, "_juliapkg_state", lambda: state)
    monkeypatch.setattr(je, "_cuda_reason", {})
    return bin_dir


# ---- without Julia -------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_availability_says_a_runtime_is_needed(no_julia, device):
    start = time.perf_counter()
    reason = availability("julia", device)
    assert time.perf_counter() - start < 5.0
    assert reason.startswith("needs a Julia runtime (")
    for hint in ("julialang.org/downloads", "pyecho julia install", "PYTHON_JULIAPKG_EXE"):
        assert hint in reason


def test_simulate_names_the_backends_that_can_run(no_julia):
    params = small_params(lattice=4, tau_us=0.32)
    with pytest.raises(BackendUnavailable) as info:
        simulate(params, backend="julia")
    message = str(info.value)
    assert "backend 'julia'" in message and "needs a Julia runtime" in message
    assert "available here:" in message and "numpy" in message.split("available here:")[1]
    if availability("torch") is None:
        assert "torch" in message.split("available here:")[1]


def test_run_refuses_without_a_runtime(no_julia):
    from pyecho.physics.problem import build_batch

    params = small_params(lattice=4, tau_us=0.32)
    batch = build_batch([params], [np.zeros((4, 4))])
    with pytest.raises(BackendUnavailable, match="needs a Julia runtime"):
        je.ENGINE.run(batch)


def test_a_julia_on_path_is_found(no_julia):
    exe = _fake_julia(no_julia)
    found = je.find_julia_runtime()
    assert found == je.JuliaRuntime(str(exe), "PATH")
    reason = je.runtime_reason()
    if je.importlib.util.find_spec("juliacall") is None:
        assert "juliacall" in reason
    else:
        assert reason is None


def test_an_old_julia_is_refused(no_julia):
    _fake_julia(no_julia, "1.6.7")
    assert "needs Julia >= 1.10" in je.runtime_reason()


def test_settings_take_precedence(no_julia, monkeypatch, tmp_path):
    _fake_julia(no_julia)
    chosen = _fake_julia(tmp_path / "chosen")
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", str(chosen))
    assert je.find_julia_runtime() == je.JuliaRuntime(str(chosen), "PYTHON_JULIAPKG_EXE")
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", str(tmp_path / "nowhere" / "julia"))
    assert "PYTHON_JULIAPKG_EXE" in je.find_julia_runtime()
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", str(chosen))
    assert "PYTHON_JULIACALL_PROJECT" in je.find_julia_runtime()  # juliacall needs both
    monkeypatch.setenv("PYTHON_JULIACALL_PROJECT", str(tmp_path))
    assert je.find_julia_runtime() == je.JuliaRuntime(str(chosen), "PYTHON_JULIACALL_EXE")


def test_a_julia_installed_by_juliapkg_is_found(no_julia):
    state = je._juliapkg_state()
    exe = _fake_julia(Path(state["install"]) / "bin")
    assert je.find_julia_runtime().executable == str(exe)
    meta = Path(state["meta"])
    other = _fake_julia(meta.parent / "elsewhere")
    meta.write_text(json.dumps({"executable": str(other)}))
    assert je.find_julia_runtime() == je.JuliaRuntime(str(other), "juliapkg's last resolve")


def test_importing_pyecho_never_imports_juliacall():
    code = (
        "import sys, pyecho\n"
        "from pyecho.engines.base import availability\n"
        "availability('julia'); availability('julia', 'cuda')\n"
        "import pyecho_cli.app\n"
        "assert 'juliacall' not in sys.modules, 'juliacall was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in JULIA_SETTINGS}
    env["PATH"] = os.path.dirname(sys.executable)  # python, but no julia
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr


def test_cli_info_and_julia_status_work_without_julia(no_julia):
    from pyecho_cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["info"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "julia" in result.output and "needs a Julia runtime" in result.output
    result = runner.invoke(app, ["julia", "status"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "julia runtime: none" in result.output


def test_julia_install_fails_with_one_line_when_the_server_is_unreachable(tmp_path):
    """`pyecho julia install` with every download routed to a closed local port."""
    pytest.importorskip("juliapkg")
    dead = "http://127.0.0.1:9"
    env = {k: v for k, v in os.environ.items() if k not in JULIA_SETTINGS and k.lower() != "no_proxy"}
    env.update(
        PATH=os.path.dirname(sys.executable),
        PYTHON_JULIAPKG_PROJECT=str(tmp_path / "env"),
        http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead, COLUMNS="250",
    )
    result = subprocess.run(
        [sys.executable, "-c", "from pyecho_cli.app import main; main()", "julia", "install"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "juliapkg will download" in result.stdout  # it says what it does first
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not install Julia" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "env" / "pyjuliapkg" / "install" / "bin").exists()


# ---- with Julia ----------------------------------------------------------------------------

_REASON = availability("julia")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.julia
@pytest.mark.skipif(_REASON is not None, reason=f"julia backend: {_REASON}")
def test_julia_reproduces_golden(dtype):
    for params, detuning, expected in golden_cases():
        m = simulate(params, backend="julia", detuning_mhz=detuning, dtype=dtype)
        np.testing.assert_allclose(m, expected, atol=TOLERANCE[dtype], rtol=0, err_msg=params.kernel)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel, kernel_param", [("gaussian", 2.0), ("power", 2.0), ("rkky", 3.0), ("uniform", 0.0)])
@pytest.mark.parametrize("variant", [{}, {"t2_us": 2.5}, {"theta": 1.1, "alpha_z": 0.0}], ids=["base", "t2", "theta-no-z"])
@pytest.mark.julia
@pytest.mark.skipif(_REASON is not None, reason=f"julia backend: {_REASON}")
def test_julia_matches_reference(dtype, kernel, kernel_param, variant):
    params = small_params(kernel=kernel, kernel_param=kernel_param, **variant)
    detuning = sample_detuning_mhz(3, params.lattice, params.linewidth_khz)
    expected = simulate(params, backend="numpy", detuning_mhz=detuning)
    m = simulate(params, backend="julia", detuning_mhz=detuning, dtype=dtype)
    assert m.dtype == np.complex128 and m.shape == (params.n_samples,)
    np.testing.assert_allclose(m, expected, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.julia
@pytest.mark.skipif(_REASON is not None, reason=f"julia backend: {_REASON}")
def test_julia_refocuses_exactly_without_coupling():
    params = small_params(alpha_xy=0.0, alpha_z=0.0, lattice=8, theta=math.pi / 2)
    m = simulate(params, backend="julia", seed=4, dtype="float64")
    assert abs(abs(m[2 * params.n_tau - 1]) - 0.5) < 1e-10


@pytest.mark.julia
@pytest.mark.cuda
@pytest.mark.skipif(_REASON is not None, reason=f"julia backend: {_REASON}")
def test_julia_cuda_matches_cpu():
    reason = availability("julia", "cuda")
    if reason is not None:
        pytest.skip(f"julia on cuda: {reason}")
    params = small_params(kernel="rkky", kernel_param=3.0, t2_us=3.0, lattice=8)
    for dtype in ("float64", "float32"):
        cpu = simulate(params, backend="julia", device="cpu", seed=2, dtype=dtype)
        gpu = simulate(params, backend="julia", device="cuda", seed=2, dtype=dtype)
        np.testing.assert_allclose(gpu, cpu, atol=TOLERANCE[dtype], rtol=0)

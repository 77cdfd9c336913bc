"""Julia engine: EchoSim.jl (``julia/EchoSim`` in the repository) called through juliacall.

The Julia runtime is looked up *without* importing juliacall: importing juliacall resolves the
Julia environment and, when no Julia is found, downloads one. So ``availability`` only checks
for an executable, in the order juliacall/juliapkg use (see :func:`find_julia_runtime`), and
juliacall is imported on the first ``run`` (or on a ``device="cuda"`` availability check) only
when a runtime exists. Installing Julia is an explicit step: ``pyecho julia install``.

juliapkg reads ``pyecho/juliapkg.json`` and adds EchoSim (developed from its path, so edits to
the Julia sources are picked up) and FFTW to juliacall's Julia environment. That path points
into the source tree, so the Julia engine needs pyecho installed from a checkout
(``pip install -e '.[julia]'``).

Arrays: the batch holds (B, n, n) C-ordered arrays; their ``.T`` is a zero-copy (n, n, B)
Fortran-ordered view that juliacall wraps as a Julia ``PyArray`` without copying. It indexes
site (x, y) of simulation b as ``[y+1, x+1, b+1]``; the kernel grid gets the same transpose,
so the convolution pairs field and kernel exactly as the other engines do (for every lattice
geometry), and the mean magnetisation is unchanged. The (B, P) pulse angles and phases go the
same way, as P x B matrices (simulation b in column b). ``pulse_steps`` are passed unchanged:
step counts (pulse p acts after ``pulse_steps[p]`` steps, 0 = before the first step), not
indices, so no 0/1-based shift applies.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pyecho.engines.base import BackendUnavailable, check_dtype, chunks
from pyecho.physics.problem import EchoBatch

#: the Julia package this engine calls (a source checkout: repository root / julia / EchoSim)
ECHOSIM_PATH = Path(__file__).resolve().parents[2] / "julia" / "EchoSim"
JULIA_MIN_VERSION = (1, 10)
CUDA_UUID = "052768ef-5323-5732-b1bb-66c8b64840ba"
INSTALL_HINT = (
    "install Julia >= 1.10 from https://julialang.org/downloads or run `pyecho julia install`, "
    "or set PYTHON_JULIAPKG_EXE"
)
#: (n, n) real arrays the Julia state holds per simulation: 13.5 live (m, omega, the kernel
#: spectra, the FFT buffers, the field and the extrapolated scheme's previous field) and 5.5
#: for the Float64 temporaries of the kernel transform, garbage once the state is set up
ARRAYS_PER_SIM = 19


@dataclass(frozen=True)
class JuliaRuntime:
    """A Julia executable and how it was found (the setting or place that named it)."""

    executable: str
    source: str


def _option(x_key: str, env_key: str) -> tuple[str | None, str]:
    """An option as juliacall/juliapkg read it: ``-X key=value`` first, then the env var."""
    value = sys._xoptions.get(x_key)
    if isinstance(value, str):
        return value, f"-X {x_key}"
    value = os.environ.get(env_key)
    return (value or None), env_key


def _juliapkg_state() -> dict:
    """juliapkg's paths (its project, meta file, install prefix); importing it starts nothing."""
    try:
        from juliapkg.state import STATE
    except Exception:  # juliapkg not installed, or an unusable configuration
        return {}
    return STATE


def _juliapkg_resolved_executable(state: dict) -> str | None:
    """The executable recorded by juliapkg's last successful resolve, if it still exists."""
    meta = state.get("meta")
    if not meta or not os.path.isfile(meta):
        return None
    try:
        with open(meta) as fp:
            exe = json.load(fp).get("executable")
    except (OSError, ValueError, AttributeError):
        return None
    return exe if exe and os.path.isfile(exe) else None


def find_julia_runtime() -> JuliaRuntime | str:
    """The Julia executable juliacall would start, else the reason there is none.

    Looks, in juliacall's and juliapkg's order of precedence, at PYTHON_JULIACALL_EXE (with
    PYTHON_JULIACALL_PROJECT), PYTHON_JULIACALL_BINDIR, PYTHON_JULIAPKG_EXE (each also as a
    ``-X`` option), the Julia juliapkg resolved or installed before (``pyecho julia install``),
    and ``julia`` on PATH (which also covers juliaup's launcher). Never imports juliacall and
    never downloads anything.
    """
    exe, key = _option("juliacall-exe", "PYTHON_JULIACALL_EXE")
    if exe:
        path = shutil.which(exe)
        if path is None:
            return f"{key}={exe} is not an executable"
        project, _ = _option("juliacall-project", "PYTHON_JULIACALL_PROJECT")
        if not project:
            return f"{key} is set but PYTHON_JULIACALL_PROJECT is not (juliacall needs both)"
        return JuliaRuntime(path, key)
    bindir, key = _option("juliacall-home", "PYTHON_JULIACALL_BINDIR")
    if bindir:
        path = shutil.which(os.path.join(bindir, "julia.exe" if os.name == "nt" else "julia"))
        return JuliaRuntime(path, key) if path else f"{key}={bindir} holds no julia executable"
    exe, key = _option("juliapkg-exe", "PYTHON_JULIAPKG_EXE")
    if exe:
        path = shutil.which(exe)
        return JuliaRuntime(path, key) if path else f"{key}={exe} is not an executable"
    state = _juliapkg_state()
    resolved = _juliapkg_resolved_executable(state)
    if resolved:
        return JuliaRuntime(resolved, "juliapkg's last resolve")
    if state.get("install"):
        path = shutil.which(os.path.join(state["install"], "bin", "julia.exe" if os.name == "nt" else "julia"))
        if path:
            return JuliaRuntime(path, "juliapkg's install folder (pyecho julia install)")
    path = shutil.which("julia")
    if path:
        return JuliaRuntime(path, "PATH")
    return f"needs a Julia runtime ({INSTALL_HINT})"


@lru_cache(maxsize=8)
def julia_version(executable: str) -> tuple[int, ...] | None:
    """``julia --version`` as a tuple, or None when it does not answer like Julia."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"\s*julia version (\d+)\.(\d+)\.(\d+)", out, re.IGNORECASE)
    return tuple(int(g) for g in match.groups()) if match else None


def runtime_reason() -> str | None:
    """None when a usable Julia runtime and juliacall are here, else why not (never starts Julia)."""
    found = find_julia_runtime()
    if isinstance(found, str):
        return found
    version = julia_version(found.executable)
    if version is None:
        return f"{found.executable} (from {found.source}) does not run as Julia ({INSTALL_HINT})"
    if version[:2] < JULIA_MIN_VERSION:
        have = ".".join(map(str, version))
        return f"needs Julia >= 1.10 but {found.executable} is Julia {have} ({INSTALL_HINT})"
    if importlib.util.find_spec("juliacall") is None:
        return "needs the juliacall package (pip install 'pyecho[julia]')"
    if not (ECHOSIM_PATH / "Project.toml").is_file():
        return f"EchoSim.jl sources not found at {ECHOSIM_PATH} (install pyecho from a checkout: pip install -e '.[julia]')"
    return None


_lock = threading.Lock()
_main = None  # juliacall.Main once EchoSim is loaded
_cuda_reason: dict[str, str | None] = {}


def _julia():
    """juliacall's Main with EchoSim loaded; starts Julia on first use (a runtime must exist)."""
    global _main
    with _lock:
        if _main is None:
            reason = runtime_reason()
            if reason is not None:
                raise BackendUnavailable(f"backend 'julia' cannot run: {reason}")
            # Julia threads (JULIA_NUM_THREADS) run safely next to Python only with this set.
            os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
            try:
                from juliacall import Main  # resolves pyecho/juliapkg.json: EchoSim, FFTW
            except Exception as exc:
                raise BackendUnavailable(
                    f"backend 'julia' cannot start Julia through juliacall: {type(exc).__name__}: {exc}"
                ) from exc
            if Main.seval('Base.find_package("EchoSim") === nothing'):
                raise BackendUnavailable(
                    "backend 'julia': EchoSim is not in the active Julia project; add it with "
                    f"julia --project=<project> -e 'using Pkg; Pkg.develop(path=\"{ECHOSIM_PATH}\")'"
                )
            Main.seval("import EchoSim")
            _main = Main
    return _main


def _gpu_visible() -> bool:
    """A cheap look for an NVIDIA driver before anything starts Julia."""
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def cuda_reason() -> str | None:
    """None when EchoSim can run on CUDA here; starts Julia (once) when a GPU driver is visible."""
    if "cuda" in _cuda_reason:
        return _cuda_reason["cuda"]
    if not _gpu_visible():
        reason = "no NVIDIA GPU driver here (CUDA.jl needs one)"
    else:
        try:
            jl = _julia()
            if jl.seval('Base.find_package("CUDA") === nothing'):
                reason = "CUDA.jl is not in the Julia environment (run `pyecho julia install --cuda`)"
            else:
                jl.seval("import CUDA")  # loads EchoSim's CUDA extension
                reason = None if jl.seval("CUDA.functional()") else "CUDA.jl is installed but not functional here"
        except BackendUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # a broken CUDA.jl install is "unavailable", not a crash
            reason = f"CUDA.jl failed to load: {type(exc).__name__}: {exc}"
    _cuda_reason["cuda"] = reason
    return reason


class JuliaEngine:
    name = "julia"

    def availability(self, device: str = "cpu") -> str | None:
        reason = runtime_reason()
        if reason is not None or device != "cuda":
            return reason
        return cuda_reason()

    def run(self, batch: EchoBatch, device: str = "cpu", dtype: str = "float32") -> np.ndarray:
        check_dtype(dtype)
        if device == "cuda":
            reason = cuda_reason()
            if reason is not None:
                raise BackendUnavailable(f"backend 'julia' on device 'cuda' cannot run: {reason}")
        jl = _julia()
        precision = jl.Float32 if dtype == "float32" else jl.Float64
        out = []
        for sub in chunks(batch, dtype, ARRAYS_PER_SIM):
            series = jl.EchoSim.simulate_batch(
                sub.omega.T,  # (n, n, B) views, no copy: see the module docstring
                sub.kernel_grid.T,
                sub.alpha_xy,
                sub.alpha_z,
                np.asarray(sub.pulse_steps, dtype=np.int64),  # step counts, as in EchoBatch
                sub.pulse_angle.T,  # (P, B) views
                sub.pulse_phase.T,
                int(sub.n_steps),
                float(sub.dt_us),
                transverse_decay=sub.transverse_decay,
                longitudinal_decay=sub.longitudinal_decay,
                longitudinal_shift=sub.longitudinal_shift,
                scheme=sub.scheme,
                field_every=int(sub.field_every),
                site_groups=int(sub.site_groups),
                device=device,
                T=precision,
            )
            out.append(np.asarray(series.to_numpy(), dtype=np.complex128))
        return np.concatenate(out)


ENGINE = JuliaEngine()

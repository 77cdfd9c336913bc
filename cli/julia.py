"""`pyecho julia ...`: see and set up the Julia engine. Julia is installed only on request."""
from __future__ import annotations

import os
import socket
from typing import Annotated

import typer
from rich.console import Console

from pyecho_cli.app import app
from pyecho_cli.errors import fail, user_errors

julia_app = typer.Typer(help="The Julia engine (EchoSim.jl): show its runtime, install Julia on request.",
                        no_args_is_help=True)
app.add_typer(julia_app, name="julia")

#: seconds before an unreachable download server counts as a failure (urllib waits forever)
NETWORK_TIMEOUT_S = 60


@julia_app.command()
@user_errors
def status() -> None:
    """Show which Julia runtime the julia backend would use, without starting it."""
    from pyecho.engines import julia_engine as je

    console = Console()
    found = je.find_julia_runtime()
    if isinstance(found, str):
        console.print(f"julia runtime: [yellow]none[/]: {found}")
    else:
        version = je.julia_version(found.executable)
        shown = ".".join(map(str, version)) if version else "unknown version"
        console.print(f"julia runtime: {found.executable} (Julia {shown}, from {found.source})")
    console.print(f"EchoSim.jl sources: {je.ECHOSIM_PATH}")
    reason = je.runtime_reason()
    console.print("backend julia (cpu): " + ("[green]available[/]" if reason is None else f"[yellow]unavailable[/]: {reason}"))


@julia_app.command()
@user_errors
def install(
    cuda: Annotated[bool, typer.Option("--cuda", help="Also add CUDA.jl for device 'cuda' (a large download).")] = False,
) -> None:
    """Install Julia (if none is found) and the Julia packages of the julia backend.

    Uses juliapkg: it finds a Julia >= 1.10 (PYTHON_JULIAPKG_EXE, juliaup, or `julia` on PATH)
    and downloads one into its own folder only when none is found; then it installs EchoSim
    (from this checkout), FFTW and, with --cuda, CUDA.jl into juliacall's Julia environment.
    """
    try:
        import juliapkg
        from juliapkg.state import STATE
    except ImportError:
        fail("juliapkg is not installed: pip install 'pyecho[julia]'")
    from pyecho.engines import julia_engine as je

    if not (je.ECHOSIM_PATH / "Project.toml").is_file():
        fail(f"EchoSim.jl sources not found at {je.ECHOSIM_PATH}; install pyecho from a checkout (pip install -e '.[julia]')")
    if STATE.get("offline"):
        fail("PYTHON_JULIAPKG_OFFLINE is set: juliapkg may not download; unset it to install")

    console = Console()
    found = je.find_julia_runtime()
    if isinstance(found, str):
        console.print(f"No Julia found: juliapkg will download the latest Julia 1.x (a few hundred MB) into {STATE['install']}")
    else:
        console.print(f"Using Julia at {found.executable} (from {found.source}); nothing to download for Julia itself")
    packages = "EchoSim (from " + str(je.ECHOSIM_PATH) + "), FFTW" + (", CUDA" if cuda else "")
    console.print(f"Installing {packages} into the Julia environment {STATE['project']}")
    if cuda:
        juliapkg.add("CUDA", uuid=je.CUDA_UUID, version="5")

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        juliapkg.resolve()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"could not install Julia or its packages (is the download server reachable?): {type(exc).__name__}: {first}")
    finally:
        socket.setdefaulttimeout(previous_timeout)
    console.print(f"[green]done[/]: Julia {STATE.get('version')} at {STATE.get('executable')}; "
                  "backend 'julia' is ready (threads: set JULIA_NUM_THREADS)")
    if os.environ.get("JULIA_NUM_THREADS") is None:
        console.print("hint: export JULIA_NUM_THREADS=auto to run the CPU path on every core")

"""Options shared by several commands: the EchoParams fields (one help text each) and parsers."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from pyecho import EchoParams
from pyecho.errors import InputFileError
from pyecho.physics.kernels import KERNELS
from pyecho.physics.sequence import PulseSequence, parse_sequence

Kernel = Annotated[str, typer.Option(help=f"Interaction kernel: {', '.join(KERNELS)}.")]
KernelParam = Annotated[float, typer.Option(help="xi (gaussian), p (power) or gamma (rkky); ignored for uniform.")]
AlphaXY = Annotated[float, typer.Option(help="In-plane coupling alpha_x = alpha_y (rad/us).")]
AlphaZ = Annotated[float, typer.Option(help="Out-of-plane coupling alpha_z (rad/us).")]
Lattice = Annotated[int, typer.Option(help="Side n of the n x n periodic lattice.")]
TauUs = Annotated[float, typer.Option(help="Pulse spacing tau (us); the (first) echo forms at 2 tau.")]
DtUs = Annotated[float, typer.Option(help="Time step (us).")]
Theta = Annotated[float, typer.Option(help="Excitation angle (rad); refocusing pulses are 2 theta.")]
LinewidthKhz = Annotated[float, typer.Option(help="FWHM of the Lorentzian detunings (kHz).")]
T2Us = Annotated[Optional[float], typer.Option(help="Transverse relaxation time T2 (us) = 2/gamma3; default none.")]
Gamma1 = Annotated[float, typer.Option(help="Lindblad rate of the I+ channel (1/us).")]
Gamma2 = Annotated[float, typer.Option(help="Lindblad rate of the I- channel (1/us).")]
Gamma3 = Annotated[float, typer.Option(help="Lindblad rate of the I^z dephasing channel (1/us).")]
Sequence = Annotated[str, typer.Option(help="Pulse sequence: hahn, cpmg:N, cp:N or a TOML pulse-list file.")]
SchemeOpt = Annotated[str, typer.Option(help="Integrator: explicit (the contract's step) or extrapolated.")]
FieldEvery = Annotated[Optional[int], typer.Option(help="Steps per field evaluation of the extrapolated scheme (default 4).")]
Geometry = Annotated[str, typer.Option(help="Lattice: square, rectangular:RATIO or triangular.")]
CenterKhz = Annotated[float, typer.Option(help="Carrier offset: centre of the detuning Lorentzian (kHz).")]
Backend = Annotated[str, typer.Option(help="Engine: numpy (reference), torch, julia.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Dtype = Annotated[str, typer.Option(help="float32 or float64.")]

#: the defaults of the options above (EchoParams' own)
THETA_DEFAULT = math.pi / 2


def sequence_option(value: str) -> str | PulseSequence:
    """--sequence: a preset (hahn, cpmg:N, cp:N), a pulse list's JSON text, or a TOML file of pulses."""
    if value.strip().lower().endswith(".toml"):
        path = Path(value)
        if not path.is_file():
            raise InputFileError(f"--sequence: {path} does not exist")
        return PulseSequence.from_toml(path)
    return parse_sequence(value)


def echo_params(*, sequence: str, **fields) -> EchoParams:
    """EchoParams from the command's options (``sequence`` may name a TOML file)."""
    return EchoParams(sequence=sequence_option(sequence), **fields)


#: where the parts run (pyecho sim, sweep and design): pyecho.data.factory.Executor
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="serial (one part after another here) or dask (one task per part on a Dask cluster: a local "
                       "one started for the run, or --scheduler's)")]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    help="Address tcp://HOST:PORT of a running Dask scheduler (with --executor dask; default: a local cluster)")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    help="Worker processes of the local Dask cluster (with --executor dask; default: one, with every core as its threads)")]

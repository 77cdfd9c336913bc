"""Options shared by several commands: the EchoParams fields (one help text each) and parsers."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from pyecho import EchoParams
from pyecho.errors import InputFileError
from pyecho.physics.kernels import KERNELS
from pyecho.physics.sequence import PulseSequence, parse_sequence

#: the EchoParams fields `pyecho echo` and `pyecho sweep` take as options, in --help's order,
#: with their help; types and defaults are EchoParams' own (a command may set other defaults)
ECHO_PARAM_HELP: dict[str, str] = {
    "kernel": f"Interaction kernel: {', '.join(KERNELS)}.",
    "kernel_param": "xi (gaussian), p (power) or gamma (rkky); ignored for uniform.",
    "alpha_xy": "In-plane coupling alpha_x = alpha_y (rad/us).",
    "alpha_z": "Out-of-plane coupling alpha_z (rad/us).",
    "lattice": "Side n of the n x n periodic lattice.",
    "tau_us": "Pulse spacing tau (us); the (first) echo forms at 2 tau.",
    "dt_us": "Time step (us).",
    "theta": "Excitation angle (rad), simulated as given; refocusing pulses are 2 theta.",
    "linewidth_khz": "FWHM of the Lorentzian detunings (kHz).",
    "t2_us": "Transverse relaxation time T2 (us) = 2/gamma3; default none.",
    "gamma1_per_us": "Lindblad rate of the I+ channel (1/us).",
    "gamma2_per_us": "Lindblad rate of the I- channel (1/us).",
    "gamma3_per_us": "Lindblad rate of the I^z dephasing channel (1/us).",
    "sequence": "Pulse sequence: hahn, cpmg:N, cp:N or a TOML pulse-list file.",
    "scheme": "Integrator: explicit (the contract's step) or extrapolated.",
    "field_every": "Steps per field evaluation of the extrapolated scheme (default 4).",
    "geometry": "Lattice: square, rectangular:RATIO or triangular.",
    "center_khz": "Carrier offset: centre of the detuning Lorentzian (kHz).",
}
Backend = Annotated[str, typer.Option(help="Engine: numpy (reference), torch, julia.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Dtype = Annotated[str, typer.Option(help="float32 or float64.")]


def with_echo_params(**defaults):
    """Decorator for a command that simulates from EchoParams: the command declares ``params``
    and gets the options of :data:`ECHO_PARAM_HELP` in its place (after its required
    parameters; ``defaults`` overrides EchoParams' own), checked as one EchoParams (--sequence may
    name a TOML file). Called from Python, the command takes the same keywords and defaults."""
    own_defaults = {f.name: f.default for f in dataclasses.fields(EchoParams)}
    unknown = set(defaults) - set(own_defaults)
    if unknown:
        raise TypeError(f"with_echo_params: {sorted(unknown)} are not EchoParams fields")
    types = typing.get_type_hints(EchoParams) | {"sequence": str}  # --sequence is text: a preset or a file
    options = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(name, own_defaults[name]),
                                 annotation=Annotated[types[name], typer.Option(help=text)])
               for name, text in ECHO_PARAM_HELP.items()]

    def decorate(command):
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "params"]
        signature = inspect.Signature([*(p for p in own if p.default is p.empty), *options,
                                       *(p for p in own if p.default is not p.empty)])

        @functools.wraps(command)
        def wrapper(**kwargs):
            given = signature.bind(**kwargs)
            given.apply_defaults()
            fields = {name: given.arguments.pop(name) for name in ECHO_PARAM_HELP}
            return command(params=echo_params(**fields), **given.arguments)

        wrapper.__signature__ = signature
        return wrapper

    return decorate


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

"""The engine contract, the registry of backends and why a backend cannot run here."""
from __future__ import annotations

import importlib
from typing import Iterator, Protocol

import numpy as np

from pyecho.errors import BackendUnavailable
from pyecho.physics.problem import EchoBatch

DTYPES = ("float32", "float64")
#: engines split a batch into chunks whose working arrays stay within this many bytes
CHUNK_BYTES = 512 * 2**20


class Engine(Protocol):
    """A simulator backend.

    ``run`` integrates every simulation of the batch (docs/model.md) and returns the recorded
    series M(t_k), k = 1 .. n_steps, as a complex128 array of shape (B, batch.n_steps); with
    ``batch.site_groups`` g > 1, one series per site group, shape (B, g², batch.n_steps)
    (pyecho.physics.problem.site_group_means says which sites each holds).
    """

    name: str

    def availability(self, device: str = "cpu") -> str | None:
        """None when the engine can run on ``device`` here, else the reason it cannot."""

    def run(self, batch: EchoBatch, device: str = "cpu", dtype: str = "float32") -> np.ndarray: ...


#: backend name -> module defining ENGINE; imported lazily so a missing runtime breaks nothing
_BACKENDS = {
    "numpy": "pyecho.engines.reference",
    "torch": "pyecho.engines.torch_engine",
    "julia": "pyecho.engines.julia_engine",
}
BACKENDS = tuple(_BACKENDS)
DEVICES = ("cpu", "cuda")


def _load(name: str) -> Engine:
    return importlib.import_module(_BACKENDS[name]).ENGINE


def availability(name: str, device: str = "cpu") -> str | None:
    """None if backend ``name`` runs on ``device`` here, else the reason (never raises)."""
    if name not in _BACKENDS:
        return f"unknown backend (known: {', '.join(BACKENDS)})"
    if device not in DEVICES:
        return f"unknown device {device!r} (known: {', '.join(DEVICES)})"
    try:
        return _load(name).availability(device)
    except Exception as exc:  # an engine that cannot even import is unavailable, not fatal
        return f"cannot load: {type(exc).__name__}: {exc}"


def available_backends(device: str = "cpu") -> list[str]:
    return [b for b in BACKENDS if availability(b, device) is None]


def resolve_device(device: str) -> str:
    """Map "auto" to "cuda" when torch sees a GPU, else "cpu"; validate the rest."""
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if device not in DEVICES:
        raise BackendUnavailable(f"device: got {device!r}; allowed: auto, {', '.join(DEVICES)}")
    return device


def get_engine(name: str, device: str = "cpu") -> Engine:
    """The engine for backend ``name`` on ``device``, or BackendUnavailable saying why."""
    reason = availability(name, device)
    if reason is not None:
        others = ", ".join(available_backends(device)) or "none"
        raise BackendUnavailable(
            f"backend {name!r} on device {device!r} cannot run: {reason}; available here: {others}"
        )
    return _load(name)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise BackendUnavailable(f"dtype: got {dtype!r}; allowed: {', '.join(DTYPES)}")
    return dtype


def chunk_size(lattice: int, dtype: str, arrays_per_sim: int, series_values: int = 0) -> int:
    """Simulations per chunk when each needs ``arrays_per_sim`` live (n, n) real arrays and
    ``series_values`` real values of recorded series."""
    per_sim = (arrays_per_sim * lattice * lattice + series_values) * (4 if dtype == "float32" else 8)
    return max(1, CHUNK_BYTES // per_sim)


def chunks(batch: EchoBatch, dtype: str, arrays_per_sim: int) -> Iterator[EchoBatch]:
    """The batch in consecutive memory-bounded pieces (see :func:`chunk_size`; the recorded
    series count too: with site groups they can outweigh the state)."""
    step = chunk_size(batch.lattice, dtype, arrays_per_sim, 2 * batch.n_steps * batch.n_groups)
    for start in range(0, batch.size, step):
        yield batch.subset(start, start + step)

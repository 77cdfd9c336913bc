"""pyecho: simulate NMR Hahn echoes of mean-field coupled nuclear spins, and learn from them.

Public API (SPEC §5)::

    from pyecho import EchoParams, simulate, simulate_batch, kernel_stats
"""
from pyecho.physics.kernels import kernel_stats
from pyecho.physics.params import EchoParams, ParameterError
from pyecho.simulate import simulate, simulate_batch
from pyecho.engines.base import BackendUnavailable, BACKENDS

__version__ = "0.1.0"

__all__ = [
    "EchoParams",
    "simulate",
    "simulate_batch",
    "kernel_stats",
    "ParameterError",
    "BackendUnavailable",
    "BACKENDS",
    "__version__",
]

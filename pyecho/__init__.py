"""pyecho: simulate NMR Hahn echoes of mean-field coupled nuclear spins, and learn from them.

Public API::

    from pyecho import EchoParams, simulate, simulate_batch, kernel_stats
"""
import os

# OpenMP threads that busy-wait at every barrier stall when another process holds a core (a
# shared machine, a laptop, CI): the compiled torch step ran 1.5-13x slower with the default
# policy than with PASSIVE beside one other busy process on 2 cores (docs/performance.md). It
# must be set before torch loads its OpenMP runtime; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyecho.physics.kernels import kernel_stats  # noqa: E402
from pyecho.physics.params import EchoParams, ParameterError  # noqa: E402
from pyecho.simulate import simulate, simulate_batch  # noqa: E402
from pyecho.engines.base import BackendUnavailable, BACKENDS  # noqa: E402

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

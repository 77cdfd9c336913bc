"""The public simulation API: simulate, simulate_batch."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pyecho.engines.base import check_dtype, get_engine, resolve_device
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.params import EchoParams, ParameterError
from pyecho.physics.problem import batch_key, build_batch, check_site_groups


def simulate(
    params: EchoParams,
    seed: int = 0,
    backend: str = "torch",
    device: str = "cpu",
    detuning_mhz: np.ndarray | None = None,
    dtype: str = "float32",
) -> np.ndarray:
    """Simulate one spin echo (the Hahn echo unless ``params.sequence`` says otherwise).

    Parameters
    ----------
    params : EchoParams
    seed : int
        Seeds the detuning field (ignored when ``detuning_mhz`` is given).
    backend : {"numpy", "torch", "julia"}
    device : {"cpu", "cuda", "auto"}
    detuning_mhz : array (n, n), optional
        Cyclic detunings in MHz that replace the sampled ones.
    dtype : {"float32", "float64"}
        Working precision of torch/julia (the NumPy reference is always float64).

    Returns
    -------
    complex ndarray, shape (params.n_samples,) (3 n_tau for the Hahn echo)
        M(t_k) = (1/N) sum_i (<I^x_i> + i <I^y_i>) at t_k = k dt_us, k = 1 .. n_samples.
    """
    return simulate_batch(
        [params],
        seeds=[seed],
        backend=backend,
        device=device,
        detunings_mhz=None if detuning_mhz is None else [detuning_mhz],
        dtype=dtype,
    )[0]


def simulate_batch(
    params: Sequence[EchoParams],
    seeds: Sequence[int] | None = None,
    backend: str = "torch",
    device: str = "cpu",
    detunings_mhz: Sequence[np.ndarray] | None = None,
    dtype: str = "float32",
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    site_groups: int = 1,
) -> np.ndarray:
    """Simulate many echoes; returns complex ndarray (B, n_samples), or (B, g², n_samples) with
    ``site_groups`` g > 1: the record of each interleaved site group
    (:func:`pyecho.physics.problem.site_group_means`; their mean is the echo).

    Every simulation has its own parameters and detunings. ``seeds`` defaults to 0..B-1.
    All series must have the same length; lattices, pulse times and schemes may differ (they
    run in separate engine calls).
    ``batch_size`` caps simulations per engine call; ``on_progress(k)`` is called with the
    number of simulations finished after each call.
    """
    params = list(params)
    if not params:
        raise ParameterError("params: got an empty list; need at least one EchoParams")
    for i, p in enumerate(params):
        if not isinstance(p, EchoParams):
            raise ParameterError(f"params[{i}]: got {type(p).__name__}; must be EchoParams")
    if len({p.n_samples for p in params}) != 1:
        raise ParameterError("params: series lengths (n_samples) differ; simulate them in separate calls")
    if seeds is None:
        seeds = range(len(params))
    seeds = list(seeds)
    if len(seeds) != len(params):
        raise ParameterError(f"seeds: got {len(seeds)}; need one per simulation ({len(params)})")
    if detunings_mhz is not None and len(detunings_mhz) != len(params):
        raise ParameterError(f"detunings_mhz: got {len(detunings_mhz)}; need one per simulation ({len(params)})")
    if batch_size is not None and batch_size < 1:
        raise ParameterError(f"batch_size: got {batch_size}; must be >= 1")
    check_dtype(dtype)
    device = resolve_device(device)
    engine = get_engine(backend, device)

    for lattice in {p.lattice for p in params}:
        site_groups = check_site_groups(site_groups, lattice)
    groups = () if site_groups == 1 else (site_groups**2,)
    out = np.empty((len(params), *groups, params[0].n_samples), dtype=np.complex128)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(batch_key(p), []).append(i)
    for indices in groups.values():
        step = batch_size or len(indices)
        for start in range(0, len(indices), step):
            idx = indices[start : start + step]
            det = [
                sample_detuning_mhz(seeds[i], params[i].lattice, params[i].linewidth_khz,
                                    center_khz=params[i].center_khz)
                if detunings_mhz is None
                else detunings_mhz[i]
                for i in idx
            ]
            batch = build_batch([params[i] for i in idx], det, site_groups=site_groups)
            out[idx] = engine.run(batch, device=device, dtype=dtype)
            if on_progress is not None:
                on_progress(len(idx))
    return out

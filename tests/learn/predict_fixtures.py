"""Helpers for the `pyecho predict` tests: synthetic records written as a `pyecho sim` dataset.

The datasets hold the analytic records of :func:`tests.learn.conftest.make_synthetic_dataset`
(no simulation), written with the store's own writer, so a dataset and an NPY of the same
records must give the same predictions.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pyecho.data.sampling import DatasetConfig
from pyecho.data.store import build_frame, run_metadata, write_part
from pyecho.physics.protocol import Protocol


def write_dataset(path: Path, records, protocol: Protocol | str, labels, *, dt_us: float, lattice: int = 4) -> Path:
    """Write ``records`` (one complex (B, T_k) array per measurement of ``protocol``) with the
    per-sample ``labels`` (a frame of make_synthetic_dataset) as a one-part dataset directory."""
    protocol = Protocol.of(protocol)
    B = records[0].shape[0]
    config = DatasetConfig(n_per_kernel=math.ceil(B / 3), lattice=lattice, dt_us=dt_us, protocol=protocol,
                           part_size=3 * math.ceil(B / 3))
    rows = labels.to_dicts()
    ids, params, meas, recs = [], [], [], []
    for i, row in enumerate(rows):
        for k, m in enumerate(protocol):
            ids.append(i)
            meas.append(k)
            recs.append(records[k][i])
            params.append(config.echo_params(row["kernel"], row["kernel_param"], row["alpha_x"], row["alpha_z"],
                                             measurement=m))
    frame = build_frame(ids, params, np.arange(len(ids)), recs, meas)
    path.mkdir(parents=True)
    write_part(path / f"part-{0:06d}-{B - 1:06d}.parquet", frame,
               run_metadata(config, "synthetic", "cpu", "float32", "2024-01-01T00:00:00Z"))
    return path

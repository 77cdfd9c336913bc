"""Score chosen protocols with the design probe on the samples of one or more `pyecho sim` caches.

    python examples/protocol_choice.py --seed 64 runs/design64 runs/design64b -- \
        hahn@90/100+cpmg:16@75/25 hahn@90/100+cpmg:8@75/50+hahn@75/100

The caches must hold the same samples (same prior, seed and lattice: their label columns are
compared) measured by different candidates; their measurements are pooled, and each protocol
(measurements joined by +) is scored as `pyecho design` scores it: out-of-fold on the design
rows (the score that ranks), and once on the test rows. A measurement no cache holds but a
longer train of one begins with (cpmg:5@90 within cpmg:8@90) is cut from it, exactly. The simulation cost per sample (steps
of the measurements that must be simulated) is printed beside the spectrometer time.
"""
from __future__ import annotations

import sys

import numpy as np
from rich.console import Console
from rich.table import Table

from pyecho.data.store import load_dataset
from pyecho.learn.base import LearnData
from pyecho.learn.design.study import TABLE_TASKS, ProtocolProbe, table_value
from pyecho.physics.protocol import Protocol, RecordGrid

LABELS = ("kernel", "kernel_param", "alpha_x", "alpha_z", "seed", "t2_us", "center_khz", "gamma1_per_us")


def pooled(paths: list[str]) -> LearnData:
    sets = [load_dataset(p) for p in paths]
    first = sets[0]
    for other, path in zip(sets[1:], paths[1:]):
        if not first.labels.select(LABELS).equals(other.labels.select(LABELS)) or other.dt_us != first.dt_us:
            raise SystemExit(f"{path}: not the same samples as {paths[0]}")
    measurements = tuple(m for ds in sets for m in ds.protocol)
    records = tuple(r for ds in sets for r in ds.records)
    return LearnData.from_dataset(type("Pooled", (), {"records": records, "protocol": Protocol(measurements),
                                                      "dt_us": first.dt_us, "labels": first.labels,
                                                      "metadata": first.metadata})())


def with_measurements(data: LearnData, protocol: Protocol) -> LearnData:
    """``data`` with every measurement of ``protocol`` it lacks cut from a longer train it holds."""
    extra = [m for m in protocol if m not in data.protocol]
    records = list(data.records)
    for m in extra:
        k = data.protocol.covering(m)
        if k is None:
            raise SystemExit(f"{m.text}: no cache holds it or a longer train that begins with it")
        records.append(data.records[k][:, :m.n_samples(data.grid.dt_us)])
    grid = RecordGrid(Protocol((*data.protocol, *extra)), data.grid.dt_us)
    return LearnData(records=tuple(records), grid=grid, labels=data.labels, metadata=data.metadata)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit(__doc__)
    seed = 0
    if argv[0] == "--seed":
        seed, argv = int(argv[1]), argv[2:]
    split = argv.index("--")
    protocols = [Protocol.parse(text.replace("+", ",")) for text in argv[split + 1:]]
    data = pooled(argv[:split])
    for protocol in protocols:
        data = with_measurements(data, protocol)
    probe = ProtocolProbe(data, seed=seed)
    tasks = [(t, title) for t, title in TABLE_TASKS]
    table = Table("protocol", "time (µs)", "sim steps", "score", *(title for _, title in tasks),
                  title="design probe: out of fold (test rows in brackets)")
    for text, protocol in zip(argv[split + 1:], protocols):
        idx = tuple(data.protocol.index(m) for m in protocol)
        e = probe.evaluate(idx)
        grid = RecordGrid(protocol, data.grid.dt_us)
        steps = sum(grid.lengths[k] for k in protocol.sources(data.grid.dt_us))
        cells = []
        for t, _ in tasks:
            cv, test = table_value(e.cv, t), table_value(e.test, t)
            cells.append("—" if cv is None else f"{cv:.3f} ({test:.3f})")
        table.add_row(text, f"{e.time_us:.0f}", str(steps), f"{e.score:.3f}", *cells)
    Console(width=250).print(table)
    print(f"{len(probe.design)} design rows, {len(probe.test)} test rows, SNR {probe.snr:g}; "
          f"{np.unique(data.labels.kernel).size} kernels")


if __name__ == "__main__":
    main(sys.argv[1:])

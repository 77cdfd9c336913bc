"""Figures of datasets: a sweep along one of its axes."""
from __future__ import annotations

import numpy as np
import polars as pl

from pyecho.atomic import atomic_path
from pyecho.data.sampling import ConfigError
from pyecho.data.store import EchoDataset, column_of
from pyecho.data.sweep import SweepConfig, grid_value


def plot_sweep(ds: EchoDataset, axis: str, path, *, hue: str | None = None, at: dict | None = None, tops: bool = False) -> int:
    """Figure of a sweep dataset (an EchoDataset written from a SweepConfig) along ``axis``.

    ``tops=False``: |M(t)| of every value of ``axis``, coloured by it; ``tops=True``: the first
    echo top |M| against ``axis``, one line per value of ``hue``. Other swept fields are held at
    ``at`` (field -> value) or else at their first value. Returns the number of echoes drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = ds.config
    if not isinstance(config, SweepConfig):
        raise ConfigError("data", "is not a sweep (written by pyecho sweep)")
    swept = dict(config.axes)
    for name in (axis, hue):
        if name is not None and name not in swept:
            raise ConfigError("axis", f"got {name!r}; this sweep varies {', '.join(swept)}")
    held = {name: values[0] for name, values in swept.items() if name not in (axis, hue)}
    for name, value in (at or {}).items():
        if name not in held:
            raise ConfigError("at", f"{name!r} is not a held swept field; held: {', '.join(held) or 'none'}")
        held[name] = grid_value(name, value)
    mask = pl.lit(True)
    for name, value in held.items():
        mask = mask & (pl.col(column_of(name)).is_null() if value is None else pl.col(column_of(name)) == value)
    rows = ds.labels.with_row_index("_row").filter(mask)
    if rows.height == 0:
        raise ConfigError("at", f"no echo of the sweep has {held}")
    series = np.abs(ds.M[rows["_row"].to_numpy()])
    held_text = ", ".join(f"{k} = {v}" for k, v in held.items())
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    if tops:
        echo = config.base.echo_samples[0]
        groups = rows.partition_by(column_of(hue), maintain_order=True) if hue else [rows]
        for group in groups:
            idx = np.searchsorted(rows["_row"].to_numpy(), group["_row"].to_numpy())
            label = f"{hue} = {group[column_of(hue)][0]}" if hue else None
            ax.plot(group[column_of(axis)].to_numpy(), series[idx, echo], "o-", ms=4, label=label)
        ax.set_xlabel(axis)
        ax.set_ylabel(f"|M| at the echo, t = {config.dt_us * (echo + 1):g} µs")
        if hue:
            ax.legend(fontsize=8)
    else:
        t_us = ds.t_us
        values = rows[column_of(axis)].to_numpy()
        colours = plt.cm.viridis(np.linspace(0, 1, len(values)))
        for curve, value, colour in zip(series, values, colours):
            ax.plot(t_us, curve, lw=1.0, color=colour, label=f"{axis} = {value:.4g}" if not isinstance(value, str) else value)
        ax.set_xlabel("t (µs)")
        ax.set_ylabel("|M(t)|")
        ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"{config.base.kernel} sweep over {axis}" + (f"; {held_text}" if held_text else ""), fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return rows.height

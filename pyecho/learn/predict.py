"""`pyecho predict`: the headline predictor on any number of echoes.

:func:`predict_echoes` reads the echoes (:mod:`pyecho.data.echo_input`: datasets, CSV, NPY,
spectrometer files) onto the model's protocol and returns one row per echo with calibrated
intervals and out-of-domain flags (:mod:`pyecho.learn.predictor`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pyecho.atomic import atomic_path
from pyecho.errors import InputFileError, ParameterError

if TYPE_CHECKING:
    from pyecho.data.echo_input import EchoRecords

# ---- the headline predictor on any number of echoes -------------------------------------------
#: the files `pyecho predict --out` writes, by suffix
PREDICTION_FORMATS = (".csv", ".parquet")
#: echoes predicted at once: bounds the memory of the models' features (15 000 paper-grid
#: echoes in one piece took 4 GB), at no measurable cost in time
PREDICT_CHUNK = 1000


def check_prediction_path(path: str | Path) -> Path:
    """``path`` if it ends in .csv or .parquet; ParameterError naming --out otherwise."""
    path = Path(path)
    if path.suffix.lower() not in PREDICTION_FORMATS:
        raise ParameterError(f"--out {path}: the suffix must be {' or '.join(PREDICTION_FORMATS)}")
    return path


def headline_dir(model_dir: str | Path) -> Path:
    """The headline predictor's folder in a `pyecho learn` output directory, its models/ folder
    or the folder itself; InputFileError if none holds one."""
    from pyecho.learn.predictor import HEADLINE_DIR, PREDICTOR_FILE

    d = Path(model_dir)
    for candidate in (d / "models" / HEADLINE_DIR, d / HEADLINE_DIR, d):
        if (candidate / PREDICTOR_FILE).is_file():
            return candidate
    if not d.is_dir():
        raise InputFileError(f"{d}: no such directory; point at the output of `pyecho learn`")
    raise InputFileError(f"{d}: holds no models/{HEADLINE_DIR}/{PREDICTOR_FILE}; point at the output of `pyecho "
                         "learn` (a run without the headline model: rerun `pyecho learn`, or use --model paper)")


@dataclass(frozen=True)
class BatchPrediction:
    """What :func:`predict_echoes` returns.

    frame : one row per sample, the columns ``predictor.prediction_columns`` and ``ood_reasons``;
        ``index`` is the sample's position in the input (a dataset's rows in sample_id order)
    level : the intervals' confidence level (e.g. 0.9)
    kind, paths, read_as : what was read and how (``pyecho.data.echo_input.EchoRecords``)
    records : the records read, every sample of the input (pyecho fit starts from the frame's
        predictions and fits these)
    """

    frame: pl.DataFrame
    level: float
    kind: str
    paths: tuple[Path, ...]
    read_as: tuple[str, ...]
    records: "EchoRecords" = field(repr=False)


def predict_echoes(model_dir: str | Path, inputs, *, tau_us: float | None = None, start_us: float | None = None,
                   row: int | None = None) -> BatchPrediction:
    """Run the headline predictor of ``model_dir`` on the records ``inputs`` name.

    Parameters
    ----------
    model_dir : a `pyecho learn` output directory (or its models/ folder)
    inputs : paths read by :func:`pyecho.data.echo_input.read_echoes` onto the model's protocol
        (a dataset, or one file per measurement in the model's order)
    tau_us : µs, for a CSV or spectrometer file that does not record it
    start_us : µs, the records' first point after the excitation (a dead time)
    row : predict only sample ``row`` of the input (0-based); default all
    """
    from pyecho.data.echo_input import read_echoes
    from pyecho.learn.predictor import EchoPredictor

    predictor = EchoPredictor.load(headline_dir(model_dir))
    if start_us is not None and start_us > predictor.dead_time_us:  # before reading anything
        raise ParameterError(f"--start-us {start_us}: the model was trained with a dead time of "
                             f"{predictor.dead_time_us:g} µs (it does without the first {predictor.dead_time_us:g} µs "
                             "after each pulse), not more; retrain with pyecho learn --dead-time-us")
    records = read_echoes(inputs, predictor.grid, tau_us=tau_us, start_us=start_us)
    index = np.arange(len(records))
    if row is not None:
        if not 0 <= row < len(records):
            raise ParameterError(f"--row {row}: {', '.join(map(str, records.paths))} holds {len(records)} sample(s), "
                                 f"rows 0..{len(records) - 1}")
        index = index[row:row + 1]
    frames = []
    for i in range(0, len(index), PREDICT_CHUNK):
        chunk = index[i:i + PREDICT_CHUNK]
        frames.append(predictor.predict(tuple(M[chunk] for M in records.M), records.grid,
                                        source=", ".join(map(str, records.paths))).to_frame())
    frame = pl.concat(frames).with_columns(pl.Series("index", index, dtype=pl.Int64))
    return BatchPrediction(frame, predictor.level, records.kind, records.paths, records.read_as, records)


def write_predictions(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write a prediction frame to ``path`` (.csv or .parquet), atomically."""
    path = check_prediction_path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)
    return path

"""Preprocessing and featurisation of echoes (the paper's Sec. II-B and Fig. 7; docs/learn.md).

Everything here is a pure function: arrays in, arrays or polars tables out.

* :func:`normalise_abs` -- |M(t)| min-max normalised per series to [0, 1] (over the full series).
* :func:`window_slice` -- the area of interest: ``width`` samples centred on the echo sample.
* :func:`pointwise_features` -- one column per sample of the window, named ``pt_t{t:.2f}us``.
* :func:`polynomial_features` -- multiscale cubic fits: the window is cut into 4, 5 and 10
  equal sections, a cubic ``c0 + c1 x + c2 x^2 + c3 x^3`` with ``x = t - t_centre`` (µs) is
  least-squares fitted in each, and the coefficients are the features ``poly_s{n}_k{k}_c{j}``
  (n sections, section k = 1..n, coefficient j = 0..3): 4 (4 + 5 + 10) = 76 features.
* :class:`FeatureLayout` -- everything needed to featurise a new echo exactly as in training
  (time grid, window, normalisation, feature names); stored with every fitted model.
* :func:`build_features` -- the `pyecho learn` stage: a dataset's echoes -> :class:`Features`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from pyecho.learn.base import NO_JSON, ByFeatureSet, FeatureSet, LearnData

#: the paper's multiscale sections (the paper's Sec. II-B)
DEFAULT_SECTIONS: tuple[int, ...] = (4, 5, 10)
#: width of the area of interest in samples (the paper's Sec. II-B)
DEFAULT_WINDOW = 400
#: cubic fits
POLY_DEGREE = 3


def normalise_abs(M: np.ndarray) -> np.ndarray:
    """|M| min-max normalised per series.

    Parameters
    ----------
    M : array (B, T) or (T,), complex or real
        Magnetisation series; for real input the absolute value is taken as well.

    Returns
    -------
    float64 array of the same shape, each row in [0, 1]. A constant row maps to zeros.

    Raises
    ------
    ValueError if any value is not finite.
    """
    a = np.abs(np.asarray(M)).astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("the echo contains NaN or infinite values")
    squeeze = a.ndim == 1
    a = np.atleast_2d(a)
    lo = a.min(axis=1, keepdims=True)
    span = a.max(axis=1, keepdims=True) - lo
    out = np.divide(a - lo, span, out=np.zeros_like(a), where=span > 0)
    return out[0] if squeeze else out


def window_bounds(echo_index: int, n_samples: int, width: int = DEFAULT_WINDOW) -> tuple[int, int]:
    """Half-open sample range ``[start, stop)`` of ``width`` samples centred on ``echo_index``.

    The echo sample sits at ``start + width // 2``. Raises ValueError if the window does not
    fit inside a series of ``n_samples``.
    """
    if width < 8:
        raise ValueError(f"window width must be at least 8 samples, got {width}")
    start = int(echo_index) - width // 2
    stop = start + width
    if start < 0 or stop > n_samples:
        raise ValueError(
            f"a {width}-sample window centred on the echo sample {echo_index} does not fit in a "
            f"series of {n_samples} samples; use a smaller window"
        )
    return start, stop


def window_slice(X: np.ndarray, echo_index: int, width: int = DEFAULT_WINDOW) -> np.ndarray:
    """The area of interest of every row: ``X[..., start:stop]`` (see :func:`window_bounds`)."""
    start, stop = window_bounds(echo_index, X.shape[-1], width)
    return X[..., start:stop]


def pointwise_names(t_us_window: np.ndarray) -> list[str]:
    """Column names ``pt_t{t:.2f}us`` for the samples of the window (t in µs)."""
    names = [f"pt_t{t:.2f}us" for t in np.asarray(t_us_window, dtype=float)]
    if len(set(names)) != len(names):  # sub-0.01 µs steps: fall back to more digits
        names = [f"pt_t{t:.4f}us" for t in np.asarray(t_us_window, dtype=float)]
    return names


def pointwise_features(X_window: np.ndarray, t_us_window: np.ndarray) -> pl.DataFrame:
    """Pointwise features: one Float32 column per window sample.

    Parameters
    ----------
    X_window : array (B, W), normalised |M| in the window
    t_us_window : array (W,), times of the window samples in µs
    """
    X_window = np.atleast_2d(X_window)
    names = pointwise_names(t_us_window)
    if X_window.shape[1] != len(names):
        raise ValueError(f"window has {X_window.shape[1]} samples but {len(names)} times")
    return pl.DataFrame(X_window.astype(np.float32), schema=names, orient="row")


def section_bounds(width: int, n_sections: int) -> list[tuple[int, int]]:
    """Split ``range(width)`` into ``n_sections`` contiguous, (as) equal (as possible) pieces."""
    if n_sections < 1 or width < 4 * n_sections:
        raise ValueError(f"cannot fit cubics on {n_sections} sections of a {width}-sample window")
    edges = np.linspace(0, width, n_sections + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def polynomial_names(sections: tuple[int, ...] = DEFAULT_SECTIONS) -> list[str]:
    """``poly_s{n}_k{k}_c{j}``: n sections, section k (1-based), coefficient of x^j."""
    return [
        f"poly_s{n}_k{k}_c{j}"
        for n in sections
        for k in range(1, n + 1)
        for j in range(POLY_DEGREE + 1)
    ]


def polynomial_coefficients(
    X_window: np.ndarray, t_us_window: np.ndarray, sections: tuple[int, ...] = DEFAULT_SECTIONS
) -> np.ndarray:
    """Multiscale cubic-fit coefficients.

    Parameters
    ----------
    X_window : array (B, W)
    t_us_window : array (W,), µs
    sections : numbers of equal sections (default 4, 5, 10)

    Returns
    -------
    array (B, 4 * sum(sections)) ordered as :func:`polynomial_names`: for section k of an
    n-split, ``[c0, c1, c2, c3]`` of the least-squares cubic in ``x = t - t_c`` (µs), where
    ``t_c`` is the midpoint of the section's first and last sample times.
    """
    X_window = np.atleast_2d(np.asarray(X_window, dtype=np.float64))
    t = np.asarray(t_us_window, dtype=np.float64)
    if X_window.shape[1] != t.shape[0]:
        raise ValueError(f"window has {X_window.shape[1]} samples but {t.shape[0]} times")
    blocks = []
    for n in sections:
        for a, b in section_bounds(t.shape[0], n):
            ts = t[a:b]
            x = ts - 0.5 * (ts[0] + ts[-1])
            V = np.vander(x, POLY_DEGREE + 1, increasing=True)  # (m, 4): 1, x, x^2, x^3
            coef, *_ = np.linalg.lstsq(V, X_window[:, a:b].T, rcond=None)  # (4, B)
            blocks.append(coef.T)
    return np.concatenate(blocks, axis=1)


def polynomial_features(
    X_window: np.ndarray, t_us_window: np.ndarray, sections: tuple[int, ...] = DEFAULT_SECTIONS
) -> pl.DataFrame:
    """:func:`polynomial_coefficients` as a polars table with :func:`polynomial_names` columns."""
    coef = polynomial_coefficients(X_window, t_us_window, sections)
    return pl.DataFrame(coef, schema=polynomial_names(sections), orient="row")


def parse_polynomial_name(name: str) -> tuple[int, int, int]:
    """``poly_s10_k3_c2`` -> (10, 3, 2)."""
    s, k, c = name.removeprefix("poly_").split("_")
    return int(s[1:]), int(k[1:]), int(c[1:])


@dataclass(frozen=True)
class FeatureLayout:
    """How raw echoes become features; saved beside every fitted model.

    Attributes
    ----------
    t_us : list of float, length T -- the model's time grid (µs), t_k = k dt
    echo_index : int -- 0-based index of the echo sample (t = 2 tau)
    window : (start, stop) -- half-open sample range of the area of interest
    sections : the multiscale polynomial sections
    normalisation : description of the preprocessing (|M|, min-max over the full series)
    """

    t_us: list[float]
    echo_index: int
    window: tuple[int, int]
    sections: tuple[int, ...] = DEFAULT_SECTIONS
    normalisation: str = "abs_minmax_full_series"
    pointwise_names: list[str] = field(default_factory=list)
    polynomial_names: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        t_us: np.ndarray,
        echo_index: int,
        width: int = DEFAULT_WINDOW,
        sections: tuple[int, ...] = DEFAULT_SECTIONS,
    ) -> "FeatureLayout":
        t_us = np.asarray(t_us, dtype=np.float64)
        start, stop = window_bounds(echo_index, t_us.shape[0], width)
        for n in sections:
            section_bounds(width, n)
        return cls(
            t_us=[float(v) for v in t_us],
            echo_index=int(echo_index),
            window=(start, stop),
            sections=tuple(int(s) for s in sections),
            pointwise_names=pointwise_names(t_us[start:stop]),
            polynomial_names=polynomial_names(tuple(sections)),
        )

    @property
    def t_window(self) -> np.ndarray:
        a, b = self.window
        return np.asarray(self.t_us[a:b])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window"] = list(self.window)
        d["sections"] = list(self.sections)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureLayout":
        d = dict(d)
        d["window"] = tuple(d["window"])
        d["sections"] = tuple(d["sections"])
        return cls(**d)

    def normalise(self, M: np.ndarray) -> np.ndarray:
        """(B, T) raw M on this grid -> (B, T) normalised |M|."""
        M = np.atleast_2d(M)
        if M.shape[1] != len(self.t_us):
            raise ValueError(f"expected {len(self.t_us)} samples per echo, got {M.shape[1]}")
        return normalise_abs(M)

    def features(self, X_norm: np.ndarray) -> ByFeatureSet[pl.DataFrame]:
        """Normalised (B, T) series -> pointwise (B, W) and polynomial (B, 76) tables."""
        a, b = self.window
        Xw = np.atleast_2d(X_norm)[:, a:b]
        return ByFeatureSet(pointwise=pointwise_features(Xw, self.t_window),
                            polynomial=polynomial_features(Xw, self.t_window, self.sections))

    def names(self, fs: FeatureSet) -> list[str]:
        """Column names of feature set ``fs``."""
        return self.pointwise_names if fs == FeatureSet.POINTWISE else self.polynomial_names


def default_window(n_times: int, small: bool) -> int:
    """The area-of-interest width: 400 samples, or for ``small`` runs on short series a third
    of the series (even, at least 40)."""
    if not small or n_times >= DEFAULT_WINDOW + 2:
        return DEFAULT_WINDOW
    return max(40, (n_times // 3) // 2 * 2)


@dataclass(frozen=True)
class Features:
    """The paper's |M| route: normalised echoes and the feature matrices of every echo.

    layout : how they were made (saved with the models); X_norm : (B, T) normalised |M| of the
    first angle; tables : (B, F) float matrices per feature set, columns ``layout.names(fs)``.
    """

    layout: FeatureLayout = field(metadata=NO_JSON)
    X_norm: np.ndarray = field(metadata=NO_JSON)
    tables: ByFeatureSet[np.ndarray] = field(metadata=NO_JSON)

    @property
    def X_window(self) -> np.ndarray:
        """(B, W) normalised |M| in the area of interest."""
        a, b = self.layout.window
        return self.X_norm[:, a:b]

    def __json__(self) -> dict:
        lay = self.layout
        return {"normalisation": lay.normalisation, "window": list(lay.window), "echo_index": lay.echo_index,
                "sections": list(lay.sections), "n_features": {fs.value: t.shape[1] for fs, t in self.tables.items()}}


def build_features(data: LearnData, width: int) -> Features:
    """Stage: normalise |M| of the first angle, cut the ``width``-sample window, featurise."""
    layout = FeatureLayout.build(data.t_us, data.echo_index, width)
    X_norm = normalise_abs(data.M)
    tables = layout.features(X_norm)
    return Features(layout=layout, X_norm=X_norm,
                    tables=ByFeatureSet.build(lambda fs: tables[fs].to_numpy()))

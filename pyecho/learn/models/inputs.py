"""What a spectrometer gives, made ready for the learned models; what those models predict.

A measured echo is complex (both quadratures), carries an arbitrary global receiver phase
and gain, and noise. Conventions used everywhere in this module:

* a *record* is complex, shape (A, T): A pulse angles (A = 1 for an ordinary 90° dataset),
  T samples on the dataset's grid t_k = k·dt_us, k = 1..T; index 0 is the first sample
  after the excitation pulse;
* a *batch* is (B, A, T); :func:`as_batch` also accepts one series (T,) or (B, T) (A = 1).

What is here:

* :func:`reference_phase_gain` -- divide each record (each angle on its own) by the mean of
  its first ``n_ref`` samples: the start becomes real and positive with magnitude ~1, so the
  result is invariant to a global phase e^{iφ} and a gain g > 0, while the phase's evolution
  over time (which carries α_z and W at θ ≠ 90°, and any carrier offset) is kept.
* :class:`InputView` -- the float32 channels a model sees: referenced Re, Im (and |M|) per
  angle, optionally block-averaged in time.
* :func:`add_complex_noise` and :func:`augment_training` -- complex white Gaussian noise at a
  defined SNR, and noisy copies of *training* rows only.
* :class:`EchoTargets` and :class:`EchoPredictions` -- the labels the models learn and what
  they return (kernel class probabilities; W, L, α_xy, α_z in their own units).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from pyecho.errors import InputFileError

from pyecho.learn.base import KERNELS, TARGETS
from pyecho.physics.kernels import is_long_range

#: the kernel families the models tell apart (``base.KERNELS``), the order of every probability column
KERNEL_CLASSES: tuple[str, ...] = KERNELS
#: samples averaged for the phase/gain reference (1.28 µs at dt = 0.16 µs): enough to keep
#: the reference's own noise 1/sqrt(8) of one sample's, short against the FID's decay
DEFAULT_N_REF = 8
#: channel sets of :class:`InputView`, per angle, in this order
CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "abs": ("abs",),
    "reim": ("re", "im"),
    "reim_abs": ("re", "im", "abs"),
}


def as_batch(M) -> np.ndarray:
    """Records as a complex128 batch (B, A, T) from (T,), (B, T) or (B, A, T).

    Raises ValueError for another number of dimensions, a non-numeric array, or NaN/inf.
    """
    a = np.asarray(M)
    if not (np.issubdtype(a.dtype, np.number) and a.ndim in (1, 2, 3)):
        raise ValueError(f"M: expected a numeric array of shape (T,), (B, T) or (B, A, T); got {a.dtype} {a.shape}")
    if a.shape[-1] < 1 or a.size == 0:
        raise ValueError(f"M: empty array of shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("M: contains NaN or infinite values")
    a = a.astype(np.complex128)
    if a.ndim == 1:
        return a[None, None, :]
    return a[:, None, :] if a.ndim == 2 else a


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: got {value!r}; allowed: an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class ReferencedEchoes:
    """Records with the receiver's phase and gain removed (see :func:`reference_phase_gain`).

    Attributes
    ----------
    M : complex128 array (B, A, T) -- M / r, with r the mean of the first ``n_ref`` samples
    phase_rad : float array (B, A) -- arg r, the removed phase (rad)
    gain : float array (B, A) -- |r|, the removed gain (units of the input M)
    """

    M: np.ndarray
    phase_rad: np.ndarray
    gain: np.ndarray


def reference_phase_gain(M, *, n_ref: int = DEFAULT_N_REF) -> ReferencedEchoes:
    """Remove the arbitrary global receiver phase and gain of every record.

    Each record (each angle of a multi-angle record on its own) is divided by its reference
    r = mean(M[..., :n_ref]): the start of the result is real and positive with magnitude 1
    (averaging n_ref samples keeps the reference robust to noise), and M·g·e^{iφ} gives the
    same result as M for any g > 0 and φ. The phase's evolution over time is kept.

    Parameters
    ----------
    M : complex array (T,), (B, T) or (B, A, T)
    n_ref : samples averaged for the reference, 1 <= n_ref <= T (default 8)

    Returns
    -------
    :class:`ReferencedEchoes`, always batched (B, A, T).

    Raises
    ------
    ValueError if n_ref is out of range, M is not finite, or a record's reference is zero.
    """
    X = as_batch(M)
    n_ref = _check_int("n_ref", n_ref, 1)
    if n_ref > X.shape[-1]:
        raise ValueError(f"n_ref: got {n_ref}; allowed: 1 .. T = {X.shape[-1]}")
    r = X[..., :n_ref].mean(axis=-1)
    gain = np.abs(r)
    if np.any(gain == 0):
        b, a = np.argwhere(gain == 0)[0]
        raise ValueError(f"M: record {b} (angle {a}) has a zero reference (mean of its first {n_ref} samples)")
    return ReferencedEchoes(M=X / r[..., None], phase_rad=np.angle(r), gain=gain)


@dataclass(frozen=True)
class InputView:
    """The float32 channels a model sees, from complex records.

    Parameters
    ----------
    channels : "reim_abs" (default: Re, Im and |M| of the referenced record), "reim" or "abs"
        ("abs" is the paper's |M| route, gain-normalised to ~1 at the start)
    decimate : block-average every ``decimate`` samples (1 = none); the last T % decimate
        samples are dropped, so T' = T // decimate. Averaging (not subsampling) also lowers
        white noise by sqrt(decimate).
    n_ref : samples of the phase/gain reference (see :func:`reference_phase_gain`)

    Output of :meth:`transform`: float32 (B, A·C, T'), channel index a·C + c for angle a and
    channel c of ``CHANNEL_SETS[channels]``.
    """

    channels: str = "reim_abs"
    decimate: int = 2
    n_ref: int = DEFAULT_N_REF

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_SETS:
            raise ValueError(f"channels: got {self.channels!r}; allowed: {', '.join(CHANNEL_SETS)}")
        _check_int("decimate", self.decimate, 1)
        _check_int("n_ref", self.n_ref, 1)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return CHANNEL_SETS[self.channels]

    def n_timepoints(self, n_samples: int) -> int:
        """T' for records of T = ``n_samples``."""
        return n_samples // self.decimate

    def transform(self, M) -> np.ndarray:
        """Channels of the referenced records: float32 (B, A·C, T // decimate)."""
        R = reference_phase_gain(M, n_ref=self.n_ref).M
        B, A, T = R.shape
        if T < self.decimate:
            raise ValueError(f"decimate: got {self.decimate}; the records have only {T} samples")
        parts = {"re": R.real, "im": R.imag, "abs": np.abs(R)}
        X = np.stack([parts[c] for c in self.channel_names], axis=2)  # (B, A, C, T)
        T2 = T // self.decimate
        X = X[..., : T2 * self.decimate].reshape(B, A, len(self.channel_names), T2, self.decimate).mean(axis=-1)
        return X.reshape(B, -1, T2).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputView":
        return cls(**d)


def add_complex_noise(M, snr, rng: np.random.Generator) -> np.ndarray:
    """Add complex white Gaussian noise at a given signal-to-noise ratio.

    SNR definition: snr = A0 / σ, where A0 = max over the angles of |M[b, a, 0]| (the record's
    first sample, index 0, of the noise-free input; one receiver, so one σ for all angles of an
    echo) and σ is the standard deviation of each quadrature of the noise: Re and Im of every
    sample get independent N(0, σ²) draws. snr = inf adds nothing.

    Parameters
    ----------
    M : complex array (T,), (B, T) or (B, A, T), noise-free records
    snr : float or array (B,), each > 0 (inf allowed)
    rng : numpy Generator (the only source of randomness)

    Returns
    -------
    complex128 array of M's shape: a new array (M itself is never modified).
    """
    a = np.asarray(M)
    X = as_batch(a)
    snr = np.broadcast_to(np.asarray(snr, dtype=float), (X.shape[0],)) if np.ndim(snr) == 0 else np.asarray(snr, float)
    if snr.shape != (X.shape[0],) or np.any(np.isnan(snr)) or np.any(snr <= 0):
        raise ValueError(f"snr: got {snr if snr.size <= 4 else snr.shape}; allowed: a value > 0 (inf allowed) "
                         f"or one per record, shape ({X.shape[0]},)")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: got {type(rng).__name__}; allowed: a numpy.random.Generator")
    sigma = np.abs(X[:, :, 0]).max(axis=1) / snr  # (B,), 0 where snr is inf
    noise = rng.standard_normal(X.shape) + 1j * rng.standard_normal(X.shape)
    return (X + sigma[:, None, None] * noise).reshape(a.shape)


def check_snr_options(snr_choices, snr_range, *, required: bool, prefix: str = ""):
    """Validated (snr_choices, snr_range) as float tuples (or None): at most one given, exactly
    one if ``required``; choices > 0 (inf allowed), range (lo, hi) with 0 < lo <= hi < inf.
    ``prefix`` is prepended to the option names in the error messages."""
    names = f"{prefix}snr_choices", f"{prefix}snr_range"
    if snr_choices is not None and snr_range is not None or (required and snr_choices is None and snr_range is None):
        raise ValueError(f"{names[0]} / {names[1]}: give {'exactly' if required else 'at most'} one of them")
    if snr_choices is not None:
        try:
            choices = tuple(float(v) for v in snr_choices)
        except (TypeError, ValueError):
            choices = ()
        if not choices or not all(v > 0 for v in choices):  # NaN fails v > 0
            raise ValueError(f"{names[0]}: got {snr_choices!r}; allowed: a non-empty list of values > 0 (inf allowed)")
        return choices, None
    if snr_range is not None:
        try:
            lo, hi = (float(v) for v in snr_range)
        except (TypeError, ValueError):
            lo = hi = np.nan
        if not 0 < lo <= hi < np.inf:
            raise ValueError(f"{names[1]}: got {snr_range!r}; allowed: (lo, hi) with 0 < lo <= hi < inf")
        return None, (lo, hi)
    return None, None


@dataclass(frozen=True)
class NoiseAugmented:
    """Noisy copies of training rows (see :func:`augment_training`).

    Attributes
    ----------
    M : complex128 array (N, ...) -- new rows, one per (training row, copy)
    source_index : int array (N,) -- the row of the input each new row was made from (gather
        the labels with it); every value is one of the given training indices
    snr : float array (N,) -- the SNR each row got (inf: a clean copy)
    """

    M: np.ndarray
    source_index: np.ndarray
    snr: np.ndarray


def augment_training(
    M,
    *,
    train_index,
    rng: np.random.Generator,
    snr_choices: Sequence[float] | None = None,
    snr_range: tuple[float, float] | None = None,
    copies: int = 1,
) -> NoiseAugmented:
    """Noisy copies of the training rows only: new arrays, M untouched.

    Only the rows named by ``train_index`` are read; the result holds ``copies`` noisy copies of
    each, with SNRs (definition in :func:`add_complex_noise`) drawn per copy, either uniformly
    from ``snr_choices`` (inf = clean copy) or log-uniformly from ``snr_range`` = (lo, hi).
    Exactly one of the two must be given.

    Parameters
    ----------
    M : complex array (B, T) or (B, A, T), all rows of a dataset
    train_index : int array-like of distinct rows in [0, B): the training rows
    rng : numpy Generator
    snr_choices : sequence of SNRs > 0 (inf allowed), e.g. (inf, 200, 50)
    snr_range : (lo, hi), 0 < lo <= hi < inf
    copies : noisy copies per training row (>= 1)
    """
    a = np.asarray(M)
    if a.ndim not in (2, 3):
        raise ValueError(f"M: expected rows of shape (B, T) or (B, A, T); got {a.shape}")
    idx = np.asarray(train_index)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"train_index: expected a non-empty 1-D integer array; got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= a.shape[0] or np.unique(idx).size != idx.size:
        raise ValueError(f"train_index: values must be distinct rows in [0, {a.shape[0]})")
    copies = _check_int("copies", copies, 1)
    choices, bounds = check_snr_options(snr_choices, snr_range, required=True)
    if choices is not None:
        snr = rng.choice(np.asarray(choices), size=idx.size * copies)
    else:
        snr = np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size=idx.size * copies))
    source = np.repeat(idx, copies)
    return NoiseAugmented(M=add_complex_noise(a[source], snr, rng), source_index=source, snr=snr)


@dataclass(frozen=True)
class EchoTargets:
    """What the models learn, one entry per echo.

    Attributes
    ----------
    kernel : str array (B,), one of :data:`KERNEL_CLASSES`
    W, alpha_xy, alpha_z : float arrays (B,) in rad/µs (alpha_xy = alpha_x = alpha_y)
    L : float array (B,) in lattice spacings
    """

    kernel: np.ndarray
    W: np.ndarray
    L: np.ndarray
    alpha_xy: np.ndarray
    alpha_z: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.kernel)
        unknown = sorted(set(np.asarray(self.kernel).tolist()) - set(KERNEL_CLASSES))
        if unknown:
            raise ValueError(f"kernel: got {unknown}; allowed: {', '.join(KERNEL_CLASSES)}")
        for name in TARGETS:
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (n,) or not np.all(np.isfinite(v)):
                raise ValueError(f"{name}: expected {n} finite values; got shape {v.shape}")

    @classmethod
    def from_labels(cls, labels: pl.DataFrame) -> "EchoTargets":
        """From a dataset's label frame (columns kernel, W, L, alpha_x, alpha_z)."""
        return cls(kernel=labels["kernel"].to_numpy().astype(str), W=labels["W"].to_numpy(),
                   L=labels["L"].to_numpy(), alpha_xy=labels["alpha_x"].to_numpy(),
                   alpha_z=labels["alpha_z"].to_numpy())

    def __len__(self) -> int:
        return len(self.kernel)

    @property
    def kernel_index(self) -> np.ndarray:
        """int array (B,): position of each kernel in :data:`KERNEL_CLASSES`."""
        return np.array([KERNEL_CLASSES.index(k) for k in self.kernel], dtype=np.int64)

    @property
    def is_power(self) -> np.ndarray:
        """bool array (B,): the paper's "P" (long-range) class."""
        return np.array([is_long_range(k) for k in self.kernel], dtype=bool)

    def regression(self) -> np.ndarray:
        """float64 array (B, 4): the regression targets in the order of ``base.TARGETS``."""
        return np.column_stack([np.asarray(getattr(self, t), dtype=float) for t in TARGETS])

    def take(self, index) -> "EchoTargets":
        """The rows ``index`` (int array)."""
        return EchoTargets(**{f: np.asarray(getattr(self, f))[index] for f in ("kernel", *TARGETS)})


#: columns of :data:`KERNEL_CLASSES` that are the "P" (long-range) class
_POWER_COLUMNS = np.array([is_long_range(k) for k in KERNEL_CLASSES])


@dataclass(frozen=True)
class EchoPredictions:
    """A model's output for B echoes.

    Attributes
    ----------
    kernel_proba : float array (B, 3), columns in the order of :data:`KERNEL_CLASSES`
    W, alpha_xy, alpha_z : float arrays (B,) in rad/µs
    L : float array (B,) in lattice spacings
    """

    kernel_proba: np.ndarray
    W: np.ndarray
    L: np.ndarray
    alpha_xy: np.ndarray
    alpha_z: np.ndarray

    @property
    def kernel(self) -> np.ndarray:
        """str array (B,): the most probable kernel."""
        return np.asarray(KERNEL_CLASSES)[np.argmax(self.kernel_proba, axis=1)]

    @property
    def p_power(self) -> np.ndarray:
        """float array (B,): probability of the "P" (long-range) class, the sum over its kernels."""
        return self.kernel_proba[:, _POWER_COLUMNS].sum(axis=1)

    @property
    def is_power(self) -> np.ndarray:
        """bool array (B,): P vs NP decided on p_power >= 0.5 (derived from the kernel head)."""
        return self.p_power >= 0.5

    def regression(self) -> np.ndarray:
        """float array (B, 4) in the order of ``base.TARGETS``."""
        return np.column_stack([getattr(self, t) for t in TARGETS])


#: version of the JSON header written beside every saved CNN / MiniRocket model
MODEL_FORMAT_VERSION = 1


class ModelFileError(InputFileError):
    """A saved model cannot be used by this pyecho; the message names the file and why."""


def model_header(kind: str) -> dict:
    """The JSON header of a saved model of ``kind``: format, versions, class and target order."""
    import pyecho  # deferred: pyecho/__init__ imports the engines, not this module

    return {"format": kind, "format_version": MODEL_FORMAT_VERSION, "pyecho_version": pyecho.__version__,
            "classes": list(KERNEL_CLASSES), "targets": [str(t) for t in TARGETS]}


def check_model_header(path, config: dict, kind: str) -> None:
    """Refuse (ModelFileError, one line naming ``path``) a config not written by this pyecho for ``kind``."""
    expected = model_header(kind)
    for key, want in expected.items():
        got = config.get(key) if isinstance(config, dict) else None
        if got != want:
            raise ModelFileError(f"{path}: {key} is {got!r}, this pyecho needs {want!r}; "
                                 "retrain the model with this version")


def read_model_config(directory, config_file: str, data_file: str, kind: str,
                      writer: str) -> tuple[Path, Path, dict]:
    """The paths of a saved model's config and data files and its checked config.

    ModelFileError (one line naming the file) for a missing file, unreadable JSON, or a config
    not written by this pyecho for ``kind``; ``writer`` names what writes such a directory.
    """
    d = Path(directory)
    config_path, data_path = d / config_file, d / data_file
    for path in (config_path, data_path):
        if not path.is_file():
            raise ModelFileError(f"{path}: missing; point at a directory written by {writer}")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{config_path}: not readable JSON ({exc})") from None
    check_model_header(config_path, config, kind)
    return config_path, data_path, config

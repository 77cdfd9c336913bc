"""What the models learn and what they return.

* :class:`EchoTargets` -- the labels of B samples: the kernel and every target in its units;
* :class:`EchoPredictions` -- a model's output for B samples: the kernel's class probabilities
  (columns in the order of :data:`KERNEL_CLASSES`) and every target in its units, with the one
  rule (:meth:`EchoPredictions.decide`) that turns the probabilities into a range and a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from pyecho.learn.base import (COUPLING_TARGETS, KERNELS, TARGET_COLUMNS, Target, from_learning_scale,
                               to_learning_scale)
from pyecho.physics.kernels import is_long_range

#: the kernel families the models tell apart (``base.KERNELS``), the order of every probability column
KERNEL_CLASSES: tuple[str, ...] = KERNELS


class _ByTarget:
    """Per-target arrays in a ``values`` mapping (target name -> (B,) array, its units)."""

    values: Mapping[str, np.ndarray]

    def __getitem__(self, target: str) -> np.ndarray:
        return self.values[str(target)]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.values)


@dataclass(frozen=True)
class EchoTargets(_ByTarget):
    """What the models learn, one entry per sample.

    Attributes
    ----------
    kernel : str array (B,), one of :data:`KERNEL_CLASSES`
    values : target name -> float array (B,) in the target's units (W, alpha_xy, alpha_z:
        rad/µs; L: lattice spacings; t2_us: µs), in the order of :attr:`targets`
    """

    kernel: np.ndarray
    values: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", np.asarray(self.kernel).astype(str))
        n = len(self.kernel)
        unknown = sorted(set(self.kernel.tolist()) - set(KERNEL_CLASSES))
        if unknown:
            raise ValueError(f"kernel: got {unknown}; allowed: {', '.join(KERNEL_CLASSES)}")
        values = {}
        for name, v in self.values.items():
            Target(name)  # ValueError for an unknown target
            v = np.asarray(v, dtype=float)
            if v.shape != (n,) or not np.all(np.isfinite(v)):
                raise ValueError(f"{name}: expected {n} finite values; got shape {v.shape}")
            values[str(name)] = v
        object.__setattr__(self, "values", values)

    @classmethod
    def from_labels(cls, labels: pl.DataFrame, targets: Sequence[str] = COUPLING_TARGETS) -> "EchoTargets":
        """From a dataset's label frame (columns kernel and the targets' columns)."""
        return cls(kernel=labels["kernel"].to_numpy().astype(str),
                   values={str(t): labels[TARGET_COLUMNS[Target(t)]].to_numpy() for t in targets})

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
        """float64 array (B, n_targets): the targets on their learning scale (log10 for T2)."""
        return np.column_stack([to_learning_scale(t, v) for t, v in self.values.items()])

    def take(self, index) -> "EchoTargets":
        """The rows ``index`` (int array)."""
        return EchoTargets(kernel=np.asarray(self.kernel)[index], values={t: v[index] for t, v in self.values.items()})


#: columns of :data:`KERNEL_CLASSES` that are the "P" (long-range) class
_POWER_COLUMNS = np.array([is_long_range(k) for k in KERNEL_CLASSES])


@dataclass(frozen=True)
class EchoPredictions(_ByTarget):
    """A model's output for B samples.

    Attributes
    ----------
    kernel_proba : float array (B, 3), columns in the order of :data:`KERNEL_CLASSES`
    values : target name -> float array (B,) in the target's units

    The kernel and the range are decided by one hierarchical rule, :meth:`decide` (never the
    3-class argmax, which may name the power law while p_power is below the threshold).
    """

    kernel_proba: np.ndarray
    values: Mapping[str, np.ndarray]

    @classmethod
    def from_learning_scale(cls, kernel_proba: np.ndarray, Y: np.ndarray, targets: Sequence[str]) -> "EchoPredictions":
        """From regression outputs ``Y`` (B, n_targets) on the learning scale."""
        return cls(kernel_proba=kernel_proba,
                   values={str(t): from_learning_scale(t, Y[:, i]) for i, t in enumerate(targets)})

    @property
    def p_power(self) -> np.ndarray:
        """float array (B,): probability of the "P" (long-range) class, the sum over its kernels."""
        return self.kernel_proba[:, _POWER_COLUMNS].sum(axis=1)

    def take(self, index) -> "EchoPredictions":
        return EchoPredictions(self.kernel_proba[index], {t: v[index] for t, v in self.values.items()})

    def decide(self, pvnp_threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """The kernel and range decisions, made as the probabilities are built (range first, then
        the kernel within it), so that they never contradict: the range is P where p_power >=
        ``pvnp_threshold``; the kernel is then the power law, and otherwise the likelier of the
        short-range kernels -- on a row like (0.28, 0.42, 0.30) too, whose plurality is below one
        half. Returns (kernel names (B,), is_power (B,))."""
        is_power = self.p_power >= pvnp_threshold
        short = np.where(_POWER_COLUMNS, -np.inf, self.kernel_proba)
        kernel = np.where(is_power, KERNEL_CLASSES[int(np.flatnonzero(_POWER_COLUMNS)[0])],
                          np.asarray(KERNEL_CLASSES)[np.argmax(short, axis=1)])
        return kernel, is_power


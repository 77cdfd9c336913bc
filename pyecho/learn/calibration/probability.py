"""One coherent probability model for the kernel family: P vs NP, then the short-range kernel.

The answer to "which kernel" is one calibrated distribution over (gaussian, power, rkky), built
hierarchically from two models, each chosen on validation rows for its own task:

* p_power -- P(power law) from the P-vs-NP model (its probability of the power-law kernel),
  temperature-scaled as a two-class problem (P, NP) on calibration rows;
* q -- P(gaussian | NP) from the kernel model, p_gaussian / (p_gaussian + p_rkky),
  temperature-scaled as a two-class problem on the calibration rows that are NP;
* p_gaussian = (1 - p_power) q, p_rkky = (1 - p_power)(1 - q).

So p_gaussian + p_power + p_rkky = 1, ``p_power_law`` *is* p_power, and the decisions made
from it never contradict: the range is P where p_power >= the threshold, and the kernel is then
the power law, otherwise the likelier short-range kernel
(:meth:`~pyecho.learn.models.targets.EchoPredictions.decide`). The threshold is the
class-balanced rule -- the model's p_power at least the training share of power-law samples --
carried through the temperature (which is monotone), so calibrating never moves a decision: a
weak model's probabilities shrink towards the share, and a threshold left at the share would
then call every sample one class.
Conformal prediction sets use the composed probabilities (score 1 - p(true kernel)). The two
temperatures are fitted on one stratified half of the calibration rows, the sets' threshold on
the other half, so the sets' guarantee holds exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from pyecho.learn.calibration.conformal import (check_level, check_probabilities, fit_set_threshold,
                                                fit_temperature, label_index, temperature_scale)
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions

#: the columns of KERNEL_CLASSES: the power law (P) and the two short-range kernels (NP)
POWER, SHORT = 1, (0, 2)
_GAUSSIAN, _RKKY = SHORT


@dataclass(frozen=True)
class KernelProbability:
    """The kernel's calibrated distribution (module docstring).

    beta_pvnp, beta_short : inverse temperatures of the two-class problems; threshold : P where
    the calibrated p_power >= it (the model's share threshold through the temperature); level,
    set_q : prediction sets {kernel: 1 - p <= set_q} at ``level``;
    n_temperature, n_sets : calibration rows that fitted the temperatures, and the sets.
    """

    beta_pvnp: float
    beta_short: float
    threshold: float
    level: float
    set_q: float
    n_temperature: int
    n_sets: int

    def probabilities(self, p_power, kernel_proba) -> np.ndarray:
        """Calibrated (B, 3) probabilities in the order of KERNEL_CLASSES, from the P-vs-NP model's
        p_power (B,) and the kernel model's probabilities (B, 3)."""
        p = np.asarray(p_power, dtype=np.float64)
        k = check_probabilities("kernel probabilities", kernel_proba, len(KERNEL_CLASSES))
        two = temperature_scale(np.column_stack([1.0 - p, p]), self.beta_pvnp)[:, 1]
        short = k[:, SHORT] / np.maximum(k[:, SHORT].sum(axis=1, keepdims=True), 1e-300)
        q = temperature_scale(short, self.beta_short)[:, 0]
        out = np.empty((len(p), len(KERNEL_CLASSES)))
        out[:, POWER], out[:, _GAUSSIAN], out[:, _RKKY] = two, (1.0 - two) * q, (1.0 - two) * (1.0 - q)
        return out

    def decide(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kernel names (B,), is_power (B,)) from calibrated probabilities (B, 3)."""
        return EchoPredictions(np.asarray(proba), {}).decide(self.threshold)

    def sets(self, proba: np.ndarray) -> np.ndarray:
        """Prediction sets from calibrated probabilities: bool (B, 3), True where the kernel is in."""
        return 1.0 - np.asarray(proba) <= self.set_q

    @classmethod
    def uncalibrated(cls, threshold: float) -> "KernelProbability":
        """The same composition without calibration (both temperatures 1; sets hold every kernel)."""
        return cls(1.0, 1.0, float(threshold), 0.9, 1.0, 0, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "KernelProbability":
        return cls(**d)


def fit_kernel_probability(p_power, kernel_proba, y_kernel, *, threshold: float, level: float,
                           seed: int = 0) -> KernelProbability:
    """Fit the temperatures and the sets on calibration rows.

    p_power : (n,) the P-vs-NP model's p_power; kernel_proba : (n, 3) the kernel model's
    probabilities; y_kernel : (n,) true kernel names; threshold : the P decision's threshold on
    the model's p_power (the training share of P); level : the sets' level; seed : the
    stratified halving of the rows.
    """
    level = check_level(level)
    p = np.asarray(p_power, dtype=np.float64)
    k = check_probabilities("kernel probabilities", kernel_proba, len(KERNEL_CLASSES))
    yi = label_index(y_kernel, KERNEL_CLASSES, len(p))
    a, b = train_test_split(np.arange(len(p)), test_size=0.5, random_state=seed, stratify=yi)
    is_p = (yi == POWER).astype(np.int64)
    beta_pvnp = fit_temperature(np.column_stack([1.0 - p[a], p[a]]), is_p[a])
    short_rows = a[yi[a] != POWER]
    short = k[short_rows][:, SHORT]
    short = short / np.maximum(short.sum(axis=1, keepdims=True), 1e-300)
    beta_short = fit_temperature(short, (yi[short_rows] == _RKKY).astype(np.int64))
    t = float(temperature_scale(np.array([[1.0 - threshold, threshold]]), beta_pvnp)[0, 1])
    partial = KernelProbability(beta_pvnp, beta_short, t, level, 1.0, len(a), len(b))
    set_q = fit_set_threshold(partial.probabilities(p[b], k[b]), yi[b], level)
    return KernelProbability(beta_pvnp, beta_short, t, level, set_q, len(a), len(b))

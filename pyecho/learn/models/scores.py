"""Every task's score of one model's predictions on one set of rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from pyecho.learn.base import (POWER_CLASS, RANGE_NP, RANGE_P, TASK_CLASSES, ClassScores, RegScores, Task,
                               to_learning_scale)
from pyecho.learn.models.targets import KERNEL_CLASSES, EchoPredictions, EchoTargets


#: a family with fewer test rows than this gets no within-family score (R² of a handful is noise)
MIN_ROWS_WITHIN = 10


@dataclass(frozen=True)
class TaskScores:
    """P vs NP and the 3-class kernel (decided as :meth:`EchoPredictions.decide` decides), and R²
    and MAE of every target on its learning scale (log10 for T2), over all rows and within each
    true kernel family (does the record tell L apart *within* a family, not just between them?).

    pvnp, kernel3 : :class:`ClassScores`; regression : target name -> :class:`RegScores`;
    within_kernel : kernel -> target name -> :class:`RegScores` (families with fewer than
    ``MIN_ROWS_WITHIN`` rows left out)
    """

    pvnp: ClassScores
    kernel3: ClassScores
    regression: Mapping[str, RegScores]
    within_kernel: Mapping[str, Mapping[str, RegScores]]

    @classmethod
    def of(cls, pred: EchoPredictions, truth: EchoTargets, pvnp_threshold: float) -> "TaskScores":
        """Scores of ``pred`` against ``truth``; P where p_power >= ``pvnp_threshold``."""
        kernel, is_power = pred.decide(pvnp_threshold)
        pvnp_true = np.where(truth.is_power, RANGE_P, RANGE_NP)
        pvnp_pred = np.where(is_power, RANGE_P, RANGE_NP)
        def regression(rows: np.ndarray | slice) -> dict[str, RegScores]:
            return {t: RegScores.of(to_learning_scale(t, truth[t][rows]), to_learning_scale(t, pred[t][rows]))
                    for t in truth.targets}

        family = np.asarray(truth.kernel)
        within = {k: regression(family == k) for k in KERNEL_CLASSES if np.count_nonzero(family == k) >= MIN_ROWS_WITHIN}
        return cls(pvnp=ClassScores.of(pvnp_true, pvnp_pred, TASK_CLASSES[Task.PVNP], POWER_CLASS[Task.PVNP]),
                   kernel3=ClassScores.of(truth.kernel, kernel, KERNEL_CLASSES, POWER_CLASS[Task.KERNEL3]),
                   regression=regression(slice(None)), within_kernel=within)

    @property
    def tasks(self) -> tuple[str, ...]:
        return (Task.PVNP.value, Task.KERNEL3.value, *self.regression)

    def __getitem__(self, task: str) -> ClassScores | RegScores:
        task = str(task)
        if task == Task.PVNP:
            return self.pvnp
        if task == Task.KERNEL3:
            return self.kernel3
        return self.regression[task]

    def selection_score(self, task: str) -> float:
        """The validation score that chooses a model for ``task``: weighted F1 or R²."""
        value = self[task]
        return value.f1_weighted if isinstance(value, ClassScores) else value.r2

    def objective(self) -> float:
        """The mean selection score over every task (what a protocol's design maximises)."""
        return float(np.mean([self.selection_score(t) for t in self.tasks]))

    def __json__(self) -> dict:
        return {"pvnp": self.pvnp, "kernel3": self.kernel3, **dict(self.regression),
                "within_kernel": {k: dict(v) for k, v in self.within_kernel.items()}}

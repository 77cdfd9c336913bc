"""Scores of a model's predictions: the consistent kernel and range decision, regression on the
learning scale, and each kernel family's own scores."""
from __future__ import annotations

import numpy as np
import pytest

from pyecho.learn.models.scores import TaskScores
from pyecho.learn.models.targets import EchoPredictions, EchoTargets


def test_task_scores_use_the_consistent_decision():
    truth = EchoTargets(kernel=np.array(["gaussian", "power", "rkky", "power"]),
                        values={"W": np.array([0.1, 0.2, 0.3, 0.4]), "t2_us": np.array([10.0, 100.0, 10.0, 100.0])})
    # row 0: the power law is the most probable kernel, but p_power 0.4 < 0.5: NP, gaussian
    proba = np.array([[0.35, 0.40, 0.25], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2]])
    pred = EchoPredictions(proba, {"W": truth["W"] + 0.01, "t2_us": 10 * truth["t2_us"]})
    s = TaskScores.of(pred, truth, pvnp_threshold=0.5)
    assert s.pvnp.accuracy == 1.0 and s.kernel3.accuracy == 1.0
    assert TaskScores.of(pred, truth, pvnp_threshold=0.35).kernel3.accuracy == 0.75
    assert s.regression["W"].mae == pytest.approx(0.01)
    assert s.regression["t2_us"].mae == pytest.approx(1.0)  # one decade, on the log10 scale
    assert s.tasks == ("pvnp", "kernel3", "W", "t2_us")


def test_within_kernel_scores_are_each_familys_own():
    """Predicting each family's mean L gives R² ≈ 1 over all rows (the families differ) and 0
    within each family: the within-family score sees what the overall score hides."""
    rng = np.random.default_rng(1)
    kernel = np.repeat(np.array(["gaussian", "power", "rkky"]), 40)
    offset = {"gaussian": 2.0, "power": 12.0, "rkky": 6.0}
    L = np.array([offset[k] for k in kernel]) + rng.normal(0, 0.2, kernel.size)
    family_mean = np.array([L[kernel == k].mean() for k in kernel])
    truth = EchoTargets(kernel=kernel, values={"L": L})
    proba = np.tile([1 / 3, 1 / 3, 1 / 3], (kernel.size, 1))
    s = TaskScores.of(EchoPredictions(proba, {"L": family_mean}), truth, pvnp_threshold=0.5)
    assert s.regression["L"].r2 > 0.99
    for k in ("gaussian", "power", "rkky"):
        assert s.within_kernel[k]["L"].r2 == pytest.approx(0.0, abs=1e-9)
    few = TaskScores.of(EchoPredictions(proba[:45], {"L": family_mean[:45]}),
                        EchoTargets(kernel=kernel[:45], values={"L": L[:45]}), pvnp_threshold=0.5)
    assert set(few.within_kernel) == {"gaussian"}  # 5 power rows are too few to score

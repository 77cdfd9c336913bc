"""What the models learn and return: targets from a dataset's labels on their learning scale,
predictions, and the kernel and range decisions that never contradict."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pyecho.learn.models.targets import EchoPredictions, EchoTargets


def test_targets_from_labels_and_the_learning_scale():
    labels = pl.DataFrame({"kernel": ["rkky", "power", "gaussian"], "W": [0.1, 0.2, 0.3], "L": [5.0, 9.0, 7.0],
                           "alpha_x": [0.03, 0.05, 0.1], "alpha_z": [0.04, 0.1, 0.1], "t2_us": [10.0, 100.0, 1000.0]})
    tg = EchoTargets.from_labels(labels, targets=("W", "L", "alpha_xy", "alpha_z", "t2_us"))
    assert tg.targets == ("W", "L", "alpha_xy", "alpha_z", "t2_us")
    np.testing.assert_array_equal(tg.kernel_index, [2, 1, 0])
    np.testing.assert_array_equal(tg.is_power, [False, True, False])
    Y = tg.regression()
    np.testing.assert_allclose(Y[:, 2], [0.03, 0.05, 0.1])  # alpha_xy = alpha_x
    np.testing.assert_allclose(Y[:, 4], [1.0, 2.0, 3.0])  # T2 is learned as log10
    back = EchoPredictions.from_learning_scale(np.full((3, 3), 1 / 3), Y, tg.targets)
    np.testing.assert_allclose(back["t2_us"], [10.0, 100.0, 1000.0], rtol=1e-12)
    np.testing.assert_allclose(back["W"], tg["W"])
    one = tg.take(np.array([1]))
    assert len(one) == 1 and one.kernel[0] == "power" and one["L"][0] == 9.0
    with pytest.raises(ValueError, match="uniform"):
        EchoTargets(kernel=np.array(["uniform"]), values={"W": np.ones(1)})
    with pytest.raises(ValueError, match="kappa"):
        EchoTargets(kernel=np.array(["power"]), values={"kappa": np.ones(1)})
    with pytest.raises(ValueError, match="W: expected 1 finite values"):
        EchoTargets(kernel=np.array(["power"]), values={"W": np.array([np.nan])})


def test_predictions_derive_p_power_from_the_power_column():
    pred = EchoPredictions(kernel_proba=np.array([[0.3, 0.45, 0.25], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]]),
                           values={"W": np.array([0.1, 0.2, 0.3])})
    np.testing.assert_allclose(pred.p_power, [0.45, 0.6, 0.1])
    assert not hasattr(pred, "kernel")  # no 3-class argmax to contradict the decision: decide() is the one rule
    assert pred.targets == ("W",) and pred.take(np.array([2]))["W"][0] == 0.3


def test_decisions_never_contradict():
    """The range is P iff p_power >= the threshold, and the kernel is the power law iff the range
    is P -- also where the most probable kernel says otherwise."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([0.5, 0.5, 0.5], 2000)
    pred = EchoPredictions(proba, {})
    for threshold in (0.2, 0.5, 0.8):
        kernel, is_power = pred.decide(threshold)
        np.testing.assert_array_equal(is_power, proba[:, 1] >= threshold)
        np.testing.assert_array_equal(kernel == "power", is_power)
        short = np.where(proba[:, 0] >= proba[:, 2], "gaussian", "rkky")
        np.testing.assert_array_equal(kernel[~is_power], short[~is_power])
        # the cases that matter happen: argmax is the power law below the threshold, or not above it
        assert np.any((np.argmax(proba, axis=1) == 1) != is_power)
    kernel, is_power = EchoPredictions(np.array([[0.35, 0.40, 0.25], [0.5, 0.3, 0.2]]), {}).decide(0.3)
    assert kernel.tolist() == ["power", "power"] and is_power.tolist() == [True, True]
    kernel, is_power = EchoPredictions(np.array([[0.35, 0.40, 0.25]]), {}).decide(0.5)
    assert kernel.tolist() == ["gaussian"] and is_power.tolist() == [False]


#: rows whose most probable kernel has less than one half: (gaussian, power, rkky)
PLURALITY_BELOW_HALF = np.array([[0.28, 0.42, 0.30], [0.45, 0.36, 0.19], [0.30, 0.34, 0.36]])


@pytest.mark.parametrize("threshold, kernels", [
    (0.34, ["power", "power", "power"]),       # p_power >= 0.34 in every row, whichever kernel is likeliest
    (0.40, ["power", "gaussian", "rkky"]),
    (0.50, ["rkky", "gaussian", "rkky"]),      # NP: the likelier short-range kernel, never the argmax's power
])
def test_decisions_on_rows_with_a_plurality_below_one_half(threshold, kernels):
    """kernel == power iff range P iff p_power >= threshold, on rows where the 3-class argmax and
    the range can disagree."""
    kernel, is_power = EchoPredictions(PLURALITY_BELOW_HALF, {}).decide(threshold)
    assert kernel.tolist() == kernels
    np.testing.assert_array_equal(is_power, PLURALITY_BELOW_HALF[:, 1] >= threshold)
    np.testing.assert_array_equal(kernel == "power", is_power)

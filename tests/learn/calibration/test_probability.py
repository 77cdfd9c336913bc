"""The kernel's one calibrated distribution (P vs NP, then gaussian vs rkky), its decisions and
prediction sets, and the calibration file, on synthetic models with a known over-confidence.

Tolerances of coverages are binomial: about sqrt(p (1 - p) (1/n_sets + 1/n_test)) standard
error for n_test fresh rows behind a threshold fitted on n_sets rows.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from pyecho.errors import InputFileError
from pyecho.learn.calibration import conformal as cf
from pyecho.learn.calibration.probability import KernelProbability, fit_kernel_probability
from pyecho.learn.calibration.saved import Calibration
from pyecho.learn.models.targets import KERNEL_CLASSES

LEVEL = 0.9
POWER = KERNEL_CLASSES.index("power")


def sharpen(p: np.ndarray, power: float) -> np.ndarray:
    """softmax(power log p) over the last axis: power > 1 is over-confident."""
    logits = power * np.log(p)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kernel_rows(seed: int, n: int, over: float = 2.0):
    """True kernel probabilities p* ~ Dirichlet, the kernel y ~ p*; two over-confident models:
    the P-vs-NP model reports p_power with its odds raised to ``over``, the kernel model
    softmax(over log p*) -- temperature 1/over undoes both exactly."""
    rng = np.random.default_rng(seed)
    p_true = rng.dirichlet([0.7, 0.7, 0.7], n)
    y = np.asarray(KERNEL_CLASSES)[(rng.uniform(size=(n, 1)) > np.cumsum(p_true, axis=1)).sum(axis=1)]
    pp = p_true[:, POWER]
    p_power = sharpen(np.column_stack([1 - pp, pp]), over)[:, 1]
    return p_power, sharpen(p_true, over), y, p_true


@pytest.fixture(scope="module")
def fitted():
    p_power, kernel_proba, y, _ = kernel_rows(0, 4000)
    return fit_kernel_probability(p_power, kernel_proba, y, threshold=0.4, level=LEVEL, seed=0)


def test_the_temperatures_undo_the_over_confidence(fitted):
    assert fitted.n_temperature == fitted.n_sets == 2000
    # beta's scatter between seeds at 2000 rows (1300 NP rows for beta_short) is ~0.03
    assert fitted.beta_pvnp == pytest.approx(0.5, abs=0.1)
    assert fitted.beta_short == pytest.approx(0.5, abs=0.1)
    p_power, kernel_proba, y, p_true = kernel_rows(1, 20000)
    proba = fitted.probabilities(p_power, kernel_proba)
    assert np.abs(proba - p_true).mean() < 0.02
    raw = cf.reliability("kernel3", "raw", KERNEL_CLASSES, kernel_proba, y)
    calibrated = cf.reliability("kernel3", "calibrated", KERNEL_CLASSES, proba, y)
    assert raw.ece > 0.08 and calibrated.ece < 0.02
    pvnp = ("NP", "P")
    y_p = np.where(y == "power", "P", "NP")
    raw2 = cf.reliability("pvnp", "raw", pvnp, np.column_stack([1 - p_power, p_power]), y_p)
    cal2 = cf.reliability("pvnp", "calibrated", pvnp, np.column_stack([1 - proba[:, POWER], proba[:, POWER]]), y_p)
    assert raw2.ece > 0.05 and cal2.ece < 0.02


def test_rows_sum_to_one_and_p_power_comes_from_the_p_vs_np_model(fitted):
    p_power, kernel_proba, _, _ = kernel_rows(2, 500)
    proba = fitted.probabilities(p_power, kernel_proba)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(proba >= 0)
    # the kernel model's own power probability plays no part: move it, the power column stays
    other = kernel_proba.copy()
    other[:, POWER] = 0.9
    other /= other.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(fitted.probabilities(p_power, other)[:, POWER], proba[:, POWER])
    # and the P-vs-NP model's does: it alone moves the power column
    shifted = fitted.probabilities(np.clip(p_power + 0.1, 0, 1), kernel_proba)
    assert np.abs(shifted[:, POWER] - proba[:, POWER]).min() > 0
    # uncalibrated, the composition passes p_power through and splits the rest by the kernel model
    plain = KernelProbability.uncalibrated(0.4).probabilities(p_power, kernel_proba)
    np.testing.assert_allclose(plain[:, POWER], p_power, atol=1e-9)
    short = kernel_proba[:, [0, 2]]
    np.testing.assert_allclose(plain[:, 0] / (plain[:, 0] + plain[:, 2]), short[:, 0] / short.sum(axis=1), atol=1e-9)


def test_decisions_never_contradict(fitted):
    p_power, kernel_proba, _, _ = kernel_rows(3, 5000)
    proba = fitted.probabilities(p_power, kernel_proba)
    kernel, is_power = fitted.decide(proba)
    np.testing.assert_array_equal(is_power, proba[:, POWER] >= fitted.threshold)
    np.testing.assert_array_equal(kernel == "power", is_power)
    # the threshold 0.4 matters: some rows are P although another kernel is more probable
    assert np.any(is_power & (proba.argmax(axis=1) != POWER))


def test_sets_cover_at_the_level_on_fresh_draws(fitted):
    p_power, kernel_proba, y, _ = kernel_rows(4, 20000)
    sets = fitted.sets(fitted.probabilities(p_power, kernel_proba))
    rep = cf.set_coverage("kernel3", sets, y, KERNEL_CLASSES, level=LEVEL, snr=math.inf)
    tolerance = 3 * math.sqrt(LEVEL * (1 - LEVEL) * (1 / fitted.n_sets + 1 / rep.n_test))
    assert abs(rep.coverage - LEVEL) <= tolerance, (rep.coverage, tolerance)
    assert 1 < rep.mean_set_size < 2.5
    # the uncalibrated model's sets hold every kernel
    assert KernelProbability.uncalibrated(0.5).sets(kernel_proba).all()


def test_sets_at_another_level():
    p_power, kernel_proba, y, _ = kernel_rows(5, 4000)
    kp = fit_kernel_probability(p_power, kernel_proba, y, threshold=0.5, level=0.7, seed=1)
    p2, k2, y2, _ = kernel_rows(6, 20000)
    rep = cf.set_coverage("kernel3", kp.sets(kp.probabilities(p2, k2)), y2, KERNEL_CLASSES, level=0.7, snr=math.inf)
    assert abs(rep.coverage - 0.7) <= 3 * math.sqrt(0.7 * 0.3 * (1 / kp.n_sets + 1 / rep.n_test))


@pytest.mark.parametrize("change, match", [
    (lambda p, k, y: (p, k, np.where(y == "rkky", "other", y)), "not among the classes"),
    (lambda p, k, y: (p, k[:, :2], y), r"expected shape \(B, 3\)"),
    (lambda p, k, y: (p, k * 0.5, y), "sum to 1"),
])
def test_bad_kernel_inputs(change, match):
    p_power, kernel_proba, y, _ = kernel_rows(7, 200)
    with pytest.raises(ValueError, match=match):
        fit_kernel_probability(*change(p_power, kernel_proba, y), threshold=0.5, level=LEVEL)
    with pytest.raises(ValueError, match="level"):
        fit_kernel_probability(p_power, kernel_proba, y, threshold=0.5, level=90)


# --------------------------------------------------------------------------- the file
def test_calibration_file_round_trip(fitted, tmp_path):
    rng = np.random.default_rng(8)
    snr = np.exp(rng.uniform(np.log(15), np.log(3000), 2000))
    W = rng.uniform(0, 1, 2000)
    W_pred = W + 0.1 / np.sqrt(snr / 15) * rng.standard_normal(2000)
    t2 = 10 ** rng.uniform(1, 3, 2000)
    intervals = (cf.fit_interval("W", W, W_pred, snr), cf.fit_interval("t2_us", t2, t2 * 1.1, snr))
    bundle = Calibration(intervals=intervals, kernel=fitted)
    path = bundle.save(tmp_path / "calibration.json")
    back = Calibration.load(path)
    assert back == bundle and back.level == LEVEL
    for target, pred in (("W", W_pred[:50]), ("t2_us", t2[:50])):
        before, after = bundle.interval(target), back.interval(target)
        for a, b in zip(before.interval(pred, snr[:50]), after.interval(pred, snr[:50])):
            np.testing.assert_array_equal(a, b)
    p_power, kernel_proba, _, _ = kernel_rows(9, 100)
    np.testing.assert_array_equal(back.kernel.probabilities(p_power, kernel_proba),
                                  fitted.probabilities(p_power, kernel_proba))
    with pytest.raises(KeyError, match="alpha_z"):
        back.interval("alpha_z")


def test_bad_calibration_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"format_version": 99}')
    with pytest.raises(InputFileError, match="c.json: not a pyecho calibration file .*format_version 99"):
        Calibration.load(p)
    with pytest.raises(InputFileError, match="missing.json: missing"):
        Calibration.load(tmp_path / "missing.json")
    p.write_text('{"format_version": 2, "intervals": []}')
    with pytest.raises(InputFileError, match="not a pyecho calibration file"):
        Calibration.load(p)


def test_calibration_never_moves_a_p_vs_np_decision():
    """The class-balanced rule on the model's p_power equals the calibrated rule on the calibrated
    p_power, however strongly the temperature shrinks a weak model's probabilities."""
    from pyecho.learn.calibration.probability import fit_kernel_probability
    from pyecho.learn.models.targets import KERNEL_CLASSES

    rng = np.random.default_rng(4)
    n = 600
    y = np.array(KERNEL_CLASSES)[rng.integers(0, 3, n)]
    raw = rng.dirichlet([0.3, 0.3, 0.3], n)  # a weak, over-confident model: its temperature shrinks it hard
    raw[y == "power", 1] += 0.05
    raw /= raw.sum(axis=1, keepdims=True)
    share = float(np.mean(y == "power"))
    kp = fit_kernel_probability(raw[:, 1], raw, y, threshold=share, level=0.9)
    assert kp.beta_pvnp < 0.5  # the case that used to call every sample P
    calibrated = kp.probabilities(raw[:, 1], raw)
    np.testing.assert_array_equal(kp.decide(calibrated)[1], raw[:, 1] >= share)

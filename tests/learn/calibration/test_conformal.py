"""Conformal intervals, calibrated probabilities and prediction sets on synthetic data with known noise."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from pyecho.learn import conformal as cf

N_CAL, N_TEST = 2000, 4000
LEVEL = 0.9


def regression_rows(seed: int, heteroscedastic: bool = False):
    """y = sin(3x) + x + N(0, s(x)^2); the 'model' is the noise-free f, fitted elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, N_CAL + N_TEST)
    s = 0.05 + 0.3 * (x + 1) ** 2 if heteroscedastic else np.full_like(x, 0.2)
    y = np.sin(3 * x) + x + s * rng.standard_normal(x.shape)
    y_pred = np.sin(3 * x) + x
    rows = cf.SplitRows(train=np.arange(100) + N_CAL + N_TEST, calibration=np.arange(N_CAL),
                        test=np.arange(N_CAL, N_CAL + N_TEST))
    return rows, y, y_pred, s


def test_split_rows_must_be_disjoint():
    with pytest.raises(ValueError, match="both train and calibration"):
        cf.SplitRows(train=np.array([0, 1, 2]), calibration=np.array([2, 3]), test=np.array([4]))
    with pytest.raises(ValueError, match="both calibration and test"):
        cf.SplitRows(train=np.array([0]), calibration=np.array([2, 3]), test=np.array([3, 4]))
    rows = cf.split_rows(np.repeat(["a", "b", "c"], 100), seed=1)
    assert not set(rows.train) & set(rows.calibration) and not set(rows.test) & (set(rows.train) | set(rows.calibration))
    assert len(rows.train) + len(rows.calibration) + len(rows.test) == 300
    assert len(rows.calibration) == 60 and len(rows.test) == 60


def test_calibration_arrays_must_match_the_calibration_rows():
    rows, y, y_pred, _ = regression_rows(0)
    with pytest.raises(ValueError, match="rows.calibration has 2000"):
        cf.fit_interval("W", y[:10], y_pred[:10], rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_coverage_at_90_percent(seed):
    rows, y, y_pred, _ = regression_rows(seed)
    c, t = rows.calibration, rows.test
    cal = cf.fit_interval("W", y[c], y_pred[c], rows, level=LEVEL)
    rep = cf.interval_coverage(cal, y[t], y_pred[t])
    assert 0.88 <= rep.coverage <= 0.92
    # Gaussian noise: the exact 90 % half-width is 1.645 sigma
    assert rep.mean_width == pytest.approx(2 * 1.645 * 0.2, rel=0.06)
    assert rep.n_test == N_TEST and cal.n_calibration == N_CAL and cal.difficulty is None


def test_normalised_intervals_are_narrower_at_the_same_coverage():
    rows, y, y_pred, s = regression_rows(3, heteroscedastic=True)
    c, t = rows.calibration, rows.test
    plain = cf.interval_coverage(cf.fit_interval("L", y[c], y_pred[c], rows), y[t], y_pred[t])
    cal = cf.fit_interval("L", y[c], y_pred[c], rows, sigma=s[c], difficulty="true noise")
    norm = cf.interval_coverage(cal, y[t], y_pred[t], sigma=s[t])
    assert 0.88 <= plain.coverage <= 0.92 and 0.88 <= norm.coverage <= 0.92
    assert norm.mean_width < 0.9 * plain.mean_width
    with pytest.raises(ValueError, match="need sigma"):
        cal.interval(y_pred[t])


def test_member_spread():
    m = np.array([[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(cf.member_spread(m), [1.0, 0.0])
    with pytest.raises(ValueError, match="M >= 2"):
        cf.member_spread(m[:1])


def test_too_few_calibration_rows_and_bad_level():
    rows = cf.SplitRows(train=np.array([9]), calibration=np.arange(5), test=np.array([8]))
    with pytest.raises(ValueError, match=r"need about 1/\(1 - level\) = 10 or more"):
        cf.fit_interval("W", np.arange(5.0), np.zeros(5), rows, level=0.9)
    with pytest.raises(ValueError, match="level: got 1.5"):
        cf.fit_interval("W", np.arange(5.0), np.zeros(5), rows, level=1.5)
    with pytest.raises(ValueError, match="NaN"):
        cf.fit_interval("W", np.array([0, 1, 2, 3, np.nan]), np.zeros(5), rows, level=0.5)


def classification_rows(seed: int, n: int = N_CAL + N_TEST, sharpen: float = 2.0):
    """True class probabilities p* ~ Dirichlet, y ~ p*; the model reports softmax(sharpen log p*)."""
    rng = np.random.default_rng(seed)
    classes = ("gaussian", "power", "rkky")
    p_true = rng.dirichlet([0.7, 0.7, 0.7], n)
    y_idx = np.array([rng.choice(3, p=p) for p in p_true])
    logits = sharpen * np.log(p_true)
    p_model = np.exp(logits - logits.max(1, keepdims=True))
    p_model /= p_model.sum(1, keepdims=True)
    rows = cf.SplitRows(train=np.arange(n, n + 10), calibration=np.arange(N_CAL), test=np.arange(N_CAL, n))
    return classes, rows, np.asarray(classes)[y_idx], p_model, p_true


def test_temperature_undoes_over_confidence_and_sets_cover():
    classes, rows, y, p_model, p_true = classification_rows(0)
    c, t = rows.calibration, rows.test
    cal = cf.fit_classification("kernel3", classes, p_model[c], y[c], rows, level=LEVEL)
    assert cal.n_temperature + cal.n_sets == N_CAL
    assert cal.inverse_temperature == pytest.approx(0.5, abs=0.05)  # the model squared the odds
    p_cal = cal.probabilities(p_model[t])
    assert log_loss(y[t], p_cal, labels=classes) < log_loss(y[t], p_model[t], labels=classes) - 0.05
    before = cf.reliability("kernel3", "model", classes, p_model[t], y[t])
    after = cf.reliability("kernel3", "calibrated", classes, p_cal, y[t])
    assert before.ece > 0.08 and after.ece < 0.03
    rep = cf.set_coverage(cal, p_model[t], y[t])
    assert rep.coverage >= LEVEL - 0.015
    assert 1 < rep.mean_set_size < 3  # informative: neither single labels nor everything


def test_temperature_matches_scikit_learn():
    classes, rows, y, p_model, _ = classification_rows(1, n=N_CAL + 200)
    c = rows.calibration
    cal = cf.fit_classification("kernel3", classes, p_model[c], y[c], rows)
    adapter = FrozenEstimator(cf._GivenProbabilities(3).fit())
    idx = np.searchsorted(classes, y)
    # refit on the same half: the stored beta reproduces scikit-learn's calibrated probabilities
    from sklearn.model_selection import train_test_split
    a, _ = train_test_split(np.arange(N_CAL), test_size=0.5, random_state=0, stratify=idx[c])
    cc = CalibratedClassifierCV(adapter, method="temperature").fit(p_model[c][a], idx[c][a])
    np.testing.assert_allclose(cal.probabilities(p_model), cc.predict_proba(p_model), rtol=1e-10, atol=1e-12)


def test_binary_task_and_json_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    p1 = rng.uniform(0, 1, n)
    y = np.where(rng.uniform(0, 1, n) < p1, "P", "NP")
    proba = np.column_stack([1 - p1, p1]) * 0.6 + 0.2  # under-confident
    proba /= proba.sum(1, keepdims=True)
    rows = cf.SplitRows(train=np.arange(n, n + 5), calibration=np.arange(1000), test=np.arange(1000, n))
    cls = cf.fit_classification("pvnp", ("NP", "P"), proba[:1000], y[:1000], rows)
    assert cls.inverse_temperature > 1  # sharpens
    assert cf.set_coverage(cls, proba[1000:], y[1000:]).coverage >= LEVEL - 0.02

    rrows, yr, yr_pred, s = regression_rows(4, heteroscedastic=True)
    c, t = rrows.calibration, rrows.test
    ints = (cf.fit_interval("W", yr[c], yr_pred[c], rrows),
            cf.fit_interval("L", yr[c], yr_pred[c], rrows, sigma=s[c], difficulty="member_spread"))
    bundle = cf.Calibration(intervals=ints, classifications=(cls,))
    back = cf.Calibration.load(bundle.save(tmp_path / "calibration.json"))
    assert back == bundle
    for a, b in zip(bundle.interval("W").interval(yr_pred[t]), back.interval("W").interval(yr_pred[t])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(bundle.interval("L").interval(yr_pred[t], s[t]), back.interval("L").interval(yr_pred[t], s[t])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.classification("pvnp").sets(proba), cls.sets(proba))
    np.testing.assert_array_equal(back.classification("pvnp").probabilities(proba), cls.probabilities(proba))
    with pytest.raises(KeyError, match="alpha_z"):
        back.interval("alpha_z")


def test_bad_calibration_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="c.json: not a pyecho calibration file .*format_version 99"):
        cf.Calibration.load(p)


def test_bad_class_inputs():
    classes, rows, y, p_model, _ = classification_rows(2, n=N_CAL + 10)
    c = rows.calibration
    with pytest.raises(ValueError, match="not among the classes"):
        cf.fit_classification("kernel3", classes, p_model[c], np.where(y[c] == "rkky", "other", y[c]), rows)
    with pytest.raises(ValueError, match=r"expected shape \(B, 3\)"):
        cf.fit_classification("kernel3", classes, p_model[c][:, :2], y[c], rows)
    with pytest.raises(ValueError, match="sum to 1"):
        cf.fit_classification("kernel3", classes, p_model[c] * 2 / 3, y[c], rows)


def test_reliability_bins_and_plot():
    classes = ("a", "b")
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.45, 0.55], [0.3, 0.7]])
    y = np.array(["a", "b", "b", "b"])
    d = cf.reliability("t", "model", classes, proba, y, n_bins=5)
    assert d.count == (0, 0, 1, 1, 2)
    assert d.confidence[0] is None and d.accuracy[4] == 0.5
    assert d.confidence[4] == pytest.approx(0.925)
    assert d.ece == pytest.approx((0.45 + 0.3 + 2 * 0.425) / 4)
    fig = cf.plot_reliability([d])
    assert len(fig.axes[0].lines) == 2
    import matplotlib.pyplot as plt
    plt.close(fig)

"""Conformal intervals per SNR band, the exact conformal rank, temperature scaling, prediction
sets and reliability, on synthetic data with known noise.

Statistical tests are seeded; their tolerances come from the binomial distribution: an
empirical coverage of n_test fresh rows, behind a quantile of n_cal calibration rows, scatters
about the level with a standard error of about sqrt(p (1 - p) (1/n_cal + 1/n_test)) (the
calibration quantile's own coverage is Beta-distributed with variance ~ p (1 - p) / n_cal).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import log_loss

from pyecho.learn.calibration import conformal as cf

LEVEL = 0.9
CLASSES = ("gaussian", "power", "rkky")


def within_binomial(coverage: float, level: float, n_cal: int, n_test: int, k: float = 3.0) -> bool:
    return abs(coverage - level) <= k * math.sqrt(level * (1 - level) * (1 / n_cal + 1 / n_test))


# --------------------------------------------------------------------------- the rank
@pytest.mark.parametrize("n, rank", [(19, 18), (29, 27), (99, 90)])
def test_conformal_rank_is_exact_where_floating_point_is_not(n, rank):
    """ceil((n + 1) 0.9) = 18, 27, 90: (n + 1) 0.9 is an integer at these n, and any round-off
    upwards takes the next rank. crepes 0.9 computes the index from the top as
    int((1 - 0.9)(n + 1)) in floating point: (1 - 0.9) is 0.09999999999999998, so the product
    falls just short of the integer and the rank from the bottom comes out one too many."""
    assert cf.conformal_rank(n, 0.9) == rank
    scores = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))  # the k-th smallest is k
    assert cf.conformal_quantile(scores, 0.9) == rank
    # the smallest rank with rank / (n + 1) >= level, in exact arithmetic
    assert Fraction(rank, n + 1) >= Fraction(9, 10) > Fraction(rank - 1, n + 1)
    crepes_rank = n + 1 - int((1 - 0.9) * (n + 1))  # crepes: the int(...)-th largest
    assert crepes_rank == rank + 1


def test_conformal_rank_is_the_smallest_valid_rank_everywhere():
    for level in (0.5, 0.8, 0.9, 0.95, 0.99):
        exact = Fraction(str(level))
        for n in range(1, 400):
            r = cf.conformal_rank(n, level)
            assert Fraction(r, n + 1) >= exact > Fraction(r - 1, n + 1)


def test_too_few_scores_give_an_infinite_quantile():
    assert [cf.min_calibration_rows(v) for v in (0.5, 0.9, 0.95, 0.99)] == [1, 9, 19, 99]
    assert cf.conformal_quantile(np.arange(9.0), 0.9) == 8.0
    assert cf.conformal_quantile(np.arange(8.0), 0.9) == math.inf
    with pytest.raises(ValueError, match="level: got 1.5"):
        cf.conformal_quantile(np.arange(8.0), 1.5)


# --------------------------------------------------------------------------- SNR bands
def test_snr_bands_and_their_merging():
    edges = cf.SNR_BAND_EDGES  # 30, 100, 300, 1000
    np.testing.assert_array_equal(cf.snr_band([10, 30, 99.9, 100, 500, 1000, np.inf], edges), [0, 1, 1, 2, 3, 4, 4])
    many = np.repeat([20.0, 50.0, 200.0, 500.0, 2000.0], 20)
    assert cf.merged_band_edges(many, edges, 9) == edges
    # [100, 300) holds 5 rows: it joins its noisier neighbour [30, 100)
    short = np.r_[np.repeat([20.0, 50.0, 500.0, 2000.0], 20), np.full(5, 200.0)]
    assert cf.merged_band_edges(short, edges, 9) == (30.0, 300.0, 1000.0)
    # the noisiest band is short: it joins the next cleaner one
    assert cf.merged_band_edges(np.r_[np.full(3, 20.0), many[20:]], edges, 9) == (100.0, 300.0, 1000.0)
    # short bands merge until every band has enough: here everything is one band
    assert cf.merged_band_edges(np.array([20.0, 50, 200, 500, 2000] * 2), edges, 9) == ()


def banded_rows(n: int, seed: int, scale_by_band=(0.8, 0.4, 0.2, 0.1, 0.05)):
    """Exchangeable rows: estimated SNR log-uniform in [15, 3000]; y = f(x) + s N(0, 1) with s set
    by the row's SNR band (noisier band, larger residuals); the 'model' predicts f(x)."""
    rng = np.random.default_rng(seed)
    snr = np.exp(rng.uniform(np.log(15.0), np.log(3000.0), n))
    s = np.asarray(scale_by_band)[cf.snr_band(snr, cf.SNR_BAND_EDGES)]
    x = rng.uniform(-1, 1, n)
    y_pred = np.sin(3 * x) + x
    return y_pred + s * rng.standard_normal(n), y_pred, snr


N_CAL, N_TEST = 8000, 40000


@pytest.fixture(scope="module")
def mondrian():
    y, y_pred, snr = banded_rows(N_CAL, seed=0)
    return cf.fit_interval("W", y, y_pred, snr, level=LEVEL)


def test_mondrian_intervals_cover_in_every_band(mondrian):
    cal = mondrian
    assert cal.band_edges == cf.SNR_BAND_EDGES and sum(cal.n_calibration) == N_CAL
    assert min(cal.n_calibration) > 900  # the narrowest band, [15, 30), holds 13 % of the rows
    # the noisier the band, the wider its interval; Gaussian residuals: q ~ 1.645 s
    assert all(a > b for a, b in zip(cal.q, cal.q[1:]))
    np.testing.assert_allclose(np.array(cal.q) / np.array([0.8, 0.4, 0.2, 0.1, 0.05]), 1.645, rtol=0.08)
    y, y_pred, snr = banded_rows(N_TEST, seed=1)
    band = cf.snr_band(snr, cal.band_edges)
    for b in range(5):
        m = band == b
        rep = cf.interval_coverage(cal, y[m], y_pred[m], snr[m], snr=math.nan, group=f"band {b}")
        assert rep.n_test == m.sum() and rep.group == f"band {b}"
        assert within_binomial(rep.coverage, LEVEL, cal.n_calibration[b], rep.n_test), (b, rep.coverage)
        assert rep.mean_width == pytest.approx(2 * cal.q[b])


def test_one_pooled_quantile_fails_the_noisy_band(mondrian):
    """What the bands are for: one quantile over every SNR covers on average, but far too
    little at low SNR and needlessly much at high SNR."""
    y, y_pred, snr = banded_rows(N_CAL, seed=0)
    pooled = cf.fit_interval("W", y, y_pred, snr, level=LEVEL, band_edges=())
    assert pooled.band_edges == () and pooled.n_calibration == (N_CAL,)
    y, y_pred, snr = banded_rows(N_TEST, seed=1)
    band = cf.snr_band(snr, cf.SNR_BAND_EDGES)
    allrows = cf.interval_coverage(pooled, y, y_pred, snr, snr=math.nan)
    assert within_binomial(allrows.coverage, LEVEL, N_CAL, N_TEST)
    noisy = cf.interval_coverage(pooled, y[band == 0], y_pred[band == 0], snr[band == 0], snr=20.0)
    clean = cf.interval_coverage(pooled, y[band == 4], y_pred[band == 4], snr[band == 4], snr=2000.0)
    assert noisy.coverage < LEVEL - 0.2 and clean.coverage > 0.99
    banded_clean = cf.interval_coverage(mondrian, y[band == 4], y_pred[band == 4], snr[band == 4], snr=2000.0)
    assert banded_clean.mean_width < clean.mean_width / 3


def test_a_band_with_too_few_rows_is_merged_with_its_noisier_neighbour():
    y, y_pred, snr = banded_rows(3000, seed=2)
    in_band_2 = np.flatnonzero(cf.snr_band(snr, cf.SNR_BAND_EDGES) == 2)
    keep = np.setdiff1d(np.arange(3000), in_band_2[5:])  # [100, 300) keeps 5 rows, fewer than the 9 needed
    y, y_pred, snr = y[keep], y_pred[keep], snr[keep]
    n_short = 5
    assert cf.min_calibration_rows(LEVEL) == 9
    cal = cf.fit_interval("W", y, y_pred, snr, level=LEVEL)
    assert cal.band_edges == (30.0, 300.0, 1000.0) and len(cal.q) == 4 and all(math.isfinite(q) for q in cal.q)
    n_30_100 = int(np.sum((snr >= 30) & (snr < 100)))
    assert cal.n_calibration[1] == n_30_100 + n_short
    # a record in the removed band gets the merged band's interval
    np.testing.assert_array_equal(cal.half_width(np.array([50.0, 200.0])), [cal.q[1], cal.q[1]])


def test_intervals_of_a_log_target_are_factors():
    """T2 is calibrated on log10: its interval is a factor 10^q either way of the prediction."""
    rng = np.random.default_rng(3)
    t2 = 10 ** rng.uniform(1, 3, 500)
    pred = t2 * 10 ** (0.1 * rng.standard_normal(500))
    cal = cf.fit_interval("t2_us", t2, pred, np.full(500, 100.0), level=LEVEL)
    lo, hi = cal.interval(np.array([100.0, 1000.0]), np.array([100.0, 100.0]))
    f = 10 ** cal.q[0]
    np.testing.assert_allclose(lo, [100 / f, 1000 / f])
    np.testing.assert_allclose(hi, [100 * f, 1000 * f])
    assert cal.q[0] == pytest.approx(1.645 * 0.1, rel=0.15)


@pytest.mark.parametrize("kwargs, match", [
    (dict(y_true=np.arange(5.0), y_pred=np.zeros(5), snr=np.full(5, 50.0)), r"5 calibration rows are too few.*need 9"),
    (dict(y_true=np.arange(20.0), y_pred=np.zeros(20), snr=np.full(20, 50.0), level=1.5), "level: got 1.5"),
    (dict(y_true=np.r_[np.nan, np.arange(19.0)], y_pred=np.zeros(20), snr=np.full(20, 50.0)), "NaN"),
    (dict(y_true=np.arange(20.0), y_pred=np.zeros(19), snr=np.full(20, 50.0)), "y_pred: has 19 rows"),
    (dict(y_true=np.arange(20.0), y_pred=np.zeros(20), snr=np.full(19, 50.0)), "snr: expected 20 SNRs"),
    (dict(y_true=np.arange(20.0), y_pred=np.zeros(20), snr=np.zeros(20)), "snr: expected 20 SNRs > 0"),
])
def test_bad_interval_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cf.fit_interval("W", **kwargs)


# --------------------------------------------------------------------------- probabilities
def classification_rows(seed: int, n: int, sharpen: float = 2.0):
    """True class probabilities p* ~ Dirichlet, y ~ p*; the model reports softmax(sharpen log p*)."""
    rng = np.random.default_rng(seed)
    p_true = rng.dirichlet([0.7, 0.7, 0.7], n)
    y_idx = (rng.uniform(size=(n, 1)) > np.cumsum(p_true, axis=1)).sum(axis=1)
    logits = sharpen * np.log(p_true)
    p_model = np.exp(logits - logits.max(1, keepdims=True))
    p_model /= p_model.sum(1, keepdims=True)
    return y_idx, p_model, p_true


def test_temperature_recovers_a_known_over_confidence():
    """A model that squares the odds (sharpen 2) is undone by beta = 1/2."""
    y, p_model, p_true = classification_rows(0, 4000)
    beta = cf.fit_temperature(p_model, y)
    assert beta == pytest.approx(0.5, abs=0.04)
    np.testing.assert_allclose(cf.temperature_scale(p_model, 0.5), p_true, atol=1e-5)  # log(p + 1e-12)
    y2, p2, _ = classification_rows(1, 20000)
    calibrated = cf.temperature_scale(p2, beta)
    assert log_loss(y2, calibrated) < log_loss(y2, p2) - 0.05
    before = cf.reliability("kernel3", "model", CLASSES, p2, np.asarray(CLASSES)[y2])
    after = cf.reliability("kernel3", "calibrated", CLASSES, calibrated, np.asarray(CLASSES)[y2])
    assert before.ece > 0.08 and after.ece < 0.02
    # a calibrated model is left alone
    y3, p3, _ = classification_rows(2, 4000, sharpen=1.0)
    assert cf.fit_temperature(p3, y3) == pytest.approx(1.0, abs=0.08)
    assert cf.fit_temperature(p3, np.zeros(4000, int)) == 1.0  # a single class: nothing to fit


def test_prediction_sets_cover_at_the_level():
    y, p_model, _ = classification_rows(3, 3000)
    q = cf.fit_set_threshold(p_model, y, LEVEL)
    y2, p2, _ = classification_rows(4, 20000)
    sets = 1.0 - p2 <= q
    rep = cf.set_coverage("kernel3", sets, np.asarray(CLASSES)[y2], CLASSES, level=LEVEL, snr=math.inf)
    assert rep.n_test == 20000 and rep.level == LEVEL and rep.snr == math.inf
    assert within_binomial(rep.coverage, LEVEL, 3000, 20000)
    assert 1 < rep.mean_set_size < 2  # informative: neither single labels nor everything
    with pytest.raises(ValueError, match="too few for prediction sets; need 9"):
        cf.fit_set_threshold(p_model[:8], y[:8], LEVEL)


def test_set_coverage_counts_the_true_class():
    sets = np.array([[True, False, False], [True, True, False], [False, False, True], [False, True, True]])
    rep = cf.set_coverage("kernel3", sets, ["gaussian", "gaussian", "power", "rkky"], CLASSES, level=0.9, snr=50.0)
    assert rep.coverage == 0.75 and rep.mean_set_size == 1.5
    with pytest.raises(ValueError, match="not among the classes"):
        cf.set_coverage("kernel3", sets, ["gaussian", "x", "power", "rkky"], CLASSES, level=0.9, snr=50.0)


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


@pytest.mark.parametrize("proba, y, match", [
    (np.full((2, 3), 1 / 3), ["gaussian", "other"], "not among the classes"),
    (np.full((2, 2), 0.5), ["gaussian", "power"], r"expected shape \(B, 3\)"),
    (np.full((2, 3), 0.5), ["gaussian", "power"], "sum to 1"),
    (np.full((2, 3), 1 / 3), ["gaussian"], "expected 2 labels"),
])
def test_bad_class_inputs(proba, y, match):
    with pytest.raises(ValueError, match=match):
        cf.reliability("kernel3", "model", CLASSES, proba, y)

import numpy as np
import pytest

from pyecho.learn.paper.features import (FeatureLayout, normalise_abs, pointwise_features, polynomial_coefficients,
                                   polynomial_features, polynomial_names, section_bounds, window_bounds)


def test_normalise_per_series_to_unit_interval():
    rng = np.random.default_rng(0)
    M = (rng.standard_normal((5, 50)) + 1j * rng.standard_normal((5, 50))) * np.arange(1, 6)[:, None]
    X = normalise_abs(M)
    assert X.shape == (5, 50)
    np.testing.assert_allclose(X.min(1), 0)
    np.testing.assert_allclose(X.max(1), 1)
    assert np.all(normalise_abs(np.ones((2, 7))) == 0)  # constant rows do not divide by zero
    with pytest.raises(ValueError, match="NaN"):
        normalise_abs(np.array([1.0, np.nan]))


def test_window_centred_on_echo_and_checked():
    assert window_bounds(1249, 1875, 400) == (1049, 1449)
    a, b = window_bounds(1249, 1875, 400)
    assert a + 200 == 1249 and b - a == 400
    with pytest.raises(ValueError, match="does not fit"):
        window_bounds(100, 1875, 400)


def test_polynomial_features_recover_a_cubic_in_each_section():
    """A series that is, in every section of every split, an exact cubic in x = t - t_c."""
    dt = 0.16
    t = dt * np.arange(1, 401) + 160.0
    # one global cubic: in every section its coefficients in centred x are known analytically
    g = np.array([0.3, -0.02, 0.004, -1e-5])  # g0 + g1 u + g2 u^2 + g3 u^3, u = t - 190
    u = t - 190.0
    y = g[0] + g[1] * u + g[2] * u**2 + g[3] * u**3
    coef = polynomial_coefficients(y[None], t)
    assert coef.shape == (1, 76)
    names = polynomial_names()
    assert len(names) == 76 and names[0] == "poly_s4_k1_c0" and names[-1] == "poly_s10_k10_c3"
    col = 0
    for n in (4, 5, 10):
        for a, b in section_bounds(400, n):
            tc = 0.5 * (t[a] + t[b - 1])
            s = tc - 190.0  # u = x + s
            expect = [g[0] + g[1] * s + g[2] * s**2 + g[3] * s**3,
                      g[1] + 2 * g[2] * s + 3 * g[3] * s**2,
                      g[2] + 3 * g[3] * s,
                      g[3]]
            np.testing.assert_allclose(coef[0, col:col + 4], expect, rtol=1e-6, atol=1e-10)
            col += 4


def test_piecewise_cubics_placed_in_sections_are_recovered():
    """Different random cubics placed in the 10 sections: the 10-section fits return them exactly."""
    rng = np.random.default_rng(1)
    t = 0.16 * np.arange(1, 401)
    y = np.empty(400)
    truth = []
    for a, b in section_bounds(400, 10):
        c = rng.normal(size=4) * [1, 0.1, 0.01, 0.001]
        x = t[a:b] - 0.5 * (t[a] + t[b - 1])
        y[a:b] = c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3
        truth.append(c)
    df = polynomial_features(y[None], t)
    got = np.array([[df[f"poly_s10_k{k}_c{j}"][0] for j in range(4)] for k in range(1, 11)])
    np.testing.assert_allclose(got, np.array(truth), rtol=1e-7, atol=1e-10)


def test_pointwise_table_and_layout_round_trip():
    t = 0.16 * np.arange(1, 1876)
    lay = FeatureLayout.build(t, 1249, 400)
    assert lay.pointwise_names[200] == f"pt_t{t[1249]:.2f}us" == "pt_t200.00us"
    X = normalise_abs(np.random.default_rng(0).random((3, 1875)))
    f = lay.features(X)
    assert f["pointwise"].shape == (3, 400) and f["polynomial"].shape == (3, 76)
    assert FeatureLayout.from_dict(lay.to_dict()) == lay
    df = pointwise_features(X[:, :5], t[:5])
    assert df.columns == ["pt_t0.16us", "pt_t0.32us", "pt_t0.48us", "pt_t0.64us", "pt_t0.80us"]

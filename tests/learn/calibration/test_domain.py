"""The out-of-domain guard on synthetic damped oscillations with known parameters."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pyecho.errors import InputFileError
from pyecho.learn.domain import DomainGuard, EchoGrid, fit_domain_guard

T = 200
GRID = EchoGrid(tau_us=10.0, dt_us=0.16, n_samples=T, thetas=(math.pi / 2,))


def echoes(n: int, seed: int, rate=(1.0, 2.0), noise: float = 0.01):
    """exp(-r t) cos(w t) + white noise; r plays the role of a linewidth, w of a coupling."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 3, T)
    r = rng.uniform(*rate, n)
    w = rng.uniform(8, 12, n)
    X = np.exp(-r[:, None] * t) * np.cos(w[:, None] * t) + noise * rng.standard_normal((n, T))
    return X, w


@pytest.fixture(scope="module")
def guard():
    X_train, w_train = echoes(3000, 0)
    X_cal, _ = echoes(2000, 1)
    return fit_domain_guard(X_train, X_cal, GRID, {"W": w_train})


def test_training_distribution_passes_at_99_percent(guard):
    X, w = echoes(4000, 2)
    checks = guard.check(X, GRID, {"W": w})
    rate = np.mean([c.in_domain for c in checks])
    assert 0.985 <= rate <= 0.995  # about 1 % false alarms: the threshold is the 99th percentile
    flagged = [c for c in checks if not c.in_domain]
    assert all(len(c.reasons) == 1 and c.reasons[0].startswith("feature distance") and "> 99th pct" in c.reasons[0]
               for c in flagged)


def test_threshold_from_calibration_not_training_rows(guard):
    X_train, _ = echoes(3000, 0)
    # in-sample distances are biased low: the training rows' 99th percentile is well below the threshold
    assert np.percentile(guard.distance(X_train), 99) < 0.9 * guard.threshold


@pytest.mark.parametrize("shift", [dict(rate=(4.0, 5.0)), dict(noise=0.1)], ids=["linewidth", "noise"])
def test_shifted_echoes_are_flagged(guard, shift):
    X, _ = echoes(500, 3, **shift)
    checks = guard.check(X, GRID)
    assert np.mean([c.in_domain for c in checks]) < 0.02
    assert all(np.isfinite(c.distance) and c.distance > guard.threshold for c in checks if not c.in_domain)


def test_grid_and_label_mismatches_give_reasons(guard):
    X, w = echoes(3, 4)
    other = EchoGrid(tau_us=10.0, dt_us=0.2, n_samples=T, thetas=(math.pi / 4,))
    checks = guard.check(X, other)
    assert [c.in_domain for c in checks] == [False] * 3
    assert checks[0].reasons == ("dt_us 0.2 != model 0.16", "theta (rad) 0.7854 != model 1.571")
    assert np.isnan(checks[0].distance)
    shorter = EchoGrid(tau_us=10.0, dt_us=0.16, n_samples=T - 50, thetas=(math.pi / 2,))
    assert guard.check(X[:, : T - 50], shorter)[0].reasons == (f"n_samples {T - 50} != model {T}",)

    w_bad = w.copy()
    w_bad[1] = 14.0  # trained window about [8, 12]
    checks = guard.check(X, GRID, {"W": w_bad})
    assert checks[0].in_domain and checks[2].in_domain
    assert not checks[1].in_domain
    lo, hi = guard.window("W").lo, guard.window("W").hi
    assert checks[1].reasons == (f"predicted W 14 outside trained [{lo:.3g}, {hi:.3g}]",)


def test_save_load_round_trip(guard, tmp_path):
    json_path, npz_path = guard.save(tmp_path / "domain.json")
    assert npz_path.exists()
    back = DomainGuard.load(json_path)
    X, w = echoes(300, 5, noise=0.03)
    assert back.check(X, GRID, {"W": w}) == guard.check(X, GRID, {"W": w})
    assert back.grid == guard.grid and back.windows == guard.windows and back.threshold == guard.threshold


def test_bad_inputs(guard, tmp_path):
    X_train, w = echoes(200, 6)
    with pytest.raises(ValueError, match="too few for the 99th percentile; need 99 or more"):
        fit_domain_guard(X_train, X_train[:50], GRID, {"W": w})
    with pytest.raises(ValueError, match="k: got 0"):
        fit_domain_guard(X_train, X_train, GRID, {"W": w}, k=0)
    with pytest.raises(ValueError, match=r"labels\['W'\]: expected 200"):
        fit_domain_guard(X_train, X_train, GRID, {"W": w[:10]})
    with pytest.raises(ValueError, match=r"features: expected shape \(B, 200\)"):
        guard.check(X_train[:, :100], GRID)
    with pytest.raises(ValueError, match="NaN"):
        guard.check(np.full((1, T), np.nan), GRID)
    with pytest.raises(ValueError, match="dt_us: got -1"):
        EchoGrid(tau_us=1.0, dt_us=-1, n_samples=3, thetas=(1.0,))
    (tmp_path / "g.json").write_text('{"format_version": 7}')
    with pytest.raises(ValueError, match="g.json: not a pyecho domain guard .*format_version 7"):
        DomainGuard.load(tmp_path / "g.json")
    guard.save(tmp_path / "h.json")
    (tmp_path / "h.npz").unlink()
    with pytest.raises(InputFileError, match="h.json: domain guard incomplete"):
        DomainGuard.load(tmp_path / "h.json")


def test_grid_from_metadata():
    g = EchoGrid.from_metadata({"tau_us": 100.0, "dt_us": 0.16, "theta": 1.5707963267948966}, 1875)
    assert g == EchoGrid(100.0, 0.16, 1875, (1.5707963267948966,))
    g2 = EchoGrid.from_metadata({"tau_us": 100.0, "dt_us": 0.16, "theta": 1.0,
                                 "config": {"thetas": [1.5708, 0.7854]}}, 1875)
    assert g2.thetas == (1.5708, 0.7854)
    with pytest.raises(ValueError, match="lacks dt_us"):
        EchoGrid.from_metadata({"tau_us": 100.0, "theta": 1.0}, 10)

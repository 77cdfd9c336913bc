"""The out-of-domain guard on synthetic records of two measurements, with per-SNR-band
thresholds, seen through the phase/gain-referenced view the models see.

The guard's 99th-percentile thresholds flag an exchangeable in-domain record with probability
at most 1 %; the in-domain rates are checked against 0.99 within 3 binomial standard errors
(sqrt(p (1 - p) (1/n_cal + 1/n_test)), n_cal the fewest calibration rows of a band).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from pyecho.data.records import NoisyRecords, add_complex_noise, estimate_noise
from pyecho.errors import InputFileError
from pyecho.learn.calibration.domain import SCALE_FLOOR, DomainGuard, fit_domain_guard
from pyecho.learn.models.inputs import InputView
from pyecho.learn.storage import FeatureRows
from pyecho.physics.protocol import Protocol, RecordGrid
from tests.learn.models.learnable import TWO_MEASUREMENTS as GRID
from tests.learn.models.learnable import make_learnable_echoes

DEAD_US = 1.28  # 8 samples: the reference window (8 samples) is exactly the first kept block
VIEW = InputView(channels="reim_abs", decimate=8, dead_time_us=DEAD_US)
#: the trained carriers, x 0.3 of the helper's: smooth records whose SNR estimate is their noise
OMEGA_SCALE = 0.3
#: a clearly shifted distribution: carriers x 4, above every trained one
SHIFTED_SCALE = 4.0
TRAIN_SNR_RANGE = (15.0, 3000.0)


def noisy_rows(n: int, seed: int, copies: int, omega_scale: float = OMEGA_SCALE):
    """n samples clean and ``copies`` times noised (SNR log-uniform in TRAIN_SNR_RANGE):
    (records, targets of every row, estimated SNR of every row)."""
    clean, tg, _ = make_learnable_echoes(n, grid=GRID, seed=seed, noise=0.0, omega_scale=omega_scale,
                                         dtype=np.complex128)
    rows = NoisyRecords.with_copies(clean, np.arange(n), copies=copies, snr_range=TRAIN_SNR_RANGE, seed=seed + 100)
    records = rows.materialize()
    return records, tg.take(rows.source), estimate_noise(records, GRID, dead_time_us=DEAD_US).snr


def fresh(n: int, seed: int, snr: float, omega_scale: float = OMEGA_SCALE):
    """n new samples at one SNR: (features, estimated SNR, targets)."""
    clean, tg, _ = make_learnable_echoes(n, grid=GRID, seed=seed, noise=0.0, omega_scale=omega_scale,
                                         dtype=np.complex128)
    noisy = add_complex_noise(clean, snr, np.random.default_rng(seed + 1))
    return VIEW.flat(noisy, GRID), estimate_noise(noisy, GRID, dead_time_us=DEAD_US).snr, tg


@pytest.fixture(scope="module")
def trained():
    """(guard, training features, calibration rows' estimated SNRs)."""
    train, tg, _ = noisy_rows(800, seed=0, copies=1)
    cal, _, snr_cal = noisy_rows(1200, seed=1, copies=2)
    X_train = VIEW.flat(train, GRID)
    guard = fit_domain_guard(X_train, VIEW.flat(cal, GRID), snr_cal, GRID, {t: tg[t] for t in ("W", "L")})
    return guard, X_train, snr_cal


def reference_block_im(view: InputView, grid: RecordGrid) -> list[int]:
    """Columns of view.flat holding Im of each measurement's first kept block (the reference window)."""
    T = view.n_timepoints(grid)
    offsets = np.cumsum([0, *(len(view.channel_names) * t for t in T)])[:-1]
    im = view.channel_names.index("im")
    return [int(o + im * t) for o, t in zip(offsets, T)]


# --------------------------------------------------------------------------- invariance
def test_verdicts_are_invariant_to_the_receiver_phase_and_gain(trained):
    """M e^{0.7i} 3.0 gives the same verdicts and distances as M. The reference window's
    features (Re = 1, Im = 0 by construction) carry only round-off, which the phase moves: the
    guard must not count them."""
    guard, X_train, _ = trained
    clean, _, _ = make_learnable_echoes(300, grid=GRID, seed=7, noise=0.0, omega_scale=OMEGA_SCALE,
                                        dtype=np.complex128)
    records = add_complex_noise(clean, np.repeat([np.inf, 200.0, 20.0], 100), np.random.default_rng(8))
    moved = tuple(R * 3.0 * np.exp(0.7j) for R in records)
    X, X_moved = VIEW.flat(records, GRID), VIEW.flat(moved, GRID)
    snr = estimate_noise(records, GRID, dead_time_us=DEAD_US).snr
    a, b = guard.check(X, GRID, snr), guard.check(X_moved, GRID, snr)
    assert [c.in_domain for c in a] == [c.in_domain for c in b]
    np.testing.assert_allclose([c.distance for c in b], [c.distance for c in a], rtol=1e-9, atol=0)
    assert np.mean([c.in_domain for c in a]) > 0.9  # in-domain rows: the verdicts compared are mostly "in"
    # the trap this guards against: the reference's Im has a spread of round-off only (~1e-17),
    # and the phase moves it by as much -- standardised, that is O(1) standard deviations
    for j in reference_block_im(VIEW, GRID):
        spread = X_train[:, j].std()
        assert spread < SCALE_FLOOR * np.median(X_train.std(axis=0))
        assert np.abs(X_moved[:, j] - X[:, j]).max() > 0.5 * spread
        assert j not in guard.kept_features
    assert guard.n_features_in == X_train.shape[1]


# --------------------------------------------------------------------------- per-band thresholds
def test_one_threshold_per_snr_band_noisier_bands_wider(trained):
    guard, _, snr_cal = trained
    assert guard.band_edges == (30.0, 100.0, 300.0, 1000.0) and len(guard.thresholds) == 5
    assert guard.thresholds[0] > 2 * guard.thresholds[-1]  # noise moves records away from the clean ones
    np.testing.assert_array_equal(guard.threshold(np.array([20.0, 50.0, 5000.0])),
                                  [guard.thresholds[0], guard.thresholds[1], guard.thresholds[4]])
    counts = np.bincount(np.searchsorted(guard.band_edges, snr_cal, side="right"), minlength=5)
    assert counts.min() >= 99  # every band has enough rows for its 99th percentile


@pytest.mark.parametrize("snr", [20.0, 2000.0])
def test_fresh_in_distribution_rows_are_in_domain(trained, snr):
    guard, _, snr_cal = trained
    n = 1000
    X, est, _ = fresh(n, seed=5, snr=snr)
    checks = guard.check(X, GRID, est)  # the features only: label windows are tested below
    rate = np.mean([c.in_domain for c in checks])
    n_cal = np.bincount(np.searchsorted(guard.band_edges, snr_cal, side="right"), minlength=5).min()
    floor = 0.99 - 3 * math.sqrt(0.99 * 0.01 * (1 / n_cal + 1 / n))
    assert floor >= 0.95 and rate >= floor, (rate, floor)
    flagged = [c for c in checks if not c.in_domain]
    assert all(len(c.reasons) == 1 and c.reasons[0].startswith("feature distance") and "> 99th pct" in c.reasons[0]
               for c in flagged)


@pytest.mark.parametrize("snr", [20.0, 2000.0])
def test_shifted_rows_are_flagged(trained, snr):
    guard, _, _ = trained
    X, est, _ = fresh(1000, seed=6, snr=snr, omega_scale=SHIFTED_SCALE)
    checks = guard.check(X, GRID, est)
    assert np.mean([not c.in_domain for c in checks]) >= 0.95
    limit = guard.threshold(est)
    assert all(c.distance > t for c, t in zip(checks, limit) if not c.in_domain)


def test_axes_from_a_subsample_and_blocks_of_rows_keep_every_row_and_the_verdicts(trained, monkeypatch):
    """Principal axes fitted on 300 of the 1 600 training rows, every pass in blocks of 97 rows:
    every training row is still a reference, and shifted rows are flagged as often, in-domain
    rows kept as often (float32 features, as the candidate stage gives them)."""
    import pyecho.learn.calibration.domain as domain

    guard, X_train, _ = trained
    monkeypatch.setattr(domain, "PCA_MAX_ROWS", 300)
    monkeypatch.setattr(domain, "BLOCK_ROWS", 97)
    _, tg, _ = noisy_rows(800, seed=0, copies=1)  # the training rows' labels
    cal, _, snr_cal = noisy_rows(1200, seed=1, copies=2)
    small = fit_domain_guard(X_train.astype(np.float32), VIEW.flat(cal, GRID).astype(np.float32), snr_cal, GRID,
                             {t: tg[t] for t in ("W", "L")})
    assert small.reference.shape == guard.reference.shape
    np.testing.assert_array_equal(small.kept_features, guard.kept_features)
    X_in, est_in, _ = fresh(500, seed=5, snr=200.0)
    X_out, est_out, _ = fresh(500, seed=6, snr=200.0, omega_scale=SHIFTED_SCALE)
    assert np.mean([c.in_domain for c in small.check(X_in, GRID, est_in)]) >= 0.95
    assert np.mean([not c.in_domain for c in small.check(X_out, GRID, est_out)]) >= 0.95


def test_training_rows_from_a_scratch_file_give_the_same_guard(trained, monkeypatch, tmp_path):
    """The training rows' features as FeatureRows in a scratch file (pyecho learn --stream), the
    axes from 300 rows drawn across blocks of 97: the guard equals the one from the array."""
    import pyecho.learn.calibration.domain as domain

    _, X_train, _ = trained
    monkeypatch.setattr(domain, "PCA_MAX_ROWS", 300)
    monkeypatch.setattr(domain, "BLOCK_ROWS", 97)
    _, tg, _ = noisy_rows(800, seed=0, copies=1)
    cal, _, snr_cal = noisy_rows(1200, seed=1, copies=2)
    X_cal, labels = VIEW.flat(cal, GRID).astype(np.float32), {t: tg[t] for t in ("W", "L")}
    F = X_train.astype(np.float32)
    rows = FeatureRows(len(F), F.shape[1], directory=tmp_path)
    for start in range(0, len(F), 250):
        rows.write(start, F[start:start + 250])
    from_array = fit_domain_guard(F, X_cal, snr_cal, GRID, labels)
    from_file = fit_domain_guard(rows, X_cal, snr_cal, GRID, labels)
    for name in ("kept_features", "feature_mean", "feature_scale", "components", "reference"):
        np.testing.assert_array_equal(getattr(from_file, name), getattr(from_array, name), err_msg=name)
    assert from_file.thresholds == from_array.thresholds


# --------------------------------------------------------------------------- grid, labels, files
def test_another_grid_flags_every_row_with_its_reason(trained):
    guard, X_train, _ = trained
    X = X_train[:4]
    snr = np.full(4, 100.0)
    one = RecordGrid(Protocol.parse("hahn@90/16"), 0.16)
    checks = guard.check(X[:, :100], one, snr)
    assert [c.in_domain for c in checks] == [False] * 4 and all(np.isnan(c.distance) for c in checks)
    assert checks[0].reasons == ("1 measurement(s) != model 2 (hahn@90/16,cpmg:2@90/8)",)
    angle = RecordGrid(Protocol.parse("hahn@45/16,cpmg:2@90/8"), 0.16)
    assert guard.check(X, angle, snr)[2].reasons == ("measurement 0: hahn@45/16 != model hahn@90/16",)
    step = RecordGrid(GRID.protocol, 0.2)
    assert guard.check(X, step, snr)[1].reasons == ("dt_us 0.2 != model 0.16",)
    assert all(c.in_domain for c in guard.check(X, RecordGrid(Protocol.parse(GRID.protocol.text), 0.16), snr))


def test_predictions_outside_the_trained_label_window_are_flagged(trained):
    guard, X_train, _ = trained
    w = guard.window("W")
    X, snr = X_train[:3], np.full(3, 5000.0)
    span = w.hi - w.lo
    W = np.array([w.lo, w.hi + 0.04 * span, w.hi + 0.2 * span])  # the margin is 5 % of the span
    checks = guard.check(X, GRID, snr, {"W": W})
    assert checks[0].in_domain and checks[1].in_domain and not checks[2].in_domain
    assert checks[2].reasons == (f"predicted W {W[2]:.3g} outside trained [{w.lo:.3g}, {w.hi:.3g}]",)
    with pytest.raises(ValueError, match="no trained window for"):
        guard.check(X, GRID, snr, {"alpha_z": W})


def test_save_load_round_trip(trained, tmp_path):
    guard, _, _ = trained
    json_path, npz_path = guard.save(tmp_path / "domain.json")
    assert npz_path.exists() and npz_path.suffix == ".npz"
    back = DomainGuard.load(json_path)
    assert back.grid == guard.grid and back.windows == guard.windows
    assert back.thresholds == guard.thresholds and back.band_edges == guard.band_edges
    np.testing.assert_array_equal(back.kept_features, guard.kept_features)
    X, est, tg = fresh(200, seed=9, snr=50.0)
    X_out, est_out, _ = fresh(20, seed=10, snr=50.0, omega_scale=SHIFTED_SCALE)
    X, est = np.vstack([X, X_out]), np.r_[est, est_out]
    W = np.r_[tg["W"], np.full(20, 10.0)]
    assert back.check(X, GRID, est, {"W": W}) == guard.check(X, GRID, est, {"W": W})
    assert sum(not c.in_domain for c in back.check(X, GRID, est)) >= 20


def test_bad_inputs(trained, tmp_path):
    guard, X_train, snr_cal = trained
    w = np.ones(200)
    X = X_train[:200]
    with pytest.raises(ValueError, match="50 rows are too few for the 99th percentile; need 99 or more"):
        fit_domain_guard(X, X[:50], snr_cal[:50], GRID, {"W": w})
    with pytest.raises(ValueError, match="k: got 0"):
        fit_domain_guard(X, X, snr_cal[:200], GRID, {"W": w}, k=0)
    with pytest.raises(ValueError, match=r"labels\['W'\]: expected 200"):
        fit_domain_guard(X, X, snr_cal[:200], GRID, {"W": w[:10]})
    with pytest.raises(ValueError, match="snr_calibration: expected 200 values"):
        fit_domain_guard(X, X, snr_cal[:10], GRID, {"W": w})
    with pytest.raises(ValueError, match="same columns"):
        fit_domain_guard(X, X[:, :100], snr_cal[:200], GRID, {"W": w})
    with pytest.raises(ValueError, match=r"features: expected shape \(B, 180\)"):
        guard.check(X[:, :100], GRID, snr_cal[:200])
    with pytest.raises(ValueError, match="NaN"):
        guard.check(np.full((1, X.shape[1]), np.nan), GRID, np.array([100.0]))
    (tmp_path / "g.json").write_text('{"format_version": 7}')
    with pytest.raises(InputFileError, match="g.json: not a pyecho domain guard .*format_version 7"):
        DomainGuard.load(tmp_path / "g.json")
    guard.save(tmp_path / "h.json")
    (tmp_path / "h.npz").unlink()
    with pytest.raises(InputFileError, match="h.json: domain guard incomplete"):
        DomainGuard.load(tmp_path / "h.json")
    with pytest.raises(ValueError, match="ending in .json"):
        guard.save(tmp_path / "h.npz")

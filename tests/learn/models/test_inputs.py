"""Spectrometer inputs: phase/gain referencing, the model input view, noise and augmentation."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from pyecho import EchoParams, simulate_batch
from pyecho.learn.inputs import (
    CHANNEL_SETS,
    KERNEL_CLASSES,
    EchoPredictions,
    EchoTargets,
    InputView,
    ModelFileError,
    add_complex_noise,
    augment_training,
    check_model_header,
    model_header,
    reference_phase_gain,
)

DT_US = 0.16


def make_learnable_echoes(n: int, n_samples: int = 300, seed: int = 0, noise: float = 0.002):
    """Complex echo-like records with an obvious answer: the kernel sets the carrier frequency,
    W the decay rate, L the height of a bump; each record gets a random receiver phase and gain.

    Returns (M complex (n, n_samples), EchoTargets)."""
    rng = np.random.default_rng(seed)
    t = DT_US * np.arange(1, n_samples + 1)
    kernel = np.array(KERNEL_CLASSES)[rng.permutation(np.arange(n) % 3)]
    omega = np.select([kernel == "gaussian", kernel == "power"], [0.05, 0.15], 0.3)  # rad/us
    a_xy, a_z = rng.uniform(0.01, 0.1, n), rng.uniform(0.01, 0.1, n)
    W = 2 * a_xy + a_z
    L = rng.uniform(5.0, 15.0, n)
    bump = (L[:, None] / 15) * np.exp(-(((t - t[-1] / 2) / 3.0) ** 2))
    M = (0.5 * np.exp(-W[:, None] * t / 2) + 0.2 * bump) * np.exp(1j * omega[:, None] * t)
    M = M * rng.uniform(0.2, 5.0, (n, 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (n, 1)))
    M = M + noise * (rng.standard_normal(M.shape) + 1j * rng.standard_normal(M.shape))
    return M.astype(np.complex64), EchoTargets(kernel=kernel, W=W, L=L, alpha_xy=a_xy, alpha_z=a_z)


@pytest.fixture(scope="module")
def simulated():
    """Real echoes on an 8 x 8 lattice: (B = 3 samples, A = 2 angles (90°, 45°), T = 375)."""
    base = EchoParams(kernel="gaussian", kernel_param=3.0, alpha_xy=0.08, alpha_z=0.06, lattice=8, tau_us=20.0,
                      dt_us=DT_US, theta=math.pi / 2, linewidth_khz=8.0, t2_us=None)
    samples = [base, base.replace(kernel="power", kernel_param=2.0), base.replace(kernel="rkky", kernel_param=13.0)]
    params = [p.replace(theta=th) for p in samples for th in (math.pi / 2, math.pi / 4)]
    M = simulate_batch(params, seeds=[s for s in range(3) for _ in range(2)], backend="torch", device="cpu")
    return M.reshape(3, 2, -1)


# -- referencing ----------------------------------------------------------------------------
def test_referenced_echo_is_invariant_to_global_phase_and_gain(simulated):
    ref = reference_phase_gain(simulated).M
    rng = np.random.default_rng(1)
    for _ in range(3):
        phase = rng.uniform(-np.pi, np.pi, (3, 1, 1))
        gain = rng.uniform(0.01, 100.0, (3, 1, 1))
        moved = reference_phase_gain(simulated * gain * np.exp(1j * phase)).M
        np.testing.assert_allclose(moved, ref, rtol=0, atol=1e-12)
    # and it was not trivially invariant: the raw records do move
    assert np.abs(simulated * np.exp(0.3j) - simulated).max() > 1e-2


def test_each_angle_is_referenced_on_its_own(simulated):
    """A different phase and gain per angle is removed too; each start is real, positive, ~1."""
    ref = reference_phase_gain(simulated).M
    moved = simulated * np.array([2.0, 0.3])[None, :, None] * np.exp(1j * np.array([0.4, -2.0]))[None, :, None]
    np.testing.assert_allclose(reference_phase_gain(moved).M, ref, rtol=0, atol=1e-12)
    start = ref[..., :8].mean(axis=-1)
    np.testing.assert_allclose(start, 1.0, atol=1e-12)


def test_phase_evolution_is_kept(simulated):
    """Referencing is one complex factor per record: the phase's evolution over time is signal."""
    ref = reference_phase_gain(simulated)
    np.testing.assert_allclose(ref.M * ref.gain[..., None] * np.exp(1j * ref.phase_rad)[..., None], simulated,
                               atol=1e-12)
    drift = np.angle(ref.M[0, 1, -1] / ref.M[0, 1, 0])  # the 45° record's phase moves (alpha_z <m_z>)
    assert abs(drift) > 1e-3
    np.testing.assert_allclose(drift, np.angle(simulated[0, 1, -1] / simulated[0, 1, 0]), atol=1e-12)


def test_reference_is_averaged_over_n_ref_samples():
    M = np.full(20, 2.0 + 0j)
    M[0] = 2.0 + 4.0j  # one noisy first sample moves the phase of a 1-sample reference only a little over 4
    assert abs(reference_phase_gain(M, n_ref=4).phase_rad[0, 0]) < abs(reference_phase_gain(M, n_ref=1).phase_rad[0, 0])
    np.testing.assert_allclose(reference_phase_gain(M, n_ref=4).gain, abs(np.mean(M[:4])))


@pytest.mark.parametrize("bad, match", [
    (dict(M=np.zeros(10, complex)), "zero reference"),
    (dict(M=np.array([1.0, np.nan, 2.0])), "NaN"),
    (dict(M=np.ones((2, 2, 2, 2))), "shape"),
    (dict(M=np.ones(10), n_ref=0), "n_ref"),
    (dict(M=np.ones(10), n_ref=11), "n_ref"),
])
def test_reference_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        reference_phase_gain(**bad)


# -- input view -----------------------------------------------------------------------------
def test_input_view_channels_shapes_and_block_average(simulated):
    view = InputView(channels="reim_abs", decimate=4)
    X = view.transform(simulated)
    assert X.dtype == np.float32 and X.shape == (3, 2 * 3, 375 // 4)
    R = reference_phase_gain(simulated).M
    np.testing.assert_allclose(X[1, 3], R[1, 1, :4 * 93].real.reshape(93, 4).mean(axis=1), atol=1e-6)  # angle 1, re
    np.testing.assert_allclose(X[1, 5], np.abs(R[1, 1, :4 * 93]).reshape(93, 4).mean(axis=1), atol=1e-6)  # |M|
    assert InputView(channels="abs", decimate=1).transform(simulated[:, 0]).shape == (3, 1, 375)
    assert InputView(channels="reim").n_timepoints(1875) == 937


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels="phase"), "channels"), (dict(decimate=0), "decimate"), (dict(decimate=1.5), "decimate"),
    (dict(n_ref=True), "n_ref"),
])
def test_input_view_validates_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InputView(**kwargs)


def test_input_view_round_trips_through_a_dict():
    view = InputView(channels="reim", decimate=3, n_ref=5)
    assert InputView.from_dict(view.to_dict()) == view
    assert set(CHANNEL_SETS) == {"abs", "reim", "reim_abs"}


# -- noise ----------------------------------------------------------------------------------
def test_noise_matches_the_snr_definition():
    """snr = |M(first sample)| / sigma, sigma the std of each quadrature, independent Re and Im."""
    rng = np.random.default_rng(0)
    B, T = 40, 5000
    clean = 0.5 * np.exp(1j * 0.7) * np.exp(-np.arange(T) / 2000.0)[None, :] * np.linspace(1, 3, B)[:, None]
    snr = np.where(np.arange(B) % 2 == 0, 50.0, 200.0)
    noise = add_complex_noise(clean, snr, rng) - clean
    sigma = np.abs(clean[:, 0]) / snr
    for q in (noise.real, noise.imag):
        np.testing.assert_allclose(q.std(axis=1) / sigma, 1.0, atol=0.05)  # 5000 samples: std to ~1 %
        assert np.abs(q.mean(axis=1) / sigma).max() < 0.06
    assert abs(np.corrcoef(noise.real.ravel(), noise.imag.ravel())[0, 1]) < 0.01


def test_noise_uses_one_sigma_per_echo_across_angles(simulated):
    rng = np.random.default_rng(2)
    noisy = add_complex_noise(np.repeat(simulated[:1], 200, axis=0), 20.0, rng)
    sigma = np.abs(simulated[0, :, 0]).max() / 20.0  # the 90° start: the larger one
    for a in range(2):
        np.testing.assert_allclose((noisy[:, a] - simulated[0, a]).real.std(), sigma, rtol=0.02)


def test_infinite_snr_adds_nothing_and_input_is_not_modified():
    M = np.exp(1j * np.linspace(0, 1, 50))[None].repeat(3, axis=0)
    before = M.copy()
    out = add_complex_noise(M, np.array([np.inf, 10.0, np.inf]), np.random.default_rng(0))
    np.testing.assert_array_equal(M, before)
    np.testing.assert_array_equal(out[[0, 2]], M[[0, 2]])
    assert np.abs(out[1] - M[1]).max() > 0


@pytest.mark.parametrize("snr", [0.0, -1.0, np.nan, np.array([1.0, 2.0])])
def test_noise_rejects_bad_snr(snr):
    with pytest.raises(ValueError, match="snr"):
        add_complex_noise(np.ones((3, 10), complex), snr, np.random.default_rng(0))


# -- augmentation ---------------------------------------------------------------------------
def test_augmentation_never_touches_rows_outside_the_training_indices():
    M, _ = make_learnable_echoes(30, n_samples=64)
    M = M.astype(np.complex128)
    train = np.arange(0, 30, 3)
    test = np.setdiff1d(np.arange(30), train)
    M[test] = np.nan  # a read of any test row would raise or leak NaN
    before = M.copy()
    aug = augment_training(M, train_index=train, rng=np.random.default_rng(0), snr_choices=(np.inf, 200, 50), copies=4)
    np.testing.assert_array_equal(M, before)  # the input is untouched (NaNs compare equal here)
    assert aug.M.shape == (len(train) * 4, 64) and np.all(np.isfinite(aug.M))
    assert set(aug.source_index.tolist()) == set(train.tolist())
    assert not np.shares_memory(aug.M, M)
    assert set(np.unique(aug.snr).tolist()) <= {np.inf, 200.0, 50.0} and len(np.unique(aug.snr)) == 3
    clean = aug.snr == np.inf
    np.testing.assert_array_equal(aug.M[clean], M[aug.source_index[clean]])
    resid = aug.M[~clean] - M[aug.source_index[~clean]]
    expected = np.abs(M[aug.source_index[~clean], 0]) / aug.snr[~clean]
    np.testing.assert_allclose(resid.real.std(axis=1) / expected, 1.0, atol=0.35)


def test_augmentation_snr_range_is_log_uniform_within_bounds():
    M, _ = make_learnable_echoes(20, n_samples=32)
    aug = augment_training(M, train_index=np.arange(20), rng=np.random.default_rng(0), snr_range=(20.0, 500.0),
                           copies=50)
    assert aug.snr.min() >= 20.0 and aug.snr.max() <= 500.0
    assert abs(np.median(np.log(aug.snr)) - np.log(100.0)) < 0.2  # geometric centre of [20, 500]


@pytest.mark.parametrize("kwargs, match", [
    (dict(train_index=np.array([0, 0, 1]), snr_choices=(50,)), "distinct"),
    (dict(train_index=np.array([0, 30]), snr_choices=(50,)), r"\[0, 30\)"),
    (dict(train_index=np.array([0.0, 1.0]), snr_choices=(50,)), "integer"),
    (dict(train_index=np.array([0, 1])), "exactly one"),
    (dict(train_index=np.array([0, 1]), snr_choices=(50,), snr_range=(1, 2)), "exactly one"),
    (dict(train_index=np.array([0, 1]), snr_choices=(0,)), "snr_choices"),
    (dict(train_index=np.array([0, 1]), snr_range=(50, np.inf)), "snr_range"),
    (dict(train_index=np.array([0, 1]), snr_choices=(50,), copies=0), "copies"),
])
def test_augmentation_validates_its_options(kwargs, match):
    M, _ = make_learnable_echoes(30, n_samples=16)
    with pytest.raises(ValueError, match=match):
        augment_training(M, rng=np.random.default_rng(0), **kwargs)


# -- targets, predictions, model headers ----------------------------------------------------
def test_targets_from_labels_and_predictions_derive_p_power():
    labels = pl.DataFrame({"kernel": ["rkky", "power", "gaussian"], "W": [0.1, 0.2, 0.3], "L": [5.0, 9.0, 7.0],
                           "alpha_x": [0.03, 0.05, 0.1], "alpha_z": [0.04, 0.1, 0.1]})
    tg = EchoTargets.from_labels(labels)
    np.testing.assert_array_equal(tg.kernel_index, [2, 1, 0])
    np.testing.assert_array_equal(tg.is_power, [False, True, False])
    np.testing.assert_allclose(tg.regression()[:, 2], [0.03, 0.05, 0.1])  # alpha_xy = alpha_x
    assert len(tg.take(np.array([1]))) == 1 and tg.take(np.array([1])).kernel[0] == "power"
    with pytest.raises(ValueError, match="uniform"):
        EchoTargets(kernel=np.array(["uniform"]), W=np.ones(1), L=np.ones(1), alpha_xy=np.ones(1), alpha_z=np.ones(1))
    pred = EchoPredictions(kernel_proba=np.array([[0.3, 0.45, 0.25], [0.1, 0.6, 0.3]]), W=np.zeros(2), L=np.zeros(2),
                           alpha_xy=np.zeros(2), alpha_z=np.zeros(2))
    np.testing.assert_array_equal(pred.kernel, ["power", "power"])
    np.testing.assert_allclose(pred.p_power, [0.45, 0.6])
    np.testing.assert_array_equal(pred.is_power, [False, True])  # P vs NP is decided at p_power 0.5


def test_model_header_check_names_the_file_and_the_mismatch():
    cfg = model_header("pyecho.test")
    check_model_header("m.json", cfg, "pyecho.test")
    with pytest.raises(ModelFileError, match=r"m\.json: pyecho_version is '0\.0\.0'"):
        check_model_header("m.json", {**cfg, "pyecho_version": "0.0.0"}, "pyecho.test")
    with pytest.raises(ModelFileError, match="format"):
        check_model_header("m.json", cfg, "pyecho.other")

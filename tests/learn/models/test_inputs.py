"""Spectrometer inputs: phase/gain referencing, the model input view, the dead time, noise,
its estimate, augmentation, targets and decisions."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from pyecho import EchoParams, simulate_batch
import pyecho.learn.models.inputs as inputs_module
from pyecho.learn.models.inputs import (
    CHANNEL_SETS,
    EchoPredictions,
    EchoTargets,
    InputView,
    ModelFileError,
    NoisyRecords,
    add_complex_noise,
    as_records,
    check_model_header,
    estimate_noise,
    model_header,
    reference_phase_gain,
    reference_window,
    unreadable,
)
from pyecho.learn.models.scores import TaskScores
from pyecho.physics.protocol import Protocol, RecordGrid
from tests.learn.models.learnable import ONE_MEASUREMENT, TWO_MEASUREMENTS, make_learnable_echoes

DT_US = 0.16
#: the simulated records: a 90° Hahn echo (T = 375) and a 45° CPMG train of 2 (T = 250)
SIM_GRID = RecordGrid(Protocol.parse("hahn@90/20,cpmg:2@45/8"), DT_US)


@pytest.fixture(scope="module")
def simulated():
    """Real echoes on an 8 x 8 lattice: 3 samples (one per kernel), both measurements of SIM_GRID
    made on the same sample (same couplings and detunings)."""
    base = EchoParams(kernel="gaussian", kernel_param=3.0, alpha_xy=0.08, alpha_z=0.06, lattice=8, tau_us=20.0,
                      dt_us=DT_US, theta=math.pi / 2, linewidth_khz=8.0, t2_us=None)
    samples = [base, base.replace(kernel="power", kernel_param=2.0), base.replace(kernel="rkky", kernel_param=13.0)]
    records = tuple(simulate_batch([m.apply(p) for p in samples], seeds=[0, 1, 2], backend="torch", device="cpu")
                    for m in SIM_GRID.protocol)
    assert [R.shape for R in records] == [(3, 375), (3, 250)] and SIM_GRID.lengths == (375, 250)
    return records


def scaled(records, gain, phase):
    """Every record times gain e^{i phase}; gain, phase broadcast against (B, K) or scalars."""
    B, K = records[0].shape[0], len(records)
    g = np.broadcast_to(np.asarray(gain, float), (B, K))
    ph = np.broadcast_to(np.asarray(phase, float), (B, K))
    return tuple(R * (g[:, k] * np.exp(1j * ph[:, k]))[:, None] for k, R in enumerate(records))


def block_means(x: np.ndarray, d: int, blocks: np.ndarray) -> np.ndarray:
    """Means of the d-sample blocks ``blocks`` of rows x (B, T)."""
    n = x.shape[1] // d
    return x[:, : n * d].reshape(x.shape[0], n, d)[:, blocks].mean(axis=2)


# -- records --------------------------------------------------------------------------------
def test_as_records_accepts_every_layout_and_keeps_single_precision():
    one = np.ones(10, np.complex64)
    assert [R.shape for R in as_records(one)] == [(1, 10)] and as_records(one)[0].dtype == np.complex64
    assert as_records(np.ones((4, 10)))[0].dtype == np.complex128
    stacked = as_records(np.ones((4, 2, 10), np.complex128))
    assert len(stacked) == 2 and all(R.shape == (4, 10) for R in stacked)
    assert [R.shape for R in as_records([np.ones((4, 10)), np.ones((4, 7))])] == [(4, 10), (4, 7)]
    with pytest.raises(ValueError, match=r"hold \[4, 3\] records"):
        as_records([np.ones((4, 10)), np.ones((3, 7))])
    with pytest.raises(ValueError, match="infinite"):
        as_records(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="the model takes 2"):
        as_records(np.ones((4, 10)), n_measurements=2)


# -- referencing ----------------------------------------------------------------------------
def test_referenced_records_are_invariant_to_global_phase_and_gain(simulated):
    ref = reference_phase_gain(simulated, SIM_GRID).M
    rng = np.random.default_rng(1)
    for _ in range(3):
        moved = scaled(simulated, rng.uniform(0.01, 100.0, (3, 1)), rng.uniform(-np.pi, np.pi, (3, 1)))
        for a, b in zip(reference_phase_gain(moved, SIM_GRID).M, ref):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # and it was not trivially invariant: the raw records do move
    assert np.abs(simulated[0] * np.exp(0.3j) - simulated[0]).max() > 1e-2


def test_each_measurement_is_referenced_on_its_own(simulated):
    """A different phase and gain per measurement is removed too; each reference window
    averages to exactly 1 (real, positive)."""
    ref = reference_phase_gain(simulated, SIM_GRID)
    moved = reference_phase_gain(scaled(simulated, [2.0, 0.3], [0.4, -2.0]), SIM_GRID)
    for a, b in zip(moved.M, ref.M):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(moved.gain / ref.gain, np.broadcast_to([2.0, 0.3], (3, 2)), rtol=1e-12)
    for R in ref.M:
        np.testing.assert_allclose(R[:, :8].mean(axis=1), 1.0, atol=1e-12)


def test_phase_evolution_is_kept(simulated):
    """Referencing is one complex factor per record: the phase's evolution over time is signal."""
    ref = reference_phase_gain(simulated, SIM_GRID)
    for k, (R, raw) in enumerate(zip(ref.M, simulated)):
        np.testing.assert_allclose(R * (ref.gain[:, k] * np.exp(1j * ref.phase_rad[:, k]))[:, None], raw, atol=1e-12)
    # the 45° train's phase moves (alpha_z <m_z> is not zero away from 90°)
    drift = np.angle(ref.M[1][0, -1] / ref.M[1][0, 0])
    assert abs(drift) > 1e-3
    np.testing.assert_allclose(drift, np.angle(simulated[1][0, -1] / simulated[1][0, 0]), atol=1e-12)


def test_reference_is_averaged_over_n_ref_samples():
    M = np.full(300, 2.0 + 0j)
    M[0] = 2.0 + 4.0j  # one noisy first sample moves the phase of a 1-sample reference, of a 4-sample one less
    four = reference_phase_gain(M, ONE_MEASUREMENT, n_ref=4)
    np.testing.assert_allclose(reference_phase_gain(M, ONE_MEASUREMENT, n_ref=1).phase_rad, [[math.atan2(4, 2)]])
    np.testing.assert_allclose(four.phase_rad, [[math.atan2(1, 2)]])  # the mean of the four: 2 + 1i
    np.testing.assert_allclose(four.gain, abs(np.mean(M[:4])))


def test_reference_window_starts_after_the_dead_time():
    """With a dead time D the reference averages the first n_ref samples after D: values in the
    dead samples are never read."""
    records, _, grid = make_learnable_echoes(6, grid=TWO_MEASUREMENTS, dtype=np.complex128)
    for k in range(2):
        first_live = int(np.flatnonzero(~grid.dead_mask(k, 1.0))[0])
        assert first_live == round(1.0 / DT_US) == 6
        assert reference_window(grid, k, 1.0, 8) == slice(6, 14)
    dirty = tuple(R.copy() for R in records)
    for k, R in enumerate(dirty):
        R[:, grid.dead_mask(k, 1.0)] = np.nan
    a, b = reference_phase_gain(records, grid, dead_time_us=1.0), reference_phase_gain(dirty, grid, dead_time_us=1.0)
    np.testing.assert_array_equal(a.gain, b.gain)
    for k, (Ra, Rb) in enumerate(zip(a.M, b.M)):
        live = ~grid.dead_mask(k, 1.0)
        np.testing.assert_array_equal(Ra[:, live], Rb[:, live])
        np.testing.assert_allclose(Ra[:, 6:14].mean(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("records, kwargs, match", [
    (np.zeros(300, complex), {}, "zero or missing phase reference"),
    (np.r_[1.0, np.nan, np.ones(298)], {}, "zero or missing phase reference"),
    (np.ones((2, 2, 2, 2)), {}, "expected a numeric array"),
    (np.ones(300), dict(n_ref=0), "n_ref"),
    (np.ones(300), dict(n_ref=301), "fewer than 301 samples"),
    (np.ones(299), {}, r"lengths \[299\].*T = \[300\]"),
])
def test_reference_rejects_bad_input(records, kwargs, match):
    with pytest.raises(ValueError, match=match):
        reference_phase_gain(records, ONE_MEASUREMENT, **kwargs)


# -- input view -----------------------------------------------------------------------------
def test_input_view_channels_shapes_and_block_average(simulated):
    view = InputView(channels="reim_abs", decimate=4)
    X = view.transform(simulated, SIM_GRID)
    assert [x.dtype for x in X] == [np.float32] * 2 and [x.shape for x in X] == [(3, 3, 93), (3, 3, 62)]
    R = reference_phase_gain(simulated, SIM_GRID).M
    np.testing.assert_allclose(X[1][1, 0], R[1][1, :248].real.reshape(62, 4).mean(axis=1), atol=1e-6)  # re
    np.testing.assert_allclose(X[1][1, 1], R[1][1, :248].imag.reshape(62, 4).mean(axis=1), atol=1e-6)  # im
    np.testing.assert_allclose(X[0][2, 2], np.abs(R[0][2, :372]).reshape(93, 4).mean(axis=1), atol=1e-6)  # |M|
    assert [x.shape for x in InputView(channels="abs", decimate=1).transform(simulated, SIM_GRID)] == [(3, 1, 375),
                                                                                                        (3, 1, 250)]
    flat = view.flat(simulated, SIM_GRID)
    assert flat.shape == (3, 3 * 93 + 3 * 62)
    np.testing.assert_array_equal(flat[:, 3 * 93:], X[1].reshape(3, -1))
    assert view.n_timepoints(SIM_GRID) == (93, 62)


def test_long_records_are_averaged_into_at_most_max_points_blocks(simulated):
    view = InputView(channels="reim", decimate=1, max_points=100)
    assert (view.block(375), view.block(250)) == (4, 3)  # ceil(375 / 100), ceil(250 / 100)
    X = view.transform(simulated, SIM_GRID)
    assert [x.shape[2] for x in X] == [93, 83] and all(x.shape[2] <= 100 for x in X)
    R = reference_phase_gain(simulated, SIM_GRID).M
    np.testing.assert_allclose(X[1][0, 0], block_means(R[1][:1].real, 3, np.arange(83))[0], atol=1e-6)
    assert InputView(decimate=5, max_points=100).block(375) == 5  # decimate wins when coarser


def test_dead_time_drops_exactly_the_blocks_touching_dead_samples():
    """The view keeps every block clear of the dead samples (RecordGrid.dead_mask) and no other;
    what the dead samples hold is never read."""
    records, _, grid = make_learnable_echoes(5, dtype=np.complex128)
    view = InputView(channels="reim_abs", decimate=4, dead_time_us=1.0)
    X = view.transform(records, grid)
    R = reference_phase_gain(records, grid, dead_time_us=1.0).M
    for k in range(2):
        dead = grid.dead_mask(k, 1.0)
        n_blocks = grid.lengths[k] // 4
        clear = ~dead[: 4 * n_blocks].reshape(n_blocks, 4).any(axis=1)
        np.testing.assert_array_equal(view.kept_blocks(grid, k), np.flatnonzero(clear))
        # the pulses at samples (0, 100) and (0, 50, 150), 6 dead samples after each: two blocks each
        assert n_blocks - clear.sum() == 2 * len(grid.pulse_samples(k))
        assert X[k].shape == (5, 3, clear.sum())
        np.testing.assert_allclose(X[k][:, 0], block_means(R[k].real, 4, np.flatnonzero(clear)), atol=1e-6)
        np.testing.assert_allclose(X[k][:, 2], block_means(np.abs(R[k]), 4, np.flatnonzero(clear)), atol=1e-6)
    for fill in (np.nan, 1e6 + 1e6j):
        dirty = tuple(Rk.copy() for Rk in records)
        for k, Rk in enumerate(dirty):
            Rk[:, grid.dead_mask(k, 1.0)] = fill
        assert unreadable(dirty, grid, 1.0) is None
        for a, b in zip(view.transform(dirty, grid), X):
            np.testing.assert_array_equal(a, b)
    # without a dead time, the same garbage reaches the model
    plain = InputView(decimate=4)
    assert not np.array_equal(plain.transform(dirty, grid)[1], plain.transform(records, grid)[1])


def test_missing_samples_outside_the_dead_time_are_reported():
    records, _, grid = make_learnable_echoes(4, dtype=np.complex128)
    view = InputView(decimate=2, dead_time_us=1.0)
    gap = tuple(R.copy() for R in records)
    gap[1][2, 60] = np.nan  # measurement 1 (pulse at 50: dead 50..55), sample 60 is live
    reason = unreadable(gap, grid, 1.0)
    assert reason is not None and reason.startswith("record 2 of cpmg:2@90/8 misses samples outside")
    assert "(sample 60, t = 9.76 µs)" in reason
    with pytest.raises(ValueError, match="record 2 of cpmg:2@90/8 misses samples"):
        view.transform(gap, grid)
    # a record that starts too late: its first 10 samples are missing, the dead time covers 6
    late = tuple(R.copy() for R in records)
    late[0][:, :10] = np.nan
    assert "record 0 of hahn@90/16 misses samples" in unreadable(late, grid, 1.0)
    assert unreadable(late, grid, 1.8) is None  # a model with a dead time of 11 samples reads it
    zero = tuple(R.copy() for R in records)
    zero[0][3, 6:14] = 0
    assert "record 3 of hahn@90/16 is zero where the model takes its phase reference" in unreadable(zero, grid, 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels="phase"), "channels"), (dict(decimate=0), "decimate"), (dict(decimate=1.5), "decimate"),
    (dict(n_ref=True), "n_ref"), (dict(max_points=0), "max_points"), (dict(dead_time_us=-1.0), "dead_time_us"),
    (dict(dead_time_us=math.inf), "dead_time_us"),
])
def test_input_view_validates_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InputView(**kwargs)


def test_a_dead_time_longer_than_a_record_is_refused():
    records, _, grid = make_learnable_echoes(2)
    with pytest.raises(ValueError, match="dead_time_us"):
        InputView(dead_time_us=60.0).transform(records, grid)


def test_input_view_round_trips_through_a_dict():
    view = InputView(channels="reim", decimate=3, max_points=50, n_ref=5, dead_time_us=2.5)
    assert InputView.from_dict(view.to_dict()) == view
    assert InputView.from_dict(view.to_dict()) != InputView.from_dict({**view.to_dict(), "dead_time_us": 2.0})


@pytest.mark.parametrize("channels", sorted(CHANNEL_SETS))
def test_every_channel_set_gives_its_channels_in_order(simulated, channels):
    X = InputView(channels=channels, decimate=1).transform(simulated, SIM_GRID)[0]
    full = InputView(channels="reim_abs", decimate=1).transform(simulated, SIM_GRID)[0]
    order = {"re": 0, "im": 1, "abs": 2}
    np.testing.assert_array_equal(X, full[:, [order[c] for c in CHANNEL_SETS[channels]]])
    # |M| of the referenced record is gain-normalised: ~1 at the reference
    np.testing.assert_allclose(full[:, 2, :8].mean(axis=1), 1.0, atol=0.01)


# -- noise ----------------------------------------------------------------------------------
def test_noise_matches_the_snr_definition():
    """snr = |M(first sample)| / sigma, sigma the std of each quadrature, independent Re and Im."""
    rng = np.random.default_rng(0)
    B, T = 40, 5000
    clean = 0.5 * np.exp(1j * 0.7) * np.exp(-np.arange(T) / 2000.0)[None, :] * np.linspace(1, 3, B)[:, None]
    snr = np.where(np.arange(B) % 2 == 0, 50.0, 200.0)
    (noisy,) = add_complex_noise(clean, snr, rng)
    noise = noisy - clean
    sigma = np.abs(clean[:, 0]) / snr
    for q in (noise.real, noise.imag):
        # 5000 draws: the std's relative standard error is 1/sqrt(2 * 5000) = 1 %; 4 of them
        np.testing.assert_allclose(q.std(axis=1) / sigma, 1.0, atol=0.04)
        assert np.abs(q.mean(axis=1) / sigma).max() < 4 / np.sqrt(T)
    assert abs(np.corrcoef(noise.real.ravel(), noise.imag.ravel())[0, 1]) < 4 / np.sqrt(B * T)


def test_noise_uses_one_sigma_per_sample_across_measurements(simulated):
    rng = np.random.default_rng(2)
    many = tuple(np.repeat(R[:1], 400, axis=0) for R in simulated)
    noisy = add_complex_noise(many, 20.0, rng)
    sigma = max(abs(R[0, 0]) for R in simulated) / 20.0  # the 90° Hahn echo starts higher
    assert abs(simulated[0][0, 0]) > 1.3 * abs(simulated[1][0, 0])
    for k in range(2):
        n = noisy[k].size
        np.testing.assert_allclose((noisy[k] - many[k]).real.std(), sigma, rtol=4 / np.sqrt(2 * n))


def test_infinite_snr_adds_nothing_input_is_untouched_and_precision_is_kept():
    M = np.exp(1j * np.linspace(0, 1, 50))[None].repeat(3, axis=0)
    before = M.copy()
    (out,) = add_complex_noise(M, np.array([np.inf, 10.0, np.inf]), np.random.default_rng(0))
    np.testing.assert_array_equal(M, before)
    np.testing.assert_array_equal(out[[0, 2]], M[[0, 2]])
    assert np.abs(out[1] - M[1]).max() > 0 and out.dtype == np.complex128
    single = add_complex_noise((M.astype(np.complex64), M[:, :20].astype(np.complex64)), 10.0,
                               np.random.default_rng(0))
    assert [R.dtype for R in single] == [np.complex64, np.complex64] and single[1].shape == (3, 20)


@pytest.mark.parametrize("snr", [0.0, -1.0, np.nan, np.array([1.0, 2.0])])
def test_noise_rejects_bad_snr(snr):
    with pytest.raises(ValueError, match="snr"):
        add_complex_noise(np.ones((3, 10), complex), snr, np.random.default_rng(0))


def test_noise_needs_a_generator():
    with pytest.raises(ValueError, match="rng"):
        add_complex_noise(np.ones((3, 10), complex), 10.0, 0)


# -- noise estimate ---------------------------------------------------------------------------
#: long records for the noise estimate: a Hahn echo (T = 1500) and a CPMG train (T = 1250)
LONG_GRID = RecordGrid(Protocol.parse("hahn@90/80,cpmg:2@90/40"), DT_US)


def smooth_records(n: int, seed: int):
    """Slowly varying records (a free decay, echoes 6 µs wide, a slow phase), random receiver
    gain and phase: their own second differences are far below any noise of interest."""
    rng = np.random.default_rng(seed)
    out = []
    receiver = rng.uniform(0.5, 2.0, (n, 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (n, 1)))
    for k in range(2):
        t = LONG_GRID.times_us(k)
        echoes = sum(0.6 * np.exp(-(((t - DT_US * (e + 1)) / 6.0) ** 2)) for e in LONG_GRID.echo_samples(k))
        M = (np.exp(-t / 60.0) + echoes) * np.exp(1j * 0.01 * t)
        out.append(receiver * M[None, :])
    return tuple(out)


@pytest.mark.parametrize("snr", [50.0, 500.0])
def test_estimate_noise_recovers_a_known_sigma(snr):
    clean = smooth_records(12, seed=0)
    noisy = add_complex_noise(clean, snr, np.random.default_rng(int(snr)))
    sigma = np.max(np.column_stack([np.abs(R[:, 0]) for R in clean]), axis=1) / snr
    est = estimate_noise(noisy, LONG_GRID, dead_time_us=1.0)
    np.testing.assert_allclose(est.sigma / sigma, 1.0, atol=0.10)
    # the peak is the record's start (|M| ~ 1 + the echo's tail), not the noise
    np.testing.assert_allclose(est.amplitude / np.abs(clean[0][:, :8]).mean(axis=1), 1.0, rtol=0.05)
    np.testing.assert_allclose(est.snr, est.amplitude / est.sigma)
    np.testing.assert_allclose(np.median(est.snr) / snr, 1.0, atol=0.10)


def test_estimate_noise_reads_clean_records_as_clean_and_ignores_the_dead_time():
    clean = smooth_records(4, seed=1)
    est = estimate_noise(clean, LONG_GRID, dead_time_us=1.0)
    assert np.all(est.snr > 1e4)
    noisy = add_complex_noise(clean, 200.0, np.random.default_rng(3))
    a = estimate_noise(noisy, LONG_GRID, dead_time_us=1.0)
    dirty = tuple(R.copy() for R in noisy)
    for k, R in enumerate(dirty):
        R[:, LONG_GRID.dead_mask(k, 1.0)] = np.nan
    b = estimate_noise(dirty, LONG_GRID, dead_time_us=1.0)
    np.testing.assert_array_equal(a.sigma, b.sigma)
    np.testing.assert_array_equal(a.amplitude, b.amplitude)
    # a receiver's gain scales sigma and amplitude alike: the SNR is unchanged
    c = estimate_noise(scaled(noisy, 3.0, 0.0), LONG_GRID, dead_time_us=1.0)
    np.testing.assert_allclose(c.sigma, 3 * a.sigma, rtol=1e-12)
    np.testing.assert_allclose(c.snr, a.snr, rtol=1e-12)
    # its phase mixes Re and Im, whose second differences the median reads: the amplitude is
    # unchanged, sigma only within the estimate's own scatter (~3 % at 2 x 2750 values)
    d = estimate_noise(scaled(noisy, 1.0, 0.7), LONG_GRID, dead_time_us=1.0)
    np.testing.assert_allclose(d.amplitude, a.amplitude, rtol=1e-12)
    np.testing.assert_allclose(d.sigma, a.sigma, rtol=0.10)


# -- noisy rows ---------------------------------------------------------------------------------
def test_noisy_rows_never_touch_rows_outside_their_sources_and_add_noise_at_their_snr():
    records, _, _ = make_learnable_echoes(30, dtype=np.complex128)
    train = np.arange(0, 30, 3)
    test = np.setdiff1d(np.arange(30), train)
    for R in records:
        R[test] = np.nan  # a read of any test row would leak NaN
    before = tuple(R.copy() for R in records)
    rows = NoisyRecords(records, np.tile(train, 4), np.repeat([np.inf, 200.0, 50.0, 50.0], len(train)),
                        np.arange(4 * len(train)), seed=3)
    made = rows.materialize()
    for R, B0 in zip(records, before):
        np.testing.assert_array_equal(R, B0)  # the input is untouched (NaNs compare equal here)
    assert [R.shape for R in made] == [(len(train) * 4, 300), (len(train) * 4, 250)]
    assert all(np.all(np.isfinite(R)) and not np.shares_memory(R, R0) for R, R0 in zip(made, records))
    clean, src = rows.snr == np.inf, rows.source
    for R, R0 in zip(made, records):
        np.testing.assert_array_equal(R[clean], R0[src[clean]])
    sigma = np.max(np.column_stack([np.abs(R0[src, 0]) for R0 in records]), axis=1)[~clean] / rows.snr[~clean]
    resid = np.concatenate([(R - R0[src])[~clean] for R, R0 in zip(made, records)], axis=1)
    # 550 samples x 2 quadratures a row: the std's relative standard error is 3 %
    np.testing.assert_allclose(np.concatenate([resid.real, resid.imag], axis=1).std(axis=1) / sigma, 1.0, atol=0.12)
    # the two SNR-50 copies of a row have their own noise
    assert not np.allclose(made[0][2 * len(train):3 * len(train)], made[0][3 * len(train):])


def test_noisy_rows_are_the_same_whichever_chunk_subset_or_order_makes_them(monkeypatch):
    records, _, _ = make_learnable_echoes(40)
    rows = NoisyRecords.with_copies(records, np.arange(5, 40), copies=2, snr_range=(20.0, 500.0), seed=7)
    whole = rows.materialize()
    monkeypatch.setattr(inputs_module, "CHUNK_ROWS", 6)
    chunked = [np.concatenate(parts) for parts in zip(*(chunk for _, chunk in rows.chunks(6)))]
    picked = np.array([70, 3, 41, 3, 12])
    for W, C, P in zip(whole, chunked, rows.take(picked).materialize()):
        np.testing.assert_array_equal(C, W)
        np.testing.assert_array_equal(P, W[picked])
    assert whole[0].dtype == np.complex64
    view = InputView(dead_time_us=0.0)
    for A, B in zip(view.transform(rows, TWO_MEASUREMENTS), view.transform(whole, TWO_MEASUREMENTS)):
        np.testing.assert_array_equal(A, B)  # made 6 rows at a time, or all at once
    np.testing.assert_array_equal(estimate_noise(rows, TWO_MEASUREMENTS).snr, estimate_noise(whole, TWO_MEASUREMENTS).snr)


def test_noisy_copies_snr_is_log_uniform_within_bounds():
    records, _, _ = make_learnable_echoes(20)
    rows = NoisyRecords.with_copies(records, np.arange(20), copies=50, snr_range=(20.0, 500.0), seed=0)
    snr = rows.snr[20:]
    assert np.all(np.isinf(rows.snr[:20])) and snr.min() >= 20.0 and snr.max() <= 500.0
    # log-uniform: log(snr) has std log(25) / sqrt(12) = 0.93; its median's standard error at n = 1000 is ~0.04
    assert abs(np.median(np.log(snr)) - np.log(100.0)) < 0.15  # geometric centre of [20, 500]
    np.testing.assert_array_equal(rows.source, np.tile(np.arange(20), 51))


@pytest.mark.parametrize("kwargs, match", [
    (dict(source=np.array([0, 30]), snr=[50, 50], key=[0, 1]), r"\[0, 30\)"),
    (dict(source=np.array([0.0, 1.0]), snr=[50, 50], key=[0, 1]), "integer"),
    (dict(source=np.array([0, 1]), snr=[0, 50], key=[0, 1]), "snr"),
    (dict(source=np.array([0, 1]), snr=[50, 50], key=[0]), "key"),
    (dict(source=np.array([0, 1]), snr=[50, 50], key=[0, 1], seed=-1), "seed"),
])
def test_noisy_rows_validate_their_fields(kwargs, match):
    records, _, _ = make_learnable_echoes(30)
    with pytest.raises(ValueError, match=match):
        NoisyRecords(records, **kwargs)


# -- targets, predictions, decisions, model headers ------------------------------------------
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
    np.testing.assert_array_equal(pred.kernel, ["power", "power", "gaussian"])
    np.testing.assert_allclose(pred.p_power, [0.45, 0.6, 0.1])
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
        assert np.any((pred.kernel == "power") != is_power)
    kernel, is_power = EchoPredictions(np.array([[0.35, 0.40, 0.25], [0.5, 0.3, 0.2]]), {}).decide(0.3)
    assert kernel.tolist() == ["power", "power"] and is_power.tolist() == [True, True]
    kernel, is_power = EchoPredictions(np.array([[0.35, 0.40, 0.25]]), {}).decide(0.5)
    assert kernel.tolist() == ["gaussian"] and is_power.tolist() == [False]


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


def test_model_header_check_names_the_file_and_the_mismatch():
    cfg = model_header("pyecho.test")
    check_model_header("m.json", cfg, "pyecho.test")
    with pytest.raises(ModelFileError, match=r"m\.json: pyecho_version is '0\.0\.0'"):
        check_model_header("m.json", {**cfg, "pyecho_version": "0.0.0"}, "pyecho.test")
    with pytest.raises(ModelFileError, match="format"):
        check_model_header("m.json", cfg, "pyecho.other")

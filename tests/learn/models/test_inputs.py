"""Spectrometer inputs: phase/gain referencing, the model input view, the dead time (the
records' noise and its estimate: tests/data/test_records.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import pyecho.data.records as records_module
from pyecho import EchoParams, simulate_batch
from pyecho.data.records import NoisyRecords
from pyecho.learn.models.inputs import CHANNEL_SETS, InputView, reference_phase_gain, reference_window, unreadable
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


# -- noisy rows ------------------------------------------------------------------------------
def test_input_view_of_noisy_rows_made_a_few_at_a_time_equals_all_at_once(monkeypatch):
    records, _, _ = make_learnable_echoes(40)
    rows = NoisyRecords.with_copies(records, np.arange(5, 40), copies=2, snr_range=(20.0, 500.0), seed=7)
    whole = rows.materialize()
    monkeypatch.setattr(records_module, "CHUNK_ROWS", 6)
    view = InputView(dead_time_us=0.0)
    for A, B in zip(view.transform(rows, TWO_MEASUREMENTS), view.transform(whole, TWO_MEASUREMENTS)):
        np.testing.assert_array_equal(A, B)

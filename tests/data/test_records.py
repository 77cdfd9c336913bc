"""Records as arrays, complex white noise at a defined SNR, noisy rows made a chunk at a time,
and the noise a record shows."""
from __future__ import annotations

import numpy as np
import pytest

import pyecho.data.records as records_module
from pyecho.data.records import NoisyRecords, add_complex_noise, as_records, estimate_noise
from pyecho.physics.protocol import Protocol, RecordGrid

DT_US = 0.16

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


def test_noise_uses_one_sigma_per_sample_across_measurements():
    many = (np.full((400, 300), 0.5 + 0.2j), np.full((400, 250), 0.3j))
    noisy = add_complex_noise(many, 20.0, np.random.default_rng(2))
    sigma = abs(0.5 + 0.2j) / 20.0  # the larger first sample sets the noise of both
    for clean, R in zip(many, noisy):
        np.testing.assert_allclose((R - clean).real.std(), sigma, rtol=4 / np.sqrt(2 * R.size))


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


def smooth_records(n: int, seed: int, dtype=np.complex128):
    """Slowly varying records (a free decay, echoes 6 µs wide, a slow phase), random receiver
    gain and phase: their own second differences are far below any noise of interest."""
    rng = np.random.default_rng(seed)
    out = []
    receiver = rng.uniform(0.5, 2.0, (n, 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (n, 1)))
    for k in range(2):
        t = LONG_GRID.times_us(k)
        echoes = sum(0.6 * np.exp(-(((t - DT_US * (e + 1)) / 6.0) ** 2)) for e in LONG_GRID.echo_samples(k))
        M = (np.exp(-t / 60.0) + echoes) * np.exp(1j * 0.01 * t)
        out.append((receiver * M[None, :]).astype(dtype))
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
    c = estimate_noise(tuple(3.0 * R for R in noisy), LONG_GRID, dead_time_us=1.0)
    np.testing.assert_allclose(c.sigma, 3 * a.sigma, rtol=1e-12)
    np.testing.assert_allclose(c.snr, a.snr, rtol=1e-12)
    # its phase mixes Re and Im, whose second differences the median reads: the amplitude is
    # unchanged, sigma only within the estimate's own scatter (~3 % at 2 x 2750 values)
    d = estimate_noise(tuple(np.exp(0.7j) * R for R in noisy), LONG_GRID, dead_time_us=1.0)
    np.testing.assert_allclose(d.amplitude, a.amplitude, rtol=1e-12)
    np.testing.assert_allclose(d.sigma, a.sigma, rtol=0.10)

# -- noisy rows ---------------------------------------------------------------------------------
def test_noisy_rows_never_touch_rows_outside_their_sources_and_add_noise_at_their_snr():
    records = smooth_records(30, seed=4)
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
    assert [R.shape for R in made] == [(len(train) * 4, 1500), (len(train) * 4, 1250)]
    assert all(np.all(np.isfinite(R)) and not np.shares_memory(R, R0) for R, R0 in zip(made, records))
    clean, src = rows.snr == np.inf, rows.source
    for R, R0 in zip(made, records):
        np.testing.assert_array_equal(R[clean], R0[src[clean]])
    sigma = np.max(np.column_stack([np.abs(R0[src, 0]) for R0 in records]), axis=1)[~clean] / rows.snr[~clean]
    resid = np.concatenate([(R - R0[src])[~clean] for R, R0 in zip(made, records)], axis=1)
    # 2 750 samples x 2 quadratures a row: the std's relative standard error is 1.4 %
    np.testing.assert_allclose(np.concatenate([resid.real, resid.imag], axis=1).std(axis=1) / sigma, 1.0, atol=0.06)
    # the two SNR-50 copies of a row have their own noise
    assert not np.allclose(made[0][2 * len(train):3 * len(train)], made[0][3 * len(train):])


def test_noisy_rows_are_the_same_whichever_chunk_subset_or_order_makes_them(monkeypatch):
    records = smooth_records(40, seed=5, dtype=np.complex64)
    rows = NoisyRecords.with_copies(records, np.arange(5, 40), copies=2, snr_range=(20.0, 500.0), seed=7)
    whole = rows.materialize()
    monkeypatch.setattr(records_module, "CHUNK_ROWS", 6)
    chunked = [np.concatenate(parts) for parts in zip(*(chunk for _, chunk in rows.chunks(6)))]
    picked = np.array([70, 3, 41, 3, 12])
    for W, C, P in zip(whole, chunked, rows.take(picked).materialize()):
        np.testing.assert_array_equal(C, W)
        np.testing.assert_array_equal(P, W[picked])
    assert whole[0].dtype == np.complex64
    np.testing.assert_array_equal(estimate_noise(rows, LONG_GRID).snr, estimate_noise(whole, LONG_GRID).snr)


def test_noisy_copies_snr_is_log_uniform_within_bounds():
    records = smooth_records(20, seed=6)
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
    records = smooth_records(30, seed=7)
    with pytest.raises(ValueError, match=match):
        NoisyRecords(records, **kwargs)


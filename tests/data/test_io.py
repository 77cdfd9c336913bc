"""Spectrometer files in (pyecho.io): echoes written by nmrglue itself, read back and put on a model grid.

Every file here is written by nmrglue's own Bruker, Varian and NMRPipe writers into tmp_path,
from an echo simulated by pyecho (or, where samples off the model's grid are needed, the exact
alpha = 0 echo). The Bruker files are written as TopSpin writes them: the digital filter's
start-up (its group delay) before the signal, and each record padded to 1024-byte blocks.
"""
from __future__ import annotations

import dataclasses
import math

import nmrglue as ng
import numpy as np
import pytest

from pyecho import EchoParams, ParameterError, simulate
from pyecho.io import (
    BRUKER,
    NMRPIPE,
    VARIAN,
    Acquisition,
    SpectrometerFileError,
    bruker_group_delay,
    read_acquisition,
    spectrometer_format,
    to_model_grid,
)
from pyecho.physics.detuning import sample_detuning_mhz

DT_US = 0.16
TAU_US = 8.0  # n_tau = 50: a 150-sample series, quick on the reference engine
SW_HZ = 1e6 / DT_US
GRPDLY = 76.0  # a TopSpin group delay in dwell times (DSPFVS 20 and later write GRPDLY)
#: float32 round-off of |M| <= 1/2 (NMRPipe and Varian store float32)
FLOAT32_ATOL = 1e-7
#: float64 storage (Bruker DTYPA = 2) and a cubic spline evaluated on its own knots
FLOAT64_ATOL = 1e-12


@pytest.fixture(scope="module")
def echo():
    """(params, M at t_k = k dt, k = 1..3 n_tau) for one simulated echo on an 8 x 8 lattice."""
    p = EchoParams(kernel="gaussian", kernel_param=2.0, alpha_xy=0.05, alpha_z=0.03, lattice=8,
                   tau_us=TAU_US, dt_us=DT_US)
    return p, simulate(p, seed=3, backend="numpy")


def model_grid(p: EchoParams) -> dict:
    """The keyword arguments of to_model_grid for a model trained on ``p``'s grid."""
    return {"t_us_model": np.arange(1, p.n_samples + 1) * p.dt_us, "tau_us_model": p.n_tau * p.dt_us}


def from_excitation(p: EchoParams, m: np.ndarray) -> np.ndarray:
    """The record a receiver opened at the excitation takes: M(0) = -i sin(theta)/2, then M(t_k)."""
    return np.concatenate([[-0.5j * math.sin(p.theta)], m])


def filter_startup(n: int, seed: int = 0) -> np.ndarray:
    """What the digital filter emits before the signal reaches its output: small ringing, not zeros."""
    rng = np.random.default_rng(seed)
    return 1e-3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))


def write_bruker(exp, data, *, sw_hz=SW_HZ, tau_us=TAU_US, dtypa=2, **acqus):
    """A TopSpin experiment directory (acqus + fid, or ser for 2-D ``data``) via nmrglue.

    ``data`` is what the receiver delivered, group-delay points included; each record is
    padded with zeros to whole 1024-byte blocks as TopSpin does.
    """
    data = np.asarray(data)
    td = 2 * data.shape[-1]
    per_block = 1024 // (8 if dtypa == 2 else 4)
    padded = -(-td // per_block) * per_block // 2
    pad = [(0, 0)] * (data.ndim - 1) + [(0, padded - data.shape[-1])]
    delays = [0.0] * 64
    delays[6] = (tau_us or 0.0) * 1e-6
    params = {
        "_coreheader": ["##TITLE= Parameter file, pyecho test"], "_comments": [],
        "TD": td, "SW_h": sw_hz, "DTYPA": dtypa, "BYTORDA": 0, "AQ_mod": 3, "DIGMOD": 1,
        "DSPFVS": 20, "DECIM": 16, "GRPDLY": GRPDLY, "D": delays,
    }
    params.update(acqus)
    exp.mkdir(parents=True)
    ng.bruker.write(str(exp), {"acqus": params}, np.pad(data, pad), write_prog=False)
    return exp


def write_pipe(path, data, *, sw_hz=SW_HZ, dmx_points=0.0):
    """A 1-D time-domain NMRPipe file via nmrglue (FDDMXVAL/FDDMXFLAG set for a converted Bruker FID)."""
    udic = ng.fileiobase.create_blank_udic(1)
    udic[0].update(size=data.shape[-1], complex=True, sw=sw_hz, obs=100.0, car=0.0, label="1H",
                   time=True, freq=False)
    dic = ng.pipe.create_dic(udic)
    dic["FDDMXVAL"], dic["FDDMXFLAG"] = float(dmx_points), 1.0 if dmx_points else 0.0
    ng.pipe.write(str(path), dic, np.asarray(data, dtype=np.complex64))
    return path


def write_varian(exp, data, *, sw_hz=SW_HZ, tau_us=TAU_US):
    """A Varian/Agilent .fid directory (procpar + fid) via nmrglue; 2-D ``data`` is an arrayed 1-D experiment."""
    data = np.asarray(data, dtype=np.complex64)
    udic = ng.fileiobase.create_blank_udic(data.ndim)
    udic[data.ndim - 1].update(size=data.shape[-1], complex=True)
    if data.ndim == 2:
        udic[0].update(size=data.shape[0], complex=False)
    dic = ng.varian.create_dic(udic)
    dic["procpar"]["sw"] = ng.varian.create_pdic_param("sw", [repr(sw_hz)])
    if tau_us is not None:
        dic["procpar"]["tau"] = ng.varian.create_pdic_param("tau", [repr(tau_us * 1e-6)])
    exp.mkdir(parents=True)
    ng.varian.write(str(exp), dic, data)
    return exp


def exact_free_echo(t_us: np.ndarray, tau_us: float, detuning_mhz: np.ndarray) -> np.ndarray:
    """The alpha = 0 Hahn echo (theta = pi/2) at any times: -i/2 <exp(-i w t')>, t' = t before tau, t - 2 tau after."""
    w = 2 * np.pi * detuning_mhz.ravel()
    t_eff = np.where(t_us <= tau_us, t_us, t_us - 2 * tau_us)
    return -0.5j * np.exp(-1j * np.outer(t_eff, w)).mean(axis=1)


def refused(exc_info, *needles: str) -> str:
    """The error is one line and says what it should."""
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("path_kind", ["directory", "fid file"])
def test_bruker_round_trip_removes_group_delay(tmp_path, echo, path_kind):
    p, m = echo
    record = from_excitation(p, m)
    exp = write_bruker(tmp_path / "1", np.concatenate([filter_startup(int(GRPDLY)), record]))
    acq = read_acquisition(exp if path_kind == "directory" else exp / "fid")
    assert (acq.source, acq.path, acq.group_delay_points) == (BRUKER, exp, GRPDLY)
    assert acq.dwell_us == pytest.approx(DT_US, rel=1e-12)
    assert (acq.tau_us, acq.tau_origin) == (pytest.approx(TAU_US, rel=1e-12), "acqus D6")
    # the start-up points are gone, the block padding too; the series is bit-exact (float64)
    np.testing.assert_array_equal(acq.M, record)
    np.testing.assert_allclose(acq.t_us, np.arange(record.size) * DT_US, rtol=0, atol=1e-12)
    on_grid = to_model_grid(acq, **model_grid(p))
    np.testing.assert_allclose(on_grid, m, rtol=0, atol=FLOAT64_ATOL)


def test_bruker_int32_fid_keeps_raw_counts(tmp_path, echo):
    p, m = echo
    counts = np.round(from_excitation(p, m) * 2**24)  # a receiver's integers; gain stays as recorded
    exp = write_bruker(tmp_path / "1", np.concatenate([np.zeros(int(GRPDLY)), counts]), dtypa=0)
    acq = read_acquisition(exp)
    np.testing.assert_array_equal(acq.M, counts)
    np.testing.assert_allclose(to_model_grid(acq, **model_grid(p)), counts[1:], rtol=0, atol=1e-6)


def test_bruker_ser_gives_one_row_per_record(tmp_path, echo):
    p, m = echo
    records = np.stack([from_excitation(p, m), 2 * from_excitation(p, m)])
    startup = np.stack([filter_startup(int(GRPDLY), 1), filter_startup(int(GRPDLY), 2)])
    exp = write_bruker(tmp_path / "2", np.concatenate([startup, records], axis=1))
    acq = read_acquisition(exp)
    assert acq.M.shape == records.shape
    np.testing.assert_allclose(to_model_grid(acq, **model_grid(p)), np.stack([m, 2 * m]), rtol=0, atol=FLOAT64_ATOL)


def test_fractional_group_delay_from_dsp_table(tmp_path):
    """Old firmware (DSPFVS 12, DECIM 16): nmrglue's table gives 71.625 dwell times.

    The record's points then sit 3/8 of a dwell off the model's grid, so the exact alpha = 0
    echo (known at any time) is the reference for the resampled series.
    """
    detuning = sample_detuning_mhz(5, 8)
    grpdly = ng.bruker.bruker_dsp_table[12][16]
    n = math.ceil(grpdly) + math.ceil(3 * TAU_US / DT_US) + 1
    t_record = (np.arange(n) - grpdly) * DT_US
    signal = t_record >= 0
    data = np.where(signal, 0, filter_startup(n))
    data[signal] = exact_free_echo(t_record[signal], TAU_US, detuning)
    exp = write_bruker(tmp_path / "1", data, GRPDLY=-1, DSPFVS=12, DECIM=16)
    acq = read_acquisition(exp)
    assert acq.group_delay_points == grpdly == 71.625
    np.testing.assert_array_equal(acq.t_us, t_record[signal])
    np.testing.assert_array_equal(acq.M, data[signal])
    p = EchoParams(lattice=8, tau_us=TAU_US, dt_us=DT_US)
    grid = model_grid(p)
    truth = exact_free_echo(grid["t_us_model"], TAU_US, detuning)
    err = np.abs(to_model_grid(acq, **grid) - truth)
    # measured 2.5e-7 inside each side of the pulse and 6.9e-6 at t = tau, which the spline
    # reaches by extrapolating 5/8 of a dwell (linear interpolation: 9.4e-5 and 1.2e-3)
    at_tau = p.n_tau - 1
    assert np.delete(err, at_tau).max() < 1e-6, np.delete(err, at_tau).max()
    assert err[at_tau] < 2e-5, err[at_tau]


@pytest.mark.parametrize("dmx_points", [0.0, GRPDLY])
def test_nmrpipe_round_trip(tmp_path, echo, dmx_points):
    p, m = echo
    record = from_excitation(p, m)
    data = np.concatenate([filter_startup(int(dmx_points)), record])
    path = write_pipe(tmp_path / "echo.fid", data, dmx_points=dmx_points)
    acq = read_acquisition(path)
    assert (acq.source, acq.path, acq.group_delay_points) == (NMRPIPE, path, dmx_points)
    assert acq.dwell_us == pytest.approx(DT_US, rel=1e-6)  # FDF2SW is float32
    assert acq.tau_us is None
    np.testing.assert_allclose(acq.M, record, rtol=0, atol=FLOAT32_ATOL)
    on_grid = to_model_grid(acq, **model_grid(p), tau_us=TAU_US)
    np.testing.assert_allclose(on_grid, m, rtol=0, atol=FLOAT32_ATOL)


def test_varian_round_trip_single_and_arrayed(tmp_path, echo):
    p, m = echo
    record = from_excitation(p, m)
    acq = read_acquisition(write_varian(tmp_path / "echo.fid", record))
    assert (acq.source, acq.group_delay_points, acq.tau_origin) == (VARIAN, 0.0, "procpar tau")
    assert acq.tau_us == pytest.approx(TAU_US, rel=1e-12)
    assert acq.dwell_us == pytest.approx(DT_US, rel=1e-12)
    np.testing.assert_allclose(acq.M, record, rtol=0, atol=FLOAT32_ATOL)
    np.testing.assert_allclose(to_model_grid(acq, **model_grid(p)), m, rtol=0, atol=FLOAT32_ATOL)
    arrayed = read_acquisition(write_varian(tmp_path / "arrayed.fid", np.stack([record, -record])))
    assert arrayed.M.shape == (2, record.size)
    np.testing.assert_allclose(to_model_grid(arrayed, **model_grid(p)), np.stack([m, -m]), rtol=0, atol=FLOAT32_ATOL)


def test_start_us_places_a_record_that_starts_one_step_late(tmp_path, echo):
    p, m = echo
    exp = write_bruker(tmp_path / "1", np.concatenate([np.zeros(int(GRPDLY)), m]))  # first point at t = dt
    acq = read_acquisition(exp, start_us=DT_US)
    np.testing.assert_allclose(acq.t_us, np.arange(1, m.size + 1) * DT_US, rtol=1e-12)
    np.testing.assert_allclose(to_model_grid(acq, **model_grid(p)), m, rtol=0, atol=FLOAT64_ATOL)
    # read with the default start every point lands one step early: a different series
    early = to_model_grid(read_acquisition(exp), **model_grid(p))
    assert np.abs(early - m).max() > 1e-2


def test_acquisition_is_frozen(tmp_path, echo):
    p, m = echo
    acq = read_acquisition(write_varian(tmp_path / "e.fid", from_excitation(p, m)))
    assert isinstance(acq, Acquisition)
    with pytest.raises(dataclasses.FrozenInstanceError):
        acq.tau_us = 1.0
    with pytest.raises(ValueError):
        acq.M[0] = 0


def test_format_detection(tmp_path, echo):
    p, m = echo
    record = from_excitation(p, m)
    bruker = write_bruker(tmp_path / "b", record, GRPDLY=0.0, DSPFVS=21)
    varian = write_varian(tmp_path / "v.fid", record)
    pipe = write_pipe(tmp_path / "e.ft", record)  # the suffix does not matter, the header does
    csv = tmp_path / "echo.csv"
    csv.write_text("t_us,re_M,im_M\n" + "\n".join(f"{i},0,0" for i in range(600)))
    assert [spectrometer_format(x) for x in (bruker, bruker / "fid", varian, varian / "fid", pipe, csv, tmp_path)] == [
        BRUKER, BRUKER, VARIAN, VARIAN, NMRPIPE, None, None]
    assert read_acquisition(bruker).group_delay_points == 0.0  # DSPFVS >= 14 without GRPDLY: none


# ----------------------------------------------------------------------------- refusals


def test_wrong_dwell_time_is_refused(tmp_path, echo):
    p, m = echo
    data = np.concatenate([np.zeros(int(GRPDLY)), from_excitation(p, m)])
    coarse = read_acquisition(write_bruker(tmp_path / "coarse", data, sw_hz=SW_HZ / 2))
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(coarse, **model_grid(p))
    refused(e, str(coarse.path), "dwell time 0.32 µs", "coarser than the model's step 0.16 µs")
    fine = read_acquisition(write_bruker(tmp_path / "fine", data, sw_hz=SW_HZ * 2))  # the same points span half the time
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(fine, **model_grid(p))
    refused(e, str(fine.path), "after pulse 1 (at 8 µs)", "covers 8.080-12.000 µs", "the model needs up to 24.000 µs")


def test_tau_mismatch_missing_and_override(tmp_path, echo):
    p, m = echo
    data = np.concatenate([np.zeros(int(GRPDLY)), from_excitation(p, m)])
    exp = write_bruker(tmp_path / "1", data, tau_us=9.0)
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(read_acquisition(exp), **model_grid(p))
    refused(e, str(exp), "tau = 9 µs (acqus D6)", "trained with tau = 8 µs")
    # the user's tau wins over D6, in read_acquisition and in to_model_grid
    acq = read_acquisition(exp, tau_us=TAU_US)
    assert (acq.tau_us, acq.tau_origin) == (TAU_US, "given")
    np.testing.assert_allclose(to_model_grid(acq, **model_grid(p)), m, rtol=0, atol=FLOAT64_ATOL)
    np.testing.assert_allclose(to_model_grid(read_acquisition(exp), **model_grid(p), tau_us=TAU_US), m,
                               rtol=0, atol=FLOAT64_ATOL)
    unset = read_acquisition(write_bruker(tmp_path / "2", data, tau_us=None))
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(unset, **model_grid(p))
    refused(e, "tau is unknown (acqus D6 is not set)", "--tau-us")


def test_record_starting_after_the_refocusing_pulse_is_refused(tmp_path, echo):
    p, m = echo
    exp = write_bruker(tmp_path / "1", np.concatenate([np.zeros(int(GRPDLY)), m[p.n_tau:]]))
    acq = read_acquisition(exp, start_us=TAU_US + DT_US)
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(acq, **model_grid(p))
    refused(e, "before the first pulse", "has no sample", "the model needs up to 8.000 µs", "start_us = 8.16")


def test_samples_before_a_late_record_are_missing_not_refused(tmp_path, echo):
    """A receiver's dead time: a record that starts after the excitation gives NaN (missing) model
    samples before its first point, and the model's samples from there on as recorded."""
    p, m = echo
    late = 20  # the record's first point is model sample 20, at t = 21 dt
    exp = write_bruker(tmp_path / "1", np.concatenate([np.zeros(int(GRPDLY)), m[late:]]))
    acq = read_acquisition(exp, start_us=(late + 1) * DT_US)
    on_grid = to_model_grid(acq, **model_grid(p))
    assert on_grid.shape == m.shape and on_grid.dtype == np.complex128
    # more than one dwell before the record: missing; one dwell before: extrapolated
    assert np.isnan(on_grid[:late - 1]).all()
    assert np.isfinite(on_grid[late - 1:]).all()
    np.testing.assert_allclose(on_grid[late:], m[late:], rtol=0, atol=FLOAT64_ATOL)
    # a record starting on time leaves nothing missing
    assert np.isfinite(to_model_grid(read_acquisition(write_bruker(
        tmp_path / "2", np.concatenate([np.zeros(int(GRPDLY)), from_excitation(p, m)]))), **model_grid(p))).all()


def exact_free_train(t_us: np.ndarray, pulse_times_us, detuning_mhz: np.ndarray) -> np.ndarray:
    """The alpha = 0 echo train (theta = pi/2, ideal pi pulses about y) at any times.

    A pi pulse about y at time p mirrors every spin's phase: with t' = t - c before it, t' = t - (2 p - c)
    after it (a Hahn echo: c = 2 tau after the pulse at tau; a CPMG train: 4 tau after the one at 3 tau).
    """
    w = 2 * np.pi * detuning_mhz.ravel()
    t_us = np.asarray(t_us, dtype=float)
    offset = np.zeros_like(t_us)
    c = 0.0
    for p in pulse_times_us:
        c = 2 * p - c
        offset[t_us > p] = c
    return -0.5j * np.exp(-1j * np.outer(t_us - offset, w)).mean(axis=1)


def test_a_train_is_resampled_between_its_pulses_never_across_one():
    """A CPMG train recorded half a step off the model's grid: the spline runs between pulses only,
    so the echo's kink at every pulse is kept (a spline across the second pulse smears it)."""
    detuning = sample_detuning_mhz(5, 8)
    p = EchoParams(lattice=8, tau_us=TAU_US, dt_us=DT_US, sequence="cpmg:2")
    t_model = np.arange(1, p.n_samples + 1) * DT_US
    pulses = [TAU_US, 3 * TAU_US]
    assert [s * DT_US for s in p.step_plan().pulse_steps[1:]] == pytest.approx(pulses)
    # the exact train agrees with the engine's on its grid (alpha = 0, no relaxation)
    sim = simulate(p.replace(alpha_xy=0.0, alpha_z=0.0), detuning_mhz=detuning, backend="numpy")
    np.testing.assert_allclose(exact_free_train(t_model, pulses, detuning), sim, rtol=0, atol=1e-9)
    dwell = DT_US / 2
    t_record = 0.3 * dwell + dwell * np.arange(2 * p.n_samples + 4)
    acq = Acquisition(t_us=t_record, M=exact_free_train(t_record, pulses, detuning), dwell_us=dwell, tau_us=TAU_US,
                      source=BRUKER, path="train")
    truth = exact_free_train(t_model, pulses, detuning)
    between = to_model_grid(acq, t_us_model=t_model, tau_us_model=TAU_US, pulse_times_us=pulses)
    assert np.isfinite(between).all()
    assert np.abs(between - truth).max() < 1e-5, np.abs(between - truth).max()
    # the Hahn default knows of the first pulse only: around the second one the spline is wrong
    across = to_model_grid(acq, t_us_model=t_model, tau_us_model=TAU_US)
    assert np.abs(across - truth).max() > 10 * np.abs(between - truth).max()
    # pulse times must lie on the model grid's span
    with pytest.raises(ValueError, match="pulse times"):
        to_model_grid(acq, t_us_model=t_model, tau_us_model=TAU_US, pulse_times_us=[TAU_US, 100 * TAU_US])


def test_a_train_record_that_ends_early_names_its_segment(tmp_path):
    p = EchoParams(lattice=8, tau_us=TAU_US, dt_us=DT_US, sequence="cpmg:2")
    t_model = np.arange(1, p.n_samples + 1) * DT_US
    t_record = DT_US * np.arange(1, 4 * p.n_tau)  # ends after the second pulse (3 tau), before 4 tau
    acq = Acquisition(t_us=t_record, M=np.ones(t_record.size), dwell_us=DT_US, tau_us=TAU_US, source=BRUKER,
                      path=tmp_path / "short")
    with pytest.raises(SpectrometerFileError) as e:
        to_model_grid(acq, t_us_model=t_model, tau_us_model=TAU_US, pulse_times_us=[TAU_US, 3 * TAU_US])
    refused(e, "short", "after pulse 2 (at 24 µs)", "covers 24.160-31.840 µs", "the model needs up to 40.000 µs")


def test_missing_truncated_and_unknown_files(tmp_path, echo):
    p, m = echo
    record = from_excitation(p, m)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(tmp_path / "nowhere")
    refused(e, "nowhere", "no such file or directory")

    bruker = write_bruker(tmp_path / "b", np.concatenate([np.zeros(int(GRPDLY)), record]))
    with open(bruker / "fid", "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(bruker)
    refused(e, "fid", "not a whole number of records of TD = 454", "truncated")
    (bruker / "fid").unlink()
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(bruker)
    refused(e, "holds acqus but no fid or ser file")

    varian = write_varian(tmp_path / "v.fid", record)
    with open(varian / "fid", "r+b") as f:
        f.truncate(500)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(varian)
    refused(e, "is 500 bytes but its header announces 1 blocks", "truncated")

    pipe = write_pipe(tmp_path / "e.fid", record)
    with open(pipe, "r+b") as f:
        f.truncate(3000)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(pipe)
    refused(e, "is 3000 bytes but its header announces 151 complex float32 points")

    junk = tmp_path / "junk.fid"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(junk)
    refused(e, "junk.fid", "not a Bruker experiment directory")


def test_unusable_data_is_refused(tmp_path, echo):
    p, m = echo
    record = from_excitation(p, m)
    spectrum = write_pipe(tmp_path / "s.ft", record)
    header = ng.pipe.read(str(spectrum))[0]
    header["FDF2FTFLAG"] = 1.0
    ng.pipe.write(str(spectrum), header, record.astype(np.complex64), overwrite=True)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(spectrum)
    refused(e, "frequency-domain", "time-domain FID")
    real_only = write_bruker(tmp_path / "qf", record, AQ_mod=0)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(real_only)
    refused(e, "AQ_mod = 0", "real-only")
    arrayed_tau = write_varian(tmp_path / "v.fid", record)
    procpar = ng.varian.read_procpar(str(arrayed_tau / "procpar"))
    procpar["tau"]["values"] = ["8e-06", "1.6e-05"]
    ng.varian.write_procpar(str(arrayed_tau / "procpar"), procpar, overwrite=True)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(arrayed_tau)
    refused(e, "procpar", "tau is arrayed (2 values)")


@pytest.mark.parametrize(
    ("acqus", "points"),
    [
        ({"GRPDLY": 67.98, "DSPFVS": 20, "DECIM": 1680}, 67.98),  # TopSpin 2+: GRPDLY, unrounded
        ({"GRPDLY": -1, "DSPFVS": 12, "DECIM": 16}, 71.625),  # firmware 10-13: nmrglue's table
        ({"DSPFVS": 10, "DECIM": 2}, 44.75),
        ({"GRPDLY": -1, "DSPFVS": 20, "DECIM": 16}, 0.0),  # DSPFVS >= 14 without GRPDLY
        ({"DIGMOD": 0, "DSPFVS": 12, "DECIM": 16}, 0.0),  # analog filter
        ({}, 0.0),  # no digital-filter parameters recorded
    ],
)
def test_bruker_group_delay_rule(acqus, points):
    assert bruker_group_delay(acqus) == points


def test_bruker_group_delay_unknown_firmware_is_refused(tmp_path, echo):
    p, m = echo
    exp = write_bruker(tmp_path / "1", from_excitation(p, m), GRPDLY=-1, DSPFVS=11, DECIM=5)
    with pytest.raises(SpectrometerFileError) as e:
        read_acquisition(exp)
    refused(e, "acqus", "no group delay is known for DSPFVS = 11, DECIM = 5")


def test_bad_options_name_themselves(tmp_path, echo):
    p, m = echo
    exp = write_varian(tmp_path / "e.fid", from_excitation(p, m))
    with pytest.raises(ParameterError, match="start_us"):
        read_acquisition(exp, start_us=-1.0)
    with pytest.raises(ParameterError, match="tau_us"):
        read_acquisition(exp, tau_us=0.0)
    with pytest.raises(ParameterError, match="tau_us"):
        to_model_grid(read_acquisition(exp), **model_grid(p), tau_us=float("nan"))

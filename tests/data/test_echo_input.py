"""Records a user gives `pyecho predict`, read onto a model's protocol (pyecho.data.echo_input.read_echoes)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pyecho.data.echo_file import write_echo_csv
from pyecho.data.echo_input import CSV, DATASET, NPY, PER_MEASUREMENT, EchoRecords, read_echoes
from pyecho.data.factory import plan_run, run_plan
from pyecho.data.sampling import DatasetConfig
from pyecho.data.store import load_dataset
from pyecho.errors import InputFileError, ParameterError
from pyecho.io import BRUKER, SpectrometerFileError
from pyecho.physics.protocol import RecordGrid
from tests.data.test_io import GRPDLY, filter_startup, refused, write_bruker

DT = 0.16
#: the dataset's protocol: a CPMG train (T = 30) that begins with hahn@90/1, and a Hahn echo at 60 degrees (T = 18)
PROTOCOL = "cpmg:2@90/1,hahn@60/1"
SW_HZ = 1e6 / DT


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(path, EchoDataset) of 3 samples measured by PROTOCOL on 4 x 4."""
    out = tmp_path_factory.mktemp("echo_input") / "ds"
    cfg = DatasetConfig(kernels="gaussian,power,rkky", n_per_kernel=1, lattice=4, protocol=PROTOCOL, part_size=2)
    run_plan(plan_run(cfg, out, backend="torch", device="cpu"))
    return out, load_dataset(out)


def save_npy(path, array):
    np.save(path, np.asarray(array))
    return path


# ----------------------------------------------------------------------------- datasets


def test_dataset_on_its_own_protocol(dataset):
    path, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    got = read_echoes([path], grid)
    assert isinstance(got, EchoRecords) and (got.kind, got.paths, got.grid) == (DATASET, (path,), grid)
    assert len(got) == 3 and len(got.M) == 2
    for k in range(2):
        np.testing.assert_array_equal(got.M[k], ds.records[k])


def test_dataset_measurements_are_read_from_those_that_cover_them(dataset):
    path, ds = dataset
    grid = RecordGrid("hahn@60/1,hahn@90/1", DT)
    got = read_echoes([str(path)], grid)
    assert got.grid == grid and [m.shape for m in got.M] == [(3, 18), (3, 18)]
    np.testing.assert_array_equal(got.M[0], ds.records[1])
    np.testing.assert_array_equal(got.M[1], ds.records[0][:, :18])  # the Hahn echo begins the CPMG train
    single = read_echoes([path], RecordGrid("cpmg:2@90/1", DT))
    assert len(single.M) == 1
    np.testing.assert_array_equal(single.M[0], ds.records[0])


def test_dataset_lacking_a_measurement_is_refused_naming_it(dataset):
    path, _ = dataset
    with pytest.raises(InputFileError) as e:
        read_echoes([path], RecordGrid("hahn@90/1,cpmg:4@90/1", DT))
    msg = refused(e, str(path), f"holds {PROTOCOL} (dt 0.16 µs)", "not cpmg:4@90/1;",
                   "the model needs 2 measurement(s) hahn@90/1,cpmg:4@90/1")
    assert "not hahn@90/1" not in msg  # that one the dataset has
    with pytest.raises(InputFileError) as e:  # another step: nothing is covered
        read_echoes([path], RecordGrid(PROTOCOL, 0.2))
    refused(e, "not cpmg:2@90/1, hahn@60/1", "dt 0.2 µs")


def test_dataset_of_another_protocol_with_equal_lengths_keeps_its_own_grid(dataset):
    """Passed on as is, for the model's guard to flag (RecordGrid.mismatches)."""
    path, ds = dataset
    model = RecordGrid("cpmg:2@45/1,hahn@30/1", DT)
    got = read_echoes([path], model)
    assert got.grid == RecordGrid(PROTOCOL, DT) != model and got.kind == DATASET
    for k in range(2):
        np.testing.assert_array_equal(got.M[k], ds.records[k])
    assert model.mismatches(got.grid) == ("measurement 0: cpmg:2@90/1 != model cpmg:2@45/1",
                                          "measurement 1: hahn@60/1 != model hahn@30/1")


def test_dataset_options_and_company_are_refused(dataset, tmp_path):
    path, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    with pytest.raises(ParameterError, match="--start-us 1.0: a dataset's records start at the excitation"):
        read_echoes([path], grid, start_us=1.0)
    with pytest.raises(ParameterError, match=r"--tau-us 1\.0: .* is on its own time grid"):
        read_echoes([path], grid, tau_us=1.0)
    npy = save_npy(tmp_path / "m.npy", ds.records[1])
    with pytest.raises(InputFileError) as e:
        read_echoes([path, npy], grid)
    refused(e, "give it alone")
    with pytest.raises(InputFileError) as e:
        read_echoes([save_npy(tmp_path / "m0.npy", ds.records[0]), path], grid)
    refused(e, str(path), "a dataset holds its own measurements")


# ----------------------------------------------------------------------------- NPY


def test_one_npy_of_every_measurement_when_lengths_are_equal(dataset, tmp_path):
    _, ds = dataset
    grid = RecordGrid("hahn@90/1,hahn@60/1", DT)
    stacked = np.stack([ds.records[0][:, :18], ds.records[1]], axis=1)  # (B, K, T)
    path = save_npy(tmp_path / "all.npy", stacked)
    got = read_echoes([path], grid)
    assert (got.kind, got.grid, len(got)) == (NPY, grid, 3)
    for k in range(2):
        np.testing.assert_array_equal(got.M[k], stacked[:, k])
    # --start-us: the samples before it are missing, t_j = (j + 1) dt < 0.5 us: j = 0, 1, 2
    late = read_echoes([path], grid, start_us=0.5)
    for k in range(2):
        assert np.isnan(late.M[k][:, :3]).all() and not np.isnan(late.M[k][:, 3:]).any()
        np.testing.assert_array_equal(late.M[k][:, 3:], stacked[:, k, 3:])
    # not (B, K, T) on the grid
    with pytest.raises(InputFileError) as e:
        read_echoes([save_npy(tmp_path / "bad.npy", stacked[:, :, :17])], grid)
    refused(e, "shape (3, 2, 17)", "the model needs 2 measurement(s) hahn@90/1,hahn@60/1 (T = 18, 18 samples")
    # a model whose measurements differ in length takes one file per measurement
    with pytest.raises(InputFileError) as e:
        read_echoes([path], RecordGrid(PROTOCOL, DT))
    refused(e, "(B, K, T) when every measurement has T samples", "T = 30, 18 samples")


def test_one_npy_per_measurement(dataset, tmp_path):
    _, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    a, b = save_npy(tmp_path / "a.npy", ds.records[0]), save_npy(tmp_path / "b.npy", ds.records[1])
    got = read_echoes([a, b], grid)
    assert (got.kind, got.paths, got.grid) == (PER_MEASUREMENT, (a, b), grid)
    for k in range(2):
        np.testing.assert_array_equal(got.M[k], ds.records[k])
    # one record each: (T,) files
    one = read_echoes([save_npy(tmp_path / "a1.npy", ds.records[0][2]), save_npy(tmp_path / "b1.npy", ds.records[1][2])],
                      grid, start_us=1.0)
    assert [m.shape for m in one.M] == [(1, 30), (1, 18)]
    for k in range(2):
        n_before = 6  # t_j < 1.0 us: j = 0..5
        assert np.isnan(one.M[k][0, :n_before]).all()
        np.testing.assert_array_equal(one.M[k][0, n_before:], ds.records[k][2, n_before:])
    # in the wrong order, each is the wrong length for its measurement
    with pytest.raises(InputFileError) as e:
        read_echoes([b, a], grid)
    refused(e, "b.npy", "as measurement 1 (cpmg:2@90/1) it must be (T,) or (B, T) with T = 30")
    # as many records in every file
    with pytest.raises(InputFileError) as e:
        read_echoes([a, save_npy(tmp_path / "b2.npy", ds.records[1][:2])], grid)
    refused(e, "the files hold [3, 2] records", "one record per sample")


def test_npy_records_that_start_late_are_read_at_their_own_length(dataset, tmp_path):
    """With --start-us 1 (6 grid samples before it), a record is the full T samples (those before
    1 µs discarded) or the T - 6 a receiver writes, its first point at the first sample after
    1 µs; EchoRecords says which each file was."""
    _, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)  # T = 30 and 18
    n_before = 6  # t_j = (j + 1) 0.16 us < 1 us: j = 0..5
    late = save_npy(tmp_path / "late.npy", ds.records[0][:, n_before:])  # (3, 24)
    full = save_npy(tmp_path / "full.npy", ds.records[1])  # (3, 18)
    got = read_echoes([late, full], grid, start_us=1.0)
    for k in range(2):
        assert got.M[k].shape == ds.records[k].shape and np.isnan(got.M[k][:, :n_before]).all()
        np.testing.assert_array_equal(got.M[k][:, n_before:], ds.records[k][:, n_before:])
    assert got.read_as == ("starts at 1 µs: 24 samples padded to 30", "full length T = 18, 6 samples before 1 µs "
                                                                       "discarded")
    # one record (T - 6,), and no start: the whole record
    single = read_echoes([save_npy(tmp_path / "one.npy", ds.records[1][2, n_before:])], RecordGrid("hahn@60/1", DT),
                         start_us=1.0)
    np.testing.assert_array_equal(single.M[0][0, n_before:], ds.records[1][2, n_before:])
    assert single.read_as == ("starts at 1 µs: 12 samples padded to 18",)
    assert read_echoes([full], RecordGrid("hahn@60/1", DT)).read_as == ("full length T = 18",)
    # one NPY (B, K, T - 3) of every measurement, starting 0.5 µs late
    stacked = np.stack([ds.records[0][:, 3:18], ds.records[1][:, 3:]], axis=1)
    both = read_echoes([save_npy(tmp_path / "all.npy", stacked)], RecordGrid("hahn@90/1,hahn@60/1", DT), start_us=0.5)
    for k in range(2):
        assert np.isnan(both.M[k][:, :3]).all()
        np.testing.assert_array_equal(both.M[k][:, 3:], stacked[:, k])
    assert both.read_as == ("starts at 0.5 µs: 15 samples padded to 18",)


def test_npy_records_of_another_length_are_refused_naming_both_lengths(dataset, tmp_path):
    _, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    odd = save_npy(tmp_path / "odd.npy", ds.records[0][:, 10:])  # 20 samples: neither 30 nor 24
    with pytest.raises(InputFileError) as e:
        read_echoes([odd, save_npy(tmp_path / "b.npy", ds.records[1])], grid, start_us=1.0)
    refused(e, "odd.npy", "as measurement 1 (cpmg:2@90/1) it must be (T,) or (B, T) with T = 30 (the whole record) "
                           "or 24 (a record that starts at 1 µs)")
    stacked = np.stack([ds.records[0][:, 5:18], ds.records[1][:, 5:]], axis=1)  # 13 samples: neither 18 nor 15
    with pytest.raises(InputFileError) as e:
        read_echoes([save_npy(tmp_path / "all.npy", stacked)], RecordGrid("hahn@90/1,hahn@60/1", DT), start_us=0.5)
    refused(e, "shape (3, 2, 13)", "(B, K, T) with T = 18 (the whole record) or 15 (a record that starts at 0.5 µs)")
    # without --start-us, a shorter record is refused naming the option that reads it
    late = save_npy(tmp_path / "late.npy", ds.records[0][:, 6:])
    with pytest.raises(InputFileError) as e:
        read_echoes([late, save_npy(tmp_path / "b.npy", ds.records[1])], grid)
    refused(e, "late.npy", "with T = 30 (a shorter record that starts late: give its start, --start-us)")


@pytest.mark.parametrize("count", [1, 3])
def test_a_wrong_file_count_names_the_protocol(dataset, tmp_path, count):
    _, ds = dataset
    paths = [save_npy(tmp_path / f"{i}.npy", ds.records[1]) for i in range(count)]
    with pytest.raises(InputFileError) as e:
        read_echoes(paths, RecordGrid("hahn@60/1,hahn@90/1", DT) if count == 3 else RecordGrid(PROTOCOL, DT))
    if count == 3:
        refused(e, "3 file(s) given", "the model needs 2 measurement(s) hahn@60/1,hahn@90/1",
                 "one file per measurement in that order")
    else:  # one NPY for a model of unequal lengths
        refused(e, "the model needs 2 measurement(s) cpmg:2@90/1,hahn@60/1")
    csv = tmp_path / "one.csv"
    write_echo_csv(csv, DT * np.arange(1, 31), ds.records[0][0])
    with pytest.raises(InputFileError) as e:
        read_echoes([csv], RecordGrid(PROTOCOL, DT))
    refused(e, "1 file(s) given", "the model needs 2 measurement(s) cpmg:2@90/1,hahn@60/1")


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((2, 18), np.complex64), "a record is all zero"),
    (np.full((2, 18), np.nan, np.complex64), "every sample is NaN"),
    (np.where(np.arange(18) < 5, np.nan, 0).astype(np.complex64), "a record is all zero"),  # zeros after a dead time
    (np.array([1] * 17 + [np.inf], np.complex64), "infinite values"),
    (np.ones(18), "holds real values"),
    (np.array(["a"] * 18), "not numbers"),
    (np.ones((1, 1, 1, 18), np.complex64), "shape (1, 1, 1, 18)"),
])
def test_unusable_npy_records_are_refused_in_refused(tmp_path, bad, needle):
    good = np.ones((2, 18), np.complex64)
    good[1, 0] = np.nan  # a missing first sample is fine
    path = save_npy(tmp_path / "bad.npy", np.atleast_2d(bad) if bad.ndim < 2 else bad)
    with pytest.raises(InputFileError) as e:
        read_echoes([save_npy(tmp_path / "good.npy", good), path], RecordGrid("hahn@90/1,hahn@60/1", DT))
    refused(e, "bad.npy", needle)
    assert not np.isnan(read_echoes([tmp_path / "good.npy"], RecordGrid("hahn@90/1", DT)).M[0][0]).any()


# ----------------------------------------------------------------------------- CSV and spectrometer files


def test_one_csv_per_measurement(dataset, tmp_path):
    _, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"m{k}.csv")
        write_echo_csv(paths[-1], grid.times_us(k), ds.records[k][1].astype(np.complex128))
    got = read_echoes(paths, grid)
    assert got.kind == PER_MEASUREMENT and [m.shape for m in got.M] == [(1, 30), (1, 18)]
    for k in range(2):  # on the model's grid: the spline through its own knots (10 significant digits)
        np.testing.assert_allclose(got.M[k][0], ds.records[k][1], rtol=0, atol=1e-9)
    only = read_echoes(paths[1:], RecordGrid("hahn@60/1", DT))
    assert only.kind == CSV
    # --start-us blanks what a CSV holds before it
    late = read_echoes(paths, grid, start_us=0.4)
    assert all(np.isnan(m[0, :2]).all() and not np.isnan(m[0, 2:]).any() for m in late.M)
    # --tau-us: the CSV's tau; more than half a step off the model's is refused
    with pytest.raises(SpectrometerFileError) as e:
        read_echoes(paths, grid, tau_us=2.0)
    refused(e, "m0.csv", "tau = 2 µs (given)", "trained with tau = 1 µs")


def test_unusable_csv_files_are_refused(tmp_path):
    grid = RecordGrid("hahn@90/1", DT)
    t = DT * np.arange(1, 19)
    zero = tmp_path / "zero.csv"
    write_echo_csv(zero, t, np.zeros(18, complex))
    with pytest.raises(InputFileError) as e:
        read_echoes([zero], grid)
    refused(e, "zero.csv", "all zero")
    nan = tmp_path / "nan.csv"
    write_echo_csv(nan, t, np.where(t < 1, np.nan, 0.1 + 0.1j))
    with pytest.raises(InputFileError) as e:
        read_echoes([nan], grid)
    refused(e, "nan.csv", "contains NaN or infinite values")
    abs_only = tmp_path / "abs.csv"
    abs_only.write_text("t_us,abs_M\n" + "\n".join(f"{x},0.1" for x in t))
    with pytest.raises(InputFileError) as e:
        read_echoes([abs_only], grid)
    refused(e, "holds |M| only")
    with pytest.raises(InputFileError) as e:
        read_echoes([tmp_path / "missing.csv"], grid)
    refused(e, "missing.csv: no such file or directory")
    other = tmp_path / "echo.txt"
    other.write_text("1,2,3\n")
    with pytest.raises(InputFileError) as e:
        read_echoes([other], grid)
    refused(e, "echo.txt: not an input pyecho predict reads")


def test_spectrometer_files_per_measurement(dataset, tmp_path):
    """A Bruker experiment per measurement (D6 = tau), mixed with an NPY: each on its measurement's grid."""
    _, ds = dataset
    grid = RecordGrid(PROTOCOL, DT)
    train = ds.records[0][1].astype(np.complex128)
    record = np.concatenate([filter_startup(int(GRPDLY)), [-0.5j], train])  # M(0) = -i sin(90 deg) / 2, then M(t_j)
    bruker = write_bruker(tmp_path / "1", record, sw_hz=SW_HZ, tau_us=1.0)
    npy = save_npy(tmp_path / "hahn60.npy", ds.records[1][1])
    got = read_echoes([bruker, npy], grid)
    assert got.kind == PER_MEASUREMENT and got.paths == (bruker, npy)
    np.testing.assert_allclose(got.M[0][0], train, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.M[1][0], ds.records[1][1])
    alone = read_echoes([bruker], RecordGrid("cpmg:2@90/1", DT))
    assert alone.kind == BRUKER
    # a record that opens late (--start-us, before the first refocusing pulse at 6 dt): the samples
    # before its first point are missing, in the NPY too
    late = write_bruker(tmp_path / "2", np.concatenate([filter_startup(int(GRPDLY)), train[3:]]), sw_hz=SW_HZ, tau_us=1.0)
    got = read_echoes([late, npy], grid, start_us=4 * DT)
    assert np.isnan(got.M[0][0, :3]).all() and np.isnan(got.M[1][0, :3]).all()
    np.testing.assert_allclose(got.M[0][0, 3:], train[3:], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.M[1][0, 3:], ds.records[1][1, 3:])
    # opening after the first refocusing pulse is refused: nothing before it to read
    with pytest.raises(SpectrometerFileError) as e:
        read_echoes([late, npy], grid, start_us=7 * DT)
    refused(e, "before the first pulse the record has no sample")
    # the record's tau is not the model's
    with pytest.raises(SpectrometerFileError) as e:
        read_echoes([write_bruker(tmp_path / "3", record, sw_hz=SW_HZ, tau_us=3.0), npy], grid)
    refused(e, "tau = 3 µs (acqus D6)", "trained with tau = 1 µs")


@pytest.mark.parametrize("start_us", [-1.0, 1000.5, math.nan, "soon"])
def test_start_us_is_a_time_from_0_to_1000_us(tmp_path, start_us):
    path = save_npy(tmp_path / "m.npy", np.ones(18, np.complex64))
    with pytest.raises(ParameterError, match="--start-us .*: must be a time from 0 to 1000 µs"):
        read_echoes([path], RecordGrid("hahn@90/1", DT), start_us=start_us)


def test_tau_us_is_not_for_npy_and_paths_are_needed(tmp_path):
    path = save_npy(tmp_path / "m.npy", np.ones(18, np.complex64))
    with pytest.raises(ParameterError, match="--tau-us"):
        read_echoes([path], RecordGrid("hahn@90/1", DT), tau_us=1.0)
    with pytest.raises(ParameterError, match="INPUT"):
        read_echoes([], RecordGrid("hahn@90/1", DT))
    assert read_echoes([path], RecordGrid("hahn@90/1", DT), start_us=1000).M[0].shape == (1, 18)

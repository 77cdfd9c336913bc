"""`pyecho predict` with the headline predictor: batches, every input kind, intervals, one clear error line."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from pyecho.data.echo_file import write_echo_csv
from pyecho.data.store import load_dataset
from pyecho.learn.base import QUICK, TARGETS, LearnData, make_split
from pyecho.learn.predictor import HEADLINE_DIR, PREDICTION_COLUMNS, PREDICTOR_FILE, EchoPredictor
from pyecho.learn.models.candidates import run_candidates
from pyecho.learn.calibration.domain import EchoGrid
from pyecho.learn import predict as predict_module
from pyecho.learn.predict import predict_echoes
from pyecho_cli.app import app
from tests.data.test_io import GRPDLY, SW_HZ, filter_startup, write_bruker

from .conftest import DT, N_TAU, make_synthetic_dataset

TAU_US = N_TAU * DT  # the shared `learned` model's grid: tau 20 us, dt 0.16 us, T = 375, theta 90 degrees
T = 3 * N_TAU
THETAS_TWO = (math.pi / 2, 5 * math.pi / 12)
COLUMNS = [*PREDICTION_COLUMNS, "ood_reasons"]
#: `pyecho sim` on the learned model's grid: 2 echoes per kernel on 4 x 4, a second of simulation
SIM = ["sim", "--preset", "quick", "--lattice", "4", "--n-per-kernel", "2", "--device", "cpu"]


def invoke(*args):
    # a wide console keeps every message on one line
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})


def one_error_line(res, phrase: str) -> str:
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert text.startswith("error:") and text.count("error:") == 1 and "Traceback" not in res.output, res.output
    assert phrase in text, text
    return text


def check_table(frame: pl.DataFrame, n: int) -> None:
    assert frame.columns == COLUMNS and frame.height == n
    assert frame["index"].to_list() == list(range(n))
    assert frame.schema["in_domain"] == pl.Boolean
    assert set(frame["kernel"]) <= {"gaussian", "power", "rkky"} and set(frame["range"]) <= {"P", "NP"}
    p = frame.select("p_gaussian", "p_power", "p_rkky").to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-9)
    for t in TARGETS:
        lo, v, hi = (frame[f"{t.value}{s}"].to_numpy() for s in ("_lo", "", "_hi"))
        assert np.all(lo < v) and np.all(v < hi), t


@pytest.fixture(scope="module")
def echoes():
    """Complex echoes on the learned model's grid, unseen in training (another seed)."""
    return make_synthetic_dataset(12, seed=7).M


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    """`pyecho sim` datasets: on the model's grid, on another dt (same T), and at two angles."""
    root = tmp_path_factory.mktemp("sim")
    runs = {"grid": ["--tau-us", TAU_US], "dt": ["--tau-us", 25.0, "--dt-us", 0.2],
            "two": ["--tau-us", TAU_US, "--thetas", ",".join(repr(t) for t in THETAS_TWO)]}
    for name, args in runs.items():
        res = invoke(*SIM, "--out", root / name, *args)
        assert res.exit_code == 0, res.output
    return SimpleNamespace(**{name: root / name for name in runs})


@pytest.fixture(scope="module")
def two_angle_model(tmp_path_factory):
    """A headline predictor (the linear candidate) trained on synthetic records at two angles."""
    d = make_synthetic_dataset(240)
    second = d.M * np.exp(1j * np.outer(d.labels["alpha_z"].to_numpy(), d.t_us))  # the phase turns with alpha_z
    ld = LearnData.from_dataset(SimpleNamespace(series=np.stack([d.M, second], 1), thetas=np.array(THETAS_TWO),
                                                labels=d.labels, metadata=d.metadata, t_us=d.t_us,
                                                echo_index=d.echo_index))
    budget = dataclasses.replace(QUICK, candidates=("linear",))
    res = run_candidates(ld, make_split(ld.labels, budget.test_size, 0), budget, 1)
    out = tmp_path_factory.mktemp("two_angles")
    grid = EchoGrid.from_metadata({**ld.metadata, "thetas": list(THETAS_TWO)}, ld.n_times)
    EchoPredictor.from_result(res, grid).save(out / "models" / HEADLINE_DIR)
    return out


def test_batch_npy_to_csv_and_parquet(learned, echoes, tmp_path, monkeypatch):
    out, _ = learned
    np.save(tmp_path / "b.npy", echoes)
    frame = predict_echoes(out, [tmp_path / "b.npy"]).frame
    check_table(frame, len(echoes))
    for name in ("p.csv", "p.parquet"):
        res = invoke("predict", out, tmp_path / "b.npy", "--out", tmp_path / name)
        assert res.exit_code == 0, res.output
        back = pl.read_csv(tmp_path / name) if name.endswith(".csv") else pl.read_parquet(tmp_path / name)
        assert_frame_equal(back, frame, check_exact=False, rel_tol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npy", "p.csv", "p.parquet"]  # no temporary left
    # without --out: the frame on stdout; --json: every row
    res = invoke("predict", out, tmp_path / "b.npy")
    assert res.exit_code == 0 and "shape: (12, 21)" in res.stdout, res.output
    rows = json.loads(invoke("predict", out, tmp_path / "b.npy", "--json").stdout)
    assert len(rows) == len(echoes) and list(rows[3]) == COLUMNS and rows[3]["W"] == pytest.approx(frame["W"][3])
    # --row: one echo of the batch, keeping its index
    one = predict_echoes(out, [tmp_path / "b.npy"], row=5).frame
    assert one["index"].to_list() == [5]
    assert_frame_equal(one, frame[5], check_exact=False, rel_tol=1e-5)  # float32 features
    # a batch larger than a chunk comes back whole and in order
    monkeypatch.setattr(predict_module, "PREDICT_CHUNK", 5)
    assert_frame_equal(predict_echoes(out, [tmp_path / "b.npy"]).frame, frame, check_exact=False, rel_tol=1e-5)


def test_dataset_directory_and_file(learned, sim_data):
    out, _ = learned
    ds = load_dataset(sim_data.grid)
    frame = predict_echoes(out, [sim_data.grid]).frame
    check_table(frame, len(ds))
    predictor = EchoPredictor.load(out / "models" / HEADLINE_DIR)
    assert_frame_equal(frame, predictor.predict(ds.series).to_frame())  # as stored: no resampling
    part = next(sim_data.grid.glob("part-*.parquet"))
    assert_frame_equal(predict_echoes(out, [part]).frame, frame)
    # the same number of samples on another grid is predicted, but flagged
    other = predict_echoes(out, [sim_data.dt]).frame
    assert other.height == len(ds) and not other["in_domain"].any()
    assert all("dt_us 0.2 != model 0.16" in r and "tau_us 25 != model 20" in r for r in other["ood_reasons"])
    # a dataset at two angles gives the model's one (90 degrees)
    first_angle = load_dataset(sim_data.two).series[:, 0]
    assert_frame_equal(predict_echoes(out, [sim_data.two]).frame, predictor.predict(first_angle).to_frame())


def test_one_echo_csv_and_npy_agree_and_print_a_table(learned, echoes, tmp_path):
    out, _ = learned
    M = echoes[1]
    write_echo_csv(tmp_path / "e.csv", DT * np.arange(1, T + 1), M)  # t_us,re_M,im_M,abs_M as `pyecho echo` writes
    np.save(tmp_path / "e.npy", M)
    a = predict_echoes(out, [tmp_path / "e.csv"]).frame
    b = predict_echoes(out, [tmp_path / "e.npy"]).frame
    check_table(a, 1)
    assert a["kernel"].to_list() == b["kernel"].to_list() and a["range"].to_list() == b["range"].to_list()
    for t in TARGETS:  # the CSV holds 10 significant digits
        assert a[t.value][0] == pytest.approx(b[t.value][0], rel=1e-6, abs=1e-9)
    res = invoke("predict", out, tmp_path / "e.csv")
    assert res.exit_code == 0, res.output
    for phrase in ("90% interval", "kernel", "p_power_law", "W", "rad/us", "lattice spacings", "in domain"):
        assert phrase in res.stdout, phrase
    W = a["W"][0], a["W_lo"][0], a["W_hi"][0]
    assert f"{W[0]:.4g} [{W[1]:.4g}, {W[2]:.4g}] rad/us" in res.stdout


def test_multi_angle_model_takes_one_file_per_angle(two_angle_model, echoes, sim_data, tmp_path):
    M = np.stack([echoes[:3], echoes[:3] * np.exp(0.3j)], 1)  # (3, 2, T)
    np.save(tmp_path / "b.npy", M)
    write_echo_csv(tmp_path / "a0.csv", DT * np.arange(1, T + 1), M[2, 0])
    np.save(tmp_path / "a1.npy", M[2, 1])
    batch = predict_echoes(two_angle_model, [tmp_path / "b.npy"]).frame
    check_table(batch, 3)
    per_angle = predict_echoes(two_angle_model, [tmp_path / "a0.csv", tmp_path / "a1.npy"]).frame
    check_table(per_angle, 1)
    for t in TARGETS:
        assert per_angle[t.value][0] == pytest.approx(batch[t.value][2], rel=1e-6, abs=1e-9)
    # a dataset simulated at the model's two angles
    assert predict_echoes(two_angle_model, [sim_data.two]).frame.height == len(load_dataset(sim_data.two))
    one_error_line(invoke("predict", two_angle_model, tmp_path / "a0.csv"), "one file per angle")
    one_error_line(invoke("predict", two_angle_model, tmp_path / "a0.csv", tmp_path / "a1.npy", tmp_path / "a1.npy"),
                   "3 inputs given")
    one_error_line(invoke("predict", two_angle_model, sim_data.grid), "the model needs 2 angle(s)")


def _bad_inputs(tmp_path, echoes, learned_out):
    """name -> (argv after `predict`, phrase of the one error line)."""
    M = echoes[:4]
    t = DT * np.arange(1, T + 1)
    files = {"short.npy": M[:, :-1], "nan.npy": np.where(np.arange(T) == 9, np.nan, M), "real.npy": M.real,
             "angles.npy": np.stack([M, M], 1)}
    for name, a in files.items():
        np.save(tmp_path / name, a)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "short.npy").read_bytes()[:300])
    pl.DataFrame({"t_us": t, "abs_M": np.abs(M[0])}).write_csv(tmp_path / "abs.csv")
    pl.DataFrame({"t_us": t[:200], "re_M": M[0, :200].real, "im_M": M[0, :200].imag}).write_csv(tmp_path / "half.csv")
    other = tmp_path / "other_version"
    shutil.copytree(learned_out / "models" / HEADLINE_DIR, other)
    header = json.loads((other / PREDICTOR_FILE).read_text())
    (other / PREDICTOR_FILE).write_text(json.dumps({**header, "pyecho_version": "0.0.1"}))
    npy = tmp_path / "nan.npy"
    return {
        "wrong length": ([learned_out, tmp_path / "short.npy"], f"T = {T}"),
        "NaN": ([learned_out, tmp_path / "nan.npy"], "NaN"),
        "real": ([learned_out, tmp_path / "real.npy"], "both quadratures"),
        "angles": ([learned_out, tmp_path / "angles.npy"], "the model needs 1 angle(s)"),
        "two inputs": ([learned_out, tmp_path / "abs.csv", tmp_path / "half.csv"], "2 inputs given"),
        "truncated": ([learned_out, tmp_path / "cut.npy"], "not a readable .npy"),
        "missing": ([learned_out, tmp_path / "nope.npy"], "no such file"),
        "abs only": ([learned_out, tmp_path / "abs.csv"], "--model paper"),
        "short time axis": ([learned_out, tmp_path / "half.csv"], "the model needs"),
        "other version": ([other, npy], "written by pyecho 0.0.1"),
        "no predictor": ([tmp_path, npy], "holds no models/headline"),
        "tau for npy": ([learned_out, tmp_path / "short.npy", "--tau-us", "20"], "--tau-us"),
        "paper --out": ([learned_out, tmp_path / "abs.csv", "--model", "paper"], "--out is for the headline model"),
    }


def test_bad_inputs_give_one_line_and_write_nothing(learned, echoes, tmp_path):
    out, _ = learned
    for name, (argv, phrase) in _bad_inputs(tmp_path, echoes, out).items():
        target = tmp_path / "preds.csv"
        res = invoke("predict", *argv, "--out", target)
        one_error_line(res, phrase)
        assert not target.exists(), name
    np.save(tmp_path / "ok.npy", echoes[:2])
    one_error_line(invoke("predict", out, tmp_path / "ok.npy", "--out", tmp_path / "preds.txt"), ".csv or .parquet")
    one_error_line(invoke("predict", out, tmp_path / "ok.npy", "--row", "2"), "--row 2")
    assert not (tmp_path / "preds.txt").exists()


def test_bruker_directory_round_trips(learned, echoes, tmp_path):
    out, _ = learned
    M = echoes[4]
    np.save(tmp_path / "e.npy", M)
    # the receiver opens with the excitation (M(0) first), behind the digital filter's start-up
    record = np.concatenate([filter_startup(int(GRPDLY)), [-0.5j], M])
    exp = write_bruker(tmp_path / "echo" / "1", record, tau_us=TAU_US)
    res = invoke("predict", out, exp, "--json")
    assert res.exit_code == 0, res.output
    assert_frame_equal(pl.DataFrame(json.loads(res.stdout)),
                                  predict_echoes(out, [tmp_path / "e.npy"]).frame, check_exact=False, rel_tol=1e-6)
    slow = write_bruker(tmp_path / "slow" / "1", record, tau_us=TAU_US, sw_hz=SW_HZ / 2)
    one_error_line(invoke("predict", out, slow, "--out", tmp_path / "p.csv"), "dwell time 0.32 µs")
    assert not (tmp_path / "p.csv").exists()

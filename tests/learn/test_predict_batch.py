"""`pyecho predict` with the headline predictor: batches, every input kind, protocols, intervals,
invariance to the receiver's phase and gain, --start-us, one clear error line."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from pyecho.data.echo_file import write_echo_csv
from pyecho.data.store import load_dataset
from pyecho.learn import predict as predict_module
from pyecho.learn.base import COUPLING_TARGETS, Target
from pyecho.learn.calibration.probability import KernelProbability
from pyecho.learn.predict import predict_echoes
from pyecho.learn.predictor import HEADLINE_DIR, PREDICTOR_FILE, EchoPredictor, PredictionTable, prediction_columns
from pyecho_cli.app import app
from tests.data.test_io import GRPDLY, SW_HZ, filter_startup, write_bruker

from .conftest import DT, N_TAU, make_synthetic_dataset
from .predict_fixtures import write_dataset

TAU_US = N_TAU * DT  # both shared models: tau 40 us, dt 0.16 us, theta 90 degrees, dead time 20 us
T = 3 * N_TAU  # the Hahn record: 750 samples
T_TRAIN = 7 * N_TAU  # the CPMG:3 record: 1750 samples
PROTOCOL = "hahn@90/40,cpmg:3@90/40"  # `learned_protocol`'s measurements
HAHN_TARGETS = tuple(t.value for t in COUPLING_TARGETS)
PROTOCOL_TARGETS = (*HAHN_TARGETS, Target.T2.value)
DEAD_TIME_US = 20.0
#: the receiver's phase and gain applied in the invariance test
RECEIVER = 3.7 * np.exp(0.7j)


def invoke(*args):
    # a wide console keeps every message on one line
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})


def one_error_line(res, *phrases: str) -> str:
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert text.startswith("error:") and text.count("error:") == 1 and "Traceback" not in res.output, res.output
    assert res.output.strip().count("\n") == 0, res.output
    for phrase in phrases:
        assert phrase in text, text
    return text


def columns(targets) -> list[str]:
    return [*prediction_columns(targets), "ood_reasons"]


def check_table(frame: pl.DataFrame, n: int, targets=HAHN_TARGETS, *, threshold: float | None = None) -> None:
    """The prediction table's contract, row by row."""
    assert frame.columns == columns(targets) and frame.height == n
    assert frame["index"].to_list() == list(range(n))
    assert frame.schema["in_domain"] == pl.Boolean
    assert set(frame["kernel"]) <= {"gaussian", "power", "rkky"} and set(frame["range"]) <= {"P", "NP"}
    p = frame.select("p_gaussian", "p_power", "p_rkky").to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-9)
    assert frame["p_power_law"].to_list() == frame["p_power"].to_list()
    # kernel and range never contradict: P exactly where the kernel is the power law
    power = (frame["kernel"] == "power").to_numpy()
    np.testing.assert_array_equal((frame["range"] == "P").to_numpy(), power)
    # a short-range kernel is the likelier of the two short-range kernels
    short = frame.filter(pl.col("kernel") != "power")
    likelier = np.where(short["p_gaussian"] >= short["p_rkky"], "gaussian", "rkky")
    np.testing.assert_array_equal(short["kernel"].to_numpy(), likelier)
    # the decision's threshold, one per model: P exactly where p_power_law reaches it
    assert frame["p_power_law_threshold"].n_unique() == 1
    np.testing.assert_array_equal((frame["p_power_law"] >= frame["p_power_law_threshold"]).to_numpy(), power)
    if threshold is not None:
        assert frame["p_power_law_threshold"][0] == threshold
    for t in targets:
        lo, v, hi = (frame[f"{t}{s}"].to_numpy() for s in ("_lo", "", "_hi"))
        assert np.all(lo < v) and np.all(v < hi), t
    snr = frame["snr"].to_numpy()
    assert np.all(np.isfinite(snr) & (snr > 0))


def check_same_rows(a: pl.DataFrame, b: pl.DataFrame, rel: float = 1e-6) -> None:
    """The same decisions and, to ``rel``, the same numbers (values, intervals, probabilities, SNR)."""
    assert a.columns == b.columns and a.height == b.height
    for c in ("index", "kernel", "range", "in_domain", "ood_reasons"):
        assert a[c].to_list() == b[c].to_list(), c
    for c in a.columns:
        if a.schema[c].is_float():
            np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=rel, atol=1e-12, err_msg=c)


@pytest.fixture(scope="module")
def echoes():
    """Complex Hahn records on the shared models' grid, unseen in training (another seed)."""
    return make_synthetic_dataset(12, seed=7).records[0]


@pytest.fixture(scope="module")
def protocol_data():
    """Hahn + CPMG:3 records of 9 samples unseen by `learned_protocol` (another seed), complex64 as
    a dataset stores them (MiniRocket's features count threshold crossings, so a float32 rounding
    of the inputs may move a prediction by far more than the rounding)."""
    d = make_synthetic_dataset(9, seed=11, train=3)
    return SimpleNamespace(records=tuple(R.astype(np.complex64) for R in d.records), labels=d.labels)


@pytest.fixture(scope="module")
def threshold(learned):
    return EchoPredictor.load(learned[0] / "models" / HEADLINE_DIR).calibration.kernel.threshold


# ---------------------------------------------------------------- batches and input kinds


def test_batch_npy_to_csv_and_parquet(learned, echoes, threshold, tmp_path, monkeypatch):
    out, _ = learned
    np.save(tmp_path / "b.npy", echoes)
    res = predict_echoes(out, [tmp_path / "b.npy"])
    frame = res.frame
    check_table(frame, len(echoes), threshold=threshold)
    # the batch has both ranges, so "P iff power" above is not vacuous
    assert set(frame["range"]) == {"P", "NP"}
    assert res.kind == "npy" and res.level == pytest.approx(0.9)
    for name in ("p.csv", "p.parquet"):
        cli = invoke("predict", out, tmp_path / "b.npy", "--out", tmp_path / name)
        assert cli.exit_code == 0, cli.output
        if name.endswith(".parquet"):
            assert_frame_equal(pl.read_parquet(tmp_path / name), frame)
            continue
        # a CSV reads every float back as Float64; polars writes a Float32 (snr of complex64 records) in 7 digits
        back = pl.read_csv(tmp_path / name)
        assert_frame_equal(back.drop("snr"), frame.drop("snr"), check_exact=False, rel_tol=1e-12, check_dtypes=False)
        np.testing.assert_allclose(back["snr"].to_numpy(), frame["snr"].to_numpy(), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npy", "p.csv", "p.parquet"]  # no temporary left
    # without --out: the frame on stdout; --json: every row
    cli = invoke("predict", out, tmp_path / "b.npy")
    assert cli.exit_code == 0 and f"shape: ({len(echoes)}, {len(columns(HAHN_TARGETS))})" in cli.stdout, cli.output
    rows = json.loads(invoke("predict", out, tmp_path / "b.npy", "--json").stdout)
    assert len(rows) == len(echoes) and list(rows[3]) == columns(HAHN_TARGETS)
    assert rows[3]["W"] == pytest.approx(frame["W"][3], rel=1e-12) and rows[3]["kernel"] == frame["kernel"][3]
    # --row: one echo of the batch, keeping its index
    one = predict_echoes(out, [tmp_path / "b.npy"], row=5).frame
    assert one["index"].to_list() == [5]
    check_same_rows(one, frame[5], rel=1e-5)  # float32 features
    # a batch larger than a chunk comes back whole and in order
    monkeypatch.setattr(predict_module, "PREDICT_CHUNK", 5)
    check_same_rows(predict_echoes(out, [tmp_path / "b.npy"]).frame, frame, rel=1e-5)


def test_dataset_directory_and_file(learned, protocol_data, tmp_path):
    out, _ = learned
    d = protocol_data
    H, C = d.records
    np.save(tmp_path / "h.npy", H)
    expected = predict_echoes(out, [tmp_path / "h.npy"]).frame
    check_table(expected, len(H))
    hahn = write_dataset(tmp_path / "hahn", (H,), "hahn@90/40", d.labels, dt_us=DT)
    frame = predict_echoes(out, [hahn]).frame
    assert_frame_equal(frame, expected)  # the same records, stored as float32 lists
    predictor = EchoPredictor.load(out / "models" / HEADLINE_DIR)
    ds = load_dataset(hahn)
    assert_frame_equal(frame, predictor.predict(ds.records).to_frame())  # as stored: no resampling
    part = next(hahn.glob("part-*.parquet"))
    assert_frame_equal(predict_echoes(out, [part]).frame, frame)
    # a dataset of the model's measurement and a train it begins, or of the train alone: the
    # Hahn record is the first 3 tau of the CPMG train
    both = write_dataset(tmp_path / "both", d.records, PROTOCOL, d.labels, dt_us=DT)
    train = write_dataset(tmp_path / "train", (C,), "cpmg:3@90/40", d.labels, dt_us=DT)
    for path in (both, train):
        res = predict_echoes(out, [path])
        assert res.kind == "dataset"
        assert_frame_equal(res.frame, expected, check_exact=False, rel_tol=1e-6)
    # the same number of samples on another grid is predicted, but flagged
    other = write_dataset(tmp_path / "dt", (H,), "hahn@90/50", d.labels, dt_us=0.2)
    flagged = predict_echoes(out, [other]).frame
    assert flagged.height == len(H) and not flagged["in_domain"].any()
    assert all("dt_us 0.2 != model 0.16" in r and "measurement 0: hahn@90/50 != model hahn@90/40" in r
               for r in flagged["ood_reasons"])


def test_one_echo_csv_and_npy_agree_and_print_a_table(learned, echoes, tmp_path):
    out, _ = learned
    M = echoes[1]
    write_echo_csv(tmp_path / "e.csv", DT * np.arange(1, T + 1), M)  # t_us,re_M,im_M,abs_M as `pyecho echo` writes
    np.save(tmp_path / "e.npy", M)
    a = predict_echoes(out, [tmp_path / "e.csv"])
    b = predict_echoes(out, [tmp_path / "e.npy"]).frame
    assert a.kind == "csv"
    check_table(a.frame, 1)
    check_same_rows(a.frame, b, rel=1e-5)  # the CSV holds 10 significant digits; float32 features
    res = invoke("predict", out, tmp_path / "e.csv")
    assert res.exit_code == 0, res.output
    for phrase in ("90% interval", "kernel", "p_power_law", "W", "rad/us", "lattice spacings", "in domain",
                   "SNR (estimated)"):
        assert phrase in res.stdout, phrase
    assert "t2_us" not in res.stdout  # T2 only from a model that learned it
    W = a.frame["W"][0], a.frame["W_lo"][0], a.frame["W_hi"][0]
    assert f"{W[0]:.4g} [{W[1]:.4g}, {W[2]:.4g}] rad/us" in res.stdout
    # the range says the rule it follows: p_power_law against the model's threshold
    p, t = a.frame["p_power_law"][0], a.frame["p_power_law_threshold"][0]
    rule = (f"P (power law, long range): p_power_law {p:.2f} ≥ threshold {t:.2f}" if a.frame["range"][0] == "P"
            else f"NP (short range): p_power_law {p:.2f} < threshold {t:.2f}")
    assert rule in " ".join(res.stdout.split())


def test_prediction_table_on_rows_with_a_plurality_below_one_half():
    """kernel, range and the probabilities never contradict: P iff p_power_law >= the threshold,
    the kernel then the power law, else the likelier short-range kernel."""
    proba = np.array([[0.28, 0.42, 0.30], [0.45, 0.36, 0.19], [0.30, 0.34, 0.36], [0.55, 0.21, 0.24]])
    probability = KernelProbability.uncalibrated(0.38)
    kernel, is_power = probability.decide(proba)
    n = len(proba)
    frame = PredictionTable(proba, kernel, is_power, {}, {}, {}, np.full(n, 100.0), np.ones(n, bool), ((),) * n, 0.9,
                            probability.threshold).to_frame()
    assert frame["kernel"].to_list() == ["power", "gaussian", "rkky", "gaussian"]
    assert frame["range"].to_list() == ["P", "NP", "NP", "NP"]
    assert frame["p_power_law"].to_list() == [0.42, 0.36, 0.34, 0.21]
    assert frame["p_power_law_threshold"].to_list() == [0.38] * n


def test_bruker_directory_round_trips(learned, echoes, tmp_path):
    out, _ = learned
    M = echoes[4]
    np.save(tmp_path / "e.npy", M)
    expected = predict_echoes(out, [tmp_path / "e.npy"]).frame
    # the receiver opens with the excitation (M(0) first), behind the digital filter's start-up
    record = np.concatenate([filter_startup(int(GRPDLY)), [-0.5j], M])
    exp = write_bruker(tmp_path / "echo" / "1", record, tau_us=TAU_US)
    res = invoke("predict", out, exp, "--json")
    assert res.exit_code == 0, res.output
    check_same_rows(pl.DataFrame(json.loads(res.stdout)), expected)
    # a receiver that opens 8 us late (its first point is model sample 49): --start-us places it,
    # and the model, which never reads its first 20 us, predicts the same
    late = write_bruker(tmp_path / "late" / "1", np.concatenate([filter_startup(int(GRPDLY)), M[49:]]),
                        tau_us=TAU_US)
    res = invoke("predict", out, late, "--start-us", 8, "--json")
    assert res.exit_code == 0, res.output
    check_same_rows(pl.DataFrame(json.loads(res.stdout)), expected)
    slow = write_bruker(tmp_path / "slow" / "1", record, tau_us=TAU_US, sw_hz=SW_HZ / 2)
    one_error_line(invoke("predict", out, slow, "--out", tmp_path / "p.csv"), "dwell time 0.32 µs")
    assert not (tmp_path / "p.csv").exists()


# ---------------------------------------------------------------- a protocol of two measurements


def test_protocol_model_takes_one_file_per_measurement(learned_protocol, protocol_data, tmp_path):
    out, _ = learned_protocol
    d = protocol_data
    H, C = d.records
    assert (H.shape[1], C.shape[1]) == (T, T_TRAIN)
    np.save(tmp_path / "h.npy", H)
    np.save(tmp_path / "c.npy", C)
    predictor = EchoPredictor.load(out / "models" / HEADLINE_DIR)
    res = predict_echoes(out, [tmp_path / "h.npy", tmp_path / "c.npy"])
    frame = res.frame
    assert res.kind == "one file per measurement"
    check_table(frame, len(H), PROTOCOL_TARGETS, threshold=predictor.calibration.kernel.threshold)
    assert frame["t2_us"].min() > 0
    assert_frame_equal(frame, predictor.predict((H, C)).to_frame())
    # mixed kinds: a CSV for one measurement, an NPY for the other
    write_echo_csv(tmp_path / "h2.csv", DT * np.arange(1, T + 1), H[2])
    np.save(tmp_path / "c2.npy", C[2])
    mixed = predict_echoes(out, [tmp_path / "h2.csv", tmp_path / "c2.npy"]).frame
    check_same_rows(mixed, frame[2].with_columns(pl.lit(0, pl.Int64).alias("index")), rel=1e-5)
    # a dataset that holds both measurements, or the train that begins with the Hahn record
    for name, records, protocol in (("both", d.records, PROTOCOL), ("train", (C,), "cpmg:3@90/40")):
        ds = write_dataset(tmp_path / name, records, protocol, d.labels, dt_us=DT)
        assert_frame_equal(predict_echoes(out, [ds]).frame, frame)
    # `pyecho predict MODEL` alone: the measurements to make, in order
    cli = invoke("predict", out)
    assert cli.exit_code == 0, cli.output
    text = cli.stdout
    assert text.index("hahn@90/40") < text.index("cpmg:3@90/40")
    for phrase in (" 750 ", " 1750 ", "t2_us", "20 us"):
        assert phrase in text, phrase


def test_protocol_model_refuses_a_file_set_that_does_not_match(learned_protocol, protocol_data, tmp_path):
    out, _ = learned_protocol
    H, C = protocol_data.records
    np.save(tmp_path / "h.npy", H)
    np.save(tmp_path / "c.npy", C)
    # one NPY (B, 2, T): the measurements' lengths differ (750, 1750), so it cannot hold them
    np.save(tmp_path / "stacked.npy", np.stack([H, C[:, :T]], 1))
    write_dataset(tmp_path / "hahn_only", (H,), "hahn@90/40", protocol_data.labels, dt_us=DT)
    cases = {
        "stacked": [tmp_path / "stacked.npy"],
        "too few": [tmp_path / "h.npy"],
        "too many": [tmp_path / "h.npy", tmp_path / "c.npy", tmp_path / "c.npy"],
        "dataset without the train": [tmp_path / "hahn_only"],
    }
    for name, paths in cases.items():
        res = invoke("predict", out, *paths, "--out", tmp_path / "p.csv")
        one_error_line(res, PROTOCOL)
        assert not (tmp_path / "p.csv").exists(), name
    one_error_line(invoke("predict", out, tmp_path / "stacked.npy"), "(9, 2, 750)", "T = 750, 1750")
    one_error_line(invoke("predict", out, tmp_path / "h.npy", tmp_path / "c.npy", tmp_path / "c.npy"),
                   "3 file(s) given")
    one_error_line(invoke("predict", out, tmp_path / "hahn_only"), "not cpmg:3@90/40")


def test_protocol_model_refuses_files_in_the_wrong_order(learned_protocol, protocol_data, tmp_path):
    """The train given first and the Hahn record second: one line that names the protocol."""
    out, _ = learned_protocol
    H, C = protocol_data.records
    np.save(tmp_path / "h.npy", H)
    np.save(tmp_path / "c.npy", C)
    write_echo_csv(tmp_path / "h.csv", DT * np.arange(1, T + 1), H[0])
    write_echo_csv(tmp_path / "c.csv", DT * np.arange(1, T_TRAIN + 1), C[0])
    for paths in ([tmp_path / "c.npy", tmp_path / "h.npy"], [tmp_path / "c.csv", tmp_path / "h.csv"]):
        res = invoke("predict", out, *paths, "--out", tmp_path / "p.csv")
        one_error_line(res, PROTOCOL)
        assert not (tmp_path / "p.csv").exists()


# ---------------------------------------------------------------- invariance and dead time


@pytest.mark.parametrize("which", ["hahn", "protocol"])
def test_receiver_phase_and_gain_change_nothing(which, learned, learned_protocol, echoes, protocol_data, tmp_path):
    """Fresh records times a receiver's phase e^{0.7i} and gain 3.7: the same predictions and SNR."""
    out, records, targets = ((learned[0], (echoes,), HAHN_TARGETS) if which == "hahn"
                             else (learned_protocol[0], protocol_data.records, PROTOCOL_TARGETS))
    plain = [tmp_path / f"plain{k}.npy" for k in range(len(records))]
    turned = [tmp_path / f"turned{k}.npy" for k in range(len(records))]
    for R, p, q in zip(records, plain, turned):
        R = R.astype(np.complex128)  # the same precision on both sides: only the phase and gain differ
        np.save(p, R)
        np.save(q, R * RECEIVER)
    a = predict_echoes(out, plain).frame
    b = predict_echoes(out, turned).frame
    check_table(a, len(records[0]), targets)
    check_same_rows(a, b, rel=1e-6)


def test_start_us_up_to_the_dead_time_changes_nothing(learned, learned_protocol, echoes, protocol_data, tmp_path):
    out, _ = learned
    np.save(tmp_path / "b.npy", echoes)
    base = predict_echoes(out, [tmp_path / "b.npy"]).frame
    for start in (0, 8, DEAD_TIME_US):
        assert_frame_equal(predict_echoes(out, [tmp_path / "b.npy"], start_us=start).frame, base)
    # the samples --start-us 20 blanks may hold anything: NaN (missing) and junk alike
    junk = echoes.copy()
    junk[:, : int(DEAD_TIME_US / DT)] = np.nan
    np.save(tmp_path / "nan.npy", junk)
    assert_frame_equal(predict_echoes(out, [tmp_path / "nan.npy"]).frame, base)
    junk[:, : int(DEAD_TIME_US / DT) - 1] = 5.0 + 2j
    np.save(tmp_path / "junk.npy", junk)
    assert_frame_equal(predict_echoes(out, [tmp_path / "junk.npy"], start_us=DEAD_TIME_US).frame, base)
    # the CLI: identical rows at 0 and 20; 25 (past the model's dead time) is refused, nothing written
    rows = [json.loads(invoke("predict", out, tmp_path / "b.npy", "--start-us", s, "--json").stdout) for s in (0, 20)]
    assert rows[0] == rows[1] and len(rows[0]) == len(echoes)
    one_error_line(invoke("predict", out, tmp_path / "b.npy", "--start-us", 25, "--out", tmp_path / "p.csv"),
                   "--start-us 25", "first 20 µs", "--dead-time-us")
    assert not (tmp_path / "p.csv").exists()
    # a receiver that opens at 20 µs writes the shorter record: the same rows; stderr says how it was read
    n_before = 124  # t_j = (j + 1) 0.16 µs < 20 µs: j = 0..123
    np.save(tmp_path / "short.npy", echoes[:, n_before:])
    assert_frame_equal(predict_echoes(out, [tmp_path / "short.npy"], start_us=DEAD_TIME_US).frame, base)
    res = invoke("predict", out, tmp_path / "short.npy", "--start-us", 20, "--json")
    assert json.loads(res.stdout) == rows[0]
    assert f"short.npy: starts at 20 µs: {T - n_before} samples padded to {T}" in " ".join(res.stderr.split())
    res = invoke("predict", out, tmp_path / "b.npy", "--start-us", 20, "--json")
    assert f"b.npy: full length T = {T}, {n_before} samples before 20 µs discarded" in " ".join(res.stderr.split())
    # a protocol model: every measurement's record starts late
    pout, _ = learned_protocol
    H, C = protocol_data.records
    np.save(tmp_path / "h.npy", H)
    np.save(tmp_path / "c.npy", C)
    files = [tmp_path / "h.npy", tmp_path / "c.npy"]
    assert_frame_equal(predict_echoes(pout, files, start_us=DEAD_TIME_US).frame, predict_echoes(pout, files).frame)


# ---------------------------------------------------------------- one clear error line


def _bad_inputs(tmp_path, echoes, learned_out):
    """name -> (argv after `predict`, phrases of the one error line)."""
    M = echoes[:4]
    t = DT * np.arange(1, T + 1)
    files = {
        "short.npy": M[:, :-1],
        # sample 450 (t = 72 us) lies outside the dead time after either pulse
        "nan.npy": np.where(np.arange(T) == 450, np.nan, M),
        "all_nan.npy": np.where(np.arange(4)[:, None] == 2, np.nan, M),
        "zero.npy": np.where(np.arange(4)[:, None] == 1, 0, M),
        "real.npy": M.real,
        "two.npy": np.stack([M, M], 1),
    }
    for name, a in files.items():
        np.save(tmp_path / name, a)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "short.npy").read_bytes()[:300])
    pl.DataFrame({"t_us": t, "abs_M": np.abs(M[0])}).write_csv(tmp_path / "abs.csv")
    pl.DataFrame({"t_us": t[:200], "re_M": M[0, :200].real, "im_M": M[0, :200].imag}).write_csv(tmp_path / "half.csv")
    other = tmp_path / "other_version"
    shutil.copytree(learned_out / "models" / HEADLINE_DIR, other)
    header = json.loads((other / PREDICTOR_FILE).read_text())
    (other / PREDICTOR_FILE).write_text(json.dumps({**header, "pyecho_version": "0.0.1"}))
    labels = make_synthetic_dataset(4, seed=3).labels
    dataset = write_dataset(tmp_path / "ds", (M,), "hahn@90/40", labels, dt_us=DT)
    npy = tmp_path / "short.npy"
    return {
        "wrong length": ([learned_out, tmp_path / "short.npy"], ["(4, 749)", f"T = {T}"]),
        "NaN after the dead time": ([learned_out, tmp_path / "nan.npy"], ["outside the model's dead time of 20 µs",
                                                                          "sample 450"]),
        "all NaN": ([learned_out, tmp_path / "all_nan.npy"], ["every sample is NaN"]),
        "all zero": ([learned_out, tmp_path / "zero.npy"], ["all zero"]),
        "real": ([learned_out, tmp_path / "real.npy"], ["both quadratures"]),
        "two measurements": ([learned_out, tmp_path / "two.npy"], ["the model needs 1 measurement(s) hahn@90/40"]),
        "two inputs": ([learned_out, tmp_path / "abs.csv", tmp_path / "half.csv"],
                       ["2 file(s) given", "hahn@90/40"]),
        "truncated": ([learned_out, tmp_path / "cut.npy"], ["not a readable .npy"]),
        "missing": ([learned_out, tmp_path / "nope.npy"], ["no such file"]),
        "abs only": ([learned_out, tmp_path / "abs.csv"], ["--model paper"]),
        "short time axis": ([learned_out, tmp_path / "half.csv"], ["the model needs up to 40"]),
        "other version": ([other, npy], ["written by pyecho 0.0.1"]),
        "no predictor": ([tmp_path, npy], ["holds no models/headline"]),
        "tau for npy": ([learned_out, npy, "--tau-us", "20"], ["--tau-us"]),
        "start for a dataset": ([learned_out, dataset, "--start-us", "5"], ["--start-us", "dataset"]),
        "negative start": ([learned_out, npy, "--start-us", "-1"], ["--start-us"]),
        "dataset among files": ([learned_out, dataset, npy], ["give it alone"]),
        "paper --out": ([learned_out, tmp_path / "abs.csv", "--model", "paper"], ["--out is for the headline model"]),
    }


def test_bad_inputs_give_one_line_and_write_nothing(learned, echoes, tmp_path):
    out, _ = learned
    target = tmp_path / "preds.csv"
    for name, (argv, phrases) in _bad_inputs(tmp_path, echoes, out).items():
        res = invoke("predict", *argv, "--out", target)
        one_error_line(res, *phrases)
        assert not target.exists(), name
    np.save(tmp_path / "ok.npy", echoes[:2])
    one_error_line(invoke("predict", out, tmp_path / "ok.npy", "--out", tmp_path / "preds.txt"), ".csv or .parquet")
    one_error_line(invoke("predict", out, tmp_path / "ok.npy", "--row", "2"), "--row 2", "rows 0..1")
    assert not (tmp_path / "preds.txt").exists()

import json
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pyecho.learn.base import COUPLING_TARGETS, ClassScores, Evaluation, Target, Task, ZooModel
from pyecho.learn.paper.classify import ClassifierResult
from pyecho.learn.report.figures import FigurePaths
from pyecho.learn.paper.models import EchoModels, dump_model, load_model, predict_file
from pyecho_cli.app import app

from .conftest import LEARNED_SIZE, SEEDS, WINDOW, make_synthetic_dataset

QUICK_CANDIDATES = ("linear", "minirocket", "cnn")


def test_learn_end_to_end_writes_report_metrics_models(learned):
    out, run = learned
    h = run.metrics["headline"]
    for key in ("pvnp_f1_power", "pvnp_f1_weighted", "pvnp_f1_macro", "pvnp_accuracy", "kernel3_f1_macro",
                "W_r2", "L_r2", "alpha_xy_r2", "alpha_z_r2", "W_mae"):
        assert np.isfinite(h[key]) and np.isfinite(h[f"{key}_std"]), key
    assert h["pvnp_f1_power"] > 0.9  # the synthetic classes differ obviously
    assert h["seeds"] == list(SEEDS)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["headline"] == h
    assert [e["model"] for e in on_disk["results"]["zoo"]["entries"]] == [m.value for m in ZooModel]
    assert on_disk["leak_comparison"]["leaked"].keys() == on_disk["leak_comparison"]["leak_free"].keys() == {
        "f1_power", "f1_weighted", "f1_macro", "accuracy"}
    assert on_disk["leak_comparison"]["paper_leaked"] == {"f1_weighted": 0.82}
    text = (out / "report.md").read_text()
    assert "Table I" in text and "The paper's leak, reproduced" in text and "All models, same test rows" in text
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    # no forward selection over the measurements of a single-measurement protocol, and no bound
    # map for a dataset without a simulation prior (this synthetic one)
    assert run.results.measurements.selection is None and run.results.limits is None
    assert len(figs) == len(fields(FigurePaths)) - 2
    linked = [p.split(")")[0] for p in text.split("(figures/")[1:]]
    assert sorted(linked) == figs
    man = json.loads((out / "models" / "manifest.json").read_text())
    assert man["layout"]["window"][1] - man["layout"]["window"][0] == 120
    assert {m.file for m in run.results.models} == {e["file"] for e in man["models"].values()}
    assert not list(out.rglob("*.tmp"))


def _walk(obj, seen=None):
    """Every dataclass instance reachable from ``obj`` (fields, tuples, dicts)."""
    seen = [] if seen is None else seen
    if is_dataclass(obj) and not isinstance(obj, type):
        seen.append(obj)
        for f in fields(obj):
            if f.name != "data":
                _walk(getattr(obj, f.name), seen)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            _walk(v, seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            _walk(v, seen)
    return seen


def test_every_classification_result_carries_all_four_metrics(learned):
    _, run = learned
    found = _walk(run.results)
    classifiers = [o for o in found if isinstance(o, ClassifierResult)]
    # P vs NP and 3-class on two feature sets, three W bins on two feature sets
    assert len(classifiers) == 2 + 2 + 6
    scores = [o for o in found if isinstance(o, ClassScores)]
    assert len(scores) > len(classifiers)  # plus pruning steps, zoo, pooled W screening, seeds, leak
    for s in scores:  # each a float, never NaN
        assert all(isinstance(getattr(s, n), float) and np.isfinite(getattr(s, n))
                   for n in ("f1_power", "f1_weighted", "f1_macro", "accuracy")), s
    rows = run.results.model_scores()
    cls_rows = [r for r in rows if isinstance(r.scores, ClassScores)]
    assert {(r.task, r.evaluation) for r in cls_rows} >= {(Task.PVNP, Evaluation.PAPER), (Task.KERNEL3, Evaluation.PAPER),
                                                         (Task.PVNP, Evaluation.LEAKED), (Task.PVNP, Evaluation.BEYOND)}
    text = (learned[0] / "report.md").read_text()
    header = "| model | inputs | evaluation | task | F1 of the power-law class | weighted F1 | macro F1 | accuracy | seeds |"
    assert header in text


def test_seed_study_reports_mean_and_spread(learned):
    _, run = learned
    study = run.results.seeds
    assert study.seeds == SEEDS and len(study.per_seed) == 2
    # the main seed's row is the main run's own P-vs-NP forest
    assert study.per_seed[0][0].scores == run.results.pvnp.pointwise.scores
    pooled = study.model_scores()
    assert [p.task for p in pooled] == [Task.PVNP, Task.KERNEL3, *COUPLING_TARGETS]
    for p in pooled:
        assert p.seeds == SEEDS and p.spread is not None
    w = next(p for p in pooled if p.task == Target.W)
    assert w.scores.r2 == pytest.approx(np.mean([run_[2].scores.r2 for run_ in study.per_seed]))
    text = (learned[0] / "report.md").read_text()
    assert "± " in text
    # R² of L within each family, pooled over the seeds like every headline number
    cs = run.results.candidate_seeds
    within = [r.calibrated.headline_test[0].scores.within_kernel["power"]["L"].r2 for r in cs.results]
    assert cs.headline_within("L", "power").scores.r2 == pytest.approx(np.mean(within))
    assert "| R² L within gaussian / power / rkky | R² |" in text


def test_learn_cli_rejects_bad_seeds_and_writes_nothing(tmp_path):
    for bad in ("0,x", "1,1", "-1"):
        res = CliRunner().invoke(app, ["learn", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--seeds", bad])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and text.count("error:") == 1 and "--seeds" in text, (bad, res.output)
        assert not (tmp_path / "o").exists()


def test_models_round_trip_through_skops(learned, synthetic, tmp_path):
    out, _ = learned
    models = EchoModels(out)
    X = models.layout.features(models.layout.normalise(synthetic.records[0]))["pointwise"].to_numpy()
    for key in ("pvnp", "kernel3", "W", "alpha_z"):
        m, entry = models.model(key)
        dump_model(m, tmp_path / "m.skops")
        m2 = load_model(tmp_path / "m.skops")
        if hasattr(m, "predict_proba"):
            np.testing.assert_array_equal(m.predict_proba(X), m2.predict_proba(X))
        np.testing.assert_array_equal(m.predict(X), m2.predict(X))


def test_predict_csv_npy_agree(learned, synthetic, tmp_path):
    out, _ = learned
    M = synthetic.records[0][1]  # a power-law echo
    t = synthetic.dt_us * np.arange(1, len(M) + 1)
    pl.DataFrame({"t_us": t, "re_M": M.real.astype(float), "im_M": M.imag.astype(float),
                  "abs_M": np.abs(M).astype(float)}).write_csv(tmp_path / "e.csv")
    np.save(tmp_path / "e.npy", M)
    np.save(tmp_path / "e2.npy", np.stack([M.real, M.imag], 1))
    a = predict_file(out, tmp_path / "e.csv")
    b = predict_file(out, tmp_path / "e.npy")
    c = predict_file(out, tmp_path / "e2.npy")
    for k in ("kernel", "range"):  # labels: exactly equal
        assert a[k] == b[k] == c[k]
    for k in ("W", "L"):
        assert a[k] == pytest.approx(b[k], rel=1e-5) and b[k] == pytest.approx(c[k], rel=1e-5)
    assert a["range"] == "P"
    res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "e.csv"), "--json", "--model", "paper"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert set(js) >= {"kernel", "kernel_probability", "p_power", "W", "L", "alpha_xy", "alpha_z"}
    res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "e.csv"), "--model", "paper"])
    assert res.exit_code == 0 and "alpha_xy" in res.stdout


class _FixedForest:
    """A saved forest's stand-in that gives fixed class probabilities."""

    def __init__(self, classes, p):
        self.classes_, self.p = np.array(classes), np.array([p])

    def predict_proba(self, X):
        return self.p


@pytest.mark.parametrize("kernel3, p_power, kernel, p_kernel", [
    # the 3-class forest's plurality is the power law, below one half; the P-vs-NP forest says NP
    ((0.28, 0.42, 0.30), 0.45, "rkky", 0.55 * 0.30 / 0.58),
    # its plurality is gaussian; the P-vs-NP forest says P
    ((0.45, 0.36, 0.19), 0.60, "power", 0.60),
    ((0.30, 0.34, 0.36), 0.50, "power", 0.50),
])
def test_paper_prediction_never_contradicts_itself(learned, synthetic, tmp_path, monkeypatch, kernel3, p_power,
                                                   kernel, p_kernel):
    """--model paper: the range from the P-vs-NP forest (P iff p_power >= 0.5, the SMOTE-balanced
    classes' threshold), then the kernel within it from the 3-class forest; the probabilities
    shown are that one distribution."""
    out, _ = learned
    np.save(tmp_path / "e.npy", synthetic.records[0][0])
    loaded = EchoModels.model
    fixed = {Task.KERNEL3: _FixedForest(["gaussian", "power", "rkky"], kernel3),
             Task.PVNP: _FixedForest(["NP", "P"], (1 - p_power, p_power))}
    monkeypatch.setattr(EchoModels, "model", lambda self, task: (fixed[task], {}) if task in fixed
                        else loaded(self, task))
    res = predict_file(out, tmp_path / "e.npy")
    assert res["kernel"] == kernel and (res["range"] == "P") == (kernel == "power") == (p_power >= 0.5)
    assert res["p_power"] == pytest.approx(p_power) and res["p_power_threshold"] == 0.5
    assert res["kernel_probability"] == pytest.approx(p_kernel)
    assert res["kernel_probabilities"]["power"] == pytest.approx(p_power)
    assert sum(res["kernel_probabilities"].values()) == pytest.approx(1.0)


def _bad_files(tmp_path, synthetic):
    M = np.abs(synthetic.records[0][0]).astype(float)
    t = synthetic.dt_us * np.arange(1, len(M) + 1)
    nan = M.copy()
    nan[10] = np.nan
    pl.DataFrame({"t_us": t, "abs_M": nan}).write_csv(tmp_path / "nan.csv")
    pl.DataFrame({"t_us": t[: len(t) // 2], "abs_M": M[: len(t) // 2]}).write_csv(tmp_path / "short.csv")
    pl.DataFrame({"t_us": t, "M": M}).write_csv(tmp_path / "cols.csv")
    np.save(tmp_path / "shape.npy", np.zeros((4, 5, 6)))
    np.save(tmp_path / "len.npy", np.zeros(17))
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "junk.csv").write_text("not,a\ncsv\x00\x01")
    return {"nan.csv": "NaN", "short.csv": "does not cover", "cols.csv": "needs columns",
            "shape.npy": "shape", "len.npy": "samples", "nan.npy": "NaN", "junk.csv": ""}


def test_predict_rejects_bad_files_with_one_line(learned, synthetic, tmp_path):
    out, _ = learned
    for name, phrase in _bad_files(tmp_path, synthetic).items():
        res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / name), "--model", "paper"])
        assert res.exit_code == 2, (name, res.output)
        # one message (rich may soft-wrap it at the test console's 80 columns), no traceback
        text = " ".join(res.output.split())
        assert text.startswith("error:") and text.count("error:") == 1, (name, res.output)
        assert "Traceback" not in res.output and phrase in text, (name, text)


def test_learn_cli_rejects_missing_dataset(tmp_path):
    res = CliRunner().invoke(app, ["learn", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error:" in res.output


def test_learn_is_reproducible_from_seed(tmp_path):
    from pyecho.learn.pipeline import Budget, run_learn

    tiny = Budget(rf_trees=10, aux_trees=5, cv_folds=2, prune_cv_folds=0, svm_max_train=100,
                  vae_full_hidden=(8,), vae_window_hidden=(8,), vae_max_epochs=2, vae_batch=32,
                  kmeans_max_samples=100, candidates=("linear", "minirocket", "cnn"), rocket_kernels=168,
                  cnn_max_epochs=2, validation_size=0.15, calibration_size=0.2)
    ds = make_synthetic_dataset(LEARNED_SIZE, seed=3)
    m1 = run_learn(ds, tmp_path / "a", quick=True, seed=5, window=120, budget=tiny).metrics
    m2 = run_learn(ds, tmp_path / "b", quick=True, seed=5, window=120, budget=tiny).metrics
    for k in ("headline", "leak_comparison", "model_scores"):
        assert m1[k] == m2[k], k
    for k in ("zoo", "regression", "leak", "candidates", "pruning", "wscreen"):
        assert _without_timings(m1["results"][k]) == _without_timings(m2["results"][k]), k


def _without_timings(obj):
    """A metrics subtree without wall-clock fields (the only thing allowed to differ between runs)."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "fit_seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def test_beyond_the_paper_stages(learned):
    """Candidates chosen on validation rows, calibrated intervals, the learning curves."""
    out, run = learned
    r = run.results
    c = r.candidates
    rows = c.rows
    for a, b in ((rows.fit, rows.validation), (rows.fit, rows.calibration), (rows.validation, rows.calibration),
                 (rows.fit, rows.test), (rows.calibration, rows.test)):
        assert not set(a.tolist()) & set(b.tolist())
    assert {run.name for run in c.runs} == set(QUICK_CANDIDATES)
    for task in ("pvnp", "kernel3", "W", "L", "alpha_xy", "alpha_z"):  # each task's own choice, on validation
        chosen = c.headline.for_task(task)
        assert max(c.runs, key=lambda x: x.validation.selection_score(task)).name == chosen
    assert [s.snr for s in c.runs[0].test] == [np.inf, 200.0, 50.0, 20.0]
    assert len(r.candidate_seeds.results) == len(SEEDS) and r.hahn_seeds is None  # the protocol is the Hahn echo
    assert {cov.target for cov in c.calibrated.coverage} == {"W", "L", "alpha_xy", "alpha_z"}
    assert {cov.snr for cov in c.calibrated.coverage} == {np.inf, 200.0, 50.0, 20.0}
    sizes = sorted({p.n_train for p in r.curves.points})
    assert sizes == [40, 80, 120] and len(r.curves.models) == 1 + len(QUICK_CANDIDATES)
    assert (out / "models" / "headline" / "predictor.json").exists()
    text = (out / "report.md").read_text()
    for section in ("The table", "Beyond the paper", "Calibrated uncertainty", "Which measurements tell what",
                    "Learning curves"):
        assert f"## {section}" in text


def test_noise_draws_are_independent_between_snr_columns():
    """The test columns at SNR 200, 50 and 20 are not one noise draw scaled three ways."""
    from pyecho.learn.models.candidates import noise_streams
    from pyecho.data.records import NoisyRecords

    seeds = noise_streams(0)
    assert len(set(seeds.values())) == len(seeds)
    clean = (np.ones((2, 1000), np.complex128),)

    def noise(stream: str, seeds=seeds) -> np.ndarray:
        return NoisyRecords(clean, np.arange(2), np.full(2, 50.0), np.arange(2), seeds[stream]).materialize()[0] - 1

    a, b = noise("test 200"), noise("test 50")
    assert abs(np.corrcoef(a.real.ravel(), b.real.ravel())[0, 1]) < 0.1
    np.testing.assert_array_equal(noise("test 200", noise_streams(0)), a)  # reproducible from the split's seed


def test_a_protocol_is_learned_from_every_measurement_and_against_the_hahn_echo_alone(learned_protocol):
    out, run = learned_protocol
    r = run.results
    c, h = r.candidates, r.hahn_seeds.results[0]
    assert c.label == "hahn@90/40,cpmg:3@90/40" and h.label == "Hahn 90° alone"
    np.testing.assert_array_equal(c.rows.test, h.rows.test)  # the same samples and split
    assert "t2_us" in c.headline.targets and "t2_us" in h.headline.targets  # T2 is learned where it varies
    iv = c.calibrated.calibration.interval("t2_us")
    lo, hi = iv.interval(np.array([1000.0]), np.array([1e9]))
    assert lo[0] < 1000.0 < hi[0] and hi[0] / 1000.0 == pytest.approx(1000.0 / lo[0])  # a factor either way
    assert r.measurements.selection is not None
    assert [len(e.measurements) for e in r.measurements.selection.path] == [1, 2]
    assert r.measurements.identifiability.protocols == ("Hahn 90° alone", "the protocol")
    text = (out / "report.md").read_text()
    assert "best here, Hahn 90° alone" in text and "log10 t2_us" in text
    header = json.loads((out / "models" / "headline" / "predictor.json").read_text())
    assert header["protocol"] == "hahn@90/40,cpmg:3@90/40" and header["dead_time_us"] == 20.0


def test_learn_refuses_a_dataset_too_small_for_calibration_before_any_work(tmp_path):
    """90 samples leave 4 calibration rows per kernel (QUICK): one user error, no output directory."""
    from pyecho.data.store import DatasetError
    from pyecho.learn.pipeline import run_learn

    out = tmp_path / "o"
    with pytest.raises(DatasetError, match=r"the dataset has 90 samples; .* need 10 of each: simulate at least"):
        run_learn(make_synthetic_dataset(90), out, quick=True, seed=0, n_jobs=1, window=WINDOW)
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the peak is read from Linux's /proc")
def test_stage_peaks_restart_and_the_run_peak_is_the_largest():
    """A stage that held 400 MB reports it; the next stage, holding nothing, does not; the run's
    peak is the first stage's (not the last stage's, which is all /usr/bin/time would show)."""
    from pyecho.learn.pipeline import _Stages
    from pyecho.learn.results import run_peak_rss_gb

    with _Stages(("big", "small"), console=None) as st:
        st.start("big")
        held = np.ones(50_000_000)  # 0.4 GB, touched
        del held
        st.start("small")
    big, small = st.times
    assert big.peak_rss_gb - small.peak_rss_gb > 0.3
    assert run_peak_rss_gb(st.times) == big.peak_rss_gb

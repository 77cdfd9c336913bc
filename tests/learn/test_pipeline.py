import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pyecho.learn.predict import EchoModels, dump_model, load_model, predict_file
from pyecho_cli.app import app

from .conftest import make_synthetic_dataset


def test_learn_end_to_end_writes_report_metrics_models(learned):
    out, metrics = learned
    for key in ("f1_power_vs_nonpower", "r2_W", "r2_L", "r2_alpha_xy", "r2_alpha_z"):
        assert key in metrics and np.isfinite(metrics[key])
    assert metrics["f1_power_vs_nonpower"] > 0.9  # the synthetic classes differ obviously
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["f1_power_vs_nonpower"] == metrics["f1_power_vs_nonpower"]
    assert set(on_disk["table1_f1"]) >= {"Logistic regression", "Random forest", "Kernel SVM (RBF)"}
    text = (out / "report.md").read_text()
    assert "0.82" in text and "Table I" in text
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figs) >= 12
    for p in text.split("(figures/")[1:]:
        assert (out / "figures" / p.split(")")[0]).exists()
    man = json.loads((out / "models" / "manifest.json").read_text())
    assert man["layout"]["window"][1] - man["layout"]["window"][0] == 120
    assert not list(out.rglob("*.tmp"))


def test_models_round_trip_through_skops(learned, synthetic, tmp_path):
    out, _ = learned
    models = EchoModels(out)
    X = models.layout.features(models.layout.normalise(synthetic.M))["pointwise"].to_numpy()
    for key in ("pvnp", "kernel3", "W", "alpha_z"):
        m, entry = models.model(key)
        dump_model(m, tmp_path / "m.skops")
        m2 = load_model(tmp_path / "m.skops")
        if hasattr(m, "predict_proba"):
            np.testing.assert_array_equal(m.predict_proba(X), m2.predict_proba(X))
        np.testing.assert_array_equal(m.predict(X), m2.predict(X))


def test_predict_csv_npy_agree(learned, synthetic, tmp_path):
    out, _ = learned
    M = synthetic.M[1]  # a power-law echo
    t = synthetic.t_us
    pl.DataFrame({"t_us": t, "re_M": M.real.astype(float), "im_M": M.imag.astype(float),
                  "abs_M": np.abs(M).astype(float)}).write_csv(tmp_path / "e.csv")
    np.save(tmp_path / "e.npy", M)
    np.save(tmp_path / "e2.npy", np.stack([M.real, M.imag], 1))
    a = predict_file(out, tmp_path / "e.csv")
    b = predict_file(out, tmp_path / "e.npy")
    c = predict_file(out, tmp_path / "e2.npy")
    for k in ("kernel", "range", "W", "L"):
        assert a[k] == pytest.approx(b[k], rel=1e-5) and b[k] == pytest.approx(c[k], rel=1e-5)
    assert a["range"] == "P"
    res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "e.csv"), "--json"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert set(js) >= {"kernel", "kernel_probability", "p_power", "W", "L", "alpha_xy", "alpha_z"}
    res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "e.csv")])
    assert res.exit_code == 0 and "alpha_xy" in res.stdout


def _bad_files(tmp_path, synthetic):
    t, M = synthetic.t_us, np.abs(synthetic.M[0]).astype(float)
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
        res = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / name)])
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
                  kmeans_max_samples=100, hgb_max_iter=10)
    ds = make_synthetic_dataset(60, seed=3)
    m1 = run_learn(ds, tmp_path / "a", quick=True, seed=5, window=120, budget=tiny)
    m2 = run_learn(ds, tmp_path / "b", quick=True, seed=5, window=120, budget=tiny)
    for k in ("f1_power_vs_nonpower", "r2_W", "r2_L", "table1_f1", "beyond_paper_hgb"):
        assert m1[k] == m2[k]

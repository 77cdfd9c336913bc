"""`pyecho fit` and `pyecho limits` from the command line: outputs, resume, one-line errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import pyecho.fit.batch as batch
from pyecho import simulate_batch
from pyecho.data.sampling import DatasetConfig, draw_sample
from pyecho.fit.defaults import DEFAULT_FAMILY_RULE, FIT_MEAN_DRAWS
from pyecho.fit.space import PRIOR_FILE, save_prior
from pyecho.learn.predictor import HEADLINE_DIR
from pyecho_cli.app import app

#: `learned_protocol`'s measurements (tests/conftest.py) as a prior on 8 x 8
PRIOR = DatasetConfig(lattice=8, protocol="hahn@90/40,cpmg:3@90/40", n_per_kernel=1, part_size=1,
                      alpha_xy_range=(0.03, 0.08), alpha_z_range=(0.02, 0.06), w_range=(0.08, 0.22),
                      xi_range=(1.5, 3.5), p_range=(1.2, 2.8), gamma_range=(4.0, 6.0), t2_us_range=(300.0, 3000.0),
                      linewidth_khz=20.0)
#: the quick settings of every fit here
QUICK_FIT = ["--draws", "2", "--mean-draws", "2", "--more-draws", "2", "--check-draws", "8", "--executor", "serial",
             "--families", "power,gaussian"]


def invoke(*args):
    return CliRunner().invoke(app, [*args], env={"COLUMNS": "1000"})


def one_error_line(res, *phrases: str) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for phrase in phrases:
        assert phrase in lines[0], res.output
    return lines[0]


@pytest.fixture(scope="module")
def model_and_records(learned_protocol, tmp_path_factory):
    """A learned model with this prior saved beside it, and two samples' records (one NPY per
    measurement, (B, T), the first 20 µs after each pulse missing as a receiver gives them)."""
    root = tmp_path_factory.mktemp("fit_cli")
    model = root / "model"
    shutil.copytree(learned_protocol[0], model)
    save_prior(PRIOR, model / "models" / HEADLINE_DIR)
    params = [draw_sample(PRIOR.replace(n_per_kernel=2, part_size=2), i) for i in (2, 3)]  # power samples
    files = []
    for k, m in enumerate(PRIOR.protocol):
        M = simulate_batch([m.apply(p) for p, _ in params], seeds=[int(s) for _, s in params])
        t = PRIOR.dt_us * np.arange(1, M.shape[1] + 1)
        M[:, t <= 20.0] = np.nan
        files.append(root / f"m{k + 1}.npy")
        np.save(files[-1], M)
    return model, files


@pytest.fixture(scope="module")
def fitted_run(model_and_records, tmp_path_factory):
    """The two records fitted once into a run folder (each fit costs about a minute here: the
    tests below read this run back, resume it or copy it rather than fit again)."""
    model, files = model_and_records
    out = tmp_path_factory.mktemp("fit_run") / "run"
    res = invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def no_refitting(monkeypatch):
    """A record already in the run folder is read back, never fitted again."""
    monkeypatch.setattr(batch, "fit_one_family", lambda *a: pytest.fail("refitted a finished record"))


def test_fit_writes_a_table_records_and_figures_and_resumes(model_and_records, fitted_run, tmp_path, no_refitting):
    model, files = model_and_records
    out = tmp_path / "run"
    shutil.copytree(fitted_run, out)
    table = pl.read_csv(out / "fits.csv")
    assert table["index"].to_list() == [0, 1]
    for column in ("kernel", "p_gaussian", "p_power", "p_rkky", "fits", "chi2_per_dof", "L", "L_lo", "L_hi",
                   "kernel_param", "W_lo", "t2_us_hi", "chi2_m1", "chi2_m2", "families", "seconds"):
        assert column in table.columns, column
    assert table["families"].to_list() == ["power,gaussian"] * 2 and np.all(table["p_rkky"].to_numpy() == 0)
    assert np.allclose((table["p_gaussian"] + table["p_power"]).to_numpy(), 1.0)
    assert ((table["L_lo"] <= table["L"]) & (table["L"] <= table["L_hi"])).all()
    assert sorted(p.name for p in (out / "records").iterdir()) == ["record-000000.json", "record-000001.json"]
    assert (out / "figures" / "record-000001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a rerun reads the finished records back instead of fitting them again
    again = invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT)
    assert again.exit_code == 0, again.output
    assert pl.read_csv(out / "fits.csv").equals(table)
    # ... and a run folder with other settings is refused, naming them
    one_error_line(invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT, "--seed", "3"),
                   f"--out {out}", "other settings (seed: 0 there, 3 now)")
    # a run written before --more-draws, --family-rule and --steering-draws existed kept none: it
    # had no plain draws, read its families by the reference rule and steered by every mean draw,
    # and resumes with those only
    run_file = out / "fit.json"
    old = json.loads(run_file.read_text())
    old["settings"].pop("more_draws")
    old["settings"].pop("family_rule")
    old["settings"].pop("steering_draws")  # all of its two mean draws steered: as --steering-draws 2
    run_file.write_text(json.dumps(old))
    assert invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT, "--more-draws", "0",
                  "--family-rule", "reference").exit_code == 0
    more_draws = QUICK_FIT[QUICK_FIT.index("--more-draws") + 1]
    one_error_line(invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT),
                   f"--out {out}", f"other settings (more_draws: 0 there, {more_draws} now; "
                   f"family_rule: reference there, {DEFAULT_FAMILY_RULE} now)")


def test_a_refusal_names_what_only_the_folder_holds():
    """A folder written by a newer version may hold settings (or parts) this one does not write:
    the refusal names them too, not empty parentheses."""
    wanted = {"settings": {"seed": 0, "draws": 8}, "families": ["power"]}
    have = {"settings": {"seed": 0, "draws": 8, "window": {"us": 3}, "tempering": 2}, "families": ["power"],
            "prior": "range"}
    assert batch.differences(have, wanted) == ["window", "tempering: 2 there, none now", "prior"]
    assert batch.differences(wanted, wanted) == []


def test_fit_one_record_prints_a_table(model_and_records, fitted_run, tmp_path, no_refitting):
    """One record (here read back from a run without its figures) is printed as a table."""
    model, files = model_and_records
    out = tmp_path / "run"
    (out / "records").mkdir(parents=True)
    shutil.copy(fitted_run / "records" / "record-000001.json", out / "records")
    res = invoke("fit", str(model), *map(str, files), "--row", "1", "--out", str(out), "--no-figures", *QUICK_FIT)
    assert res.exit_code == 0, res.output
    assert "pyecho fit: record 1" in res.output and "χ²/dof" in res.output and "90% interval" in res.output
    assert not (out / "figures").exists()


@pytest.mark.parametrize("args, phrases", [
    (["--families", "exponential"], ["--families: got exponential", "gaussian,power,rkky"]),
    (["--min-probability", "1.5"], ["--min-probability: got 1.5", "[0, 1)"]),
    (["--draws", "1"], ["--draws: got 1", f"need at least mean_draws ({FIT_MEAN_DRAWS})"]),
    (["--mean-draws", "1"], ["--mean-draws: got 1", "need at least 2"]),
    (["--steering-draws", "0"], ["--steering-draws: got 0", f"from 1 to mean_draws ({FIT_MEAN_DRAWS})"]),
    (["--mean-draws", "3", "--steering-draws", "4"], ["--steering-draws: got 4", "from 1 to mean_draws (3)"]),
    (["--mean-draws", "12"], ["--draws: got 8", "need at least mean_draws (12)"]),
    (["--more-draws", "-1"], ["--more-draws: got -1", "at least 0"]),
    (["--check-draws", "3"], ["--check-draws: got 3", "at least 8"]),
    (["--level", "1.2"], ["--level: got 1.2"]),
    (["--family-rule", "best"], ["--family-rule: got 'best'", "reference, every, own"]),
    (["--lattice", "2"], ["--lattice: got 2"]),
    (["--executor", "cloud"], ["--executor", "'cloud'"]),
])
def test_fit_bad_options_are_one_line(model_and_records, tmp_path, args, phrases):
    model, files = model_and_records
    one_error_line(invoke("fit", str(model), *map(str, files), "--out", str(tmp_path / "run"), *args), *phrases)
    assert not (tmp_path / "run").exists()


def test_fit_needs_the_prior_beside_the_model(model_and_records, tmp_path):
    model, files = model_and_records
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "models" / HEADLINE_DIR / PRIOR_FILE).unlink()
    one_error_line(invoke("fit", str(bare), *map(str, files)), "holds no prior.json", "rerun pyecho learn")


def test_limits_map_and_point(tmp_path):
    out = tmp_path / "limits"
    res = CliRunner().invoke(app, ["limits", "--preset", "quick-range", "--lattice", "8", "--points", "1",
                                   "--more-draws", "0", "--kernels", "power,rkky", "--out", str(out), "--device", "cpu"],
                             env={"COLUMNS": None})  # as written to a file: no terminal, no width given
    assert res.exit_code == 0, res.output
    shown = [line for line in res.output.splitlines() if line.startswith("│ power")]
    assert len(shown) == 1 and "…" not in shown[0], res.output  # not a terminal: whole numbers, one line a row
    rows = pl.read_csv(out / "limits.csv")
    assert rows["kernel"].to_list() == ["power", "rkky"] and np.all(rows["L_sd"].to_numpy() > 0)
    assert rows["protocol"][0] == "cpmg:3@90/100,hahn@75/100,cpmg:8@90/25" and rows["lattice"][0] == 8
    assert (out / "limits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    point = invoke("limits", "--preset", "quick-range", "--lattice", "8", "--more-draws", "0", "--protocol", "hahn@90",
                   "--at", "power:kernel_param=2,t2_us=1000", "--separation", "--kernels", "power,rkky",
                   "--out", str(tmp_path / "point"), "--device", "cpu")
    assert point.exit_code == 0, point.output
    one = pl.read_csv(tmp_path / "point" / "limits.csv")
    assert one.height == 1 and one["kernel_param"][0] == 2.0 and one["t2_us"][0] == pytest.approx(1000.0)
    pairs = pl.read_csv(tmp_path / "point" / "separation.csv")
    assert pairs["kernel"].to_list() == ["power"] and pairs["other"].to_list() == ["rkky"]
    assert np.all(pairs["distance2"].to_numpy() > 0) and np.all(pairs["error_rate"].to_numpy() < 0.5)
    assert "Family separation" in point.output


@pytest.mark.parametrize("args, phrases", [
    (["--snr", "0"], ["--snr: got 0"]),
    (["--kernels", "uniform"], ["--kernels: got 'uniform'"]),
    (["--preset", "nope"], ["--preset: got 'nope'"]),
    (["--protocol", "hahn@200"], ["--protocol", "ANGLE_DEG"]),
    (["--at", "power:p=2"], ["p: not a fitted parameter"]),
    (["--at", "power:kernel_param"], ["--at: 'kernel_param' must be NAME=NUMBER"]),
    (["--at", "power:kernel_param=nan"], ["--at: 'kernel_param=nan' must be NAME=NUMBER"]),
    (["--at", "sinc:kernel_param=2"], ["--at: family 'sinc'"]),
    (["--at", "power:kernel_param=9"], ["--at: kernel_param: got 9; the power prior allows"]),
    (["--at", "power:t2_us=1"], ["--at: t2_us: got 1; the power prior allows"]),
])
def test_limits_bad_options_are_one_line(tmp_path, args, phrases):
    one_error_line(invoke("limits", "--preset", "quick-range", "--lattice", "8", "--out", str(tmp_path / "o"), *args),
                   *phrases)
    assert not (tmp_path / "o").exists()


def test_record_result_round_trips(fitted_run):
    """What a run folder keeps of a record reads back equal (the resume relies on it)."""
    text = (fitted_run / "records" / "record-000000.json").read_text()
    result = batch.RecordResult.from_json(text)
    assert json.loads(result.to_json()) == json.loads(text)


def test_a_truncated_record_file_is_one_line_on_resume(model_and_records, fitted_run, tmp_path, no_refitting):
    """A record file cut short (a copy gone wrong) stops the resume with one line naming it; the
    run folder is left as it was."""
    model, files = model_and_records
    out = tmp_path / "run"
    shutil.copytree(fitted_run, out)
    broken = out / "records" / "record-000001.json"
    broken.write_text(broken.read_text()[:200])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    res = invoke("fit", str(model), *map(str, files), "--out", str(out), *QUICK_FIT)
    # after the lines saying how the inputs were read, one error line and no traceback
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and res.output.rstrip().endswith(errors[0]), res.output
    assert "Traceback" not in res.output
    assert "record-000001.json: not a readable fit record" in errors[0] and "delete it to fit" in errors[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

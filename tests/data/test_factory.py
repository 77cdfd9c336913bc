"""Parts on disk: sharding, resume, atomic writes, config checks and the file contract."""
import os

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import pyecho.data.store as store
from pyecho import BackendUnavailable, simulate
from pyecho.data.factory import parse_shard, part_name, part_ranges, plan_run, run_plan
from pyecho.data.sampling import ConfigError, DatasetConfig, draw_sample
from pyecho.data.store import (
    SCHEMA_VERSION,
    DatasetError,
    dataset_schema,
    load_dataset,
    read_metadata,
    scan_dataset,
)

#: 9 samples in parts of 2 -> 5 parts; T = 3 * round(1.0 / 0.16) = 18
TINY = DatasetConfig(n_per_kernel=3, lattice=4, tau_us=1.0, part_size=2)
RUN = {"backend": "torch", "device": "cpu", "batch_size": 2}


def make(out, cfg=TINY, **kwargs):
    """Plan and run ``cfg`` into ``out``; returns the RunResult."""
    return run_plan(plan_run(cfg, out, **{**RUN, **kwargs}))


def frames(path):
    """{part file name: its DataFrame} of a dataset directory."""
    return {p.name: pl.read_parquet(p) for p in sorted(path.glob("part-*.parquet"))}


def assert_same_frames(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The unsharded tiny dataset, written once for the module."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    make(out)
    return out


def test_layout_and_rows(reference):
    assert part_ranges(TINY) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 8)]
    assert sorted(p.name for p in reference.iterdir()) == [part_name(*r) for r in part_ranges(TINY)]
    ds = load_dataset(reference)
    assert ds.M.shape == (9, 18) and ds.M.dtype == np.complex64
    assert ds.labels["sample_id"].to_list() == list(range(9))
    assert ds.labels.schema == pl.Schema({k: v for k, v in dataset_schema(18).items() if not k.startswith("M_")})
    assert ds.labels["kernel"].to_list() == ["gaussian"] * 3 + ["power"] * 3 + ["rkky"] * 3
    assert ds.labels["is_power"].to_list() == [False] * 3 + [True] * 3 + [False] * 3
    assert (ds.labels["alpha_x"] == ds.labels["alpha_y"]).all()
    np.testing.assert_allclose(ds.labels["W"], 2 * ds.labels["alpha_x"] + ds.labels["alpha_z"])
    np.testing.assert_allclose(ds.t_us, 0.16 * np.arange(1, 19))
    assert (ds.n_tau, ds.echo_index) == (6, 11)
    assert np.isclose(ds.t_us[ds.echo_index], 2 * 6 * 0.16)


def test_seed_column_reproduces_each_row(reference):
    ds = load_dataset(reference)
    row = ds.labels.row(4, named=True)
    params, seed = draw_sample(TINY, 4)
    assert seed == row["seed"]
    np.testing.assert_allclose(simulate(params, seed=row["seed"], device="cpu"), ds.M[4], rtol=1e-5, atol=1e-6)


def test_shards_together_equal_the_unsharded_run(reference, tmp_path):
    out = tmp_path / "sharded"
    first = make(out, shard=(1, 2))
    assert [f.name for f in first.files] == [part_name(*r) for r in part_ranges(TINY)[::2]]
    make(out, shard=(2, 2))
    assert_same_frames(frames(out), frames(reference))


def test_resume_skips_done_parts_and_redoes_missing_ones(reference, tmp_path):
    out = tmp_path / "ds"
    make(out)
    (out / part_name(2, 3)).unlink()
    kept_mtime = (out / part_name(0, 1)).stat().st_mtime_ns
    plan = plan_run(TINY, out, **RUN)
    assert plan.todo == ((2, 3),) and plan.samples_done == 7
    result = run_plan(plan)
    assert (result.samples_written, result.samples_skipped) == (2, 7)
    assert (out / part_name(0, 1)).stat().st_mtime_ns == kept_mtime
    assert_same_frames(frames(out), frames(reference))
    assert plan_run(TINY, out, **RUN).todo == ()


def test_interrupted_run_keeps_finished_parts_only(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    real_write = pq.write_table
    calls = []

    def write_then_die(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:  # die half-way through writing the second part
            with open(where, "wb") as fh:
                fh.write(b"PAR1 partial")
            raise KeyboardInterrupt
        real_write(table, where, **kwargs)

    monkeypatch.setattr(store.pq, "write_table", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        make(out)
    assert sorted(os.listdir(out)) == [part_name(0, 1)]
    monkeypatch.setattr(store.pq, "write_table", real_write)
    assert plan_run(TINY, out, **RUN).samples_done == 2


def test_other_config_is_refused_and_overwrite_clears(reference, tmp_path):
    out = tmp_path / "ds"
    make(out, cfg=TINY.replace(n_per_kernel=1))
    with pytest.raises(DatasetError, match="differs in: n_per_kernel") as info:
        plan_run(TINY, out, **RUN)
    assert str(out) in str(info.value)
    make(out, overwrite=True)
    assert_same_frames(frames(out), frames(reference))


def test_sharded_overwrite_only_clears_its_own_parts(tmp_path):
    out = tmp_path / "ds"
    make(out)
    plan = plan_run(TINY, out, shard=(2, 2), overwrite=True, **RUN)
    assert [p.name for p in plan.remove] == [part_name(2, 3), part_name(6, 7)]
    assert plan.todo == ((2, 3), (6, 7))


def test_mixed_configs_in_one_directory_are_an_error(reference, tmp_path):
    other = tmp_path / "other"
    make(other, cfg=TINY.replace(seed=5, n_per_kernel=1))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / part_name(0, 1)).write_bytes((reference / part_name(0, 1)).read_bytes())
    (mixed / part_name(2, 2)).write_bytes((other / part_name(2, 2)).read_bytes())
    with pytest.raises(DatasetError, match=r"part-000002-000002\.parquet.*differs in: n_per_kernel, seed"):
        load_dataset(mixed)


def test_truncated_and_foreign_parts_are_named(reference, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    for name in (part_name(0, 1), part_name(2, 3)):
        (out / name).write_bytes((reference / name).read_bytes())
    bad = out / part_name(2, 3)
    bad.write_bytes(bad.read_bytes()[:200])
    for action in (lambda: load_dataset(out), lambda: scan_dataset(out), lambda: plan_run(TINY, out, **RUN)):
        with pytest.raises(DatasetError, match="part-000002-000003.parquet: not a readable Parquet file"):
            action()
    pl.DataFrame({"x": [1, 2]}).write_parquet(bad)
    with pytest.raises(DatasetError, match="part-000002-000003.parquet: not a pyecho dataset file"):
        load_dataset(out)


def test_metadata_round_trip(tmp_path):
    cfg = TINY.replace(t2_us=40.0, n_per_kernel=1, part_size=3)
    out = tmp_path / "ds"
    make(out, cfg=cfg)
    meta = read_metadata(out)
    assert meta["schema_version"] == SCHEMA_VERSION
    assert (meta["engine"], meta["device"], meta["dtype"]) == ("torch", "cpu", "float32")
    assert (meta["lattice"], meta["tau_us"], meta["dt_us"], meta["t2_us"], meta["seed"]) == (4, 1.0, 0.16, 40.0, 0)
    assert meta["linewidth_khz"] == 8.0 and np.allclose(meta["thetas"], [np.pi / 2])
    assert DatasetConfig.from_dict(meta["config"]) == cfg
    assert (meta["n_parts"], meta["n_rows"]) == (1, 3)
    assert meta["created"].endswith("+00:00")
    assert read_metadata(out / part_name(0, 2))["config"] == meta["config"]


def test_pyarrow_and_pandas_open_a_part(reference):
    part = reference / part_name(0, 1)
    table = pq.read_table(part)
    assert table.num_rows == 2 and b"pyecho.config" in table.schema.metadata
    assert table.column("M_re").type.list_size == 18
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(part)
    assert len(frame) == 2 and len(frame["M_im"].iloc[0]) == 18


def test_load_columns_and_scan(reference):
    ds = load_dataset(reference, columns=["W", "kernel"])
    assert ds.labels.columns == ["sample_id", "W", "kernel"]
    with pytest.raises(ValueError, match="columns: unknown"):
        load_dataset(reference, columns=["M_re"])
    lazy = scan_dataset(reference)
    assert lazy.select(pl.len()).collect().item() == 9
    with pytest.raises(DatasetError, match="no such dataset"):
        scan_dataset(reference / "missing")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shard": (3, 2)}, "shard"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"backend": "fortran"}, "fortran"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_run_options_are_refused_before_any_write(tmp_path, kwargs, message):
    with pytest.raises((ValueError, BackendUnavailable), match=message):
        plan_run(TINY, tmp_path / "ds", **{**RUN, **kwargs})
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("text", ["3/2", "0/2", "1", "a/b", "1/0"])
def test_parse_shard_rejects(text):
    with pytest.raises(ConfigError, match="shard"):
        parse_shard(text)
    assert parse_shard("2/8") == (2, 8)


def test_multi_angle_dataset_round_trips(tmp_path):
    """Every sample at each angle with the same parameters and detunings; one record per sample."""
    cfg = TINY.replace(thetas=(np.pi / 2, np.pi / 4, 1.0), center_khz_range=(-2.0, 2.0), n_per_kernel=2)
    result = make(tmp_path / "ds", cfg)
    assert result.samples_written == 6
    ds = load_dataset(tmp_path / "ds")
    assert ds.series.shape == (6, 3, 18) and ds.M.shape == (6, 18)
    np.testing.assert_allclose(ds.thetas, cfg.thetas)
    assert ds.labels.height == 6 and ds.labels["sample_id"].to_list() == list(range(6))
    centers = ds.labels["center_khz"].to_numpy()
    assert np.all(np.abs(centers) <= 2.0) and len(set(centers)) == 6
    for i in (0, 5):
        params, seed = draw_sample(cfg, i)
        for a, theta in enumerate(cfg.thetas):
            expected = simulate(params.replace(theta=theta), seed=seed, device="cpu")
            np.testing.assert_allclose(ds.series[i, a], expected, rtol=1e-5, atol=1e-6)
    # the rows on disk: one per (sample, angle), each with its own theta
    rows = scan_dataset(tmp_path / "ds").select("sample_id", "angle", "theta").collect()
    assert rows.height == 18 and rows.filter(pl.col("angle") == 1)["theta"].unique().to_list() == [np.pi / 4]
    # a part with a missing angle row is refused, naming the problem
    part = sorted((tmp_path / "ds").glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 1), part)
    with pytest.raises(DatasetError, match="one row per angle"):
        load_dataset(tmp_path / "ds")


def test_every_row_carries_its_echo_params(reference):
    """A row alone reproduces its echo: the experiment's fields are columns."""
    row = scan_dataset(reference).filter(pl.col("sample_id") == 3).collect().row(0, named=True)
    params = store.params_from_row(row)
    assert params == draw_sample(TINY, 3)[0]
    assert (row["scheme"], row["field_every"], row["sequence"], row["geometry"]) == ("extrapolated", 4, "hahn", "square")


@pytest.mark.parametrize(("changes", "option"), [({"thetas": ()}, "thetas"), ({"thetas": (1.0, 1.0)}, "thetas"),
                                                 ({"thetas": "a,b"}, "thetas"), ({"scheme": "rk4"}, "scheme"),
                                                 ({"field_every": 0}, "field_every"),
                                                 ({"sequence": "cpmg:x"}, "sequence"),
                                                 ({"geometry": "cubic"}, "geometry"),
                                                 ({"center_khz_range": (3.0, 1.0)}, "center_khz_range"),
                                                 ({"gamma2_per_us": -1.0}, "gamma2_per_us")])
def test_new_config_fields_are_validated(changes, option):
    with pytest.raises(ConfigError) as info:
        TINY.replace(**changes)
    assert info.value.option == option

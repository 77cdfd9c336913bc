"""Parts on disk: sharding, resume, atomic writes, config checks and the file contract."""
import math
import os

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pyecho.data.store as store
from pyecho import BackendUnavailable, simulate, simulate_batch
from pyecho.data.factory import (
    parse_shard,
    part_name,
    part_ranges,
    plan_run,
    run_plan,
    simulate_part,
    write_one_part,
)
from pyecho.data.sampling import ConfigError, DatasetConfig, draw_sample, draw_samples
from pyecho.data.store import (
    SCHEMA_VERSION,
    DatasetError,
    dataset_schema,
    load_dataset,
    read_metadata,
    scan_dataset,
)
from pyecho.physics.protocol import Protocol

#: 9 samples in parts of 2 -> 5 parts; T = 3 * round(1.0 / 0.16) = 18
TINY = DatasetConfig(n_per_kernel=3, lattice=4, protocol="hahn@90/1", part_size=2)
#: hahn@90/1 is the beginning of cpmg:2@90/1 (T = 18 of 30); hahn@60/1 is simulated on its own
PREFIX = "hahn@90/1,cpmg:2@90/1,hahn@60/1"
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
    assert ds.records == (ds.M,) and ds.protocol == TINY.protocol and ds.dt_us == 0.16
    assert ds.labels.schema == pl.Schema({k: v for k, v in dataset_schema().items() if not k.startswith("M_")})
    assert ds.labels["measurement"].to_list() == [0] * 9
    assert ds.labels["kernel"].to_list() == ["gaussian"] * 3 + ["power"] * 3 + ["rkky"] * 3
    assert ds.labels["is_power"].to_list() == [False] * 3 + [True] * 3 + [False] * 3
    assert (ds.labels["alpha_x"] == ds.labels["alpha_y"]).all()
    np.testing.assert_allclose(ds.labels["W"], 2 * ds.labels["alpha_x"] + ds.labels["alpha_z"])
    np.testing.assert_allclose(ds.t_us, 0.16 * np.arange(1, 19))
    assert (ds.measurement_params(0).n_tau, ds.echo_index) == (6, 11)
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
    assert (meta["lattice"], meta["dt_us"], meta["t2_us"], meta["seed"]) == (4, 0.16, 40.0, 0)
    assert meta["linewidth_khz"] == 8.0
    assert meta["protocol"] == [{"sequence": "hahn", "theta": np.pi / 2, "tau_us": 1.0}]
    assert Protocol.from_list(meta["protocol"]) == cfg.protocol
    # the measurement's fields are per-row columns, not experiment metadata
    assert not {"tau_us", "theta", "thetas", "sequence"} & meta.keys()
    assert DatasetConfig.from_dict(meta["config"]) == cfg
    assert (meta["n_parts"], meta["n_rows"]) == (1, 3)
    assert meta["created"].endswith("+00:00")
    assert read_metadata(out / part_name(0, 2))["config"] == meta["config"]


def test_pyarrow_and_pandas_open_a_part(reference):
    part = reference / part_name(0, 1)
    table = pq.read_table(part)
    assert table.num_rows == 2 and b"pyecho.config" in table.schema.metadata
    assert pa.types.is_large_list(table.column("M_re").type) or pa.types.is_list(table.column("M_re").type)
    assert table.column("M_re").type.value_type == pa.float32()
    assert [len(r) for r in table.column("M_im").to_pylist()] == [18, 18]
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



# ----------------------------------------------------------------------------- protocols


def test_memory_mapped_records_equal_the_loaded_ones_and_are_reused_until_a_part_changes(tmp_path):
    """load_dataset(mmap_dir=...) reads part by part into .npy files and maps them read-only;
    a complete cache of the same parts is reused, a changed part rebuilds it."""
    cfg = TINY.replace(protocol=Protocol.parse(PREFIX), n_per_kernel=2)
    make(tmp_path / "ds", cfg)
    in_memory = load_dataset(tmp_path / "ds")
    cache = tmp_path / "cache"
    mapped = load_dataset(tmp_path / "ds", mmap_dir=cache)
    assert all(isinstance(r, np.memmap) and not r.flags.writeable for r in mapped.records)
    for a, b in zip(mapped.records, in_memory.records):
        np.testing.assert_array_equal(a, b)
    assert mapped.labels.equals(in_memory.labels)
    stamp = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}
    again = load_dataset(tmp_path / "ds", mmap_dir=cache)
    assert {f.name: f.stat().st_mtime_ns for f in cache.iterdir()} == stamp  # reused, not rewritten
    np.testing.assert_array_equal(again.records[1], in_memory.records[1])
    # a part rewritten with other records: the cache no longer matches and is rebuilt from the parts
    part = sorted((tmp_path / "ds").glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    negated = pl.from_arrow(table).with_columns(pl.col("M_re").list.eval(-pl.element()))
    pq.write_table(negated.to_arrow().replace_schema_metadata(table.schema.metadata), part)
    rebuilt = load_dataset(tmp_path / "ds", mmap_dir=cache)
    np.testing.assert_array_equal(rebuilt.records[0][:2].real, -in_memory.records[0][:2].real)
    np.testing.assert_array_equal(rebuilt.records[0][2:], in_memory.records[0][2:])


def test_protocol_dataset_round_trips(tmp_path):
    """Every sample measured each way with the same parameters and detunings; one row per
    (sample, measurement) on disk, one record array per measurement in memory."""
    thetas = (np.pi / 2, np.pi / 4, math.radians(57.3))  # angles are read to 0.1 degree: 1 rad is 57.3
    protocol = Protocol.of([{"sequence": "hahn", "theta": t, "tau_us": 1.0} for t in thetas])
    cfg = TINY.replace(protocol=protocol, center_khz_range=(-2.0, 2.0), n_per_kernel=2)
    result = make(tmp_path / "ds", cfg)
    assert result.samples_written == 6
    ds = load_dataset(tmp_path / "ds")
    assert len(ds) == 6 and len(ds.records) == 3
    assert [r.shape for r in ds.records] == [(6, 18)] * 3 and ds.M is ds.records[0]
    assert all(r.dtype == np.complex64 for r in ds.records)
    assert ds.protocol == cfg.protocol
    np.testing.assert_allclose(ds.protocol.thetas, thetas)
    assert ds.labels.height == 6 and ds.labels["sample_id"].to_list() == list(range(6))
    assert ds.labels["measurement"].to_list() == [0] * 6  # the labels are the first measurement's rows
    centers = ds.labels["center_khz"].to_numpy()
    assert np.all(np.abs(centers) <= 2.0) and len(set(centers)) == 6
    for i in (0, 5):
        params, seed = draw_sample(cfg, i)
        for k, theta in enumerate(thetas):
            assert math.isclose(cfg.measured(params, k).theta, theta)
            expected = simulate(cfg.measured(params, k), seed=seed, device="cpu")
            np.testing.assert_allclose(ds.records[k][i], expected, rtol=1e-5, atol=1e-6)
    # the measurements differ (the same sample seen at other angles)
    assert np.abs(ds.records[0] - ds.records[1]).max() > 1e-3
    # the rows on disk: one per (sample, measurement), each with its own theta, same seed per sample
    rows = scan_dataset(tmp_path / "ds").select("sample_id", "measurement", "theta", "seed", "center_khz").collect()
    assert rows.height == 18 and rows["measurement"].dtype == pl.Int32
    assert rows.filter(pl.col("measurement") == 1)["theta"].unique().to_list() == [np.pi / 4]
    per_sample = rows.group_by("sample_id").agg(pl.col("seed").n_unique(), pl.col("center_khz").n_unique(),
                                               pl.col("measurement").sort())
    assert per_sample["seed"].to_list() == [1] * 6 and per_sample["center_khz"].to_list() == [1] * 6
    assert all(m == [0, 1, 2] for m in per_sample["measurement"].to_list())
    assert read_metadata(tmp_path / "ds")["n_rows"] == 18
    # a part with a missing measurement row is refused, naming the problem
    part = sorted((tmp_path / "ds").glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 1), part)
    with pytest.raises(DatasetError, match="every sample needs one row per measurement"):
        load_dataset(tmp_path / "ds")
    # ... and so is a resume over it (the part holds too few rows)
    with pytest.raises(DatasetError, match="holds 5 rows, expected 6"):
        plan_run(cfg, tmp_path / "ds", **RUN)


@pytest.mark.parametrize("protocol", [PREFIX, "cp:2@90/1,cpmg:2@90/1,cp:1@90/1,hahn@90/1", "hahn@75/1,hahn@90/1"])
def test_protocol_records_equal_each_measurement_simulated_alone(tmp_path, protocol):
    """The rows of a protocol dataset are exactly what simulate_batch gives for each measurement
    (the same seeds and batch size), also where a measurement is sliced from a longer train."""
    cfg = TINY.replace(protocol=protocol, n_per_kernel=2, part_size=3, t2_us_range=(20.0, 200.0),
                       center_khz_range=(-1.0, 1.0))
    make(tmp_path / "ds", cfg)
    ds = load_dataset(tmp_path / "ds")
    params, seeds = draw_samples(cfg, range(cfg.n_total))
    assert len(ds.records) == cfg.n_measurements
    for k in range(cfg.n_measurements):
        alone = simulate_batch([cfg.measured(p, k) for p in params], seeds=[int(s) for s in seeds],
                               backend="torch", device="cpu", dtype="float32", batch_size=RUN["batch_size"])
        assert ds.records[k].shape == alone.shape == (6, cfg.record_lengths[k])
        np.testing.assert_array_equal(ds.records[k], alone.astype(np.complex64), err_msg=cfg.protocol[k].text)
    # every row stores its own measurement's fields
    rows = scan_dataset(tmp_path / "ds").filter(pl.col("sample_id") == 4).sort("measurement").collect()
    for k, row in enumerate(rows.iter_rows(named=True)):
        assert store.params_from_row(row) == cfg.measured(params[4], k)
        assert len(row["M_re"]) == cfg.record_lengths[k]


def test_prefix_measurements_are_sliced_not_simulated(tmp_path, monkeypatch):
    cfg = TINY.replace(protocol=PREFIX, n_per_kernel=1, part_size=3)
    assert cfg.record_lengths == (18, 30, 18)
    assert cfg.protocol.sources(cfg.dt_us) == (1, 2)
    plan = plan_run(cfg, tmp_path / "ds", **RUN)
    assert plan.samples_todo == 3 and plan.simulations_todo == 3 * 2
    assert plan_run(TINY.replace(protocol="hahn@90/1,hahn@60/1,hahn@45/1"), tmp_path / "x", **RUN).simulations_todo == 27
    import pyecho.data.factory as factory

    calls = []
    real = factory.simulate_batch

    def counting(params, **kwargs):
        calls.append([(p.sequence, round(p.theta, 6)) for p in params])
        return real(params, **kwargs)

    monkeypatch.setattr(factory, "simulate_batch", counting)
    progress = []
    result = run_plan(plan, on_progress=progress.append)
    assert result.samples_written == 3
    assert sum(progress) == plan.simulations_todo
    # one batch per simulated measurement: cpmg:2@90 (hahn@90 is its beginning) and hahn@60
    assert calls == [[("cpmg:2", round(np.pi / 2, 6))] * 3, [("hahn", round(np.pi / 3, 6))] * 3]


def test_simulate_part_and_write_one_part(tmp_path):
    cfg = TINY.replace(protocol=PREFIX, part_size=4)
    frame, spin_steps = simulate_part(cfg, 2, 4, backend="torch", device="cpu", dtype="float32", batch_size=2)
    # rows in (sample, measurement) order
    assert frame.height == 9 and frame.schema == pl.Schema(dataset_schema())
    assert frame["sample_id"].to_list() == [2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert frame["measurement"].to_list() == [0, 1, 2] * 3
    assert frame["sequence"].to_list() == ["hahn", "cpmg:2", "hahn"] * 3
    assert [len(r) for r in frame["M_re"].to_list()] == [18, 30, 18] * 3
    # spins x steps of the simulated measurements only: cpmg:2@90 (30) and hahn@60 (18)
    assert spin_steps == 3 * 4 * 4 * (30 + 18)
    # the Hahn row is the beginning of the CPMG row
    hahn, cpmg = frame.filter(pl.col("sample_id") == 3)["M_re"].to_list()[:2]
    assert hahn == cpmg[:18]
    plan = plan_run(cfg, tmp_path / "ds", **RUN)
    (tmp_path / "ds").mkdir()
    path, steps = write_one_part(plan, 2, 4)
    assert path == tmp_path / "ds" / part_name(2, 4) and steps == spin_steps
    written = pl.read_parquet(path)
    assert written.equals(frame)
    assert read_metadata(path)["protocol"] == cfg.protocol.to_list()


def test_every_row_carries_its_echo_params(reference):
    """A row alone reproduces its echo: the experiment's and the measurement's fields are columns."""
    row = scan_dataset(reference).filter(pl.col("sample_id") == 3).collect().row(0, named=True)
    params = store.params_from_row(row)
    assert params == draw_sample(TINY, 3)[0]
    assert (row["scheme"], row["field_every"], row["sequence"], row["geometry"]) == ("extrapolated", 4, "hahn", "square")
    assert (row["measurement"], row["tau_us"], row["theta"]) == (0, 1.0, np.pi / 2)


def test_measurement_params_of_a_protocol_dataset(tmp_path):
    cfg = TINY.replace(protocol="cpmg:2@90/1,hahn@45/2", n_per_kernel=1, part_size=3)
    make(tmp_path / "ds", cfg)
    ds = load_dataset(tmp_path / "ds", columns=["kernel"])
    assert ds.labels.columns == ["sample_id", "kernel"]
    assert [r.shape for r in ds.records] == [(3, 30), (3, 3 * 12)]
    assert ds.measurement_params(0).echo_samples == (11, 23) and ds.echo_index == 11
    second = ds.measurement_params(1)
    assert (second.sequence, second.tau_us, second.n_samples, second.echo_samples) == ("hahn", 2.0, 36, (23,))
    np.testing.assert_allclose(ds.t_us, 0.16 * np.arange(1, 31))

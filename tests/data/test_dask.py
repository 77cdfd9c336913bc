"""The Dask executor: parts as tasks on a LocalCluster over TCP, equal to the serial run, resumable."""
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import torch
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

import pyecho.data.factory as factory  # noqa: E402
from pyecho.data.factory import Executor, PartsLost, part_name, part_ranges, plan_run, run_plan  # noqa: E402
from pyecho.data.sampling import ConfigError, DatasetConfig  # noqa: E402
from pyecho.data.store import load_dataset  # noqa: E402
from pyecho_cli.app import app  # noqa: E402

#: 12 samples on 6 x 6, three measurements of which two are simulated: 6 parts of 2 samples
CFG = DatasetConfig(n_per_kernel=4, lattice=6, protocol="hahn@90/1,cpmg:2@90/1,hahn@60/1", part_size=2)
#: the same samples in 12 parts of one, so that a run is still going after its first part
FINE = CFG.replace(part_size=1)
RUN = {"backend": "torch", "device": "cpu"}
#: a few-millisecond `pyecho sim` dataset: 2 kernels x 2 samples on 4 x 4, parts of one sample
TINY = ["--preset", "quick", "--lattice", "4", "--tau-us", "1", "--n-per-kernel", "2", "--kernels", "gaussian,power",
        "--part-size", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, reached over TCP, that have imported pyecho (and torch)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        client.run(lambda: __import__("pyecho.data.factory"))
        yield cluster, client


@pytest.fixture
def dask(cluster):
    cluster, client = cluster
    client.wait_for_workers(2)
    return Executor("dask", scheduler=cluster.scheduler_address)


@contextmanager
def one_torch_thread():
    """Run serially on as many torch threads as a worker of the test clusters has (one): the
    engine's batched FFTs round differently at different thread counts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """{config: directory of its serial run}, each written once."""
    runs = {}

    def run(cfg):
        if cfg not in runs:
            runs[cfg] = tmp_path_factory.mktemp("serial") / "ds"
            with one_torch_thread():
                run_plan(plan_run(cfg, runs[cfg], **RUN))
        return runs[cfg]

    return run


def assert_same_rows(a, b):
    """Two datasets hold the same parts and, bit for bit, the same records and labels."""
    assert sorted(p.name for p in a.glob("part-*")) == sorted(p.name for p in b.glob("part-*"))
    da, db = load_dataset(a), load_dataset(b)
    assert len(da.records) == len(db.records) == len(da.protocol)
    for ra, rb in zip(da.records, db.records):
        assert_array_equal(ra, rb)
    assert da.labels.equals(db.labels)


def test_dask_over_tcp_equals_serial(cluster, dask, serial, tmp_path):
    assert dask.scheduler.startswith("tcp://")
    plan = plan_run(CFG, tmp_path / "ds", **RUN)
    progress = []
    result = run_plan(plan, on_progress=progress.append, executor=dask)
    assert sum(progress) == plan.simulations_todo and len(progress) == len(part_ranges(CFG))
    assert result.files == tuple(tmp_path / "ds" / part_name(*r) for r in part_ranges(CFG))
    assert result.samples_written == 12 and result.spin_steps_per_s > 0
    assert_same_rows(tmp_path / "ds", serial(CFG))
    assert not list((tmp_path / "ds").glob(".*"))  # no temporary file left


def test_cancelled_parts_are_reported_and_a_rerun_completes(cluster, dask, serial, tmp_path):
    _, client = cluster
    out = tmp_path / "ds"

    def cancel_the_rest(_):
        """After the first part: cancel every task not finished yet, as a restarted cluster would."""
        if not cancelled:
            keys = client.run_on_scheduler(lambda dask_scheduler: [
                key for key, task in dask_scheduler.tasks.items() if str(key).startswith("pyecho-")
                and task.state != "memory"])
            client.cancel([distributed.Future(key, client) for key in keys], force=True)
            cancelled.extend(keys)

    cancelled = []
    with pytest.raises(PartsLost, match=r"part\(s\) did not come back from the Dask cluster .*cancelled.*rerun the "
                                        "same command to write the rest"):
        run_plan(plan_run(FINE, out, **RUN), on_progress=cancel_the_rest, executor=dask)
    assert cancelled
    again = plan_run(FINE, out, **RUN)
    assert again.done and again.todo  # resumes: some parts are there, the cancelled ones are not
    run_plan(again, executor=dask)
    assert_same_rows(out, serial(FINE))


def test_follow_up_tasks_run_on_the_cluster_as_their_first_ones_finish(cluster):
    """on_done may hand back more tasks (the fit's restarts): each runs, and its result comes back."""
    _, client = cluster
    seen = {}

    def on_done(key, result):
        seen[key] = result
        return {(key, "again"): (result,)} if not isinstance(key, tuple) else None

    lost = factory.map_on_dask(client, abs, {"a": (-2,), "b": (-3,)}, name="follow-up", on_done=on_done)
    assert lost == [] and seen == {"a": 2, "b": 3, ("a", "again"): 2, ("b", "again"): 3}


def test_follow_up_tasks_go_ahead_of_the_first_tasks_still_waiting(cluster):
    """A record is written when its restarts are in: they must not wait for every other record."""
    _, client = cluster
    order = []

    def on_done(key, _):
        order.append(key)
        return {(*key, "again"): (0.05,)} if key == (0, "power") else None

    factory.map_on_dask(client, time.sleep, {(i, "power"): (0.2,) for i in range(16)}, name="ahead", on_done=on_done)
    assert len(order) == 17 and order.index((0, "power", "again")) < 10, order  # without priority: 15


def test_a_task_cancelled_after_it_was_handed_over_is_lost_not_raised(monkeypatch):
    """The race CI met: as_completed hands over a future that is cancelled before its result is
    read (cancelled() was False a moment earlier). It is a lost task, like any cancelled one."""

    class LateCancelled:
        def cancelled(self):
            return False

        def result(self):
            raise distributed.client.FutureCancelledError("k", reason="test")

    class Finished:
        def cancelled(self):
            return False

        def result(self):
            return "value"

        def release(self):
            pass

    class FakeClient:
        id = "fake"

        def submit(self, function, *args, key, **_):
            return LateCancelled() if "a" in args else Finished()

    monkeypatch.setattr(distributed, "as_completed", lambda futures: list(futures))
    done = []
    lost = factory.map_on_dask(FakeClient(), len, {"x": ("a",), "y": ("b",)}, name="t",
                               on_done=lambda key, result: done.append((key, result)))
    assert lost == [("x", "cancelled")] and done == [("y", "value")]


def test_killed_worker_costs_at_most_its_part_in_flight(cluster, dask, serial, tmp_path):
    _, client = cluster
    killed = []

    def kill_a_worker(_):
        """After the first part: kill -9 a worker process, likely in the middle of a part."""
        if not killed:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    result = run_plan(plan_run(FINE, tmp_path / "ds", **RUN), on_progress=kill_a_worker, executor=dask)
    # the scheduler reran the killed worker's part elsewhere: nothing to resume, and the same rows
    assert result.samples_written == 12 and killed
    assert killed[0] not in client.run(os.getpid).values()
    assert_same_rows(tmp_path / "ds", serial(FINE))


def test_an_error_inside_a_task_is_raised_as_is(dask, tmp_path):
    plan = plan_run(CFG, tmp_path / "ds", **RUN)
    (tmp_path / "ds" / part_name(0, 1) / "x").mkdir(parents=True)  # the part's name is taken by a directory
    with pytest.raises(IsADirectoryError):
        run_plan(plan, executor=dask)


def test_auto_device_is_resolved_where_a_part_runs(tmp_path):
    plan = plan_run(CFG, tmp_path / "ds", backend="torch", device="auto")
    assert plan.auto_device and plan.auto_batch_size
    assert plan.here() == plan  # this machine resolved it already
    assert not plan_run(CFG, tmp_path / "ds", **RUN).auto_device


def invoke(*args):
    # wide console: a long error message stays on one line
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "1000"})


def test_cli_sim_on_a_local_cluster_of_two_workers(tmp_path):
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    with one_torch_thread():
        assert invoke("sim", "--out", str(serial), *TINY).exit_code == 0
    result = invoke("sim", "--out", str(dask), *TINY, "--executor", "dask", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "dask on a local cluster of 2 worker(s) x 1 thread(s)" in result.output
    assert "4/4" in result.output and "samples written" in result.output
    assert_same_rows(dask, serial)


def test_cli_sweep_on_a_running_scheduler(dask, tmp_path):
    args = ["sweep", "--axis", "alpha_z=0.01,0.02,0.03", "--lattice", "4", "--tau-us", "1", "--part-size", "1",
            "--device", "cpu"]
    with one_torch_thread():
        assert invoke(*args, "--out", str(tmp_path / "serial")).exit_code == 0
    result = invoke(*args, "--out", str(tmp_path / "dask"), "--executor", "dask", "--scheduler", dask.scheduler)
    assert result.exit_code == 0, result.output
    assert f"dask at {dask.scheduler}" in result.output
    assert_same_rows(tmp_path / "dask", tmp_path / "serial")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [["sim", *TINY], ["sweep", "--axis", "alpha_z=0.01,0.02", "--lattice", "4"],
                                     ["design", "--cache", "c", "--lattice", "4"]], ids=["sim", "sweep", "design"])
@pytest.mark.parametrize("options, line", [
    (["--executor", "spark"], "error: --executor: got 'spark'; allowed: serial, dask"),
    (["--scheduler", "tcp://10.0.0.5:8786"], "error: --scheduler: only used with executor dask; got executor 'serial'"),
    (["--workers", "2"], "error: --workers: only used with executor dask; got executor 'serial'"),
    (["--executor", "dask", "--workers", "0"], "error: --workers: got 0; must be an integer >= 1"),
    (["--executor", "dask", "--scheduler", "10.0.0.5"], "error: --scheduler: got '10.0.0.5'; must be tcp://HOST:PORT"),
    (["--executor", "dask", "--scheduler", "tcp://10.0.0.5:8786", "--workers", "2"],
     "error: --workers: sizes the local cluster; the cluster at a scheduler has its own workers"),
], ids=["executor", "scheduler-serial", "workers-serial", "workers-0", "address", "workers-and-scheduler"])
def test_bad_executor_options_are_one_line(tmp_path, command, options, line):
    out = tmp_path / "out"
    result = invoke(*command, "--out", str(out), *options)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.output
    assert not out.exists()


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(factory, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "ds"
    result = invoke("sim", "--out", str(out), *TINY, "--executor", "dask", "--scheduler", address)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert errors == [f"error: --scheduler: no Dask scheduler answered at {address} within 1 s; start one (dask "
                      "scheduler) or check the address"]
    assert not out.exists()


def test_executor_checks_its_options():
    with pytest.raises(ConfigError, match="workers: got True"):
        Executor("dask", workers=True)
    with pytest.raises(ConfigError, match="executor: got 'Dask'"):
        Executor("Dask")
    assert Executor("dask", scheduler="localhost:8786").scheduler == "localhost:8786"
    from dask.system import CPU_COUNT as cores
    assert Executor("dask").local_cluster("cpu") == (1, cores)  # one worker, every core its threads
    assert Executor("dask", workers=2).local_cluster("cpu") == (2, max(1, cores // 2))
    assert Executor("dask").local_cluster("cuda") == (1, cores)  # one worker per machine shares its GPU


def test_serial_runs_never_import_dask(tmp_path):
    code = ("import sys; from pyecho_cli.app import app; from pyecho.data.factory import plan_run, run_plan; "
            "from pyecho.data.sampling import DatasetConfig; "
            f"run_plan(plan_run(DatasetConfig(n_per_kernel=1, lattice=4, protocol='hahn@90/1'), {str(tmp_path)!r}, "
            "device='cpu')); assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

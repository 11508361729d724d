"""The Ray executor on a real local Ray (2 CPUs): engines routed through runtime_env, persistent
actors, records written once to the shared results folder, resume, and the CLI joining a cluster."""

from __future__ import annotations

import collections
import io
import os

import pytest

from ablate.catalog import parse_grid
from ablate.execution.progress import Progress
from ablate.execution.store import RunStore
from tests.helpers import cli_env, grid_values
from tests.test_hardening_store import _run_past_its_timeout

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from ablate.execution.executors.ray import plan_capacity, run_ray  # noqa: E402


def test_capacity_follows_the_cluster():
    slots, request, threads = plan_capacity({"CPU": 16.0, "GPU": 2.0}, gpus=None, per_gpu=4, workers=None)
    assert (slots, request["num_gpus"], threads) == (8, 0.25, 2)
    slots, request, _ = plan_capacity({"CPU": 16.0, "GPU": 2.0}, gpus=0, per_gpu=4, workers=None)
    assert slots == 16 and request == {"num_cpus": 1}
    slots, request, threads = plan_capacity({"CPU": 16.0}, gpus=None, per_gpu=1, workers=4)
    assert slots == 4 and request == {"num_cpus": 4} and threads == 4


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def _grid(backends):
    return parse_grid(grid_values("rayg", data=(200, 100), backends=backends))


def test_ray_runs_a_small_grid_once_on_persistent_actors(local_ray, tmp_path):
    backends = ["torch"]
    try:
        import keras  # noqa: F401  # the spec only; the engine is chosen inside each actor

        backends.append("keras/torch")
    except ImportError:
        pass
    runs = _grid(backends).runs()
    store = RunStore(tmp_path, "rayg")
    out = io.StringIO()
    summary = run_ray(runs, store=store, results=tmp_path, progress=Progress(total=len(runs), stream=out, live=False))
    assert (summary.completed, summary.failed, summary.diverged) == (len(runs), 0, 0), out.getvalue()
    records = {r.run_id: store.read_record(r.run_id).record for r in runs}
    assert {r["status"] for r in records.values()} == {"completed"}
    pids = collections.defaultdict(set)
    for rec in records.values():
        env = rec["environment"]
        pids[rec["config"]["backend"]].add(env["worker_pid"])
        assert env["worker_pid"] != os.getpid() and env["device"] == "cpu"
        assert env["cuda_visible_devices"] == ""  # CPU actors are given no GPU
        if rec["config"]["backend"] == "keras/torch":
            assert env["engine"] == "torch"  # KERAS_BACKEND came through the actor's runtime_env
    # an actor imports its framework once and serves several runs
    assert all(len(p) < len([r for r in runs if r.backend == b]) for b, p in pids.items())
    assert max(r["environment"]["worker_run"] for r in records.values()) >= 2
    assert all((store.run_dir(rid) / "log.txt").exists() for rid in records)

    # a second sweep finds everything stored and executes nothing
    again = run_ray(runs, store=store, results=tmp_path, progress=Progress(total=0, stream=io.StringIO(), live=False))
    assert (again.completed, again.skipped) == (0, len(runs))
    assert {rid: store.read_record(rid).record["finished_at"] for rid in records} == \
        {rid: rec["finished_at"] for rid, rec in records.items()}


def test_a_run_past_its_timeout_is_stored_failed_and_its_actor_replaced(local_ray, tmp_path):
    _run_past_its_timeout(run_ray, tmp_path, "rayto")


def test_cli_joins_a_running_cluster(local_ray, tmp_path, write_grid, run_cli):
    grid = write_grid(study="raycli", data=(200, 100), seeds=3)
    proc = run_cli("run", grid, "--results", tmp_path, "--executor", "ray", "--address", "auto", "--seeds", "0-1",
                   timeout=240, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "4 run(s) to do" in proc.stderr and "4 completed" in proc.stderr
    statuses = RunStore(tmp_path, "raycli").statuses()
    assert sorted(statuses.values()) == ["completed"] * 4


def test_a_node_lost_mid_grid_every_run_is_stored_once(tmp_path):
    """Two single-CPU nodes, one actor each; the second node goes away while both are busy.
    Its run is stored failed, retried on the surviving node, and every run ends stored once."""
    import re
    import time

    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="warning")
        cluster.wait_for_nodes()
        grid = parse_grid({"study": "lost", "datasets": [{"name": "digits", "train_size": 200, "test_size": 100}],
                           "models": ["mlp"], "backends": ["torch"], "arms": ["none"], "seeds": 4,
                           "train": {"epochs": 60, "batch_size": 32, "monitor_size": 0}})
        runs = grid.runs()
        store = RunStore(tmp_path, "lost")

        def started() -> int:
            return sum((store.run_dir(s.run_id) / "log.txt").exists() for s in runs)

        import threading

        def remove_when_both_busy() -> None:
            deadline = time.monotonic() + 120
            while started() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            cluster.remove_node(second)

        remover = threading.Thread(target=remove_when_both_busy, daemon=True)
        remover.start()
        out = io.StringIO()
        summary = run_ray(runs, store=store, results=tmp_path, retries=1,
                          progress=Progress(total=len(runs), stream=out, live=False))
        remover.join(timeout=5)
        assert (summary.completed, summary.failed) == (4, 0), out.getvalue()
        records = {s.run_id: store.read_record(s.run_id).record for s in runs}
        assert {r["status"] for r in records.values()} == {"completed"}
        retried = [rid for rid, r in records.items() if r["attempt"] == 2]
        assert len(retried) == 1, out.getvalue()  # the lost node's run, and only it
        log = (store.run_dir(retried[0]) / "log.txt").read_text()
        assert len(re.findall(r"attempt \d+ pid \d+", log)) == 2 and "Ray worker died" in out.getvalue()
        for rid in records:
            if rid not in retried:
                assert len(re.findall(r"attempt \d+ pid", (store.run_dir(rid) / "log.txt").read_text())) == 1
    finally:
        ray.shutdown()
        cluster.shutdown()

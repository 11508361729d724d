"""Packs through the executors: the ledger hands out packs, a local worker trains them, every member
gets its own record (with its pack), `ablate run --pack` works, and a pack killed mid-way leaves no
record and runs again."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess

import numpy as np
import pytest

from ablate.catalog import load_grid, parse_grid
from ablate.execution.orchestrator import Ledger, run_local, task_run_ids
from ablate.execution.progress import Progress
from ablate.execution.store import RunStore
from tests.helpers import grid_values
from tests.test_cli_run import _env, _records, _wait_for, ablate

pytest.importorskip("torch")


def _grid(seeds=2, arms=("none", "explicit", "loss"), epochs=2):
    return parse_grid(grid_values("packs", data=(200, 100), arms=list(arms), seeds=seeds, epochs=epochs))


def _quiet():
    return Progress(total=0, stream=io.StringIO(), live=False)


def test_ledger_hands_out_packs_and_retries_a_failed_member_alone(tmp_path):
    runs = _grid(seeds=3).runs()
    ledger = Ledger(runs, store=RunStore(tmp_path, "packs"), retries=1, progress=_quiet(), pack=6)
    task = ledger.take("torch")
    ids = task_run_ids(task)
    assert len(ids) == 6 and len(task["specs"]) == len(task["attempts"]) == 6
    seeds = [s["seed"] for s in task["specs"]]
    assert sorted(seeds) == [0, 0, 0, 1, 1, 1]
    ledger.finish(ids[0], {"run_id": ids[0], "status": "failed", "error": "boom"})
    again = ledger.take("torch")
    assert task_run_ids(again) == [ids[0]] and again["attempt"] == 2  # alone, at the front
    assert len(task_run_ids(ledger.take("torch"))) == 3
    assert ledger.take("torch") is None


def test_a_local_worker_trains_packs_and_each_member_gets_its_own_record(tmp_path):
    runs = _grid(seeds=2).runs()
    packed_store, plain_store = RunStore(tmp_path / "p", "packs"), RunStore(tmp_path / "u", "packs")
    summary = run_local(runs, store=packed_store, results=tmp_path / "p", workers=1, pack=3, progress=_quiet())
    assert (summary.completed, summary.failed) == (6, 0)
    run_local(runs, store=plain_store, results=tmp_path / "u", workers=1, progress=_quiet())
    packs = {}
    for spec in runs:
        packed = packed_store.read_record(spec.run_id).record
        plain = plain_store.read_record(spec.run_id).record
        assert set(packed) == set(plain) | {"pack"}  # the same record, plus its pack
        assert packed["config"] == plain["config"] and packed["status"] == "completed"
        info = packed["pack"]
        packs.setdefault(info["id"], []).append(spec)
        assert info["size"] == 3 and spec.run_id in info["members"]
        np.testing.assert_allclose(packed["metrics"]["accuracy"], plain["metrics"]["accuracy"], atol=0.02)
    # the arms of one seed trained together
    assert sorted(sorted(s.seed for s in members) for members in packs.values()) == [[0, 0, 0], [1, 1, 1]]


def test_cli_pack_option(write_grid, tmp_path):
    grid = write_grid(study="cli", data=(200, 100))
    results = tmp_path / "r"
    bad = ablate("run", grid, "--results", results, "--pack", "0", check=2)
    assert "--pack" in bad.stderr and "'0'" in bad.stderr
    ablate("run", grid, "--results", results, "--workers", "1", "--pack", "4")
    records = _records(results)
    assert len(records) == 4 and {r["status"] for r in records.values()} == {"completed"}
    assert {r["pack"]["size"] for r in records.values()} == {4}


@pytest.mark.slow  # two sweeps in real processes: about a minute on 2 busy cores
def test_a_pack_killed_mid_way_leaves_no_record_and_runs_again(write_grid, tmp_path, start_cli):
    grid = write_grid(study="cli", train={"epochs": 60, "batch_size": 32, "monitor_size": 0})
    results = tmp_path / "r"
    specs = load_grid(grid).runs()
    proc = start_cli("run", grid, "--results", results, "--workers", "1", "--pack", "4", env=_env(),
                     stdout=subprocess.DEVNULL)
    logs = [results / "cli" / "runs" / s.run_id / "log.txt" for s in specs]

    def pack_started():
        found = [re.findall(r"pid \d+: pack-", p.read_text()) for p in logs if p.exists()]
        return any(found)

    _wait_for(pack_started, "the pack to start", proc=proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _records(results) == {}  # no member was stored
    ablate("run", grid, "--results", results, "--workers", "1", "--pack", "4")
    records = _records(results)  # the same members ran again, as one pack
    assert sorted(records) == sorted(s.run_id for s in specs)
    assert {r["status"] for r in records.values()} == {"completed"} and len({r["pack"]["id"] for r in
                                                                            records.values()}) == 1


def test_a_ray_actor_trains_a_pack_and_a_stored_pack_is_skipped(tmp_path):
    pytest.importorskip("ray")
    from ablate.execution.executors.ray import RunActor

    runs = _grid(seeds=1, epochs=1).runs()
    ledger = Ledger(runs, store=RunStore(tmp_path, "packs"), retries=0, progress=_quiet(), pack=3)
    task = ledger.take("torch")
    actor = RunActor("torch", str(tmp_path), "packs", 1, False)  # the class itself, in this process
    first = actor.run(task)["pack"]
    assert [r["status"] for r in first] == ["completed"] * 3 and not any(r.get("skipped") for r in first)
    again = actor.executor.run_pack(task["specs"], attempts=task["attempts"])
    assert all(r["skipped"] for r in again)


class _FakeOutOfMemory(RuntimeError):
    pass


def _executor(tmp_path):
    from ablate.execution.worker import RunExecutor

    return RunExecutor("torch", device="cpu", threads=1, results=str(tmp_path), study="packs")


def _executor_whose_device_holds(members: int, tmp_path, monkeypatch):
    """A CPU executor whose "device" runs out of memory for packs of more than ``members`` runs."""
    from ablate.backends import torch_pack

    executor = _executor(tmp_path)
    real_create = torch_pack.create_pack

    def create_pack(backend, **kw):
        if len(kw["seeds"]) > members:
            raise _FakeOutOfMemory("CUDA out of memory (simulated)")
        return real_create(backend, **kw)

    monkeypatch.setattr(torch_pack, "create_pack", create_pack)
    monkeypatch.setattr(executor.backend, "is_out_of_memory", lambda e: isinstance(e, _FakeOutOfMemory))
    return executor


def test_a_pack_that_runs_out_of_memory_is_halved_until_it_fits(tmp_path, monkeypatch, capfd):
    executor = _executor_whose_device_holds(2, tmp_path, monkeypatch)
    released = []
    monkeypatch.setattr(executor.backend, "release_memory", lambda: released.append(1))
    runs = _grid(seeds=2, arms=("none", "loss")).runs()
    results = executor.run_pack([s.to_dict() for s in runs], attempts=[1] * 4)
    assert [r["status"] for r in results] == ["completed"] * 4 and released == [1]  # 4 -> 2 + 2
    for spec in runs:
        info = executor.store.read_record(spec.run_id).record["pack"]
        assert info["size"] == 2 and {s.seed for s in runs if s.run_id in info["members"]} == {spec.seed}
    # the log says so (pytest holds sys.stdout here, so the run log's lines come out through it)
    assert "a pack of 4 runs ran out of device memory: trying again in packs of 2" in capfd.readouterr().out


def test_a_single_run_out_of_memory_is_a_failed_run_not_a_loop(tmp_path, monkeypatch):
    executor = _executor_whose_device_holds(0, tmp_path, monkeypatch)
    runs = _grid(seeds=1, arms=("none", "loss")).runs()
    results = executor.run_pack([s.to_dict() for s in runs], attempts=[1, 1])
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("out of memory" in r["error"] for r in results)


def test_pack_auto_on_a_worker_sizes_packs_to_the_free_memory(tmp_path, monkeypatch):
    from ablate.backends import torch_pack
    from ablate.execution import packs
    from ablate.execution.runner import trainer_options

    executor = _executor(tmp_path)
    runs = _grid(seeds=3, arms=("none", "loss")).runs()
    data = executor.dataset(runs[0].dataset)
    trainer = executor.backend.create_trainer(**trainer_options(runs[0], data))
    need = torch_pack.member_bytes(trainer, data.x_train[:32], num_train=len(data.x_train),
                                   num_classes=data.num_classes)
    images = 4 * data.x_train.size
    free = int((images + 4.5 * need) / packs.AUTO_MEMORY_FRACTION)  # room for four members, not five
    monkeypatch.setattr(executor.backend, "free_device_memory", lambda: free)
    results = executor.run_pack([s.to_dict() for s in runs], attempts=[1] * 6, fit=True)
    assert [r["status"] for r in results] == ["completed"] * 6
    sizes = [executor.store.read_record(s.run_id).record["pack"]["size"] for s in runs]
    assert sizes == [4, 4, 4, 4, 2, 2]  # two seeds' arms together, then the third seed's

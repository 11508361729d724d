"""The local executor: slot planning, worker pinning, the ledger (routing, retries, diverged is
final), the study lock, and real persistent torch workers serving many runs."""

from __future__ import annotations

import io
import json

import pytest

from ablate.catalog import parse_grid
from ablate.errors import StoreError
from ablate.execution.orchestrator import (
    Ledger, Slot, pending_runs, plan_slots, run_local, store_crash, study_lock, threads_per_worker)
from ablate.execution.progress import Progress
from ablate.execution.store import RunStore
from ablate.execution.worker import CLAIM, worker_environment


def _grid(backends=("torch",), seeds=2, arms=("none", "loss"), epochs=1, **extra):
    data = {"study": "orch", "datasets": [{"name": "digits", "train_size": 200, "test_size": 100}],
            "models": ["mlp"], "backends": list(backends), "arms": list(arms), "smoothing": [0.1],
            "seeds": seeds, "train": {"epochs": epochs, "batch_size": 32, "monitor_size": 64}, **extra}
    return parse_grid(data)


def _quiet():
    return Progress(total=0, stream=io.StringIO(), live=False)


def _record(spec, status, **extra):
    return {"run_id": spec.run_id, "status": status, "config": spec.to_dict(), "error": None,
            "history": {}, "metrics": {}, "attempt": 1, **extra}


# ----------------------------------------------------------------------------- planning
def test_plan_slots_packs_each_gpu_and_spreads_the_first_workers():
    slots = plan_slots(workers=7, gpus=["0", "1"], per_gpu=2)
    assert [s.gpu for s in slots] == ["0", "1", "0", "1"]
    assert [s.index for s in slots] == [0, 1, 2, 3]
    assert plan_slots(workers=3, gpus=[], per_gpu=4) == [Slot(0, None), Slot(1, None), Slot(2, None)]


def test_threads_split_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert threads_per_worker(4) == 4
    assert threads_per_worker(32) == 1
    assert threads_per_worker(1) == 16


def test_worker_environment_fixes_engine_gpu_and_threads():
    env = worker_environment("keras/jax", gpu="3", threads=2)
    assert env["KERAS_BACKEND"] == "jax" and env["CUDA_VISIBLE_DEVICES"] == "3"
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    cpu = worker_environment("torch", gpu=None, threads=None)
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""  # a CPU worker sees no GPU
    assert "KERAS_BACKEND" not in cpu and "OMP_NUM_THREADS" not in cpu
    assert worker_environment("keras", gpu=None, threads=1)["KERAS_BACKEND"] == "tensorflow"


# ------------------------------------------------------------------------------- ledger
def test_pending_runs_skips_final_records_and_duplicates(tmp_path):
    runs = _grid(seeds=2).runs()
    store = RunStore(tmp_path, "orch")
    store.write(_record(runs[0], "completed"), {"test_probs": [[1.0]], "test_labels": [0]})
    store.write(_record(runs[1], "diverged"))
    store.write(_record(runs[2], "failed"))
    todo, skipped = pending_runs(runs + runs[:2], store)
    assert skipped == 2
    assert [s.run_id for s in todo] == [r.run_id for r in runs[2:]]  # failed runs run again


def test_ledger_routes_by_backend_and_retries_only_failures(tmp_path):
    runs = _grid(backends=("torch", "keras/torch"), seeds=1).runs()
    torch_runs = [r for r in runs if r.backend == "torch"]
    ledger = Ledger(runs, store=RunStore(tmp_path, "orch"), retries=1, progress=_quiet())
    # a free slot goes to the backend with the most pending runs per worker
    assert ledger.choose_backend([]) in ("torch", "keras/torch")
    assert ledger.choose_backend([("torch", True)]) == "keras/torch"
    # idle workers already waiting for a backend's runs are enough
    assert ledger.choose_backend([("torch", False), ("torch", False), ("keras/torch", False),
                                  ("keras/torch", False)]) is None

    first = ledger.take("torch")
    assert first["run_id"] == torch_runs[0].run_id and first["attempt"] == 1
    ledger.finish(first["run_id"], {"status": "failed", "error": "boom", "seconds": 1.0})
    again = ledger.take("torch")  # a retry goes to the front of its queue, attempt recorded
    assert again["run_id"] == first["run_id"] and again["attempt"] == 2
    ledger.finish(again["run_id"], {"status": "failed", "error": "boom", "seconds": 1.0})
    second = ledger.take("torch")
    ledger.finish(second["run_id"], {"status": "diverged", "error": "nan", "seconds": 0.1})
    assert ledger.take("torch") is None  # diverged is final: never retried
    summary = ledger.summary(skipped=0, seconds=1.0)
    assert (summary.failed, summary.diverged, summary.completed) == (1, 1, 0)
    assert any("boom" in line for line in summary.failures)


def test_abandoned_backend_fails_its_runs_with_the_reason(tmp_path):
    runs = _grid(backends=("torch", "keras/torch"), seeds=1).runs()
    store = RunStore(tmp_path, "orch")
    ledger = Ledger(runs, store=store, retries=3, progress=_quiet())
    ledger.abandon("keras/torch", "ImportError: no keras")
    assert ledger.take("keras/torch") is None
    assert ledger.choose_backend([]) == "torch"
    stored = store.statuses()
    assert sorted(stored.values()) == ["failed", "failed"]  # not retried: the backend cannot start
    for rid in stored:
        assert "no keras" in store.read_record(rid).record["error"]


def test_store_crash_never_overwrites_a_completed_run(tmp_path):
    spec = _grid(seeds=1).runs()[0]
    store = RunStore(tmp_path, "orch")
    assert store_crash(store, spec, 1, "killed") == "failed"
    assert store.read_record(spec.run_id).status == "failed"
    store.write(_record(spec, "completed", finished_at="then"), {"test_probs": [[1.0]], "test_labels": [0]})
    assert store_crash(store, spec, 2, "killed") == "completed"
    assert store.read_record(spec.run_id).record["finished_at"] == "then"


def test_second_driver_on_a_study_is_refused(tmp_path):
    store = RunStore(tmp_path, "orch")
    with study_lock(store):
        with pytest.raises(StoreError, match="another `ablate run`"):
            with study_lock(store):
                pass
    with study_lock(store):  # released on exit
        pass


# ------------------------------------------------------------------- real torch workers
def test_one_persistent_worker_serves_every_run(tmp_path):
    pytest.importorskip("torch")
    runs = _grid(seeds=2).runs()  # 4 torch runs
    store = RunStore(tmp_path, "orch")
    out = io.StringIO()
    summary = run_local(runs, store=store, results=tmp_path, workers=1,
                        progress=Progress(total=len(runs), stream=out, live=False))
    assert (summary.completed, summary.failed, summary.skipped) == (4, 0, 0)
    records = [store.read_record(r.run_id).record for r in runs]
    envs = [r["environment"] for r in records]
    # imported once, dataset loaded once, four runs served in turn by one process
    assert len({e["worker_pid"] for e in envs}) == 1
    assert sorted(e["worker_run"] for e in envs) == [1, 2, 3, 4]
    assert {e["dataset_loads"] for e in envs} == {1}
    assert {e["device"] for e in envs} == {"cpu"} and {e["cuda_visible_devices"] for e in envs} == {""}
    for r in runs:
        log = (store.run_dir(r.run_id) / "log.txt").read_text()
        assert f"attempt 1 pid {envs[0]['worker_pid']}" in log and "completed in" in log
        assert (store.run_dir(r.run_id) / CLAIM).exists()
    text = out.getvalue()
    assert "[4/4] completed" in text and "ETA" in text

    # everything is stored: a second sweep executes nothing
    again = run_local(runs, store=store, results=tmp_path, workers=1, progress=_quiet())
    assert (again.completed, again.skipped) == (0, 4)
    assert [store.read_record(r.run_id).record["finished_at"] for r in runs] == [r["finished_at"] for r in records]


def test_a_backend_that_cannot_start_fails_only_its_runs(tmp_path):
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed here, so keras/jax starts; this needs a backend that cannot")
    runs = _grid(backends=("torch", "keras/jax"), seeds=1).runs()
    store = RunStore(tmp_path, "orch")
    summary = run_local(runs, store=store, results=tmp_path, workers=2, retries=2, progress=_quiet())
    assert (summary.completed, summary.failed) == (2, 2)
    for spec in runs:
        rec = store.read_record(spec.run_id).record
        if spec.backend == "torch":
            assert rec["status"] == "completed"
        else:
            assert rec["status"] == "failed" and "could not start" in rec["error"] and rec["attempt"] == 1


def test_executor_leaves_a_final_run_alone_and_clears_stale_temporaries(tmp_path):
    pytest.importorskip("torch")
    from ablate.execution.worker import RunExecutor

    done, fresh = _grid(seeds=1).runs()
    store = RunStore(tmp_path, "orch")
    store.write(_record(done, "completed", seconds=2.5, finished_at="then"), {"test_probs": [[1.0]], "test_labels": [0]})
    stale = store.run_dir(fresh.run_id) / ".record.json.killed.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("{half a rec")
    executor = RunExecutor("torch", device="cpu", threads=1, results=str(tmp_path), study="orch")
    result = executor.run(done.to_dict())
    assert result["skipped"] and result["status"] == "completed" and executor.served == 0
    assert store.read_record(done.run_id).record["finished_at"] == "then"
    result = executor.run(fresh.to_dict(), attempt=3)
    assert result["status"] == "completed" and not stale.exists()
    record = json.loads((store.run_dir(fresh.run_id) / "record.json").read_text())
    assert record["attempt"] == 3 and record["environment"]["threads"] == 1


def test_executors_import_no_framework():
    # The Ray executor imports Ray only when a sweep starts; a worker imports its framework
    # only after pinning its environment.
    import subprocess
    import sys

    code = ("import sys, ablate.execution.executors.ray, ablate.execution.orchestrator, ablate.execution.worker, ablate.execution.status\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_progress_eta_comes_from_completed_durations():
    out = io.StringIO()
    progress = Progress(total=5, skipped=3, workers=2, stream=out, live=False)
    progress.start()
    assert progress.eta() is None
    progress.run_started("a")
    progress.epoch("a", 1, 10)
    progress.run_done("a", "run a", "completed", 10.0)
    progress.run_done("b", "run b", "completed", 20.0)
    progress.run_done("c", "run c", "diverged", 0.5, "non-finite loss")
    # mean completed duration 15 s x 2 runs left / 2 workers
    assert progress.eta() == pytest.approx(15.0)
    text = out.getvalue()
    assert "5 run(s) to do, 3 already stored" in text
    assert "[3/5] diverged  run c (0.5s) - non-finite loss" in text and "ETA 15s" in text


def test_the_driver_waits_instead_of_spinning_on_exiting_workers(tmp_path, monkeypatch):
    """A worker's pipe closes a moment before its process is seen to exit; the driver's loop must
    block on the exit, not wake up again and again (it did: thousands of turns per finished worker,
    a core taken from the workers)."""
    from ablate.execution import orchestrator

    pytest.importorskip("torch")
    turns = []
    real_wait = orchestrator.wait_any
    monkeypatch.setattr(orchestrator, "wait_any", lambda handles, timeout: turns.append(1) or real_wait(handles, timeout))
    runs = _grid(seeds=2, epochs=2).runs()
    summary = run_local(runs, store=RunStore(tmp_path, "orch"), results=tmp_path, workers=2, progress=_quiet())
    assert summary.completed == 4
    # a turn per message (ready, epochs, done) and per half-second tick, with room to spare
    assert len(turns) < 300, len(turns)

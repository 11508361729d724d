"""`python -m ablate run` end to end, in real processes: exactly-once resume after SIGKILL of the
whole process group, a diverging configuration, retries, a worker killed mid-run, selection,
new seeds, the dry-run listing, the study lock and `status` while a sweep runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ablate.catalog import load_grid
from ablate.execution.store import CorruptRecord, RunStore, StoredRun
from tests.helpers import cli_env, grid_text, run_cli

pytest.importorskip("torch")

def _grid(write_grid, *, backends=("torch",), seeds=2, epochs=1, extra="", name="grid.yaml") -> Path:
    return write_grid(grid_text("cli", backends=list(backends), seeds=seeds, epochs=epochs) + extra, name=name)


def _env() -> dict[str, str]:
    return cli_env(TF_CPP_MIN_LOG_LEVEL="3")


def ablate(*args, check: int | None = 0, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_cli(*args, env=_env(), timeout=timeout, check=check)


def _records(results: Path, study: str = "cli") -> dict[str, dict]:
    items = list(RunStore(results, study).scan())
    assert not [i for i in items if isinstance(i, CorruptRecord)], items
    return {i.run_id: dict(i.record) for i in items if isinstance(i, StoredRun)}


def _wait_for(predicate, what: str, timeout: float = 180, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"`ablate run` ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _headers(results: Path, run_id: str, study: str = "cli") -> list[str]:
    log = results / study / "runs" / run_id / "log.txt"
    return re.findall(r"attempt \d+ pid \d+", log.read_text()) if log.exists() else []


def test_dry_run_lists_every_run_and_runs_nothing(write_grid, tmp_path):
    grid = _grid(write_grid, seeds=3)
    out = ablate("run", grid, "--results", tmp_path / "r", "--dry-run").stdout
    specs = load_grid(grid).runs()
    for spec in specs:
        assert re.search(rf"^{spec.run_id}\s+pending\s+{re.escape(spec.describe())}$", out, re.MULTILINE)
    assert f"{len(specs)} run(s); 0 completed and 0 diverged (skipped), {len(specs)} to run" in out
    assert not (tmp_path / "r" / "cli" / "runs").exists()
    out = ablate("run", grid, "--results", tmp_path / "r", "--dry-run", "--only", "arm=loss", "--seeds", "1-2").stdout
    assert out.count(" pending ") == 2 and "seed=0" not in out and " none " not in out


def test_sigkill_of_the_whole_sweep_then_resume_runs_each_run_exactly_once(write_grid, tmp_path, start_cli):
    grid = _grid(write_grid, seeds=6, epochs=80)  # 12 runs of a few seconds each: status must answer mid-grid
    results = tmp_path / "r"
    specs = load_grid(grid).runs()
    proc = start_cli("run", grid, "--results", results, "--workers", "2", env=_env(), stdout=subprocess.DEVNULL)
    _wait_for(lambda: len(_records(results)) >= 1, "a first stored run", proc=proc)
    # while it runs: a second driver on the same study is refused, and status answers
    second = ablate("run", grid, "--results", results, check=2)
    assert "another `ablate run`" in second.stderr and "is using this study" in second.stderr
    status = ablate("status", grid, "--results", results).stdout
    assert re.search(r"^total(\s+\d+){6}\s+12$", status, re.MULTILINE), status
    _wait_for(lambda: len(_records(results)) >= 3, "three stored runs", proc=proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    before = _records(results)  # no partial or corrupt record survives the kill
    assert 3 <= len(before) < len(specs), "the sweep must be cut off mid-grid"
    assert {r["status"] for r in before.values()} == {"completed"}

    out = ablate("run", grid, "--results", results, "--workers", "2")
    assert "already stored (completed or diverged) and skipped" in out.stderr
    after = _records(results)
    assert sorted(after) == sorted(s.run_id for s in specs)  # every run stored, once
    assert {r["status"] for r in after.values()} == {"completed"}
    for run_id, record in before.items():
        assert after[run_id]["finished_at"] == record["finished_at"]  # never ran again
        assert len(_headers(results, run_id)) == 1
    leftovers = [p for p in (results / "cli" / "runs").rglob(".*.tmp")]
    assert not leftovers


def test_a_diverging_configuration_is_stored_diverged_and_the_rest_complete(write_grid, tmp_path):
    pytest.importorskip("keras")
    # PyYAML reads 1.0e9 as a string; 1.0e+9 is a number.
    grid = _grid(write_grid, backends=("torch", "keras"), seeds=1, epochs=2,
                 extra="overrides:\n  loss: {train: {lr: 1.0e+9}}\n")
    results = tmp_path / "r"
    run = ablate("run", grid, "--results", results, "--workers", "2", "--retries", "2")
    assert "diverged" in run.stderr and "non-finite training loss" in run.stderr
    records = _records(results)
    assert len(records) == 4
    for record in records.values():
        arm = record["config"]["arm"]
        assert record["status"] == ("diverged" if arm == "loss" else "completed"), record
        assert record["attempt"] == 1  # diverged is final: not retried
        if arm == "loss":
            assert "non-finite" in record["error"]
    assert {r["config"]["backend"] for r in records.values()} == {"torch", "keras/tensorflow"}
    status = ablate("status", grid, "--results", results).stdout
    assert re.search(r"^keras/tensorflow\s+digits\s+mlp\s+loss\s+0\.1\s+0\s+0\s+1\s+0\s+0\s+0\s+1$", status, re.M)
    assert re.search(r"^total\s+2\s+0\s+2\s+0\s+0\s+0\s+4$", status, re.MULTILINE), status
    # a re-run leaves the diverged runs alone
    again = ablate("run", grid, "--results", results)
    assert "0 run(s) to do, 4 already stored" in again.stderr


def _kill_worker_of(results: Path, run_id: str, proc: subprocess.Popen) -> None:
    header = _wait_for(lambda: _headers(results, run_id), f"run {run_id} to start", proc=proc)[0]
    os.kill(int(header.rsplit(" ", 1)[1]), signal.SIGKILL)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_mid_run(write_grid, tmp_path, start_cli, retries):
    # The loss arm trains long enough to be killed mid-run; --retries 0: that run is stored
    # failed and the sweep goes on; --retries 1: it runs again and completes as attempt 2.
    grid = _grid(write_grid, seeds=2, extra="overrides:\n  loss: {train: {epochs: 80}}\n")
    results = tmp_path / "r"
    target = next(s for s in load_grid(grid).runs() if s.arm == "loss" and s.seed == 0).run_id
    proc = start_cli("run", grid, "--results", results, "--workers", "2", "--retries", retries, env=_env())
    _kill_worker_of(results, target, proc)
    _, err = proc.communicate(timeout=240)
    records = _records(results)
    assert len(records) == 4
    others = [r for rid, r in records.items() if rid != target]
    assert all(r["status"] == "completed" and r["attempt"] == 1 for r in others)
    killed = records[target]
    if retries == 0:
        assert proc.returncode == 1
        assert killed["status"] == "failed" and "worker process died" in killed["error"]
        assert killed["attempt"] == 1
    else:
        assert proc.returncode == 0, err
        assert "retrying" in err and "worker process died" in err
        assert killed["status"] == "completed" and killed["attempt"] == 2
        assert len(_headers(results, target)) == 2


def test_selection_then_new_seeds_run_only_the_new_runs(write_grid, tmp_path):
    results = tmp_path / "r"
    grid = _grid(write_grid, seeds=1)
    ablate("run", grid, "--results", results, "--workers", "1", "--only", "arm=loss")
    first = _records(results)
    assert [r["config"]["arm"] for r in first.values()] == ["loss"]

    grid = _grid(write_grid, seeds=2)  # the user adds a seed to the grid file
    status = ablate("status", grid, "--results", results).stdout
    assert re.search(r"^total\s+1\s+0\s+0\s+0\s+3\s+0\s+4$", status, re.MULTILINE), status
    seed1 = ablate("status", grid, "--results", results, "--seeds", "1").stdout
    assert re.search(r"^total\s+0\s+0\s+0\s+0\s+2\s+0\s+2$", seed1, re.MULTILINE), seed1
    run = ablate("run", grid, "--results", results, "--workers", "1")
    assert "3 run(s) to do, 1 already stored" in run.stderr
    after = _records(results)
    assert len(after) == 4 and {r["status"] for r in after.values()} == {"completed"}
    (rid, record), = first.items()
    assert after[rid]["finished_at"] == record["finished_at"]


def test_bad_options_are_one_line_errors(write_grid, tmp_path):
    grid = _grid(write_grid)
    for args, message in ((["--only", "arm=huber"], "--only: arm ['huber'] is not in the grid"),
                          (["--seeds", "3-1"], "--seeds: expected a range"),
                          (["--per-gpu", "0"], "--per-gpu: expected an integer >= 1"),
                          (["--gpus", "7"], "--gpus: expected ids among"),
                          (["--address", "auto"], "--address: only applies with --executor ray"),
                          (["--executor", "slurm"], "--executor: unknown executor 'slurm'; known: local, ray"),
                          (["--seeds", "50"], "--seeds: '50' selects none of the grid's seeds")):
        proc = ablate("run", grid, "--results", tmp_path / "r", *args, check=2)
        assert proc.stderr.startswith("ablate: error: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1

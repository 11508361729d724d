"""Issue 11, store and execution side: one validation of a stored run (used by `run`, `status`
and `report`), damaged files moved aside and never deleted, every final status protected,
records readable by the group, CIFAR pickles of protocol 5, and one-line CLI messages."""

from __future__ import annotations

import errno
import io
import json
import os
import pathlib
import pickle
import re
import zipfile

import numpy as np
import pytest

from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.errors import StoreError
from ablate.execution.store import ARRAYS, RECORD, CorruptRecord, RunStore


def _spec(seed=0, arm="none"):
    return RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm=arm,
                   smoothing=0.0 if arm == "none" else 0.1, seed=seed, repeat=0, train=TrainConfig(epochs=2))


def _record(spec, status="completed", **extra):
    return {"run_id": spec.run_id, "status": status, "config": spec.to_dict(), "error": None, "attempt": 1,
            "history": {"epoch": [1, 2], "train_nll": [0.9, 0.4], "val_nll": [1.0, float("nan")],
                        "val_accuracy": [0.5, 0.6]},
            "metrics": {}, "seconds": 1.0, "finished_at": "then", **extra}


def _arrays(n=40, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    return {"test_probs": p, "test_labels": rng.integers(0, k, n), "val_probs": p[:10],
            "val_labels": rng.integers(0, k, 10)}


def _store(tmp_path, *specs):
    store = RunStore(tmp_path, "s")
    for spec in specs:
        store.write(_record(spec), _arrays(seed=spec.seed))
    return store


# ----------------------------------------------------------------------- damaged arrays
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_data_byte(path):
    # Flip one byte inside test_probs' stored data: the zip's CRC no longer matches.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("test_probs.npy")
    data = bytearray(path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _object_array(path):
    a = _arrays()
    np.savez(path, test_probs=np.array([{"x": 1}, None], dtype=object), test_labels=a["test_labels"])


def _missing_labels(path):
    np.savez(path, test_probs=_arrays()["test_probs"])


def _shape_mismatch(path):
    a = _arrays()
    np.savez(path, test_probs=a["test_probs"], test_labels=a["test_labels"][:-1])


def _labels_out_of_range(path):
    a = _arrays()
    np.savez(path, test_probs=a["test_probs"], test_labels=a["test_labels"] + 7)


DAMAGES = {"truncated": (_truncate, "arrays.npz"), "bit-flipped": (_flip_a_data_byte, "arrays.npz"),
           "object arrays": (_object_array, "arrays.npz"), "missing key": (_missing_labels, "test_labels"),
           "shape mismatch": (_shape_mismatch, "test_labels"), "bad labels": (_labels_out_of_range, "labels")}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_arrays_make_the_record_invalid(tmp_path, damage):
    good, bad = _spec(0), _spec(1)
    store = _store(tmp_path, good, bad)
    harm, word = DAMAGES[damage]
    harm(store.run_dir(bad.run_id) / ARRAYS)
    item = store.read_record(bad.run_id)
    assert isinstance(item, CorruptRecord) and word in item.reason, item
    assert store.completed_ids() == {good.run_id}
    assert bad.run_id not in store.statuses()
    assert set(store.invalid()) == {bad.run_id}


RECORD_DAMAGES = {
    "history not a mapping": ({"history": [1, 2]}, "history"),
    "history value not a list": ({"history": {"val_nll": 0.5}}, "history"),
    "non-numeric history": ({"history": {"val_nll": [0.5, "oops"]}}, "history"),
    "boolean history": ({"history": {"val_nll": [True]}}, "history"),
    "error not a string": ({"error": 42}, "error"),
    "metrics not a mapping": ({"metrics": "x"}, "metrics"),
    "config with a bad type": ({"config": {**_spec().to_dict(), "seed": "zero"}}, "config"),
    "config missing train": ({"config": {k: v for k, v in _spec().to_dict().items() if k != "train"}}, "config"),
    "config not a mapping": ({"config": "digits"}, "config"),
    "attempt not an integer": ({"attempt": "1"}, "attempt"),
}


@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGES))
def test_records_with_wrong_types_are_invalid(tmp_path, damage):
    spec = _spec(1)
    store = _store(tmp_path, _spec(0))
    changes, word = RECORD_DAMAGES[damage]
    folder = store.run_dir(spec.run_id)
    folder.mkdir(parents=True)
    np.savez(folder / ARRAYS, **_arrays())
    (folder / RECORD).write_text(json.dumps({**_record(spec), **changes}))
    item = store.read_record(spec.run_id)
    assert isinstance(item, CorruptRecord) and word in item.reason, item
    assert spec.run_id not in store.statuses()


def test_a_valid_record_with_nan_history_and_a_failed_record_without_arrays_are_valid(tmp_path):
    done, failed = _spec(0), _spec(1)
    store = _store(tmp_path, done)
    store.write(_record(failed, "failed", error="boom", history={}))
    assert store.statuses() == {done.run_id: "completed", failed.run_id: "failed"}
    assert store.invalid() == {}


# ------------------------------------------------------------------ moved aside, re-run
def test_run_moves_an_invalid_record_aside_once_and_runs_it_again(tmp_path, capsys):
    from ablate.execution.orchestrator import pending_runs

    good, bad = _spec(0), _spec(1)
    store = _store(tmp_path, good, bad)
    folder = store.run_dir(bad.run_id)
    _truncate(folder / ARRAYS)
    damaged_bytes = (folder / ARRAYS).read_bytes()
    todo, skipped = pending_runs([good, bad], store)
    assert [s.run_id for s in todo] == [bad.run_id] and skipped == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad.run_id in err and "moved" in err and "arrays.npz" in err, err
    # nothing deleted: the damaged files sit in a hidden folder beside the run
    aside, = [p for p in folder.iterdir() if p.name.startswith(".damaged-")]
    assert (aside / ARRAYS).read_bytes() == damaged_bytes
    assert json.loads((aside / RECORD).read_text())["finished_at"] == "then"
    assert not (folder / RECORD).exists() and not (folder / ARRAYS).exists()
    # moved once: a second look finds the run plainly pending, and says nothing
    todo, _ = pending_runs([good, bad], store)
    assert [s.run_id for s in todo] == [bad.run_id] and capsys.readouterr().err == ""
    # the re-run stores a fresh record; the hidden folder is not a run
    store.write(_record(bad, finished_at="now"), _arrays(seed=5))
    assert store.read_record(bad.run_id).record["finished_at"] == "now"
    assert sorted(s.run_id for s in store.scan()) == sorted([good.run_id, bad.run_id])


def test_a_completed_record_whose_arrays_went_missing_is_kept_beside_the_new_one(tmp_path):
    spec = _spec(0)
    store = _store(tmp_path, spec)
    folder = store.run_dir(spec.run_id)
    (folder / ARRAYS).unlink()
    old = (folder / RECORD).read_text()
    store.write(_record(spec, finished_at="now"), _arrays())  # a worker re-running it
    aside, = [p for p in folder.iterdir() if p.name.startswith(".damaged-")]
    assert (aside / RECORD).read_text() == old
    assert store.read_record(spec.run_id).record["finished_at"] == "now"


# -------------------------------------------------------------- final statuses protected
def test_a_diverged_record_is_never_overwritten(tmp_path):
    from ablate.execution.orchestrator import store_crash

    spec = _spec(0)
    store = RunStore(tmp_path, "s")
    store.write(_record(spec, "diverged", error="non-finite loss", history={}))
    with pytest.raises(StoreError, match="already diverged"):
        store.write(_record(spec, "failed", error="worker died"))
    assert store_crash(store, spec, 2, "worker process died") == "diverged"
    record = store.read_record(spec.run_id).record
    assert record["status"] == "diverged" and record["error"] == "non-finite loss"


def test_records_are_readable_by_the_group(tmp_path):
    old = os.umask(0o022)
    try:
        store = _store(tmp_path, _spec(0))
    finally:
        os.umask(old)
    folder = store.run_dir(_spec(0).run_id)
    assert oct((folder / RECORD).stat().st_mode & 0o777) == oct(0o644)
    assert oct((folder / ARRAYS).stat().st_mode & 0o777) == oct(0o644)
    os.umask(0o077)
    try:
        store.write(_record(_spec(1)), _arrays())  # a private umask is respected
    finally:
        os.umask(old)
    assert (store.run_dir(_spec(1).run_id) / RECORD).stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------------------ status
def test_status_counts_an_invalid_record_as_invalid_not_completed(tmp_path):
    from ablate.execution.status import format_status, grid_status

    good, bad = _spec(0), _spec(1)
    store = _store(tmp_path, good, bad)
    _flip_a_data_byte(store.run_dir(bad.run_id) / ARRAYS)
    counts = grid_status([good, bad], store)[good.cell]
    assert (counts["completed"], counts["invalid"], counts["pending"], counts["total"]) == (1, 1, 0, 2)
    assert "invalid" in format_status(grid_status([good, bad], store)).splitlines()[0]


# ------------------------------------------------------------------------------ report
def _full_store(tmp_path):
    """Two arms x 3 seeds, all good, plus one damaged record of every kind."""
    store = RunStore(tmp_path, "s")
    for seed in range(3):
        for arm in ("none", "loss"):
            spec = _spec(seed, arm)
            store.write(_record(spec), _arrays(seed=seed))
    damaged = []
    for i, name in enumerate(sorted(DAMAGES)):
        spec = _spec(100 + i)
        store.write(_record(spec), _arrays())
        DAMAGES[name][0](store.run_dir(spec.run_id) / ARRAYS)
        damaged.append(spec.run_id)
    for i, name in enumerate(sorted(RECORD_DAMAGES)):
        spec = _spec(200 + i)
        folder = store.run_dir(spec.run_id)
        folder.mkdir(parents=True)
        np.savez(folder / ARRAYS, **_arrays())
        (folder / RECORD).write_text(json.dumps({**_record(spec), **RECORD_DAMAGES[name][0]}))
        damaged.append(spec.run_id)
    return store, damaged


def test_report_skips_every_damaged_record_with_one_line_each(tmp_path, capsys):
    from ablate.study import load_study, report_study

    store, damaged = _full_store(tmp_path)
    loaded = load_study(store)
    assert len(loaded.runs) == 6 and len(loaded.corrupt) == len(damaged)
    assert {c.path.name for c in loaded.corrupt} == set(damaged)
    err = capsys.readouterr().err
    assert err.count("skipping") == len(damaged) and "Traceback" not in err
    written = report_study(tmp_path, study="s", out=tmp_path / "out")
    assert any(p.name == "report.md" for p in written)
    assert any("training_curves" in p.name for p in written)


def test_history_rows_keep_only_numbers():
    from ablate.study import history_values

    # epochs count from 1 and keep their place; what cannot be plotted is dropped
    assert history_values([0.5, "x", None, True, 2, float("nan")]) == [(1, 0.5), (5, 2.0)]
    assert history_values("not a list") == []
    assert history_values(None) == []


# ----------------------------------------------------------------------- CIFAR protocol 5
def test_cifar_batches_pickled_with_protocol_5_are_read(tmp_path):
    from ablate.data.formats import _cifar_py_batch

    data = np.arange(2 * 3072, dtype=np.uint16).astype(np.uint8).reshape(2, 3072)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 7]}, protocol=5))
    x, y = _cifar_py_batch(path)
    assert x.shape == (2, 32, 32, 3) and list(y) == [3, 7]
    assert x[0, 0, 0].tolist() == [data[0, 0], data[0, 1024], data[0, 2048]]


def test_cifar_protocol_5_still_refuses_code(tmp_path):
    from ablate.data.formats import _cifar_py_batch
    from ablate.errors import DatasetError

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=5))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        _cifar_py_batch(path)


# ------------------------------------------------------------------------- CLI one-liners
def test_next_hint_quotes_a_study_name_with_spaces():
    from ablate.cli import next_hint

    assert next_hint("my results", "two words") == \
        "next: python -m ablate report --results 'my results' --study 'two words'"
    assert next_hint("results", "plain") == "next: python -m ablate report --results results --study plain"


def _deny_writes_under(monkeypatch, root):
    real_mkdir, real_open = pathlib.Path.mkdir, open

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(root)):
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    return real_open


def test_read_only_results_folder_is_one_line_for_run(tmp_path, write_grid, monkeypatch, capsys):
    pytest.importorskip("torch")
    from ablate import cli

    grid = write_grid("""\
        study: ro
        datasets: [{name: digits, train_size: 100, test_size: 50}]
        models: [mlp]
        backends: [torch]
        arms: [none]
        seeds: 1
        train: {epochs: 1}
        """)
    results = tmp_path / "ro-results"
    _deny_writes_under(monkeypatch, results)
    assert cli.main(["run", str(grid), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[-1].startswith("ablate: error: ") and "read-only" in err[-1] and "--results" in err[-1]


def test_read_only_report_folder_is_one_line_for_report(tmp_path, monkeypatch, capsys):
    from ablate import cli

    store, _ = _full_store(tmp_path)
    capsys.readouterr()
    _deny_writes_under(monkeypatch, store.study_dir)
    assert cli.main(["report", "--results", str(tmp_path), "--study", "s", "--no-figures"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "skipping" not in line]
    assert len(err) == 1 and "read-only" in err[0] and "--out" in err[0], err


def test_a_refused_second_driver_prints_one_line(tmp_path, write_grid, run_cli):
    pytest.importorskip("torch")
    from ablate.execution.orchestrator import study_lock

    grid = write_grid(study="locked", data=(100, 50), arms=["none"], smoothing=None, seeds=1, train={"epochs": 1})
    with study_lock(RunStore(tmp_path, "locked")):
        proc = run_cli("run", grid, "--results", tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "another `ablate run`" in lines[0], proc.stderr


# ------------------------------------------------------------------- Ctrl-C and SIGTERM
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_stops_with_one_line_and_leaves_nothing_half_done(tmp_path, write_grid, start_cli, how):
    pytest.importorskip("torch")
    import re
    import signal
    import time

    from ablate.catalog import load_grid
    from ablate.execution.orchestrator import study_lock
    from tests.helpers import cli_env

    grid = write_grid(study="intr", arms=["none"], smoothing=None, seeds=4,
                      train={"epochs": 400, "batch_size": 32, "monitor_size": 0})
    results = tmp_path / "r"
    store = RunStore(results, "intr")
    specs = load_grid(grid).runs()
    proc = start_cli("run", grid, "--results", results, "--workers", "2", env=cli_env())  # killed if left running
    worker_pids: set[int] = set()
    deadline = time.monotonic() + 120
    while len(worker_pids) < 2 and time.monotonic() < deadline and proc.poll() is None:
        for spec in specs:
            log = store.run_dir(spec.run_id) / "log.txt"
            if log.exists():
                worker_pids |= {int(p) for p in re.findall(r"attempt \d+ pid (\d+)", log.read_text())}
        time.sleep(0.05)
    assert len(worker_pids) == 2, "two runs must be under way"
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends: driver and workers alike
    else:
        os.kill(proc.pid, signal.SIGTERM)  # the driver only, as `kill` or a scheduler does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    word = "interrupted" if how == "ctrl-c" else "terminated"
    assert err.count(word) == 1 and f"ablate: {word};" in err, err
    for pid in worker_pids:  # the workers are gone with it
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    # no half-written record, no temporary left live, no stale lock
    assert store.invalid() == {}
    with study_lock(store):
        pass


# ------------------------------------------------------------------------ train.timeout
def _timeout_grid(study="to", **train):
    from ablate.catalog import parse_grid
    from tests.helpers import grid_values

    # The hung run first: with one worker, the run after it proves the worker was replaced.
    return parse_grid(grid_values(study, data=(200, 100), arms=["loss", "none"], seeds=1,
                                  train={"epochs": 1, "batch_size": 32, "monitor_size": 64, **train},
                                  overrides={"loss": {"train": {"epochs": 1000000, "timeout": 2}}}))


def _run_past_its_timeout(execute, results, study="to"):
    """The timeout grid through `execute` (run_local or run_ray) with one worker: the hung run is stored
    failed and the run after it completes. Returns the store, the runs and the progress printed."""
    from ablate.execution.progress import Progress

    runs = _timeout_grid(study).runs()
    store = RunStore(results, study)
    out = io.StringIO()
    summary = execute(runs, store=store, results=results, workers=1,
                      progress=Progress(total=len(runs), stream=out, live=False))
    assert (summary.completed, summary.failed) == (1, 1), out.getvalue()
    hung, after = runs
    record = store.read_record(hung.run_id).record
    assert record["status"] == "failed" and record["error"] == "timed out after 2 s", record
    assert store.read_record(after.run_id).record["status"] == "completed"
    return store, runs, out.getvalue()


@pytest.mark.parametrize("value", [0, -1, "soon", float("inf"), True])
def test_train_timeout_must_be_a_positive_number(value):
    from ablate.catalog import parse_grid
    from ablate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.timeout"):
        parse_grid({"study": "to", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
                    "arms": ["none"], "seeds": 1, "train": {"timeout": value}})


def test_train_timeout_is_not_part_of_a_runs_identity():
    plain = {s.describe(): s.run_id for s in _timeout_grid().runs()}
    timed = _timeout_grid(timeout=3600).runs()
    assert {s.describe(): s.run_id for s in timed} == plain
    assert {s.train.timeout for s in timed} == {3600.0, 2.0}
    assert RunSpec.from_dict(timed[0].to_dict()) == timed[0]


def test_a_run_past_its_timeout_is_stored_failed_and_its_worker_replaced(tmp_path):
    pytest.importorskip("torch")
    from ablate.execution.orchestrator import run_local

    store, (hung, after), out = _run_past_its_timeout(run_local, tmp_path)
    killed_pid = int(re.search(r"attempt 1 pid (\d+)", (store.run_dir(hung.run_id) / "log.txt").read_text())[1])
    record = store.read_record(after.run_id).record
    assert record["status"] == "completed"
    assert record["environment"]["worker_pid"] != killed_pid  # the only worker was replaced
    assert "timed out after 2 s" in out

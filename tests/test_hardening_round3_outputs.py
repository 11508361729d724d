"""Issue 20 (hardening, round 3), the output side: one validation of stored arrays and ids,
temperatures at their search bound, vacuous equivalence at chance, honest timings, finite
means, matplotlib-safe labels, a full disk, and names neutralised in Markdown and CSV."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.execution.orchestrator import pending_runs
from ablate.execution.store import ARRAYS, RECORD, CorruptRecord, RunStore, StoredRun


def _spec(seed=0, arm="none"):
    return RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm=arm,
                   smoothing=0.0 if arm == "none" else 0.1, seed=seed, repeat=0, train=TrainConfig(epochs=2))


def _record(spec, status="completed", **extra):
    return {"run_id": spec.run_id, "status": status, "config": spec.to_dict(), "error": None, "attempt": 1,
            "history": {"epoch": [1, 2]}, "metrics": {}, "seconds": 1.0, "finished_at": "then", **extra}


def _arrays(n=40, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    return {"test_probs": p, "test_labels": rng.integers(0, k, n), "val_probs": p[:10].copy(),
            "val_labels": rng.integers(0, k, 10)}


# ----------------------------------------------------------------------- item 3: one validation
@pytest.mark.parametrize("damage,reason", [
    (lambda a: a["test_probs"].__setitem__((3, 1), np.nan), "test_probs holds non-finite values"),
    (lambda a: a["val_probs"].__setitem__((2, 0), np.inf), "val_probs holds non-finite values"),
    (lambda a: a["test_probs"].__setitem__((5, 0), 3.0), "test_probs"),
    (lambda a: a.__setitem__("test_probs", a["test_probs"] * 0.5), "not summing to 1"),
])
def test_arrays_that_fail_scoring_are_invalid_for_every_reader(tmp_path, damage, reason):
    from ablate.execution.status import grid_status
    from ablate.study import load_study

    good, bad = _spec(0), _spec(1)
    store = RunStore(tmp_path, "s")
    store.write(_record(good), _arrays(seed=0))
    arrays = _arrays(seed=1)
    damage(arrays)
    store.write(_record(bad), arrays)
    item = store.validate(bad.run_id)
    assert isinstance(item, CorruptRecord) and reason in item.reason
    # `status` counts it invalid, not completed ...
    cells = grid_status([good, bad], store)
    assert cells[good.cell]["completed"] == 1 and cells[good.cell]["invalid"] == 1
    # ... the report skips it, naming why ...
    loaded = load_study(store)
    assert list(loaded.runs["run_id"]) == [good.run_id]
    assert [s.path.name for s in loaded.corrupt] == [bad.run_id] and reason in loaded.corrupt[0].reason
    # ... and `run` moves it aside and runs it again.
    todo, skipped = pending_runs([good, bad], store)
    assert [s.run_id for s in todo] == [bad.run_id] and skipped == 1
    assert not (store.run_dir(bad.run_id) / RECORD).exists()
    assert len(list(store.run_dir(bad.run_id).glob(".damaged-*/arrays.npz"))) == 1


def test_a_record_whose_config_no_longer_hashes_to_its_id_is_invalid_named_and_skipped(tmp_path, capsys):
    from ablate.study import load_study

    a, b = _spec(0), _spec(1)
    store = RunStore(tmp_path, "s")
    store.write(_record(a), _arrays(seed=0))
    store.write(_record(b), _arrays(seed=1))
    # A record written under another id scheme: its folder and run_id say X, its config hashes to a's id.
    old_id = "0123456789abcdef"
    folder = store.run_dir(old_id)
    folder.mkdir(parents=True)
    (folder / ARRAYS).write_bytes((store.run_dir(a.run_id) / ARRAYS).read_bytes())
    record = json.loads((store.run_dir(a.run_id) / RECORD).read_text())
    (folder / RECORD).write_text(json.dumps({**record, "run_id": old_id}))

    item = store.validate(old_id)
    assert isinstance(item, CorruptRecord)
    assert old_id in item.reason and a.run_id in item.reason and "hashes" in item.reason
    assert isinstance(store.validate(a.run_id), StoredRun)
    # The report goes on (no "2 rows share ..." refusal of the whole study) and names the id.
    loaded = load_study(store)
    assert sorted(loaded.runs["run_id"]) == sorted([a.run_id, b.run_id])
    assert [s.path.name for s in loaded.corrupt] == [old_id]
    assert old_id in capsys.readouterr().err
    # `run` does not count it as done: the runs of the grid are both done, nothing pending.
    todo, skipped = pending_runs([a, b], store)
    assert todo == [] and skipped == 2

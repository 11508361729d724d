"""The run store: atomic writes, completed runs never overwritten, corrupt records skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.errors import StoreError
from ablate.execution.store import ARRAYS, RECORD, CorruptRecord, RunStore, StoredRun

def _spec(seed):
    return RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm="none", smoothing=0.0,
                   seed=seed, repeat=0, train=TrainConfig())


# A record's folder is named by the hash of its config (anything else is an invalid record).
CONFIG, ABC, GOOD1 = _spec(0).to_dict(), _spec(0).run_id, _spec(1).run_id
CONFIGS = {ABC: CONFIG, GOOD1: _spec(1).to_dict()}


def _record(run_id=ABC, status="completed"):
    return {"run_id": run_id, "status": status, "config": CONFIGS.get(run_id, CONFIG), "error": None,
            "history": {"epoch": [1]}, "metrics": {"accuracy": 0.5}}


def _arrays():
    return {"test_probs": np.full((4, 2), 0.5, np.float32), "test_labels": np.array([0, 1, 0, 1])}


def test_write_and_read_back(tmp_path):
    store = RunStore(tmp_path, "s")
    store.write(_record(), _arrays())
    item = store.read_record(ABC)
    assert isinstance(item, StoredRun) and item.status == "completed"
    arrays = item.arrays()
    assert arrays["test_probs"].dtype == np.float32 and arrays["test_labels"].tolist() == [0, 1, 0, 1]
    assert store.completed_ids() == {ABC}
    # no temporary files are left behind
    assert sorted(p.name for p in (tmp_path / "s" / "runs" / ABC).iterdir()) == [ARRAYS, RECORD]


def test_arrays_need_no_pickle(tmp_path):
    store = RunStore(tmp_path, "s")
    store.write(_record(), _arrays())
    with np.load(tmp_path / "s" / "runs" / ABC / ARRAYS, allow_pickle=False) as data:
        assert set(data.files) == {"test_probs", "test_labels"}


def test_crash_while_writing_leaves_no_record(tmp_path, monkeypatch):
    store = RunStore(tmp_path, "s")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        store.write(_record(), _arrays())
    folder = tmp_path / "s" / "runs" / ABC
    assert not (folder / RECORD).exists()
    assert [p for p in folder.iterdir() if p.name.endswith(".tmp")] == []
    assert store.read_record(ABC) is None and store.completed_ids() == set()


def test_completed_record_is_never_overwritten(tmp_path):
    store = RunStore(tmp_path, "s")
    store.write(_record(), _arrays())
    with pytest.raises(StoreError, match="already completed"):
        store.write(_record(status="failed"))
    assert store.read_record(ABC).status == "completed"


def test_failed_record_can_be_replaced_by_a_retry(tmp_path):
    store = RunStore(tmp_path, "s")
    store.write(_record(status="failed"))
    store.write({**_record(), "attempt": 2}, _arrays())
    assert store.read_record(ABC).record["attempt"] == 2


@pytest.mark.parametrize("content,reason", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "does not hold an object"),
    (json.dumps({"run_id": ABC, "status": "completed"}), "lacks config"),
    (json.dumps({"run_id": ABC, "status": "weird", "config": CONFIG}), "status 'weird'"),
    (json.dumps({"run_id": "other", "status": "failed", "config": CONFIG}), "does not match its folder"),
    (json.dumps({"run_id": ABC, "status": "completed", "config": CONFIG}), "without arrays.npz"),
    (json.dumps({"run_id": ABC, "status": "failed", "config": {}}), "config does not describe a run"),
])
def test_corrupt_records_are_reported_not_raised(tmp_path, content, reason):
    store = RunStore(tmp_path, "s")
    store.write(_record(GOOD1), _arrays())
    folder = tmp_path / "s" / "runs" / ABC
    folder.mkdir(parents=True)
    (folder / RECORD).write_text(content)
    items = list(store.scan())
    corrupt = [i for i in items if isinstance(i, CorruptRecord)]
    assert len(corrupt) == 1 and reason in corrupt[0].reason
    assert store.completed_ids() == {GOOD1}


def test_unreadable_arrays_raise_store_error(tmp_path):
    store = RunStore(tmp_path, "s")
    store.write(_record(), _arrays())
    item = store.read_record(ABC)
    (tmp_path / "s" / "runs" / ABC / ARRAYS).write_bytes(b"garbage")
    assert "unreadable arrays.npz" in store.read_record(ABC).reason
    with pytest.raises(StoreError, match="unreadable arrays"):  # damaged after it was validated
        item.arrays()

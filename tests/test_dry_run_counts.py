"""`run --dry-run` counts a study's stored runs by status: what is skipped, what runs again and why."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from ablate.catalog import load_grid
from ablate.execution.store import RECORD, RunStore
from ablate.statuses import COMPLETED, DIVERGED, FAILED

pytest.importorskip("torch")

# Two arms, four seeds: eight runs, enough for one of each status and a pending one.
GRID = {"study": "counts", "datasets": [{"name": "digits", "train_size": 200, "test_size": 100}],
        "models": ["mlp"], "backends": ["torch"], "arms": ["none", "loss"], "smoothing": [0.1], "seeds": 4,
        "train": {"epochs": 1, "batch_size": 32}}


def _store(store: RunStore, spec, status: str) -> None:
    probs = np.full((4, 10), 0.02, np.float32)
    probs[:, 0] = 0.82
    arrays = {"test_probs": probs, "test_labels": np.zeros(4, np.int64)} if status == COMPLETED else None
    store.write({"run_id": spec.run_id, "config": spec.to_dict(), "status": status,
                 "error": None if status == COMPLETED else "boom", "history": {}, "metrics": {}, "seconds": 1.0},
                arrays)


def test_dry_run_counts_stored_runs_by_status(write_grid, tmp_path, capsys):
    from ablate.cli import main

    grid = write_grid(yaml.safe_dump(GRID))
    specs = load_grid(grid).runs()
    assert len(specs) == 8
    store = RunStore(tmp_path / "r", "counts")
    shown = [COMPLETED, COMPLETED, COMPLETED, DIVERGED, FAILED, FAILED, "invalid", "pending"]
    for spec, status in zip(specs, shown):
        if status in (COMPLETED, DIVERGED, FAILED):
            _store(store, spec, status)
    store.run_dir(specs[6].run_id).mkdir(parents=True)
    (store.run_dir(specs[6].run_id) / RECORD).write_text("{not json")  # an unreadable record runs again
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    assert main(["run", str(grid), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for spec, status in zip(specs, shown):
        assert re.search(rf"^{spec.run_id}  {status:<9}  {re.escape(spec.describe())}$", out, re.MULTILINE), out
    assert ("8 run(s); 3 completed and 1 diverged (skipped), 4 to run "
            "(2 of them failed before, 1 with an invalid record)") in out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # a dry run writes nothing


def test_dry_run_of_a_new_study_counts_every_run_to_run(write_grid, tmp_path, capsys):
    from ablate.cli import main

    grid = write_grid(yaml.safe_dump(GRID))
    assert main(["run", str(grid), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("8 run(s); 0 completed and 0 diverged (skipped), 8 to run (0 of them failed before)")

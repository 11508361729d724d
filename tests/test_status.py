"""`status`: per-cell counts from the store, runs being executed shown as running, safe mid-sweep."""

from __future__ import annotations

import re

from ablate.catalog import parse_grid
from ablate.execution.status import STATUS_COLUMNS, format_status, grid_status
from ablate.execution.store import RunStore
from ablate.execution.worker import claim_run
from tests.helpers import run_cli

DATA = {"study": "st", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch", "keras"],
        "arms": ["none", "loss"], "smoothing": [0.1], "seeds": 3}


def _write(store, spec, status):
    store.write({"run_id": spec.run_id, "status": status, "config": spec.to_dict(), "error": None},
                {"test_probs": [[1.0]], "test_labels": [0]} if status == "completed" else None)


def _fill(tmp_path):
    runs = parse_grid(DATA).runs()
    store = RunStore(tmp_path, "st")
    torch_none = [s for s in runs if s.backend == "torch" and s.arm == "none"]
    _write(store, torch_none[0], "completed")
    _write(store, torch_none[1], "failed")
    _write(store, torch_none[2], "diverged")
    return runs, store, torch_none


def test_counts_per_cell_and_running(tmp_path):
    runs, store, torch_none = _fill(tmp_path)
    keras_loss = next(s for s in runs if s.backend == "keras/tensorflow" and s.arm == "loss")
    with claim_run(store.run_dir(keras_loss.run_id)), claim_run(store.run_dir(torch_none[1].run_id)):
        cells = grid_status(runs, store)
    assert cells[("torch", "digits", "mlp", "none", 0.0)] == {
        "completed": 1, "failed": 1, "diverged": 1, "total": 3, "running": 1}
    assert cells[("keras/tensorflow", "digits", "mlp", "loss", 0.1)] == {"pending": 3, "total": 3, "running": 1}
    assert len(cells) == 4
    # once the claims are released, nothing is running
    assert all(c["running"] == 0 for c in grid_status(runs, store).values())


def test_format_has_one_row_per_cell_and_a_total(tmp_path):
    runs, store, _ = _fill(tmp_path)
    text = format_status(grid_status(runs, store))
    lines = text.splitlines()
    assert lines[0].split() == ["backend", "dataset", "model", "arm", "eps", *STATUS_COLUMNS]
    assert lines[1].split() == ["torch", "digits", "mlp", "none", "-", "1", "1", "1", "0", "0", "0", "3"]
    assert lines[2].split() == ["torch", "digits", "mlp", "loss", "0.1", "0", "0", "0", "0", "3", "0", "3"]
    assert lines[-1].split() == ["total", "1", "1", "1", "0", "9", "0", "12"]
    assert len(lines) == 6


def test_status_command_with_a_subset(tmp_path, write_grid):
    grid = write_grid("""\
        study: st
        datasets: [digits]
        models: [mlp]
        backends: [torch, keras]
        arms: [none, loss]
        smoothing: [0.1]
        seeds: 3
        """)
    _fill(tmp_path / "res")
    out = run_cli("status", grid, "--results", tmp_path / "res", "--only", "backend=torch,arm=none", "--seeds", "0-1",
                  timeout=None, check=0).stdout
    assert re.search(r"^torch\s+digits\s+mlp\s+none\s+-\s+1\s+1\s+0\s+0\s+0\s+0\s+2$", out, re.MULTILINE), out
    assert len(out.strip().splitlines()) == 3

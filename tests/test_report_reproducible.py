"""Two reports of one study are byte-identical: every table, page, LaTeX file and PNG.

Figures draw only what analysis computed (power curves, training-curve intervals, the sideways
spread of per-seed points from a seeded generator), so nothing in a report depends on global
random state. report.html's "report written" line carries the time of writing and is the one
line compared with that line removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.execution.store import RunStore
from tests.helpers import run_cli
from tests.test_report import _probs

REPO = Path(__file__).resolve().parent.parent
TIMESTAMP_MARK = b"report written"  # the one line that carries the time the report was written


def _fill(root: Path) -> None:
    """6 seeds x 3 arms x 2 backends whose histories differ by seed, so bootstrapped bands would vary."""
    store = RunStore(root, "repro")
    rng = np.random.default_rng(3)
    sharp = {"none": 3.0, "explicit": 2.2, "loss": 2.3}
    for backend in ("torch", "keras/tensorflow"):
        for seed in range(6):
            for arm in sharp:
                spec = RunSpec(backend=backend, dataset=DatasetSpec("digits"), model="mlp", arm=arm,
                               smoothing=0.0 if arm == "none" else 0.1, seed=seed, repeat=0,
                               train=TrainConfig(epochs=3))
                test_p, test_y = _probs(rng, 200, 10, sharp[arm] + rng.normal(0, 0.1))
                val_p, val_y = _probs(rng, 80, 10, sharp[arm])
                noise = rng.normal(0, 0.05, size=(6, 3))
                history = {"epoch": [1, 2, 3],
                           "train_objective": list(1.2 - 0.3 * np.arange(3) + noise[0]),
                           "train_nll": list(1.0 - 0.3 * np.arange(3) + noise[1]),
                           "train_accuracy": list(0.6 + 0.1 * np.arange(3) + noise[2] / 5),
                           "val_objective": list(1.3 - 0.3 * np.arange(3) + noise[3]),
                           "val_nll": list(1.1 - 0.3 * np.arange(3) + noise[4]),
                           "val_accuracy": list(0.55 + 0.1 * np.arange(3) + noise[5] / 5),
                           "lr": [0.05, 0.03, 0.01], "seconds": [0.1, 0.1, 0.1]}
                store.write({"run_id": spec.run_id, "config": spec.to_dict(), "status": "completed",
                             "error": None, "attempt": 1, "history": history, "metrics": {}, "seconds": 1.0,
                             "started_at": "2026-01-01T00:00:00+00:00",
                             "finished_at": "2026-01-01T00:00:01+00:00", "environment": {}},
                            {"test_probs": test_p, "test_labels": test_y, "val_probs": val_p,
                             "val_labels": val_y})


def _report(root: Path, out: Path) -> None:
    # A fresh process each time, so global random state cannot carry over from one report to the next.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "random"}
    proc = run_cli("report", "--results", root, "--study", "repro", "--out", out, "--latex", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _without_timestamp(data: bytes) -> bytes:
    return b"\n".join(line for line in data.split(b"\n") if TIMESTAMP_MARK not in line)


@pytest.fixture(scope="module")
def two_reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    _fill(root)
    first, second = root / "first", root / "second"
    _report(root, first)
    _report(root, second)
    return first, second


def test_two_reports_of_one_study_are_byte_identical(two_reports):
    first, second = two_reports
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file()) == files
    kinds = {p.suffix for p in files}
    assert {".csv", ".md", ".html", ".tex", ".png"} <= kinds, kinds
    pngs = [p for p in files if p.suffix == ".png"]
    assert {"figures/training_curves.png", "figures/accuracy_by_arm.png", "figures/power.png",
            "figures/temperature_scaling.png"} <= {p.as_posix() for p in pngs}
    differ = []
    for rel in files:
        a, b = (first / rel).read_bytes(), (second / rel).read_bytes()
        if rel.name == "report.html":
            assert a.count(TIMESTAMP_MARK) == 1
            a, b = _without_timestamp(a), _without_timestamp(b)
        if a != b:
            differ.append(rel.as_posix())
    assert not differ, f"differ between two reports: {differ}"

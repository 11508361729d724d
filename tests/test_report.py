"""`ablate report` on a synthetic store: the files, their columns, re-binning, corrupt records."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from ablate.analysis import calibration
from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.analysis.report import RUNS_COLUMNS
from ablate.study import report_study
from ablate.execution.store import RunStore
from tests.helpers import run_cli

COMPARISON_COLUMNS = ["metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b", "n", "mean_a",
                      "mean_b", "mean_diff", "ci_low", "ci_high", "margin", "p_equivalence", "p_equivalence_adj",
                      "p_difference", "p_difference_adj", "test", "effect_dz", "p_rope", "seeds_needed",
                      "seeds_needed_observed", "verdict", "note", "sd_a", "sd_b", "sd_ratio", "sd_ratio_low",
                      "sd_ratio_high", "sd_margin", "p_sd_equivalence", "p_sd_equivalence_adj", "p_sd_difference",
                      "p_sd_difference_adj", "sd_test", "sd_verdict"]


def _probs(rng, n, k, sharpness):
    labels = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += sharpness
    p = np.exp(logits - logits.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).astype(np.float32), labels


def fill_store(root, *, seeds=6, backends_=("torch", "keras/tensorflow"), corrupt=True, failed=True):
    store = RunStore(root, "synth")
    rng = np.random.default_rng(0)
    sharp = {"none": 3.0, "explicit": 2.2, "loss": 2.2}
    for backend in backends_:
        for seed in range(seeds):
            for arm in ("none", "explicit", "loss"):
                eps = 0.0 if arm == "none" else 0.1
                spec = RunSpec(backend=backend, dataset=DatasetSpec("digits"), model="mlp", arm=arm, smoothing=eps,
                               seed=seed, repeat=0, train=TrainConfig(epochs=2))
                test_p, test_y = _probs(rng, 300, 10, sharp[arm] + rng.normal(0, 0.05))
                val_p, val_y = _probs(rng, 100, 10, sharp[arm])
                history = {"epoch": [1, 2], "train_objective": [1.0, 0.5], "train_nll": [0.9, 0.4],
                           "train_accuracy": [0.7, 0.9], "val_objective": [1.1, 0.6], "val_nll": [1.0, 0.5],
                           "val_accuracy": [0.6, 0.8], "lr": [0.05, 0.025], "seconds": [0.1, 0.1]}
                store.write({"run_id": spec.run_id, "config": spec.to_dict(), "status": "completed", "error": None,
                             "attempt": 1, "history": history, "metrics": {}, "seconds": 1.5,
                             "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:02+00:00",
                             "environment": {}},
                            {"test_probs": test_p, "test_labels": test_y, "val_probs": val_p, "val_labels": val_y})
    if failed:
        spec = RunSpec(backend=backends_[0], dataset=DatasetSpec("digits"), model="mlp", arm="none", smoothing=0.0,
                       seed=99, repeat=0, train=TrainConfig(epochs=2, lr=1e9))
        store.write({"run_id": spec.run_id, "config": spec.to_dict(), "status": "diverged",
                     "error": "non-finite training loss (nan) at epoch 1, step 3", "history": {}, "metrics": {},
                     "seconds": 0.2})
    if corrupt:
        bad = store.runs_dir / "deadbeefdeadbeef"
        bad.mkdir(parents=True)
        (bad / "record.json").write_text("{ truncated")
    return store


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fill_store(root)
    written = report_study(root, study="synth")
    return root / "synth", written


def test_files_written(reported):
    out, written = reported
    names = {p.name for p in written}
    assert {"runs.csv", "summary.csv", "comparisons.csv", "report.md"} <= names
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"accuracy_by_arm.png", "ece_by_arm.png", "training_curves.png", "temperature_scaling.png"} <= figures
    assert any(f.startswith("reliability_") for f in figures)
    for path in written:
        assert path.exists() and path.stat().st_size > 0


def test_runs_csv_contract_and_recomputed_metrics(reported):
    out, _ = reported
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns[:len(RUNS_COLUMNS)]) == list(RUNS_COLUMNS)
    assert len(runs) == 2 * 6 * 3 + 1
    assert set(runs["status"]) == {"completed", "diverged"}
    row = runs[runs["status"] == "completed"].iloc[0]
    store = RunStore(out.parent, "synth")
    arrays = store.read_record(row["run_id"]).arrays()
    assert row["ece"] == pytest.approx(calibration.ece(arrays["test_probs"], arrays["test_labels"]))
    assert row["accuracy"] == pytest.approx(calibration.accuracy(arrays["test_probs"], arrays["test_labels"]))
    assert np.isfinite(row["temperature"]) and np.isfinite(row["ece_ts"])


def test_summary_and_comparisons(reported):
    out, _ = reported
    summary = pd.read_csv(out / "summary.csv")
    acc = summary[(summary["metric"] == "accuracy") & (summary["arm"] == "none") & (summary["backend"] == "torch")]
    assert acc["n"].item() == 6 and acc["ci_low"].item() < acc["mean"].item() < acc["ci_high"].item()
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert list(comparisons.columns) == COMPARISON_COLUMNS
    pairs = set(zip(comparisons["arm_a"], comparisons["arm_b"]))
    assert {("explicit", "loss")} <= pairs and len(pairs) >= 3
    assert set(comparisons["verdict"]) <= {"equivalent", "different", "inconclusive", "identical"}


def test_report_md_mentions_failures_and_corrupt_records(reported):
    out, _ = reported
    text = (out / "report.md").read_text()
    assert "## Comparisons" in text and "explicit and loss smoothing" in text and "diverged" in text
    assert "deadbeefdeadbeef" in text and "not valid JSON" in text
    assert "figures/accuracy_by_arm.png" in text


def test_rebinning_changes_ece_without_retraining(tmp_path):
    fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False, failed=False)
    report_study(tmp_path, study="synth", out=tmp_path / "a", figures=False)
    report_study(tmp_path, study="synth", out=tmp_path / "b", ece_bins=5, ece_binning="quantile", figures=False)
    a, b = pd.read_csv(tmp_path / "a" / "runs.csv"), pd.read_csv(tmp_path / "b" / "runs.csv")
    assert (a["accuracy"] == b["accuracy"]).all() and not np.allclose(a["ece"], b["ece"])


def test_cli_report_errors_are_one_line(tmp_path):
    cmd = ["report", "--results", tmp_path]
    proc = run_cli(*cmd, timeout=None)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no study with stored runs" in proc.stderr
    fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False, failed=False)
    proc = run_cli(*cmd, "--study", "nope", timeout=None)
    assert proc.returncode == 2 and "expected one of ['synth']" in proc.stderr
    proc = run_cli(*cmd, "--margin", "accuracy=-1", timeout=None)
    assert proc.returncode == 2 and "--margin" in proc.stderr


def test_report_on_a_table_made_elsewhere(tmp_path):
    """`ablate report --runs FILE.csv` on a user's own per-run table (no backend/dataset columns)."""
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(8):
        base = 0.90 + rng.normal(0, 0.004)
        for arm, shift in (("none", -0.02), ("explicit", 0.0), ("loss", 0.0003)):
            rows.append({"arm": arm, "seed": seed, "accuracy": base + shift + rng.normal(0, 0.001),
                         "ece": 0.05 - (0.03 if arm != "none" else 0) + rng.normal(0, 0.002)})
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "out"
    proc = run_cli("report", "--runs", path, "--out", out, "--margin", "accuracy=0.005", "--correction", "bh",
                   timeout=None)
    assert proc.returncode == 0, proc.stderr
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert list(comparisons.columns) == COMPARISON_COLUMNS
    row = comparisons[(comparisons["metric"] == "accuracy") & (comparisons["arm_a"] == "explicit")
                      & (comparisons["arm_b"] == "loss")].iloc[0]
    assert row["n"] == 8 and row["verdict"] == "equivalent"
    none_rows = comparisons[(comparisons["metric"] == "accuracy") & (comparisons["arm_a"] == "none")]
    assert set(none_rows["verdict"]) == {"different"}
    text = (out / "report.md").read_text()
    assert "equivalent" in text and str(out / "report.md") in proc.stdout


def test_report_on_a_bad_table_names_the_columns(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"method": ["a", "b"], "seed": [0, 0], "accuracy": [0.9, 0.8]}).to_csv(path, index=False)
    proc = run_cli("report", "--runs", path, "--out", tmp_path / "o", timeout=None)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "arm" in proc.stderr and "bad.csv" in proc.stderr
    assert not (tmp_path / "o").exists()

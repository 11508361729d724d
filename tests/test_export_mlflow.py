"""`ablate export mlflow` into a real SQLite tracking store, read back through MlflowClient."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.execution.store import RunStore
from ablate.study import report_study
from tests.conftest import REPO
from tests.test_report import fill_store

mlflow = pytest.importorskip("mlflow")
from ablate.export import mlflow as export  # noqa: E402

SEEDS = 6


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fill_store(root, seeds=SEEDS, backends_=("torch",))  # 18 completed, 1 diverged, 1 corrupt record
    report_study(root, study="synth", figures=False, latex=True)
    first = export.export_study(root, study="synth")
    second = export.export_study(root, study="synth")
    client = mlflow.MlflowClient(tracking_uri=export.default_tracking_uri(root))
    return root, first, second, client


def _runs(client, summary):
    return client.search_runs([summary.experiment_id], max_results=1000)


def test_one_mlflow_run_per_ablate_run_plus_the_parent(exported):
    root, first, second, client = exported
    assert first.tracking_uri == f"sqlite:///{(root / 'mlflow.db').resolve().as_posix()}"
    assert (first.added, first.replaced, first.unchanged) == (3 * SEEDS + 1, 0, 0)
    assert (second.added, second.replaced, second.unchanged) == (0, 0, 3 * SEEDS + 1)
    assert second.parent_run_id == first.parent_run_id
    runs = _runs(client, first)
    children = [r for r in runs if r.data.tags.get("ablate.kind") == "run"]
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    assert len(runs) == 3 * SEEDS + 2 and len(parents) == 1
    stored = {r.run_id for r in RunStore(root, "synth").scan() if hasattr(r, "run_id")}
    assert {r.data.tags["ablate.run_id"] for r in children} == stored
    assert all(r.data.tags["mlflow.parentRunId"] == first.parent_run_id for r in children)


def test_child_params_metrics_history_and_tags(exported):
    root, first, _, client = exported
    runs = {r.data.tags["ablate.run_id"]: r for r in _runs(client, first) if r.data.tags.get("ablate.kind") == "run"}
    table = pd.read_csv(root / "synth" / "runs.csv").set_index("run_id")
    done = table[table["status"] == "completed"].iloc[0]
    run = runs[done.name]
    params = run.data.params
    assert (params["arm"], int(params["seed"]), params["backend"], params["dataset"]) == (
        done["arm"], done["seed"], "torch", "digits")
    assert float(params["smoothing"]) == done["smoothing"] and params["train.epochs"] == "2"
    assert params["repeat"] == "0" and "train.lr" in params and "train.batch_size" in params
    assert run.data.tags["ablate.study"] == "synth" and run.data.tags["ablate.status"] == "completed"
    assert run.data.tags["ablate.attempt"] == "1" and run.info.status == "FINISHED"
    # The report's recomputed metrics ride along with the record's own.
    assert run.data.metrics["ece_ts"] == pytest.approx(done["ece_ts"])
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.8)]
    diverged = next(r for r in runs.values() if r.data.tags["ablate.status"] == "diverged")
    assert diverged.info.status == "FAILED" and "non-finite" in diverged.data.tags["ablate.error"]


def test_parent_holds_report_and_verdicts(exported):
    root, first, _, client = exported
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["ablate.study"] == "synth"
    files = {f.path for f in client.list_artifacts(first.parent_run_id)}
    assert {"comparisons.csv", "summary.csv", "runs.csv", "report.html", "report.md", "comparisons.tex"} <= files
    comparisons = pd.read_csv(root / "synth" / "comparisons.csv")
    row = comparisons[(comparisons["arm_a"] == "explicit") & (comparisons["arm_b"] == "loss")
                      & (comparisons["metric"] == "accuracy")].iloc[0]
    prefix = "accuracy/torch/digits/mlp/eps0.1/explicit vs loss"
    assert parent.data.metrics[f"{prefix}/ci_low"] == pytest.approx(row["ci_low"])
    assert parent.data.metrics[f"{prefix}/mean_diff"] == pytest.approx(row["mean_diff"])
    assert parent.data.metrics[f"{prefix}/verdict_code"] == export.VERDICT_CODES[row["verdict"]]
    assert parent.data.tags[f"verdict/{prefix}"] == row["verdict"]
    verdict_tags = [k for k in parent.data.tags if k.startswith("verdict/")]
    assert len(verdict_tags) == len(comparisons)
    # Exported twice, the unchanged table was logged once.
    assert len(client.get_metric_history(first.parent_run_id, f"{prefix}/ci_low")) == 1


def test_a_rerun_replaces_its_mlflow_run(tmp_path):
    store = fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False)
    # A failed run (only final statuses are protected from overwriting) that is retried later.
    spec = RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm="none", smoothing=0.0,
                   seed=98, repeat=0, train=TrainConfig(epochs=2))
    record = {"run_id": spec.run_id, "config": spec.to_dict(), "status": "failed", "attempt": 1,
              "error": "RuntimeError: out of memory", "history": {}, "metrics": {},
              "finished_at": "2026-01-01T00:00:00+00:00"}
    store.write(record)
    export.export_study(tmp_path)
    store.write({**record, "attempt": 2, "finished_at": "2026-01-02T00:00:00+00:00"})
    summary = export.export_study(tmp_path)
    assert (summary.added, summary.replaced, summary.unchanged) == (0, 1, 7)
    client = mlflow.MlflowClient(tracking_uri=summary.tracking_uri)
    runs = [r for r in _runs(client, summary) if r.data.tags.get("ablate.run_id") == spec.run_id]
    assert len(runs) == 1 and runs[0].data.tags["ablate.attempt"] == "2"


def test_without_mlflow_the_command_says_how_to_install_it(tmp_path):
    fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False, failed=False)
    code = ("import sys\nsys.modules['mlflow'] = None\nfrom ablate.cli import main\n"
            f"sys.exit(main(['export', 'mlflow', '--results', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "pip install 'ablate[mlflow]'" in proc.stderr

"""`report --mlflow` against a real `mlflow server` (HTTP, SQLite backend), a sqlite:/// URI and a file store.

The runs are logged with plain MlflowClient calls (tests/mlflow_table.py, no ablate code): two arms x
8 seeds, a third arm with another learning rate, a FAILED, a KILLED and a RUNNING run, all children
of one parent. `report --mlflow` must give the comparisons `report --runs` gives on the same table;
`--write-back` is read back through MlflowClient, and a second write-back changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from ablate.cli import main
from tests.mlflow_table import SEEDS, known_table, log_table

mlflow = pytest.importorskip("mlflow")

EXPERIMENT = "known sweep"
SERVER_START_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with a SQLite backend store on a free port; stopped after the module."""
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.poll() is not None and not _answers(url)  # the server is stopped


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def file_store_allowed():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a file store unless told
        yield


def _store(kind: str, tmp: Path, server_url: str | None) -> str:
    if kind == "http":
        return server_url
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'mlflow.db'}"
    return str(tmp / "mlruns")  # a file store, given as a folder


@pytest.fixture(scope="module", params=["http", "sqlite", "file"])
def reported(request, tmp_path_factory):
    """The known table logged into one kind of store, reported both ways, written back twice."""
    tmp = tmp_path_factory.mktemp(request.param)
    uri = _store(request.param, tmp, request.getfixturevalue("server") if request.param == "http" else None)
    table = known_table()
    with file_store_allowed():
        client = mlflow.MlflowClient(tracking_uri=uri)
        location = None if request.param == "http" else (tmp / "artifacts").as_uri()
        parent = log_table(client, EXPERIMENT, table, artifact_location=location)
    csv = tmp / "table.csv"
    table.drop(columns=["lr"]).to_csv(csv, index=False)
    code, _, err = cli("report", "--runs", str(csv), "--out", str(tmp / "from_csv"), "--no-figures")
    assert code == 0, err
    argv = ("report", "--mlflow", uri, "--experiment", EXPERIMENT, "--by", "dataset", "--out",
            str(tmp / "from_mlflow"), "--no-figures", "--write-back")
    first = cli(*argv)
    assert first[0] == 0, first[2]
    second = cli(*argv)
    assert second[0] == 0, second[2]
    with file_store_allowed():
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        verdicts = [r for r in runs if r.data.tags.get("ablate.kind") == "verdicts"]
        artifacts = {f.path for r in verdicts for f in client.list_artifacts(r.info.run_id)}
    return dict(tmp=tmp, uri=uri, parent=parent, first=first, second=second, runs=runs, verdicts=verdicts,
                artifacts=artifacts)


def test_report_mlflow_gives_the_same_comparisons_as_report_runs(reported):
    tmp = reported["tmp"]
    ours = pd.read_csv(tmp / "from_mlflow" / "comparisons.csv")
    theirs = pd.read_csv(tmp / "from_csv" / "comparisons.csv")
    assert len(ours) == 9  # 3 arm pairs x accuracy, ece, nll
    pd.testing.assert_frame_equal(ours, theirs)
    pd.testing.assert_frame_equal(pd.read_csv(tmp / "from_mlflow" / "summary.csv"),
                                  pd.read_csv(tmp / "from_csv" / "summary.csv"))


def test_only_finished_leaf_runs_are_analysed_and_the_others_are_named(reported):
    tmp = reported["tmp"]
    text = (tmp / "from_mlflow" / "report.md").read_text()
    assert f"{3 * SEEDS + 3} run(s): {3 * SEEDS} completed, 1 failed, 0 diverged, 1 killed, 1 running." in text
    runs = pd.read_csv(tmp / "from_mlflow" / "runs.csv")
    assert reported["parent"] not in set(runs["run_id"])  # the sweep's parent is not a seed
    assert "leaf runs only (1 parent run(s) left out; --include-parents reads them)" in text
    for status in ("failed", "killed", "running"):
        run_id = runs.loc[runs["status"] == status, "run_id"].item()
        assert f"- `{run_id}` {status}: digits" in text


def test_a_param_that_differs_between_arms_is_listed_as_a_confound(reported):
    text = (reported["tmp"] / "from_mlflow" / "report.md").read_text()
    assert "## Per-arm settings (possible confounds)" in text
    assert "- `wide` trains with lr = 0.1, unlike the other arms." in text
    assert "`base` trains with" not in text


def test_write_back_logs_one_verdicts_run_and_a_second_changes_nothing(reported):
    verdicts = reported["verdicts"]
    assert len(verdicts) == 1
    run = verdicts[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "ablate verdicts"
    assert run.data.tags["ablate.source_experiment"] == EXPERIMENT and len(run.data.tags["ablate.source_sha256"]) == 64
    assert {"comparisons.csv", "summary.csv", "runs.csv", "report.md", "report.html"} <= reported["artifacts"]
    comparisons = pd.read_csv(reported["tmp"] / "from_mlflow" / "comparisons.csv")
    for row in comparisons.to_dict("records"):
        prefix = f"{row['metric']}/-/digits/-/eps0/{row['arm_a']} vs {row['arm_b']}"
        assert run.data.tags[f"verdict/{prefix}"] == row["verdict"]
        assert run.data.metrics[f"{prefix}/mean_diff"] == pytest.approx(row["mean_diff"])
        assert run.data.metrics[f"{prefix}/ci_low"] == pytest.approx(row["ci_low"])
    assert f"write-back: run {run.info.run_id}" in reported["first"][1]
    assert f"write-back: unchanged; run {run.info.run_id}" in reported["second"][1]
    assert len(reported["runs"]) == len(known_table()) + 2  # the table, its parent, one verdicts run


def test_export_mlflow_into_the_http_server(server, tmp_path):
    from ablate.export import mlflow as export
    from ablate.study import report_study
    from tests.test_report import fill_store

    fill_store(tmp_path, seeds=3, backends_=("torch",), corrupt=False, failed=False)
    report_study(tmp_path, study="synth", figures=False)
    code, out, err = cli("export", "mlflow", "--results", str(tmp_path), "--tracking-uri", server,
                         "--experiment", "exported synth")
    assert code == 0, err
    again = export.export_study(tmp_path, study="synth", tracking_uri=server, experiment="exported synth")
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 9)
    client = mlflow.MlflowClient(tracking_uri=server)
    runs = client.search_runs([again.experiment_id], max_results=1000)
    assert sum(r.data.tags.get("ablate.kind") == "run" for r in runs) == 9
    parent = client.get_run(again.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {"comparisons.csv", "report.md"} <= {f.path for f in client.list_artifacts(again.parent_run_id)}

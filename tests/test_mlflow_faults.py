"""MLflow faults give one line within seconds, never a traceback after minutes (issue 20, item 10).

- an unreachable tracking server: no HTTP retries and a short timeout for the call;
- a SQLite location that cannot be written: checked before MLflow's ten sleeping retries;
- a name over MLflow's 250 characters: refused before anything is logged;
- an error once the parent run exists: the parent ends FAILED, not RUNNING.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ablate.cli import main
from ablate.errors import TrackerError
from ablate.study import report_study
from tests.conftest import REPO
from tests.test_report import fill_store

mlflow = pytest.importorskip("mlflow")
from ablate.export import mlflow as export  # noqa: E402
from ablate.export import tracking  # noqa: E402

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def study(tmp_path):
    fill_store(tmp_path, seeds=3, backends_=("torch",), corrupt=False, failed=False)
    return tmp_path


@pytest.mark.parametrize("command", [
    ["export", "mlflow", "--tracking-uri", DEAD],
    ["report", "--mlflow", DEAD, "--experiment", "x"],
])
def test_an_unreachable_server_is_one_line(study, command):
    # MLflow's defaults retry for minutes (4 min 9 s here); the guard below is far under that.
    argv = [sys.executable, "-m", "ablate", *command, "--results", str(study)] if command[0] == "export" else \
        [sys.executable, "-m", "ablate", *command, "--out", str(study / "out")]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert DEAD in line and "connection refused" in line
    assert not (study / "out").exists()


def test_the_session_turns_off_retries_for_the_call_only(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    from mlflow.store.db import utils as db_utils

    before = db_utils.MAX_RETRY_COUNT
    with tracking.session(f"sqlite:///{tmp_path / 'm.db'}", flag="--mlflow", read=False, write=True):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= 5
        assert db_utils.MAX_RETRY_COUNT == 1
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and db_utils.MAX_RETRY_COUNT == before


def _read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through file modes; /proc takes no new files
        return Path("/proc/ablate-read-only")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "sub"


def test_a_read_only_sqlite_location_is_one_line(study, tmp_path, capsys):
    uri = f"sqlite:///{_read_only_folder(tmp_path)}/mlflow.db"
    code = main(["export", "mlflow", "--results", str(study), "--tracking-uri", uri])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "--tracking-uri" in line and "not writable" in line


def test_a_name_over_250_characters_is_refused_before_anything_is_logged(study, capsys):
    report_study(study, study="synth", figures=False)
    path = study / "synth" / "comparisons.csv"
    table = pd.read_csv(path)
    table["arm_b"] = table["arm_b"].replace({"loss": "l" * 260})
    table.to_csv(path, index=False)
    code = main(["export", "mlflow", "--results", str(study)])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "at most 250" in line and "metric name" in line
    assert not (study / "mlflow.db").exists()  # nothing was written to the tracker


def test_an_error_after_the_parent_exists_ends_it_failed(study, monkeypatch):
    from mlflow.exceptions import MlflowException

    def broken(*args, **kwargs):
        raise MlflowException("simulated failure while logging a run")

    monkeypatch.setattr(export, "_export_runs", broken)
    with pytest.raises(TrackerError, match="simulated failure"):
        export.export_study(study, study="synth")
    client = mlflow.MlflowClient(tracking_uri=export.default_tracking_uri(study))
    experiment = client.get_experiment_by_name("ablate/synth")
    statuses = [r.info.status for r in client.search_runs([experiment.experiment_id])]
    assert statuses == ["FAILED"]  # the parent, ended FAILED: no run is left RUNNING

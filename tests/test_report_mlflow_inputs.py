"""`report --mlflow` bad inputs: one line each, exit code 2, no report folder and nothing written to the tracker."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.mlflow_table import known_table, log_table
from tests.test_report_mlflow import cli

mlflow = pytest.importorskip("mlflow")

DEAD = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store: the known table, plus experiments with broken params and many experiment names."""
    tmp = tmp_path_factory.mktemp("inputs")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    location = (tmp / "artifacts").as_uri()
    table = known_table()
    log_table(client, "good", table, artifact_location=location)
    broken = table.copy()
    broken.loc[[0, 4], "arm"] = None
    _log_rows(client, "no arm on two runs", broken, location)
    seedless = table.copy().astype({"seed": object})
    seedless.loc[[2], "seed"] = None
    _log_rows(client, "no seed on one run", seedless, location)
    floats = table.copy()
    floats["seed"] = floats["seed"].astype(str)
    floats.loc[[3], "seed"] = "1.5"
    floats.loc[[5], "seed"] = "abc"
    _log_rows(client, "float seeds", floats, location)
    for i in range(12):
        client.create_experiment(f"other {i:02d}", artifact_location=location)
    return tmp, uri, client


def _log_rows(client, name, table, location):
    """Like log_table, but a None param is left out of that run."""
    experiment_id = client.create_experiment(name, artifact_location=location)
    for row in table.to_dict("records"):
        run = client.create_run(experiment_id).info.run_id
        for key in ("arm", "seed", "dataset", "lr"):
            if not pd.isna(row[key]):
                client.log_param(run, key, str(row[key]))
        if row["status"] == "completed":
            for key in ("accuracy", "nll", "ece"):
                client.log_metric(run, key, float(row[key]))
            client.set_terminated(run, status="FINISHED")


def _count_runs(client) -> int:
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids, max_results=5000))


def _refused(store, *argv: str) -> str:
    tmp, uri, client = store
    before = _count_runs(client)
    out = tmp / "out"
    code, stdout, err = cli("report", "--mlflow", uri, *argv, "--out", str(out), "--no-figures", "--write-back")
    assert code == 2, (stdout, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ablate: error: "), err
    assert not out.exists() and _count_runs(client) == before  # nothing written anywhere
    return lines[0]


def test_everything_the_report_writes_follows(store, tmp_path):
    _, uri, _ = store
    out = tmp_path / "o"
    code, _, err = cli("report", "--mlflow", uri, "--experiment", "good", "--out", str(out), "--latex",
                       "--sequential", "4,8")
    assert code == 0, err
    for name in ("runs.csv", "summary.csv", "comparisons.csv", "sequential.csv", "report.md", "report.html",
                 "comparisons.tex", "summary.tex", "figures/accuracy_by_arm.png", "figures/sequential.png"):
        assert (out / name).is_file(), name
    assert "decision" in pd.read_csv(out / "comparisons.csv")


def test_write_back_with_other_settings_is_another_verdicts_run(store, tmp_path):
    _, uri, client = store
    experiment = client.get_experiment_by_name("good").experiment_id

    def verdicts():
        runs = client.search_runs([experiment], filter_string="tags.`ablate.kind` = 'verdicts'")
        return sorted((r.info.run_id, r.data.tags["ablate.source_sha256"]) for r in runs)

    before = verdicts()
    argv = ["report", "--mlflow", uri, "--experiment", "good", "--no-figures", "--write-back"]
    assert cli(*argv, "--out", str(tmp_path / "a"))[0] == 0
    once = verdicts()
    assert cli(*argv, "--out", str(tmp_path / "b"))[0] == 0
    assert verdicts() == once and len(once) == len(before) + 1  # the same analysis again: nothing new
    assert cli(*argv, "--out", str(tmp_path / "c"), "--margin", "accuracy=0.02")[0] == 0
    assert len(verdicts()) == len(once) + 1  # a new margin is a new analysis


def test_a_server_that_does_not_answer(tmp_path):
    code, _, err = cli("report", "--mlflow", DEAD, "--experiment", "good", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "connection refused" in err
    assert not (tmp_path / "o").exists()


def test_an_unknown_experiment_lists_up_to_ten_known_ones(store):
    line = _refused(store, "--experiment", "nope")
    assert "no experiment 'nope'" in line
    listed = line.split("experiments there: ")[1]
    assert listed.count("'") == 2 * 10 and listed.endswith(", ...")


def test_an_arm_param_missing_from_some_runs(store):
    line = _refused(store, "--experiment", "no arm on two runs")
    assert "--arm: param 'arm' is missing from 2 of 24 finished runs" in line
    ids = line.split("(run ids ")[1].split(")")[0].split(", ")
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)


def test_a_seed_param_missing_from_some_runs(store):
    line = _refused(store, "--experiment", "no seed on one run")
    assert "--seed: param 'seed' is missing from 1 of 24 finished runs (run id " in line


def test_a_by_param_missing_from_the_runs(store):
    line = _refused(store, "--experiment", "good", "--by", "dataset,optimizer")
    assert "--by: param 'optimizer' is missing from 24 of 24 finished runs" in line


def test_seeds_that_are_not_integers(store):
    line = _refused(store, "--experiment", "float seeds")
    assert "--seed: param 'seed' must hold integers" in line and "'1.5'" in line and "'abc'" in line


def test_a_metric_that_no_run_has(store):
    line = _refused(store, "--experiment", "good", "--metrics", "accuracy,top5")
    assert "--metrics: no finished run has metric 'top5'; metrics: accuracy, ece, nll" in line


def test_fewer_than_two_arms(store):
    line = _refused(store, "--experiment", "good", "--filter", "params.arm = 'base'")
    assert "--arm: param 'arm' takes 1 value(s) ('base')" in line and "at least two arms" in line


def test_parents_included_must_carry_the_params_too(store):
    line = _refused(store, "--experiment", "good", "--include-parents")
    assert "param 'arm' is missing from 1 of 25 finished runs" in line


def test_mlflow_only_flags_need_mlflow(tmp_path):
    code, _, err = cli("report", "--runs", str(tmp_path / "t.csv"), "--write-back")
    assert code == 2 and "--write-back: only applies with --mlflow URI" in err
    code, _, err = cli("report", "--mlflow", DEAD)
    assert code == 2 and "--experiment: --mlflow needs the name" in err


def test_a_write_back_that_fails_ends_its_run_failed_and_the_next_one_logs_again(store, tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    from ablate.export import mlflow as export

    _, uri, client = store
    experiment = client.get_experiment_by_name("good").experiment_id
    argv = ["report", "--mlflow", uri, "--experiment", "good", "--no-figures", "--write-back",
            "--margin", "ece=0.005"]

    def broken(*args, **kwargs):
        raise MlflowException("simulated upload failure")

    with monkeypatch.context() as mp:
        mp.setattr(export, "log_report_files", broken)
        code, _, err = cli(*argv, "--out", str(tmp_path / "a"))
    assert code == 2 and "simulated upload failure" in err and err.count("\n") == 1
    settings = "tags.`ablate.kind` = 'verdicts' and tags.`ablate.settings` LIKE '%0.005%'"
    assert [r.info.status for r in client.search_runs([experiment], filter_string=settings)] == ["FAILED"]
    assert cli(*argv, "--out", str(tmp_path / "b"))[0] == 0
    statuses = sorted(r.info.status for r in client.search_runs([experiment], filter_string=settings))
    assert statuses == ["FAILED", "FINISHED"]


def test_confounds_name_params_that_differ_between_arms_or_runs_of_a_cell():
    from types import SimpleNamespace

    from ablate.export.mlflow_read import Selection, confounds

    def run(arm, seed, **params):
        return SimpleNamespace(data=SimpleNamespace(params={"arm": arm, "seed": str(seed), "dataset": "d", **params}))

    runs = [run("a", s, lr="0.1", commit=f"c{s}", opt="sgd") for s in range(2)]
    runs += [run("b", s, lr="0.1", commit=f"c{s}", opt="sgd") for s in range(2)]
    runs += [run("c", s, lr="0.5", commit=f"c{s}", opt="sgd") for s in range(2)]
    found = confounds(runs, Selection(experiment="x", by=("dataset",)))
    assert found["c"]["lr"] == "0.5" and "lr" not in found.get("a", {})
    assert found["a"]["commit"] == "c0, c1 (differs between its runs)"
    assert all("opt" not in keys for keys in found.values())
    assert confounds(runs, Selection(experiment="x", by=("dataset", "lr", "commit"))) == {}


def test_a_parent_stays_out_when_the_filter_leaves_out_its_children(store):
    line = _refused(store, "--experiment", "good", "--filter", "metrics.accuracy < 0.6")  # the parent's 0.5
    assert "has no runs matching --filter 'metrics.accuracy < 0.6'" in line


def test_by_smoothing_fills_the_smoothing_column(store, tmp_path):
    _, uri, client = store
    experiment = client.create_experiment("eps sweep", artifact_location=(tmp_path / "a").as_uri())
    for seed in range(5):
        for arm, eps, acc in (("none", "0", 0.9), ("loss", "0.1", 0.91)):
            run = client.create_run(experiment).info.run_id
            for key, value in (("arm", arm), ("seed", str(seed)), ("smoothing", eps)):
                client.log_param(run, key, value)
            client.log_metric(run, "accuracy", acc + 0.001 * seed)
            client.set_terminated(run)
    crashed = client.create_run(experiment).info.run_id  # failed before it logged its smoothing
    client.log_param(crashed, "arm", "loss")
    client.set_terminated(crashed, status="FAILED")
    code, _, err = cli("report", "--mlflow", uri, "--experiment", "eps sweep", "--by", "smoothing",
                       "--out", str(tmp_path / "o"), "--no-figures")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "o" / "comparisons.csv")
    assert set(table["smoothing"]) == {0.1} and set(zip(table["arm_a"], table["arm_b"])) == {("none", "loss")}
    assert f"- `{crashed}` failed: loss eps=0 seed=-1" in (tmp_path / "o" / "report.md").read_text()

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


# ----------------------------------------------------------------------- item 6: temperature at its bound
def _study_arrays(seed, perfect_val, n=60, k=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k) * 2, size=n)
    p[np.arange(n), labels] += 0.6  # mostly right, not always
    p /= p.sum(axis=1, keepdims=True)
    val_labels = rng.integers(0, k, 20)
    val = rng.dirichlet(np.ones(k) * 2, size=20)
    # Every validation prediction right (the NLL keeps falling as T -> 0), or 4 of 20 wrong.
    favoured = val_labels if perfect_val else np.where(np.arange(20) < 4, (val_labels + 1) % k, val_labels)
    val[np.arange(20), favoured] += 1.0
    val /= val.sum(axis=1, keepdims=True)
    return {"test_probs": p.astype(np.float32), "test_labels": labels,
            "val_probs": val.astype(np.float32), "val_labels": val_labels}


def _bound_study(tmp_path, at_bound=(("loss", 0), ("loss", 1)), seeds=6):
    store = RunStore(tmp_path, "tb")
    for arm in ("none", "loss"):
        for seed in range(seeds):
            spec = _spec(seed, arm)
            store.write(_record(spec), _study_arrays(seed + (100 if arm == "loss" else 0),
                                                     (arm, seed) in at_bound))
    return store


def test_a_temperature_at_its_bound_is_marked_and_left_out_of_the_ts_analysis(tmp_path, monkeypatch):
    import pandas as pd

    from ablate.analysis.figures import calibration as cal_figs
    from ablate.study import report_study

    _bound_study(tmp_path)
    drawn = {}
    real = cal_figs.temperature_effect

    def spy(table, ax=None):
        drawn["table"] = table.copy()
        return real(table, ax=ax)

    monkeypatch.setattr(cal_figs, "temperature_effect", spy)
    report_study(tmp_path, study="tb")
    out = tmp_path / "tb"
    runs = pd.read_csv(out / "runs.csv")
    flagged = runs[runs["temperature_at_bound"]]
    assert sorted(zip(flagged["arm"], flagged["seed"])) == [("loss", 0), ("loss", 1)]
    assert np.allclose(flagged["temperature"], 0.01)
    assert flagged["nll_ts"].notna().all()  # runs.csv keeps the values, marked
    # The summary (the table of report.md and .html) counts 4 loss runs after TS, 6 before.
    summary = pd.read_csv(out / "summary.csv")
    loss = summary[summary["arm"] == "loss"].set_index("metric")["n"]
    assert loss["nll"] == 6 and loss["nll_ts"] == 4 and loss["ece_ts"] == 4
    # The figure is drawn without them ...
    fig_table = drawn["table"]
    assert fig_table.loc[fig_table["arm"] == "loss", "ece_ts"].notna().sum() == 4
    # ... and so is any *_ts comparison, with the reason in its note.
    comparisons = compare_ts(tmp_path)
    row = comparisons[(comparisons["metric"] == "nll_ts")].iloc[0]
    assert row["n"] == 4 and "seed(s) 0, 1 dropped (temperature at its search bound)" in row["note"]
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        assert "2 of 12 run(s) hit the temperature search bound (all at T = 0.01)" in text, name
        assert "classified perfectly" in text and "too small" in text, name


def compare_ts(results):
    from ablate.study import Study

    return Study.open(results / "tb").comparisons(margins={"nll_ts": 0.02})


def test_without_bound_temperatures_the_report_says_none_hit_it(tmp_path):
    from ablate.study import report_study

    _bound_study(tmp_path, at_bound=())
    report_study(tmp_path, study="tb", figures=False)
    for name in ("report.md", "report.html"):
        text = (tmp_path / "tb" / name).read_text()
        assert "0 of 12 run(s) hit the temperature search bound" in text, name
        assert "left out" not in text, name


def test_temperature_at_bound_is_a_pure_check():
    from ablate.analysis.calibration import TEMPERATURE_BOUNDS, fit_temperature, temperature_at_bound

    assert TEMPERATURE_BOUNDS == (0.01, 100.0)
    assert temperature_at_bound(0.01) and temperature_at_bound(100.0) and not temperature_at_bound(1.3)
    assert not temperature_at_bound(float("nan"))
    perfect = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert temperature_at_bound(fit_temperature(perfect, np.array([0, 1])))


# ----------------------------------------------------------------------- item 7: equivalence at chance
def _chance_table(acc=0.1, classes=10, seeds=8):
    import pandas as pd

    rng = np.random.default_rng(3)
    rows = []
    for arm, eps in (("none", 0.0), ("explicit", 0.1), ("loss", 0.1)):
        for seed in range(seeds):
            rows.append({"backend": "torch", "dataset": "d", "model": "m", "arm": arm, "smoothing": eps,
                         "seed": seed, "classes": classes, "accuracy": acc + rng.normal(0, 0.0005),
                         "ece": 0.02 + rng.normal(0, 0.0005)})
    return pd.DataFrame(rows)


def test_equivalence_of_arms_at_chance_is_called_vacuous_in_note_prose_and_assay_sentence():
    from ablate.analysis import compare, prose

    result = compare.compare_runs(_chance_table(), margins={"accuracy": 0.01, "ece": 0.01},
                                  rng=np.random.default_rng(0), n_boot=200)
    t = result.table
    assert set(t["verdict"]) == {"equivalent"}
    assert t["note"].str.contains("at chance accuracy").all()
    assert t["note"].str.contains("1/K = 10.0%").all()
    text = prose.markdown(result)
    main = next(line for line in text.splitlines() if line.startswith("- **accuracy**"))
    assert "are equivalent" in main and "both arms sit at chance accuracy" in main
    assert "Assay sensitivity fails here" in main and "chance" in main.split("Assay sensitivity")[1]


def test_arms_that_learned_get_no_chance_note():
    from ablate.analysis import compare, prose

    result = compare.compare_runs(_chance_table(acc=0.9), margins={"accuracy": 0.01},
                                  rng=np.random.default_rng(0), n_boot=200)
    assert not result.table["note"].str.contains("chance").any()
    assert "chance" not in prose.markdown(result)
    # Without a `classes` column (a table made elsewhere) chance is unknown: nothing is claimed.
    result = compare.compare_runs(_chance_table().drop(columns="classes"), margins={"accuracy": 0.01},
                                  rng=np.random.default_rng(0), n_boot=200)
    assert not result.table["note"].str.contains("chance").any()


def test_runs_csv_carries_the_class_count(tmp_path):
    import pandas as pd

    from ablate.study import report_study

    _bound_study(tmp_path, at_bound=(), seeds=2)
    report_study(tmp_path, study="tb", figures=False)
    assert set(pd.read_csv(tmp_path / "tb" / "runs.csv")["classes"]) == {3}


# ----------------------------------------------------------------------- item 8: timings and overflow
def test_a_run_killed_by_its_timeout_stores_the_time_it_ran(tmp_path):
    pytest.importorskip("torch")
    import io

    from ablate.catalog import parse_grid
    from ablate.execution.orchestrator import run_local
    from ablate.execution.progress import Progress

    runs = parse_grid({"study": "to", "datasets": [{"name": "digits", "train_size": 200, "test_size": 100}],
                       "models": ["mlp"], "backends": ["torch"], "arms": ["loss"], "smoothing": [0.1],
                       "seeds": 1, "train": {"epochs": 1000000, "batch_size": 32, "monitor_size": 64,
                                             "timeout": 2}}).runs()
    store = RunStore(tmp_path, "to")
    out = io.StringIO()
    run_local(runs, store=store, results=tmp_path, workers=1,
              progress=Progress(total=len(runs), stream=out, live=False))
    record = store.read_record(runs[0].run_id).record
    assert record["status"] == "failed" and record["error"] == "timed out after 2 s"
    # It was killed only once past its deadline, so it ran at least that long (not 0.0).
    assert record["seconds"] >= 2.0, record["seconds"]


def test_a_ledger_crash_stores_the_seconds_it_is_given(tmp_path):
    import io

    from ablate.execution.orchestrator import Ledger
    from ablate.execution.progress import Progress

    spec = _spec(0)
    store = RunStore(tmp_path, "s")
    ledger = Ledger([spec], store=store, retries=0,
                    progress=Progress(total=1, stream=io.StringIO(), live=False))
    ledger.crashed(spec.run_id, "timed out after 7 s", seconds=7.25)
    assert store.read_record(spec.run_id).record["seconds"] == 7.25


@pytest.mark.parametrize("values,what", [([1e308] * 5, "mean"), ([1e308, -1e308] * 3, "standard deviation")])
def test_a_runs_table_whose_means_overflow_is_refused_naming_metric_and_arm(tmp_path, values, what):
    import pandas as pd

    from tests.helpers import run_cli

    rows = [{"arm": arm, "seed": i, "accuracy": v if arm == "big" else 0.5 + 0.01 * i}
            for arm in ("base", "big") for i, v in enumerate(values)]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    proc = run_cli("report", "--runs", path, "--out", tmp_path / "out", "--no-figures", timeout=None)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"the {what} of `accuracy` for arm 'big'" in lines[0] and "inf" in lines[0]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------- item 9: '$' in labels
def _named_study(tmp_path, arm, study="s", seeds=3, dataset="digits"):
    import dataclasses

    store = RunStore(tmp_path, study)
    for name, method in (("none", "none"), (arm, "loss")):
        for seed in range(seeds):
            spec = dataclasses.replace(_spec(seed, "loss" if method == "loss" else "none"), arm=name,
                                       method=method, dataset=DatasetSpec(dataset))
            record = _record(spec)
            record["history"] = {"train_nll": [1.0, 0.5], "val_nll": [1.1, 0.6], "val_accuracy": [0.5, 0.7]}
            store.write(record, _study_arrays(seed + (50 if method == "loss" else 0), False))
    return store


def test_an_arm_name_with_dollars_draws_every_figure(tmp_path):
    from ablate.study import report_study

    _named_study(tmp_path, "$x^$")
    written = report_study(tmp_path, study="s")
    figures = {p.name for p in written if p.suffix == ".png"}
    assert {"accuracy_by_arm.png", "ece_by_arm.png", "training_curves.png", "temperature_scaling.png",
            "power.png"} <= figures
    assert any(name.startswith("reliability_") for name in figures)
    assert all((tmp_path / "s" / "figures" / name).stat().st_size > 0 for name in figures)
    assert "$x^$" in (tmp_path / "s" / "report.md").read_text()


def test_dollar_labels_from_a_runs_table_and_user_matplotlib_state_are_untouched(tmp_path):
    import matplotlib
    import pandas as pd

    from ablate.analysis.report import report_from_table

    rows = [{"arm": arm, "seed": i, "accuracy": 0.5 + 0.01 * i + (0.02 if arm != "none" else 0), "ece": 0.1}
            for arm in ("none", "$x^$", "$\\frac{a}{") for i in range(6)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    before = matplotlib.rcParams["text.parse_math"]
    written = report_from_table(tmp_path / "t.csv", out=tmp_path / "out")
    assert any(p.suffix == ".png" for p in written)
    assert matplotlib.rcParams["text.parse_math"] == before  # styling never leaks


# ----------------------------------------------------------------------- item 11: a full disk
def full_disk_worker(*args, **kwargs):
    """A worker process whose every store write meets a full disk (runs in the spawned child)."""
    import errno

    from ablate.execution import store as store_mod
    from ablate.execution import worker

    def full(self, record, arrays=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    store_mod.RunStore.write = full
    return worker.worker_main(*args, **kwargs)


def test_a_full_disk_stops_the_sweep_at_once_with_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from ablate import cli
    from ablate.execution import orchestrator

    grid = tmp_path / "grid.yaml"
    grid.write_text("study: full\ndatasets: [{name: digits, train_size: 200, test_size: 100}]\nmodels: [mlp]\n"
                    "backends: [torch]\narms: [none, loss]\nsmoothing: [0.1]\nseeds: 4\n"
                    "train: {epochs: 1, batch_size: 32, monitor_size: 0}\n")
    monkeypatch.setattr(orchestrator, "worker_main", full_disk_worker)
    code = cli.main(["run", str(grid), "--results", str(tmp_path / "results"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("ablate: error:")]
    folder = str(tmp_path / "results" / "full")
    assert errors == [errors[0]] and errors[0].startswith(f"ablate: error: {folder}: No space left on device")
    assert "the sweep stopped" in errors[0]
    assert "worker process died" not in err and "Traceback" not in err
    # It stopped at the first run: no run is reported done or failed, one started (its log), seven never did.
    assert not [line for line in err.splitlines() if line.startswith("[")], err
    logs = list((tmp_path / "results" / "full" / "runs").glob("*/log.txt"))
    assert len(logs) == 1
    assert not list((tmp_path / "results" / "full" / "runs").glob("*/record.json"))


def test_a_store_write_on_a_full_disk_raises_disk_full_naming_the_study_folder(tmp_path, monkeypatch):
    import errno

    from ablate.errors import StoreError
    from ablate.execution import store as store_mod

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod, "atomic_write", full)
    store = RunStore(tmp_path, "s")
    with pytest.raises(store_mod.DiskFull, match=f"^{tmp_path / 's'}: No space left on device") as info:
        store.write(_record(_spec(0)), _arrays())
    assert isinstance(info.value, StoreError) and info.value.folder == str(tmp_path / "s")


def test_a_report_that_fails_on_a_full_disk_leaves_the_previous_files_intact(tmp_path, monkeypatch):
    import errno
    import os
    import subprocess
    import sys

    from ablate import files
    from ablate.study import report_study

    _bound_study(tmp_path, at_bound=(), seeds=3)
    report_study(tmp_path, study="tb", figures=False)
    out = tmp_path / "tb"
    before = {name: (out / name).read_bytes() for name in ("runs.csv", "summary.csv", "comparisons.csv",
                                                           "report.md", "report.html")}
    real_replace = os.replace

    def full_after(n):
        calls = {"n": 0}

        def replace(src, dst):
            calls["n"] += 1
            if calls["n"] > n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_replace(src, dst)
        return replace

    monkeypatch.setattr(files.os, "replace", full_after(0))
    with pytest.raises(OSError) as info:
        report_study(tmp_path, study="tb", figures=False, alpha=0.1)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "runs.csv")
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name  # not truncated, not half-written
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # From the command line: one line naming the file, exit 2 (the first write is refused).
    monkeypatch.undo()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = ("import errno, os, sys; from ablate import files, cli\n"
            "def full(src, dst): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "files.os.replace = full\n"
            f"sys.exit(cli.main(['report', '--results', {str(tmp_path)!r}, '--study', 'tb', '--no-figures']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ablate: error: {out / 'runs.csv'}: No space left on device"
    assert (out / "runs.csv").read_bytes() == before["runs.csv"]


# ----------------------------------------------------------------------- items 18, 19: hostile names
HOSTILE = "<img src=x onerror=alert(1)>|=1+1"


def test_escape_csv_cells_round_trip():
    from ablate.analysis import escape

    for text in ("=1+1", "+x", "-rf", "@SUM(A1)", "\tx", "\rx", "'=x", "''+y", "plain", "'quoted", "", "a=b"):
        cell = escape.csv_cell(text)
        assert not cell.startswith(escape.FORMULA_STARTS)
        assert escape.csv_uncell(cell) == text
    assert escape.csv_cell("=1+1") == "'=1+1" and escape.csv_cell("plain") == "plain"
    assert escape.csv_cell(-1.5) == -1.5  # numbers are not text cells


def test_escape_markdown_outside_code_spans_only():
    from ablate.analysis import escape

    line = "arm <b>x</b> and `<b>y</b>` and ``a`b<i>`` [l](javascript:x) ` <img>"
    out = escape.markdown_document(line)
    assert "<" not in out.replace("`<b>y</b>`", "").replace("``a`b<i>``", "")
    assert "`<b>y</b>`" in out and "``a`b<i>``" in out  # code spans are literal already
    assert "\\[l\\](javascript:x)" in out and "&lt;img&gt;" in out
    # A backtick in a name cannot open a way out: whatever ends up outside a span is escaped.
    assert "<" not in escape.markdown_document("`x` <img src=x onerror=alert(1)> ``")
    assert escape.md_cell("a|b\\c\nd") == "a\\|b\\\\c d"
    assert escape.figure_line("reliability_x", "figures/reliability_x.png") == \
        "![reliability_x](figures/reliability_x.png)"


def _hostile_study(tmp_path):
    import dataclasses

    study = "s<img src=x onerror=alert(2)>"
    store = RunStore(tmp_path, study)
    for name, method in (("none", "none"), (HOSTILE, "loss"), ("-cmd", "explicit")):
        for seed in range(5):
            base = _spec(seed, "none" if method == "none" else "loss")
            spec = dataclasses.replace(base, arm=name, method=method,
                                       dataset=DatasetSpec("d<script>x</script>|y", loader="m:f"))
            record = _record(spec)
            store.write(record, _study_arrays(seed + 7 * len(name), False))
    return study


def _outside_code_spans(text):
    import re

    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def test_report_md_and_csvs_neutralise_hostile_names_and_a_report_of_a_report_matches(tmp_path):
    import pandas as pd

    from ablate.analysis.report import report_from_table
    from ablate.study import report_study

    study = _hostile_study(tmp_path)
    report_study(tmp_path, study=study)
    out = tmp_path / study
    md = (out / "report.md").read_text()
    assert "<img" not in _outside_code_spans(md) and "<script" not in _outside_code_spans(md)
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    # Table rows keep their columns: the pipe in a name is escaped.
    width, rows = None, 0
    for line in md.splitlines():
        if line.startswith("| backend"):
            width = line.count(" | ")
        elif line.startswith("| ") and "onerror=alert(1)" in line:
            rows += 1
            assert line.replace("\\|", "").count(" | ") == width, line
    assert rows >= 2
    # Every CSV: no text cell begins like a formula.
    for name in ("runs.csv", "summary.csv", "comparisons.csv"):
        raw = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        for column in raw.columns:
            bad = raw[column][raw[column].str.match(r"^[=+\-@\t\r]")]
            numeric = pd.to_numeric(bad, errors="coerce").notna()
            assert bad[~numeric].empty, (name, column, bad[~numeric].tolist())
    runs = pd.read_csv(out / "runs.csv")
    assert "'-cmd" in set(runs["arm"]) and "'=1+1" not in " ".join(runs["arm"])
    # `report --runs` reads the prefixed cells back to the original names: same comparisons.
    again = tmp_path / "again"
    report_from_table(out / "runs.csv", out=again, figures=False)
    first = pd.read_csv(out / "comparisons.csv")
    second = pd.read_csv(again / "comparisons.csv")
    assert set(first["arm_a"]) | set(first["arm_b"]) == set(second["arm_a"]) | set(second["arm_b"])
    assert "'-cmd" in set(first["arm_a"]) | set(first["arm_b"])
    from ablate.analysis.escape import read_csv
    names = set(read_csv(again / "comparisons.csv")["arm_b"]) | set(read_csv(again / "comparisons.csv")["arm_a"])
    assert {HOSTILE, "-cmd", "none"} <= names
    keys = ["metric", "arm_a", "arm_b", "smoothing", "n", "verdict"]
    assert first[keys].sort_values(keys).to_numpy().tolist() == second[keys].sort_values(keys).to_numpy().tolist()
    assert "<img" not in _outside_code_spans((again / "report.md").read_text())


# ----------------------------------------------------------------------- item 15: class_names length
def test_a_class_names_list_of_the_wrong_length_names_both_lengths():
    from ablate.data.catalogue import load_dataset
    from ablate.errors import DatasetError

    rng = np.random.default_rng(0)

    def loader():
        return {"x_train": rng.normal(size=(30, 4)), "y_train": np.arange(30) % 3,
                "x_test": rng.normal(size=(9, 4)), "y_test": np.arange(9) % 3, "class_names": ["only"]}

    with pytest.raises(DatasetError) as info:
        load_dataset("wrong-names", loader=loader)
    message = str(info.value)
    assert message == ("wrong-names: class_names has 1 name(s), but the labels span 0..2, which is 3 classes; "
                       "give one name per class")
    assert "\n" not in message

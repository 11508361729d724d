"""What a notebook gets back from ``ablate.run``: the Study, its tables as DataFrames, the report's
verdict table as inline HTML, and the report's figures as Figures, with no file written and
matplotlib's global state untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.study import Study
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
ODD_ARM = "<i>smooth&"  # escaped wherever it is shown


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    grid = {"study": "inline", "datasets": [{"name": "digits", "train_size": 400, "test_size": 300}],
            "models": ["mlp"], "backends": ["torch"],
            "arms": {"none": {"method": "none"}, "explicit": {"method": "explicit"}, "loss": {"method": "loss"},
                     ODD_ARM: {"method": "explicit", "train": {"momentum": 0.5}}},
            "smoothing": [0.1], "seeds": 3, "train": {"epochs": 2, "batch_size": 64, "monitor_size": 64}}
    returned = ablate.run(grid, results=results, workers=2, log=open(os.devnull, "w"))
    report = run_cli("report", "--results", results, "--study", "inline", timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    return returned, results / "inline"


def test_run_returns_the_study_with_its_sweep(study):
    returned, folder = study
    assert isinstance(returned, Study) and returned.store.study_dir == folder
    assert (returned.sweep.completed, returned.sweep.failed) == (12, 0)


def test_tables_are_the_report_csvs(study):
    returned, folder = study
    for table in (returned.runs, returned.comparisons(), returned.summary()):
        assert isinstance(table, pd.DataFrame) and len(table)
    on_disk = pd.read_csv(folder / "comparisons.csv")
    mine = returned.comparisons()
    assert list(mine.columns) == list(on_disk.columns)
    assert mine["verdict"].tolist() == on_disk["verdict"].tolist()
    pd.testing.assert_series_equal(mine["mean_diff"], on_disk["mean_diff"], check_exact=False, rtol=1e-9)
    summary = pd.read_csv(folder / "summary.csv")
    pd.testing.assert_frame_equal(returned.summary().reset_index(drop=True), summary, check_dtype=False,
                                  check_exact=False, rtol=1e-9)


def test_html_is_the_verdict_table_escaped_and_self_contained(study):
    returned, _ = study
    page = returned._repr_html_()
    assert page.startswith('<div class="ablate-study">') and '<table class="verdicts">' in page
    # One row per comparison, each with its verdict badge, as in report.html.
    table = returned.comparisons()
    assert page.count('<td><span class="badge ') == len(table)
    report_html = (returned.store.study_dir / "report.html").read_text()
    start = report_html.index('<table class="verdicts">')
    rows = report_html[start:report_html.index("</table>", start)]
    mine = page[page.index('<table class="verdicts">'):]
    assert mine[:mine.index("</table>")] == rows
    # Escaped, and nothing fetched or run.
    assert "&lt;i&gt;smooth&amp;" in page and ODD_ARM not in page
    for forbidden in ("<script", "src=", "href=", "http://", "https://", "@import", "url("):
        assert forbidden not in page
    # Styles reach only the fragment.
    style = page[page.index("<style>"):page.index("</style>")]
    rules = [r.split("{")[0].strip() for r in style.removeprefix("<style>").split("}") if "{" in r]
    assert rules and all(s.strip().startswith(".ablate-study") for r in rules for s in r.split(","))


def test_text_form_is_a_short_summary(study):
    returned, folder = study
    text = repr(returned)
    assert "\n" not in text and text.startswith(f"Study 'inline' ({folder}): 12 runs (12 completed); ")
    assert f"{len(returned.comparisons())} comparisons: " in text


def test_figures_come_back_without_files_or_global_state(study):
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    returned, folder = study
    names = returned.figures()
    assert set(names) == {p.stem for p in (folder / "figures").glob("*.png")}
    files = sorted(p for p in folder.rglob("*"))
    rc = {k: repr(v) for k, v in matplotlib.rcParams.items()}
    open_before = plt.get_fignums()
    for name in ("accuracy", *names):
        fig = returned.figure(name)
        assert isinstance(fig, Figure) and fig.axes
    assert plt.get_fignums() == open_before
    assert {k: repr(v) for k, v in matplotlib.rcParams.items()} == rc
    assert sorted(p for p in folder.rglob("*")) == files
    with pytest.raises(ablate.ConfigError, match=r"^figure: expected one of accuracy_by_arm, .* but got 'nope'$"):
        returned.figure("nope")

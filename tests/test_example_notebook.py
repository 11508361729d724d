"""examples/label_smoothing.ipynb, executed top to bottom in a fresh Jupyter kernel: no cell raises,
the verdict table shows inline, and its verdicts are those of `python -m ablate report`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat  # the test extra: nbclient, ipykernel, nbformat (`make install`)
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

from tests import kernels

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "label_smoothing.ipynb"
STUDY = "label-smoothing"
BADGE = re.compile(r'<td><span class="badge (\w+)">\1</span></td>')


def _html(nb) -> str:
    pages = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if o.get("output_type") in ("execute_result", "display_data") and "text/html" in o.get("data", {})]
    assert len(pages) == 1, "expected one inline verdict table"
    return pages[0]


def test_the_committed_notebook_is_short_and_carries_its_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert len(nb.cells) <= 10
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code[-3:]), "the run, the figure and the sentence show their outputs"
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    assert '<table class="verdicts">' in _html(nb)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)  # the figure


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    nb = nbformat.read(folder / NOTEBOOK.name, as_version=4)
    for cell in nb.cells:  # start from nothing: the test's own outputs only
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    kernels.execute(nb, folder, env=env)  # raises CellExecutionError if any cell raises
    report = subprocess.run([sys.executable, "-m", "ablate", "report", "--results", str(folder / "results"),
                             "--study", STUDY, "--no-figures"], capture_output=True, text=True, env=env,
                            cwd=folder, timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    return nb, pd.read_csv(folder / "results" / STUDY / "comparisons.csv")


def test_no_cell_raised_and_the_table_shows_inline(executed):
    nb, table = executed
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    page = _html(nb)
    assert page.startswith('<div class="ablate-study">') and '<table class="verdicts">' in page
    assert len(table) and {"identical", "different"} <= set(table["verdict"])


def test_inline_verdicts_are_the_reports(executed):
    nb, table = executed
    assert BADGE.findall(_html(nb)) == table["verdict"].tolist()


def test_the_sentence_quotes_the_reports_verdicts(executed):
    nb, table = executed
    sentence = next(o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                    if "text/markdown" in o.get("data", {}))

    def verdict(a, b, metric, backend):
        row = table[(table.arm_a == a) & (table.arm_b == b) & (table.metric == metric) & (table.backend == backend)]
        return row["verdict"].item()

    quoted = re.findall(r"\*\*(\w+)\*\*", sentence)
    assert quoted == [verdict("explicit", "loss", "accuracy", "torch"),
                      verdict("explicit", "loss", "accuracy", "keras/tensorflow"),
                      verdict("notebook-explicit", "notebook-loss", "ece", "torch"),
                      verdict("loss", "notebook-loss", "ece", "torch")]

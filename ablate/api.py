"""The Python API; the command line is a thin layer over it.

    import ablate
    grid = ablate.load_grid("examples/quick.yaml")        # or a dict
    study = ablate.run(grid, results="results", workers=2)  # the Study; in Jupyter, its verdict table
    study = ablate.load_study("results/quick")                # the same, later
    study.runs                                             # the runs.csv table (pandas)
    study.comparisons()                                    # the comparisons.csv table
    study.report(out="results/quick")                      # tables, report.md, figures
    ablate.compare(table, margins={"accuracy": 0.005}, pairs=[("baseline", "mixup")])

This module only re-exports: launching a sweep lives in :mod:`ablate.launch`, reading a stored
study in :mod:`ablate.study`. Nothing here imports a training framework or a plotting library
until it is needed.
"""

from __future__ import annotations

from ablate.launch import Prepared, check, load_grid, plan, prepare, run, sweep
from ablate.study import compare_table as compare
from ablate.study import open_study as load_study

__all__ = ["Prepared", "check", "compare", "load_grid", "load_study", "plan", "prepare", "run", "sweep"]

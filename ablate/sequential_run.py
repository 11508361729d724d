"""Runs that stop: a grid with ``analysis.sequential`` runs its seeds in waves, one per look.

Before each look ``n_k`` the arms still undecided get their first ``n_k`` seeds (seeds in
increasing order, the order the analysis takes them in), the executor runs that wave (it
skips what is stored), and the stored runs are analysed with
:func:`ablate.analysis.sequential.sequential_comparisons`, exactly as ``ablate report``
analyses a sequential study. An arm (one backend, dataset, model, arm, ε) stops receiving
seeds once every comparison that involves it is decided (``equivalent`` or ``different``)
on every metric that has a margin; a cell stops when all its arms have.

Every decision is a function of the first ``n_k`` paired seeds and of the looks, which are
fixed in the grid, never chosen from the data; so a study that was killed, or resumed with
more stored runs than the design needed, makes the same decisions. Each run is attempted at
most once per invocation: a failed run is not retried by the next wave (``--retries`` is).

This module joins the executor (:mod:`ablate.execution`) and the analysis through plain
callables, so the loop can be tested with a fake executor and synthetic tables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ablate.analysis import sequential as sq
from ablate.config import Grid, RunSpec
from ablate.execution.orchestrator import SweepSummary

Unit = tuple[str, str, str, str, float]  # (backend, dataset, model, arm, smoothing): one arm of one cell
DECIDED = ("equivalent", "different")


def unit_of(spec: RunSpec) -> Unit:
    return (spec.backend, spec.dataset.name, spec.model, spec.arm, float(spec.smoothing))


def plan_table(runs: Sequence[RunSpec]) -> pd.DataFrame:
    """The runs a grid will make as a runs table without metrics (one row per arm and seed)."""
    rows = [dict(zip(("backend", "dataset", "model", "arm", "smoothing"), unit_of(s)), seed=s.seed)
            for s in runs if s.repeat == 0]
    return pd.DataFrame(rows, columns=["backend", "dataset", "model", "arm", "smoothing", "seed"])


def analyse(grid: Grid, runs: pd.DataFrame) -> sq.SequentialComparisons:
    """The sequential analysis of a runs table with the grid's design, margins, pairs and alpha
    (the decisions ``ablate report`` makes for the study when it holds these runs; the report
    may orient a pair the other way, which changes no decision)."""
    design = grid.analysis.sequential
    margins = {m: v for m, v in grid.analysis.margins.items() if m in runs.columns}
    return sq.sequential_comparisons(runs, looks=design.looks, margins=margins,
                                     pairs=list(grid.pairs()), alpha=grid.analysis.alpha,
                                     spending=design.spending)


class _Book:
    """Which comparisons involve each arm, and which of them a sequential analysis has decided."""

    def __init__(self, grid: Grid):
        sides = sq.comparison_sides(plan_table(grid.runs()), list(grid.pairs()))
        self.involved: dict[Unit, list[tuple]] = {}
        for key, side_a, side_b in sides:
            for side in (side_a, side_b):
                self.involved.setdefault(side, []).append(key)

    def undecided(self, units, seq: sq.SequentialComparisons) -> set[Unit]:
        """The ``units`` with a comparison not yet decided on some metric (an arm in no
        comparison, or with no metric to decide, runs every look)."""
        table = seq.table
        decided = {(r["metric"], (r["backend"], r["dataset"], r["model"], float(r["smoothing"]), r["arm_a"],
                                  r["arm_b"])) for r in table.to_dict("records") if r["decision"] in DECIDED}
        metrics = list(dict.fromkeys(table["metric"]))
        return {u for u in units if not (metrics and self.involved.get(u) and
                                         all((m, key) in decided for key in self.involved[u] for m in metrics))}


def run_in_waves(grid: Grid, runs: Sequence[RunSpec], *, execute: Callable[[list[RunSpec]], SweepSummary],
                 load: Callable[[], pd.DataFrame], log=sys.stderr) -> SweepSummary:
    """Run ``runs`` (a selection of ``grid.runs()``) as the grid's sequential design.

    execute: runs a list of specs (skipping stored ones) and returns its summary.
    load: the study's stored runs as a runs table (``run_id``, ``status``, cell columns,
      ``seed``, ``repeat``, metrics), read afresh at each look.
    Returns the summary of every wave together.
    """
    design = grid.analysis.sequential
    if design is None:
        raise ValueError("run_in_waves needs a grid with analysis.sequential")
    rank = {seed: i for i, seed in enumerate(sorted(set(grid.seeds)))}
    grid_ids = {s.run_id for s in grid.runs()}
    runs = [s for s in runs if rank[s.seed] < design.looks[-1]]
    run_ids = [s.run_id for s in runs]  # hashing a spec is not free: once
    units: dict[Unit, list[RunSpec]] = {}
    for spec in runs:
        units.setdefault(unit_of(spec), []).append(spec)
    book = _Book(grid)

    def stored() -> pd.DataFrame:
        table = load()
        return table[table["run_id"].isin(grid_ids)] if "run_id" in table else table

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    table = stored()
    seq = analyse(grid, table)
    attempted: set[str] = set()
    waves: list[SweepSummary] = []
    skipped = 0
    seen_decided: set[tuple] = set()
    for k, look in enumerate(design.looks):
        active = book.undecided(units, seq)
        if not active:
            break
        wave = [(s, i) for s, i in zip(runs, run_ids)
                if unit_of(s) in active and rank[s.seed] < look and i not in attempted]
        say(f"sequential: look {k + 1} of {len(design.looks)} at {look} seeds: {len(active)} of {len(units)} "
            f"arm(s) undecided, {len(wave)} run(s) in this wave")
        if wave:
            summary = execute([s for s, _ in wave])
            waves.append(summary)
            skipped += summary.skipped
            attempted.update(i for _, i in wave)
        table = stored()
        seq = analyse(grid, table)
        for line, key in _decided_lines(seq, seen_decided):
            seen_decided.add(key)
            say(f"sequential: {line}")
    for line in _summary_lines(seq, units, table, dict(zip(map(id, runs), run_ids))):
        say(line)
    return SweepSummary(
        completed=sum(w.completed for w in waves), failed=sum(w.failed for w in waves),
        diverged=sum(w.diverged for w in waves), skipped=skipped, seconds=sum(w.seconds for w in waves),
        failures=tuple(f for w in waves for f in w.failures))


def _where(r: dict[str, Any]) -> str:
    eps = f" ε={r['smoothing']:g}" if r["smoothing"] else ""
    return f"{r['backend']} {r['dataset']} {r['model']}{eps}"


def _decision_text(r: dict[str, Any]) -> str:
    if r["decision"] in DECIDED:
        return f"{r['metric']} {r['decision']} at look {int(r['look'])} ({int(r['decided_at'])} seeds)"
    if r["decision"] == "inconclusive":
        return f"{r['metric']} inconclusive after every look"
    return f"{r['metric']} undecided ({int(r['n_available'])} paired seed(s))"


def _decided_lines(seq: sq.SequentialComparisons, seen: set[tuple]):
    """One line per comparison whose every metric is now decided, once."""
    for key, rows in _by_comparison(seq):
        if key not in seen and all(r["decision"] in DECIDED for r in rows):
            yield f"{_where(rows[0])}: {rows[0]['arm_a']} vs {rows[0]['arm_b']} decided: " + \
                ", ".join(_decision_text(r) for r in rows), key


def _by_comparison(seq: sq.SequentialComparisons):
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in seq.table.to_dict("records"):
        key = (r["backend"], r["dataset"], r["model"], float(r["smoothing"]), r["arm_a"], r["arm_b"])
        groups.setdefault(key, []).append(r)
    return groups.items()


def _summary_lines(seq: sq.SequentialComparisons, units: dict[Unit, list[RunSpec]], table: pd.DataFrame,
                  run_ids: dict[int, str]) -> list[str]:
    """Per comparison its decisions and looks; per cell (backend, dataset, model, ε) the runs
    stored against the fixed design's (every seed up to the last look)."""
    design = ", ".join(map(str, seq.looks_planned))
    lines = [f"sequential design (looks at {design} seeds, {seq.spending} spending, family-wise α = {seq.alpha:g}):"]
    for _, rows in _by_comparison(seq):
        lines.append(f"  {_where(rows[0])}: {rows[0]['arm_a']} vs {rows[0]['arm_b']}: "
                     + ", ".join(_decision_text(r) for r in rows))
    stored_ids = set(table["run_id"]) if "run_id" in table else set()
    cells: dict[tuple, list[int]] = {}
    for (backend, dataset, model, _arm, eps), specs in units.items():
        counts = cells.setdefault((backend, dataset, model, eps), [0, 0])
        counts[0] += sum(run_ids[id(s)] in stored_ids for s in specs)
        counts[1] += len(specs)
    for (backend, dataset, model, eps), (used, fixed) in sorted(cells.items()):
        where = f"{backend} {dataset} {model}" + (f" ε={eps:g}" if eps else "")
        lines.append(f"  {where}: {used} of {fixed} run(s) stored, {fixed - used} saved against the fixed design")
    return lines

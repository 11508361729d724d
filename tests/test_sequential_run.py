"""Runs that stop (`analysis.sequential`): the grid option, the wave loop against a fake
executor on synthetic tables (decisions equal the sequential analysis of the full table,
a killed study resumes to the same decisions), and `python -m ablate run` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import sequential as sq
from ablate.catalog import load_grid
from ablate.config import RunSpec
from ablate.errors import ConfigError
from ablate.execution.orchestrator import SweepSummary
from ablate.sequential_run import run_in_waves, unit_of
from tests.helpers import grid_text

LOOKS = [5, 10, 15, 20]
METRICS = ("accuracy", "ece", "nll")


def _grid(**analysis):
    """Three arms of one cell: a and b identical, c off by about the margin (see _metric)."""
    return load_grid({
        "study": "waves", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
        "arms": {"a": {"method": "none"}, "b": {"method": "none"}, "c": {"method": "none"}}, "seeds": 20,
        "analysis": {"margins": {m: 0.01 for m in METRICS},
                     "sequential": {"looks": LOOKS, "spending": "obrien-fleming"}, **analysis}})


def _metric(spec: RunSpec) -> float:
    """Seed effect shared by the arms; c adds a per-seed difference of mean 0.01 (the margin), sd 0.01."""
    base = 0.9 + 0.02 * np.random.default_rng(spec.seed).standard_normal()
    if spec.arm == "c":
        base += 0.01 + 0.01 * np.random.default_rng(1000 + spec.seed).standard_normal()
    return float(base)


class FakeStudy:
    """A store in memory: `execute` 'trains' each pending spec, `load` returns the runs table."""

    def __init__(self, stop_after: int | None = None, metric=_metric):
        self.metric = metric
        self.rows: dict[str, dict] = {}
        self.waves: list[list[RunSpec]] = []
        self.stop_after = stop_after  # raise KeyboardInterrupt after storing this many runs in total

    def execute(self, wave: list[RunSpec]) -> SweepSummary:
        self.waves.append(list(wave))
        done = 0
        for spec in wave:
            if spec.run_id in self.rows:
                continue
            if self.stop_after is not None and len(self.rows) >= self.stop_after:
                raise KeyboardInterrupt
            value = self.metric(spec)
            self.rows[spec.run_id] = dict(run_id=spec.run_id, status="completed", backend=spec.backend,
                                          dataset=spec.dataset.name, model=spec.model, arm=spec.arm,
                                          smoothing=spec.smoothing, seed=spec.seed, repeat=spec.repeat,
                                          **{m: value for m in METRICS})
            done += 1
        return SweepSummary(done, 0, 0, len(wave) - done, 0.0)

    def load(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()),
                            columns=["run_id", "status", "backend", "dataset", "model", "arm", "smoothing", "seed",
                                     "repeat", *METRICS])

    def stored(self, arm: str, smoothing: float | None = None) -> list[int]:
        return sorted(r["seed"] for r in self.rows.values()
                      if r["arm"] == arm and (smoothing is None or r["smoothing"] == smoothing))


def _decisions(seq: sq.SequentialComparisons) -> dict:
    return {(r["metric"], r["arm_a"], r["arm_b"]): (r["decision"], r["decided_at"])
            for r in seq.table.to_dict("records")}


def _run(grid, study: FakeStudy, log=None):
    return run_in_waves(grid, grid.runs(), execute=study.execute, load=study.load, log=log)


# ------------------------------------------------------------------------------ the grid option
def test_grid_option_parses_and_defaults_spending():
    grid = load_grid({"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
                      "arms": ["explicit", "loss"], "smoothing": [0.1], "seeds": 20,
                      "analysis": {"sequential": {"looks": [5, 10, 20]}}})
    assert grid.analysis.sequential.looks == (5, 10, 20)
    assert grid.analysis.sequential.spending == sq.SPENDINGS[0] == "obrien-fleming"
    assert _grid().analysis.sequential.spending == "obrien-fleming"


@pytest.mark.parametrize("sequential,match", [
    ({"looks": [5, 25]}, r"`analysis.sequential.looks`: expected the last look <= the grid's 20 seed\(s\), but got 25"),
    ({"looks": [10, 5]}, r"`analysis.sequential.looks`: expected strictly increasing seed counts, but got \[10, 5\]"),
    ({"looks": [1, 5]}, r"`analysis.sequential.looks\[0\]`: expected an integer >= 2, but got 1"),
    ({"looks": [5, 7.5]}, r"`analysis.sequential.looks\[1\]`: expected an integer, but got 7.5"),
    ({"spending": "pocock"}, r"`analysis.sequential.looks`: missing"),
    ({"looks": [5], "spending": "haybittle"},
     r"`analysis.sequential.spending`: expected one of \('obrien-fleming', 'pocock'\), but got 'haybittle'"),
    ({"looks": [5], "stop": True}, r"unknown key 'stop' in `analysis.sequential`; allowed keys: looks, spending"),
    ([5, 10], r"`analysis.sequential`: expected a mapping"),
])
def test_grid_option_errors_are_one_line(sequential, match):
    with pytest.raises(ConfigError, match=match) as err:
        _grid(sequential=sequential)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------ the wave loop
def test_waves_make_the_decisions_of_the_full_table_and_stop_decided_arms():
    grid = _grid()
    study = FakeStudy()
    summary = _run(grid, study)
    # The fixed design's 60 runs, analysed as a sequential design: the same decisions.
    full = FakeStudy()
    full.execute(grid.runs())
    expected = sq.sequential_comparisons(full.load(), looks=LOOKS, margins={m: 0.01 for m in METRICS})
    final = sq.sequential_comparisons(study.load(), looks=LOOKS, margins={m: 0.01 for m in METRICS})
    assert _decisions(final) == _decisions(expected)
    decisions = _decisions(expected)
    assert all(decisions[(m, "a", "b")] == ("equivalent", 5) for m in METRICS)
    # c is about a margin away: a later look than the first, for a and b too (they are compared with c).
    stops = max(d[1] if d[0] in ("equivalent", "different") else 20 for d in decisions.values())
    assert stops > 5
    for arm in "abc":
        assert study.stored(arm) == list(range(stops))
    assert summary.completed == len(study.rows) == 3 * stops
    # One wave per look up to the stop; each asks only for runs not asked before.
    assert [len(w) for w in study.waves] == [15] + [15] * (LOOKS.index(stops))
    ids = [s.run_id for w in study.waves for s in w]
    assert len(ids) == len(set(ids))


def test_arms_whose_comparisons_are_decided_stop_while_others_go_on():
    # Compare only a with b, and b with c: a stops at the first look, b and c go on.
    grid = _grid(compare=[["a", "b"], ["b", "c"]])
    study = FakeStudy()
    _run(grid, study)
    assert study.stored("a") == list(range(5))
    assert len(study.stored("c")) > 5 and study.stored("b") == study.stored("c")


def test_a_reference_arm_waits_for_its_comparisons_at_every_eps():
    """none (run once per seed) is compared with explicit and loss at each ε: at ε = 0.1 they
    are far from it and from each other's twin, at ε = 0.2 about a margin away. The ε = 0.1
    arms stop at the first look; none and the ε = 0.2 arms go on."""
    def metric(spec):
        base = 0.9 + 0.02 * np.random.default_rng(spec.seed).standard_normal()
        if spec.smoothing == 0.1:
            return base + 0.2
        if spec.smoothing == 0.2:
            return base + 0.01 + 0.01 * np.random.default_rng(1000 + spec.seed).standard_normal()
        return base

    grid = load_grid({"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
                      "arms": ["none", "explicit", "loss"], "smoothing": [0.1, 0.2], "seeds": 20,
                      "analysis": {"margins": {m: 0.01 for m in METRICS}, "sequential": {"looks": LOOKS}}})
    study = FakeStudy(metric=metric)
    _run(grid, study)
    assert study.stored("explicit", 0.1) == study.stored("loss", 0.1) == list(range(5))
    later = study.stored("none")
    assert len(later) > 5 and study.stored("explicit", 0.2) == study.stored("loss", 0.2) == later


def test_two_equivalent_arms_stop_at_the_first_look():
    grid = load_grid({"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
                      "arms": {"a": {"method": "none"}, "b": {"method": "none"}}, "seeds": 20,
                      "analysis": {"sequential": {"looks": LOOKS}}})
    study = FakeStudy()
    lines: list[str] = []

    class Log:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    _run(grid, study, log=Log())
    assert len(study.rows) == 10 and len(study.waves) == 1
    text = "".join(lines)
    assert "torch digits mlp: a vs b decided: accuracy equivalent at look 1 (5 seeds)" in text
    assert "torch digits mlp: 10 of 40 run(s) stored, 30 saved against the fixed design" in text


def test_a_killed_study_resumes_to_the_same_decisions():
    grid = _grid()
    reference = FakeStudy()
    _run(grid, reference)
    assert len(reference.rows) > 20  # the kill below falls in the second wave
    killed = FakeStudy(stop_after=20)
    with pytest.raises(KeyboardInterrupt):
        _run(grid, killed)
    assert len(killed.rows) == 20
    killed.stop_after = None
    _run(grid, killed)  # a fresh invocation on the stored runs
    assert set(killed.rows) == set(reference.rows)
    margins = {m: 0.01 for m in METRICS}
    assert _decisions(sq.sequential_comparisons(killed.load(), looks=LOOKS, margins=margins)) == \
        _decisions(sq.sequential_comparisons(reference.load(), looks=LOOKS, margins=margins))
    # Run again when everything is decided: nothing is asked for.
    before = len(killed.waves)
    _run(grid, killed)
    assert len(killed.waves) == before


def test_stored_runs_beyond_the_design_do_not_change_decisions():
    grid = _grid()
    study = FakeStudy()
    study.execute(grid.runs())  # a fixed-design study made sequential afterwards
    _run(grid, study)
    assert len(study.waves) == 1  # nothing pending, no further wave
    reference = FakeStudy()
    _run(grid, reference)
    margins = {m: 0.01 for m in METRICS}
    assert _decisions(sq.sequential_comparisons(study.load(), looks=LOOKS, margins=margins)) == \
        _decisions(sq.sequential_comparisons(reference.load(), looks=LOOKS, margins=margins))


def test_units_are_cells_and_arms():
    spec = _grid().runs()[0]
    assert unit_of(spec) == ("torch", "digits", "mlp", "a", 0.0)


def test_seeds_option_is_refused_with_a_sequential_grid(tmp_path):
    from ablate import api

    with pytest.raises(ConfigError, match="^seeds: .*analysis.sequential.*drop seeds "):
        api.run(_grid(), results=tmp_path, seeds="0-4", log=None)


# ------------------------------------------------------------------------------ end to end
GRID = grid_text("seq", arms=["explicit", "loss"], seeds=20,
                 analysis={"sequential": {"looks": [5, 10, 15, 20], "spending": "obrien-fleming"}})


def test_cli_run_stops_explicit_vs_loss_at_the_first_look(write_grid, tmp_path):
    """Explicit and loss smoothing train bitwise alike on the CPU: equivalent at 5 seeds on every
    metric, so the study stores 10 runs, not the fixed design's 40."""
    pytest.importorskip("torch")
    from tests.test_cli_run import ablate

    grid = write_grid(GRID)
    results = tmp_path / "r"
    proc = ablate("run", grid, "--results", results, "--workers", "1")
    assert "at most 40 run(s) (sequential: looks at 5, 10, 15, 20 seeds" in proc.stderr
    for metric in METRICS:
        assert f"{metric} equivalent at look 1 (5 seeds)" in proc.stderr
    assert "torch digits mlp ε=0.1: 10 of 40 run(s) stored, 30 saved against the fixed design" in proc.stderr
    assert len(list((results / "seq" / "runs").iterdir())) == 10
    settings = json.loads((results / "seq" / "study.json").read_text())
    assert settings["analysis"]["sequential"] == {"looks": LOOKS, "spending": "obrien-fleming"}
    # Resumed: everything is decided from the stored runs, nothing more runs.
    again = ablate("run", grid, "--results", results, "--workers", "1")
    assert "in this wave" not in again.stderr and "10 of 40 run(s) stored" in again.stderr
    assert len(list((results / "seq" / "runs").iterdir())) == 10
    assert "runs listed as pending may never be needed" in ablate("status", grid, "--results", results).stdout
    # The study's report reads the design from study.json.
    ablate("report", "--results", results, "--study", "seq", "--no-figures")
    table = pd.read_csv(results / "seq" / "comparisons.csv")
    assert len(table) == 3
    assert (table["decision"] == "equivalent").all() and (table["decided_at"] == 5).all()
    assert "## Sequential design" in (results / "seq" / "report.md").read_text()

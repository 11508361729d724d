"""``python -m ablate report --mlflow URI --experiment NAME``: runs already in MLflow -> a per-run table.

Runs are read with MLflow's own client (``search_runs``, never its files). Each run becomes one
row of the table that ``report --runs`` takes: its ``arm`` and ``seed`` come from two params, the
params named by ``--by`` define the cells, and the metrics are the runs' final values. MLflow's
run status becomes the row's ``status`` (FINISHED -> completed; FAILED, KILLED, RUNNING and
SCHEDULED runs are kept, counted and named, but not analysed). Params that vary within a cell
and are not named are returned as possible confounds, arm by arm.

By default only leaf runs are read (a parent of a nested sweep is a summary, not a seed);
ablate's own runs (an exported study's parent, an "ablate verdicts" run) are never data.

Every problem with the selection is a :class:`~ablate.errors.ConfigError` with one line.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from ablate.errors import ConfigError
from ablate.export import tracking
from ablate.statuses import COMPLETED, FAILED

# MLflow's run status -> the status of a row of the runs table (only COMPLETED rows are analysed).
STATUSES = {"FINISHED": COMPLETED, "FAILED": FAILED, "KILLED": "killed", "RUNNING": "running",
            "SCHEDULED": "scheduled"}
OWN_KINDS = ("study", "verdicts")  # tag ablate.kind of runs ablate logged itself
CELL_PARAMS = ("backend", "dataset", "model")  # --by params that fill the table's own cell columns
SHOWN_RUN_IDS = 2
SHOWN_EXPERIMENTS = 10


@dataclass(frozen=True)
class Selection:
    """Which runs of which experiment, and which params and metrics mean what."""

    experiment: str
    arm: str = "arm"
    seed: str = "seed"
    by: tuple[str, ...] = ()
    metrics: tuple[str, ...] | None = None  # None: every metric present on all finished runs
    filter: str | None = None
    include_parents: bool = False

    def settings(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class MlflowRuns:
    runs: Any  # pandas DataFrame, one row per run (report --runs columns)
    experiment_id: str
    experiment_name: str
    metrics: tuple[str, ...]
    confounds: Mapping[str, Mapping[str, str]]  # arm -> {param: its value(s)} where the cell's arms differ
    fingerprint: str  # sha256 of what was read: run ids, statuses, params and metrics
    left_out: int  # parent runs not read (leaf runs only)
    selection: Selection

    def describe(self) -> str:
        """One sentence for the report: where the runs came from and what was left out."""
        sel = self.selection
        parts = [f"Read from MLflow experiment `{self.experiment_name}` (id {self.experiment_id}): arm from "
                 f"param `{sel.arm}`, seed from param `{sel.seed}`"]
        if sel.by:
            parts.append(f"cells by {', '.join(f'`{p}`' for p in sel.by)}")
        if sel.filter:
            parts.append(f"runs matching `{sel.filter}`")
        parts.append(f"final values of {', '.join(f'`{m}`' for m in self.metrics)}")
        if self.left_out:
            parts.append(f"leaf runs only ({self.left_out} parent run(s) left out; --include-parents reads them)")
        return "; ".join(parts) + "."


def parse_names(text: str | None, flag: str) -> tuple[str, ...] | None:
    """``"a,b"`` -> ("a", "b"); None -> None; an empty item is refused."""
    if text is None:
        return None
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise ConfigError(f"{flag}: expected comma-separated names like a,b, but got {text!r}")
    return tuple(dict.fromkeys(names))


def _ids(runs) -> str:
    shown = ", ".join(r.info.run_id for r in runs[:SHOWN_RUN_IDS])
    return f"run id{'s' if len(runs) > 1 else ''} {shown}" + (", ..." if len(runs) > SHOWN_RUN_IDS else "")


def _experiment(client, name: str, uri: str):
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found
    known = [e.name for e in client.search_experiments(max_results=SHOWN_EXPERIMENTS + 1)]
    listing = ", ".join(repr(n) for n in known[:SHOWN_EXPERIMENTS]) + (", ..." if len(known) > SHOWN_EXPERIMENTS
                                                                          else "")
    raise ConfigError(f"--experiment: no experiment {name!r} at {uri}; experiments there: {listing or 'none'}")


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat() if ms else None


def _integer(text: str) -> int | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return int(x) if math.isfinite(x) and x == round(x) else None


def _check_params(finished, selection: Selection) -> None:
    named = [(selection.arm, "--arm"), (selection.seed, "--seed")] + [(p, "--by") for p in selection.by]
    for param, flag in named:
        missing = [r for r in finished if param not in r.data.params]
        if missing:
            present = sorted({k for r in finished for k in r.data.params})
            raise ConfigError(f"{flag}: param {param!r} is missing from {len(missing)} of {len(finished)} "
                              f"finished runs ({_ids(missing)}); params present: "
                              f"{', '.join(present[:20]) or 'none'}")
    bad = [r for r in finished if _integer(r.data.params[selection.seed]) is None]
    if bad:
        values = ", ".join(repr(v) for v in dict.fromkeys(r.data.params[selection.seed] for r in bad[:5]))
        raise ConfigError(f"--seed: param {selection.seed!r} must hold integers; got {values} "
                          f"in {len(bad)} finished run(s) ({_ids(bad)})")
    arms = sorted({r.data.params[selection.arm].strip() for r in finished})
    if len(arms) < 2:
        raise ConfigError(f"--arm: param {selection.arm!r} takes {len(arms)} value(s) "
                          f"({', '.join(map(repr, arms))}) over the {len(finished)} finished runs; a comparison "
                          f"needs at least two arms")


def _pick_metrics(finished, selection: Selection) -> tuple[str, ...]:
    from ablate.analysis.table import NON_METRIC

    present = sorted({k for r in finished for k in r.data.metrics})
    if selection.metrics is not None:
        absent = [m for m in selection.metrics if m not in present]
        if absent:
            raise ConfigError(f"--metrics: no finished run has metric {', '.join(map(repr, absent))}; "
                              f"metrics: {', '.join(present) or 'none'}")
        chosen = selection.metrics
    else:
        chosen = tuple(m for m in present if all(m in r.data.metrics for r in finished))
        if not chosen:
            raise ConfigError(f"--metrics: no metric is present on every finished run; metrics seen: "
                              f"{', '.join(present) or 'none'} (name the ones to compare with --metrics a,b)")
    named = {selection.arm, selection.seed, *selection.by}
    clash = [m for m in chosen if m in NON_METRIC or m in named or m in ("run_name", "experiment")]
    if clash:
        raise ConfigError(f"--metrics: metric {clash[0]!r} has the name of a column ablate uses for other things; "
                          f"leave it out with --metrics")
    return tuple(chosen)


def _cell(params: Mapping[str, str], by: Sequence[str]) -> dict[str, Any]:
    """The table's cell columns: backend/dataset/model/smoothing by name, other --by params in `model`."""
    row: dict[str, Any] = {}
    extra = []
    for p in by:
        value = str(params.get(p, "-")).strip()
        if p in CELL_PARAMS:
            row[p] = value
        elif p == "smoothing":
            try:  # a number, so that the table's column is numeric; text is refused by the table's check
                row["smoothing"] = float(value) if p in params else math.nan  # an unfinished run may lack it
            except ValueError:
                row["smoothing"] = value
        else:
            extra.append(f"{p}={value}")
    if extra:
        row["model"] = " ".join(([row["model"]] if "model" in row else []) + extra)
    return row


def confounds(finished, selection: Selection) -> dict[str, dict[str, str]]:
    """arm -> {param: value(s)} for params not named that differ between arms (or runs) of one cell."""
    named = {selection.arm, selection.seed, *selection.by}
    cells: dict[tuple, dict[str, list]] = {}
    for r in finished:
        key = tuple(r.data.params.get(p) for p in selection.by)
        cells.setdefault(key, {}).setdefault(r.data.params[selection.arm].strip(), []).append(r.data.params)
    found: dict[str, dict[str, list[str]]] = {}
    for arms in cells.values():
        if len(arms) < 2:
            continue
        params = sorted({k for runs in arms.values() for p in runs for k in p} - named)
        for param in params:
            values = {arm: list(dict.fromkeys(p.get(param, "(not set)") for p in runs)) for arm, runs in arms.items()}
            single = {arm: v[0] for arm, v in values.items() if len(v) == 1}
            if len(single) == len(values) and len(set(single.values())) == 1:
                continue  # the same everywhere in this cell
            counts: dict[str, int] = {}
            for v in single.values():
                counts[v] = counts.get(v, 0) + 1
            top = max(counts.values(), default=0)
            common = [v for v, c in counts.items() if c == top]
            usual = common[0] if len(common) == 1 and top > 1 else None
            for arm, v in values.items():
                if len(v) > 1:
                    text = f"{', '.join(v)} (differs between its runs)"
                elif v[0] != usual:
                    text = v[0]
                else:
                    continue
                seen = found.setdefault(arm, {}).setdefault(param, [])
                if text not in seen:
                    seen.append(text)
    return {arm: {p: " / ".join(v) for p, v in keys.items()} for arm, keys in found.items()}


def read_runs(client, uri: str, selection: Selection) -> MlflowRuns:
    """Read ``selection`` from the tracking store behind ``client`` (an ``MlflowClient``)."""
    import pandas as pd

    experiment = _experiment(client, selection.experiment, uri)
    runs = [r for r in tracking.search_runs(client, experiment.experiment_id, selection.filter)
            if r.data.tags.get("ablate.kind") not in OWN_KINDS]
    left_out = 0
    if not selection.include_parents:
        # A parent is a parent even when --filter leaves out its children.
        every = tracking.search_runs(client, experiment.experiment_id) if selection.filter else runs
        parents = {r.data.tags.get("mlflow.parentRunId") for r in every}
        leaves = [r for r in runs if r.info.run_id not in parents]
        left_out, runs = len(runs) - len(leaves), leaves
    where = f" matching --filter {selection.filter!r}" if selection.filter else ""
    if not runs:
        raise ConfigError(f"--experiment: experiment {selection.experiment!r} has no runs{where}")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if not finished:
        counts = ", ".join(f"{s.lower()}: {sum(r.info.status == s for r in runs)}"
                           for s in sorted({r.info.status for r in runs}))
        raise ConfigError(f"--experiment: experiment {selection.experiment!r} has no FINISHED runs{where} "
                          f"({counts}); only finished runs are analysed")
    _check_params(finished, selection)
    metrics = _pick_metrics(finished, selection)

    rows = []
    for r in runs:
        params = r.data.params
        seed = _integer(params.get(selection.seed, ""))
        start, end = r.info.start_time, r.info.end_time
        rows.append({"run_id": r.info.run_id, "status": STATUSES.get(r.info.status, r.info.status.lower()),
                     "arm": str(params.get(selection.arm, "?")).strip() or "?",
                     "seed": seed if seed is not None else -1,  # a run that did not finish may lack one
                     **_cell(params, selection.by),
                     **{m: r.data.metrics.get(m, math.nan) for m in metrics},
                     "started_at": _iso(start), "finished_at": _iso(end),
                     "seconds": (end - start) / 1000 if start and end else math.nan})
    from ablate.analysis.table import normalise_runs

    table = pd.DataFrame(rows)
    table = table.sort_values(["status", "arm", "seed", "run_id"], kind="stable").reset_index(drop=True)
    table = normalise_runs(table, f"MLflow experiment {experiment.name!r}")
    done = table[table["status"] == COMPLETED]
    twins = done[done.duplicated(["backend", "dataset", "model", "arm", "smoothing", "seed"], keep=False)]
    if len(twins):
        first = twins.iloc[0]
        same = twins[(twins[["arm", "seed", "backend", "dataset", "model"]] == first[
            ["arm", "seed", "backend", "dataset", "model"]]).all(axis=1)]
        raise ConfigError(f"--by: {len(twins)} finished runs share their cell, arm and seed with another, e.g. "
                          f"arm {first['arm']!r} seed {first['seed']} in run ids {', '.join(same['run_id'][:2])}; "
                          f"name the params that tell them apart with --by, or narrow the runs with --filter")
    digest = hashlib.sha256(json.dumps(
        [[r.info.run_id, r.info.status, r.info.end_time, r.data.params, r.data.metrics]
         for r in sorted(runs, key=lambda r: r.info.run_id)], sort_keys=True, default=str).encode()).hexdigest()
    return MlflowRuns(table, experiment.experiment_id, experiment.name, metrics, confounds(finished, selection),
                      digest, left_out, selection)

"""A study: its stored runs read into tables, and its report.

This is the one place where the results layout (:mod:`ablate.execution.store`) meets the
analysis (:mod:`ablate.analysis`): records become a runs table, metrics are recomputed from
the stored probabilities, temperature scaling is fitted per run on its validation split,
and :func:`ablate.analysis.report.write_report` does the rest on plain tables.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ablate import provenance
from ablate.analysis import calibration
from ablate.analysis.report import (CELL, EXTRA_RUN_COLUMNS, RUNS_COLUMNS, SOURCE_COLUMNS, LoadedStudy, Skipped,
                                   check_margin_metrics, check_options, measured_runs, write_report)
from ablate.config import DEFAULT_MARGINS, TRICK_PARTS, AnalysisConfig
from ablate.errors import ConfigError, StoreError
from ablate.execution.store import CorruptRecord, RunStore, StoredRun, studies
from ablate.settings import StudySettings, read_settings
from ablate.statuses import COMPLETED

def arm_settings(configs: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """arm -> the train settings in which it differs from the other arms, from its records.

    configs: arm -> the ``train`` mappings of its records. The reference is each key's most
    common value over all arms, so an arm that overrides momentum shows momentum, whatever
    grid file the runs came from. An arm whose own records disagree raises StoreError.
    """
    per_arm: dict[str, dict[str, Any]] = {}
    for arm, trains in configs.items():
        distinct = {json.dumps(t, sort_keys=True) for t in trains}
        if len(distinct) > 1:
            a, b = (json.loads(x) for x in sorted(distinct)[:2])
            diff = ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b))
                             if a.get(k) != b.get(k) and k != "timeout")
            if diff:
                raise StoreError(f"arm {arm!r} has runs trained with different settings ({diff}); they are "
                                 "not mixed in one report: move one set of runs to another study")
        per_arm[arm] = trains[0]
    if len(per_arm) < 2:
        return {arm: {} for arm in per_arm}
    keys = sorted({k for t in per_arm.values() for k in t} - {"timeout"})
    modal = {}
    for key in keys:
        values = [json.dumps(t.get(key), sort_keys=True) for t in per_arm.values()]
        modal[key] = max(sorted(set(values)), key=values.count)
    return {arm: {k: t.get(k) for k in keys if json.dumps(t.get(k), sort_keys=True) != modal[k]}
            for arm, t in per_arm.items()}


# ------------------------------------------------------------------------------ loading
def load_study(store: RunStore, *, ece_bins: int = AnalysisConfig.ece_bins,
               ece_binning: str = AnalysisConfig.ece_binning,
               items: Sequence[StoredRun | CorruptRecord] | None = None) -> LoadedStudy:
    """Read every record, recompute metrics from its arrays, and fit its temperature.

    items: the study's scanned records when the caller already has them (one scan per report).
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    pooled: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
    corrupt: list[Skipped] = []
    trains: dict[str, list[Mapping[str, Any]]] = {}
    for item in store.scan() if items is None else items:
        if isinstance(item, CorruptRecord):
            corrupt.append(Skipped(item.path, item.reason))
            continue
        try:
            row, arrays = _run_row(item, ece_bins=ece_bins, ece_binning=ece_binning)
        except Exception as exc:  # noqa: BLE001 - one bad record never stops a report
            corrupt.append(Skipped(item.path, f"unusable record ({type(exc).__name__}: {exc})"))
            continue
        rows.append(row)
        if row["status"] == COMPLETED and isinstance(item.config.get("train"), Mapping):
            # A trick's params are per-arm settings like train keys, so the per-arm settings list them.
            params = item.config.get("params") if isinstance(item.config.get("params"), Mapping) else {}
            trains.setdefault(row["arm"], []).append(
                {**item.config["train"], **{f"params.{k}": v for k, v in params.items()}})
        cell = tuple(row[c] for c in CELL)
        if arrays is not None and row.get("repeat", 0) == 0:
            pooled.setdefault(cell, []).append((arrays["test_probs"], arrays["test_labels"]))
        history = item.record.get("history")
        history = history if isinstance(history, Mapping) else {}
        for split in ("train", "val"):
            for quantity in ("objective", "nll", "accuracy"):
                for epoch, value in history_values(history.get(f"{split}_{quantity}")):
                    history_rows.append({**{c: row[c] for c in ("run_id",) + CELL + ("seed",)},
                                         "epoch": epoch, "split": split, "quantity": quantity,
                                         "value": value})
    for bad in corrupt:
        print(f"ablate: warning: skipping corrupt record {bad.path}: {bad.reason}", file=sys.stderr)
    runs = pd.DataFrame(rows, columns=list(RUNS_COLUMNS + EXTRA_RUN_COLUMNS))
    if len(runs):
        runs = runs.sort_values(["dataset", "model", "backend", "arm", "smoothing", "seed", "repeat"],
                                kind="stable").reset_index(drop=True)
    reliability = {cell: calibration.reliability_bins(np.concatenate([p for p, _ in parts]),
                                                      np.concatenate([y for _, y in parts]),
                                                      n_bins=ece_bins, binning=ece_binning)
                   for cell, parts in pooled.items()}
    return LoadedStudy(runs, pd.DataFrame(history_rows), reliability, tuple(corrupt), arm_settings(trains))


def history_values(values: Any) -> list[tuple[int, float]]:
    """(epoch from 1, value) for each plottable number of one history list; anything else is dropped.

    The store's validation already refuses non-numeric histories; this keeps a figure from
    ever meeting one (a string, a None, a bool, a NaN).
    """
    if not isinstance(values, list):
        return []
    return [(epoch, float(v)) for epoch, v in enumerate(values, start=1)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]


def _run_row(item: StoredRun, *, ece_bins: int, ece_binning: str) -> tuple[dict[str, Any], dict | None]:
    rec, cfg = item.record, item.config
    row: dict[str, Any] = {
        "run_id": rec["run_id"], "status": rec["status"], "backend": cfg["backend"],
        "dataset": cfg["dataset"]["name"], "model": cfg["model"], "arm": cfg["arm"],
        "method": cfg.get("method") or cfg["arm"],
        "params": ", ".join(f"{k} = {v:g}" for k, v in sorted((cfg.get("params") or {}).items())),
        "trick": ", ".join(f"{p} {r}" for p, r in (cfg.get("trick") or {}).items()
                           if p in TRICK_PARTS and isinstance(r, str)),
        "smoothing": float(cfg["smoothing"]), "seed": int(cfg["seed"]), "repeat": int(cfg.get("repeat", 0)),
        "pairing": cfg.get("pairing", "within-backend"),
        **{k: (cfg.get("sources") or {}).get(k) for k in SOURCE_COLUMNS},
        "attempt": rec.get("attempt", 1), "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"), "seconds": rec.get("seconds"),
        "error": (rec.get("error") or "").strip().splitlines()[-1] if rec.get("error") else ""}
    if rec["status"] != COMPLETED:
        return row, None
    arrays = item.arrays()
    probs, labels = arrays["test_probs"], arrays["test_labels"]
    row["classes"] = int(probs.shape[1])  # K: what chance accuracy (1/K) is
    summary = calibration.summarize(probs, labels, n_bins=ece_bins, binning=ece_binning)
    row.update({k: v for k, v in summary.as_dict().items() if k in RUNS_COLUMNS + EXTRA_RUN_COLUMNS})
    if "val_probs" in arrays and len(arrays["val_labels"]):
        temperature = calibration.fit_temperature(arrays["val_probs"], arrays["val_labels"])
        scaled = calibration.apply_temperature(probs, temperature)
        row.update({"temperature": temperature,
                    "temperature_at_bound": calibration.temperature_at_bound(temperature),
                    "accuracy_ts": calibration.accuracy(scaled, labels),
                    "ece_ts": calibration.ece(scaled, labels, n_bins=ece_bins, binning=ece_binning),
                    "nll_ts": calibration.nll(scaled, labels)})
    return row, arrays


def compare_table(table, *, margins: Mapping[str, float] | None = None, alpha: float = AnalysisConfig.alpha,
                  correction: str = AnalysisConfig.correction, pairs: Sequence[tuple[str, str]] | None = None, seed: int = 0):
    """Paired comparisons of a per-run table (one row per run: arm, seed, metric columns).

    Returns the ``comparisons.csv`` table (pandas). ``pairs`` defaults to every pair of arms.
    (``ablate.compare`` is this function.)
    """
    import pandas as pd

    from ablate.analysis import compare as _compare
    from ablate.analysis.table import load_runs_table

    if not isinstance(table, pd.DataFrame):
        table = load_runs_table(table)
    if "status" in table:
        table = table[table["status"] == COMPLETED]
    margins = dict(margins) if margins is not None else {m: v for m, v in DEFAULT_MARGINS.items() if m in table}
    kwargs = {"pairs": [tuple(p) for p in pairs]} if pairs is not None else {}
    result = _compare.compare_runs(table, margins=margins, alpha=alpha, correction=correction,
                                   rng=np.random.default_rng(seed), **kwargs)
    return result.table


def report_study(results: str | Path, *, study: str | None = None, out: str | Path | None = None,
                 margins: Mapping[str, float] | None = None, alpha: float | None = None,
                 correction: str | None = None, ece_bins: int | None = None, ece_binning: str | None = None,
                 figures: bool = True, sequential=None, spending: str | None = None, pairs=None,
                 latex: bool = False) -> list[Path]:
    """Report on one study's stored runs; returns the paths written.

    sequential: looks for the group-sequential analysis (see :func:`ablate.analysis.report.write_report`);
    pairs: ``(arm_a, arm_b)`` pairs to compare (None: the grid's `analysis.compare`, else every pair).
    """
    check_options(alpha=alpha, ece_bins=ece_bins)
    results = Path(results)
    names = studies(results)
    if study is None:
        if len(names) != 1:
            raise StoreError(f"--study: expected one of {names} under {results}, but none was given"
                             if names else f"{results}: no study with stored runs found (run `ablate run GRID` first)")
        study = names[0]
    elif study not in names:
        raise StoreError(f"--study: expected one of {names or 'none (no stored runs)'} under {results}, "
                         f"but got {study!r}")
    store = RunStore(results, study)
    settings = StudySettings.read(store)
    bins = ece_bins if ece_bins is not None else settings.ece_bins
    binning = ece_binning or settings.ece_binning
    if bins < 1:
        raise ConfigError(f"--ece-bins: expected an integer >= 1, but got {bins}")
    items = list(store.scan())  # validating a record reads its arrays: scan once for tables and provenance
    loaded = load_study(store, ece_bins=bins, ece_binning=binning, items=items)
    if not len(loaded.runs):
        raise StoreError(f"{store.runs_dir}: no readable run records")
    check_margin_metrics(margins, loaded.runs)
    merged_margins = {**settings.margins, **(margins or {})}
    if pairs is None:
        pairs = settings.pairs()
    if sequential is None and settings.sequential is not None:
        # A sequential study: its report makes the decisions `ablate run` made (same looks, pairs, family).
        sequential, spending = list(settings.sequential.looks), spending or settings.sequential.spending
    return write_report(
        loaded.runs, out=Path(out) if out else store.study_dir, title=f"Study `{study}`",
        margins=merged_margins, alpha=alpha if alpha is not None else settings.alpha,
        correction=correction or settings.correction, histories=loaded.histories,
        reliability=loaded.reliability, corrupt=loaded.corrupt, overrides=loaded.arm_settings,
        binning=(bins, binning), figures=figures, sequential=sequential, spending=spending, pairs=pairs,
        context=provenance.collect(items), latex=latex)


def open_study(path: str | Path, *, results: str | Path | None = None):
    """A stored study: ``path`` is its folder (``results/quick``), or its name under ``results``.

    (``ablate.load_study`` is this function; :func:`load_study` reads a store into tables.)
    """
    path = Path(path)
    if results is not None and not path.is_absolute() and len(path.parts) == 1:
        path = Path(results) / path
    return Study.open(path)


class Study:
    """A stored study, for notebooks: ``Study.open("results/quick")``, or what ``ablate.run`` returns.

    ``runs`` is the runs.csv table (metrics recomputed from the stored probabilities);
    ``comparisons()`` the comparisons.csv table; ``summary()`` the summary.csv table;
    ``figure(name)`` one of the report's figures, drawn and returned (nothing written);
    ``report(out=...)`` writes everything. In Jupyter a study shows the report's verdict table.
    """

    def __init__(self, store: RunStore):
        self.store = store
        self.name = store.study_dir.name
        self._loaded: LoadedStudy | None = None
        self._compared = None  # the Comparisons of the study's own settings, once computed
        self.sweep = None  # the SweepSummary of the `ablate.run` that returned this study, if any

    @classmethod
    def open(cls, path: str | Path) -> Study:
        path = Path(path)
        if not (path / "runs").is_dir():
            raise StoreError(f"{path}: not a study folder (no runs/ inside); expected e.g. results/<study>")
        return cls(RunStore(path.parent, path.name))

    @property
    def settings(self) -> dict[str, Any]:
        return read_settings(self.store)

    def _load(self) -> LoadedStudy:
        if self._loaded is None:
            bound = StudySettings.read(self.store)
            self._loaded = load_study(self.store, ece_bins=bound.ece_bins, ece_binning=bound.ece_binning)
        return self._loaded

    @property
    def runs(self):
        return self._load().runs

    def _compare(self, *, margins: Mapping[str, float] | None = None, alpha: float | None = None,
                 correction: str | None = None, pairs=None):
        """The comparisons (a :class:`~ablate.analysis.compare.Comparisons`) as the report makes them."""
        from ablate.analysis import compare

        default = margins is None and alpha is None and correction is None and pairs is None
        if default and self._compared is not None:
            return self._compared
        check_options(alpha=alpha)
        bound = StudySettings.read(self.store)
        merged = {**bound.margins, **(margins or {})}
        runs = self.runs
        check_margin_metrics(margins, runs)
        pairs = pairs if pairs is not None else bound.pairs()
        # As the report does: the same columns, the same generator (comparisons.csv, row for row).
        measured = measured_runs(runs)
        result = compare.compare_runs(measured,
                                      margins={m: v for m, v in merged.items() if m in runs or m == "sd_ratio"},
                                      alpha=alpha if alpha is not None else bound.alpha,
                                      correction=correction or bound.correction,
                                      rng=np.random.default_rng(0),
                                      **({"pairs": [tuple(p) for p in pairs]} if pairs is not None else {}))
        if default:
            self._compared = result
        return result

    def comparisons(self, *, margins: Mapping[str, float] | None = None, alpha: float | None = None,
                    correction: str | None = None, pairs=None):
        """The comparisons.csv table (pandas): one row per pair, metric and cell, with its verdict."""
        return self._compare(margins=margins, alpha=alpha, correction=correction, pairs=pairs).table

    def summary(self):
        """The summary.csv table (pandas): per cell and metric, n, mean, std and the 95% interval."""
        from ablate.analysis.report import SUMMARY_METRICS, summary_table

        runs = self.runs
        metrics = list(self._compare().margins)
        return summary_table(runs, [m for m in SUMMARY_METRICS if m in runs.columns] +
                             [m for m in metrics if m not in SUMMARY_METRICS and m in runs.columns])

    def figures(self) -> tuple[str, ...]:
        """The names of the figures the report draws for this study."""
        return tuple(self._figure_makers())

    def _figure_makers(self):
        from ablate.analysis.report import figure_makers

        loaded = self._load()
        comparisons = self._compare()
        return figure_makers(loaded.runs, loaded.histories, loaded.reliability, comparisons,
                             list(comparisons.margins))

    def figure(self, name: str):
        """One figure of the report (``"accuracy"`` for ``accuracy_by_arm``), as a matplotlib Figure.

        Nothing is written, and the global matplotlib state (rcParams, pyplot's open figures) is
        as it was: the figure belongs to the caller, and Jupyter shows it when it is a cell's value.
        """
        makers = self._figure_makers()
        key = name if name in makers else f"{name}_by_arm"
        if key not in makers:
            raise ConfigError(f"figure: expected one of {', '.join(makers) or 'none (no completed runs)'} "
                              f"(or a metric, e.g. 'accuracy'), but got {name!r}")
        from ablate.analysis.figures._style import detached

        return detached(makers[key])

    def report(self, *, out: str | Path | None = None, figures: bool = True, **options) -> list[Path]:
        return report_study(self.store.study_dir.parent, study=self.name, out=out, figures=figures, **options)

    def _counts(self) -> dict[str, int]:
        runs = self.runs
        return runs["status"].value_counts().to_dict() if "status" in runs else {}

    def __repr__(self) -> str:
        head = f"Study {self.name!r} ({self.store.study_dir})"
        try:
            counts = self._counts()
            if not counts:
                return f"{head}: no stored runs"
            table = self.comparisons()
        except Exception as exc:  # noqa: BLE001 - a repr never raises; it says why it is short
            return f"{head}: {type(exc).__name__}: {exc}"
        runs = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        verdicts = table["verdict"].value_counts().to_dict() if len(table) else {}
        said = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "none"
        return f"{head}: {sum(counts.values())} runs ({runs}); {len(table)} comparisons: {said}"

    def _repr_html_(self) -> str:
        from ablate.analysis import html

        runs = self.runs
        if not len(runs):
            return f"<p>Study <code>{html._html.escape(self.name)}</code>: no stored runs.</p>"
        return html.render_verdicts(title=f"Study `{self.name}`", runs=runs, comparisons=self._compare())

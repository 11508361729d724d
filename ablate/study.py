"""A study: its stored runs read into tables, and its report.

This is the one place where the results layout (:mod:`ablate.execution.store`) meets the
analysis (:mod:`ablate.analysis`): records become a runs table, metrics are recomputed from
the stored probabilities, temperature scaling is fitted per run on its validation split,
and :func:`ablate.analysis.report.write_report` does the rest on plain tables.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis import calibration
from ablate.analysis.report import CELL, EXTRA_RUN_COLUMNS, RUNS_COLUMNS, LoadedStudy, Skipped, write_report
from ablate.config import DEFAULT_MARGINS
from ablate.errors import ConfigError, StoreError
from ablate.execution.store import CorruptRecord, RunStore, StoredRun, studies

STUDY_FILE = "study.json"


def write_study_settings(store: RunStore, grid) -> None:
    """Keep the grid's analysis settings and overrides beside the runs, for the report."""
    from ablate.execution.store import atomic_write

    store.study_dir.mkdir(parents=True, exist_ok=True)
    payload = {"study": grid.study, "grid": grid.source,
               "analysis": {"margins": dict(grid.analysis.margins), "alpha": grid.analysis.alpha,
                            "correction": grid.analysis.correction, "ece_bins": grid.analysis.ece_bins,
                            "ece_binning": grid.analysis.ece_binning},
               "overrides": {arm: dict(v) for arm, v in grid.override_text.items()}}
    text = json.dumps(payload, indent=1, sort_keys=True).encode()
    atomic_write(store.study_dir / STUDY_FILE, lambda fh: fh.write(text))


def _read_settings(store: RunStore) -> dict[str, Any]:
    path = store.study_dir / STUDY_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"ablate: warning: ignoring unreadable {path} ({exc})", file=sys.stderr)
        return {}


# ------------------------------------------------------------------------------ loading
def load_study(store: RunStore, *, ece_bins: int = 15, ece_binning: str = "uniform") -> LoadedStudy:
    """Read every record, recompute metrics from its arrays, and fit its temperature."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    pooled: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
    corrupt: list[Skipped] = []
    for item in store.scan():
        if isinstance(item, CorruptRecord):
            corrupt.append(Skipped(item.path, item.reason))
            continue
        try:
            row, arrays = _run_row(item, ece_bins=ece_bins, ece_binning=ece_binning)
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            corrupt.append(Skipped(item.path, f"unusable record ({exc})"))
            continue
        rows.append(row)
        cell = tuple(row[c] for c in CELL)
        if arrays is not None and row.get("repeat", 0) == 0:
            pooled.setdefault(cell, []).append((arrays["test_probs"], arrays["test_labels"]))
        for split in ("train", "val"):
            for quantity in ("objective", "nll", "accuracy"):
                values = (item.record.get("history") or {}).get(f"{split}_{quantity}", [])
                for epoch, value in enumerate(values, start=1):
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
    return LoadedStudy(runs, pd.DataFrame(history_rows), reliability, tuple(corrupt))


def _run_row(item: StoredRun, *, ece_bins: int, ece_binning: str) -> tuple[dict[str, Any], dict | None]:
    rec, cfg = item.record, item.config
    row: dict[str, Any] = {
        "run_id": rec["run_id"], "status": rec["status"], "backend": cfg["backend"],
        "dataset": cfg["dataset"]["name"], "model": cfg["model"], "arm": cfg["arm"],
        "smoothing": float(cfg["smoothing"]), "seed": int(cfg["seed"]), "repeat": int(cfg.get("repeat", 0)),
        "pairing": cfg.get("pairing", "within-backend"),
        "attempt": rec.get("attempt", 1), "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"), "seconds": rec.get("seconds"),
        "error": (rec.get("error") or "").strip().splitlines()[-1] if rec.get("error") else ""}
    if rec["status"] != "completed":
        return row, None
    arrays = item.arrays()
    probs, labels = arrays["test_probs"], arrays["test_labels"]
    summary = calibration.summarize(probs, labels, n_bins=ece_bins, binning=ece_binning)
    row.update({k: v for k, v in summary.as_dict().items() if k in RUNS_COLUMNS + EXTRA_RUN_COLUMNS})
    if "val_probs" in arrays and len(arrays["val_labels"]):
        temperature = calibration.fit_temperature(arrays["val_probs"], arrays["val_labels"])
        scaled = calibration.apply_temperature(probs, temperature)
        row.update({"temperature": temperature, "accuracy_ts": calibration.accuracy(scaled, labels),
                    "ece_ts": calibration.ece(scaled, labels, n_bins=ece_bins, binning=ece_binning),
                    "nll_ts": calibration.nll(scaled, labels)})
    return row, arrays


def report_study(results: str | Path, *, study: str | None = None, out: str | Path | None = None,
                 margins: Mapping[str, float] | None = None, alpha: float | None = None,
                 correction: str | None = None, ece_bins: int | None = None, ece_binning: str | None = None,
                 figures: bool = True) -> list[Path]:
    """Report on one study's stored runs; returns the paths written."""
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
    settings = _read_settings(store)
    analysis = settings.get("analysis", {})
    bins = ece_bins if ece_bins is not None else int(analysis.get("ece_bins", 15))
    binning = ece_binning or analysis.get("ece_binning", "uniform")
    if bins < 1:
        raise ConfigError(f"--ece-bins: expected an integer >= 1, but got {bins}")
    loaded = load_study(store, ece_bins=bins, ece_binning=binning)
    if not len(loaded.runs):
        raise StoreError(f"{store.runs_dir}: no readable run records")
    merged_margins = {**DEFAULT_MARGINS, **analysis.get("margins", {}), **(margins or {})}
    return write_report(
        loaded.runs, out=Path(out) if out else store.study_dir, title=f"Study `{study}`",
        margins=merged_margins, alpha=alpha if alpha is not None else float(analysis.get("alpha", 0.05)),
        correction=correction or analysis.get("correction", "holm"), histories=loaded.histories,
        reliability=loaded.reliability, corrupt=loaded.corrupt, overrides=settings.get("overrides", {}),
        binning=(bins, binning), figures=figures)



"""``python -m ablate export mlflow``: a study's stored runs and its report in an MLflow tracking store.

One MLflow run per stored ablate run (params: backend, dataset, model, arm, its method when the
record has one, smoothing, seed, repeat and every train setting; final metrics; the per-epoch
history as stepped metrics; tags ``ablate.run_id``, ``ablate.study``, ``ablate.status``,
``ablate.attempt``), all children of one parent run per study that holds the report's files as
artifacts and each comparison's estimate, interval and verdict, which a tracker cannot compute
itself. Exporting again is idempotent: runs are matched by their ``ablate.run_id`` tag; an
unchanged run is left alone and a re-run (new attempt or status) replaces its MLflow run.

mlflow is an optional dependency, imported only when this command runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ablate.errors import StoreError
from ablate.execution.store import RunStore, StoredRun, studies
from ablate.export import tracking
from ablate.export.tracking import INSTALL_HINT  # noqa: F401 - re-exported for callers of this module
from ablate.statuses import COMPLETED
DB_NAME = "mlflow.db"
KIND_TAG, RUN_TAG, STUDY_TAG = "ablate.kind", "ablate.run_id", "ablate.study"
# A number per verdict, so the tracker can chart and filter it; the word is a tag beside it.
VERDICT_CODES = {"different": -1.0, "inconclusive": 0.0, "equivalent": 1.0, "identical": 2.0}
# Report files attached to the study's parent run, when the report wrote them.
REPORT_FILES = ("comparisons.csv", "summary.csv", "runs.csv", "report.html", "report.md",
                "comparisons.tex", "summary.tex", "sequential.csv")
COMPARISON_METRICS = ("mean_diff", "ci_low", "ci_high", "margin", "p_equivalence_adj", "p_difference_adj",
                      "n", "seeds_needed")
# Columns of runs.csv worth logging beside the record's own final metrics (recomputed by the report).
REPORT_RUN_METRICS = ("rms_ce", "mce", "classwise_ece", "mean_confidence", "overconfidence", "temperature",
                      "ece_ts", "nll_ts", "accuracy_ts")
_BATCH = 900  # MLflow takes at most 1000 metrics per log_batch call


@dataclass(frozen=True)
class ExportSummary:
    study: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    added: int
    replaced: int
    unchanged: int
    comparisons: int  # comparison rows logged on the parent (0 when unchanged or no report yet)

    def describe(self) -> str:
        return (f"study {self.study!r} -> {self.tracking_uri} (experiment {self.experiment_id}, parent run "
                f"{self.parent_run_id}): {self.added} run(s) added, {self.replaced} replaced, "
                f"{self.unchanged} unchanged" +
                (f"; {self.comparisons} comparison(s) logged" if self.comparisons else ""))


def default_tracking_uri(results: str | Path) -> str:
    """``sqlite:///<results>/mlflow.db`` (absolute), so ``mlflow ui --backend-store-uri`` finds it."""
    return f"sqlite:///{(Path(results).resolve() / DB_NAME).as_posix()}"


def _pick_study(results: Path, study: str | None) -> str:
    names = studies(results)
    if study is None:
        if len(names) != 1:
            raise StoreError(f"--study: expected one of {names} under {results}, but none was given" if names
                             else f"{results}: no study with stored runs found (run `ablate run GRID` first)")
        return names[0]
    if study not in names:
        raise StoreError(f"--study: expected one of {names or 'none (no stored runs)'} under {results}, "
                         f"but got {study!r}")
    return study


def _ms(stamp: Any) -> int | None:
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def _key(text: str) -> str:
    """An MLflow metric/tag key: letters, digits and ``_ - . : / space`` only."""
    return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", text)


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}", v)
    else:
        yield prefix, json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def run_params(config: Mapping[str, Any]) -> dict[str, str]:
    """A record's config -> MLflow params (train and dataset settings flattened as ``train.lr``).

    A factorial run's ``sources`` become the params ``init``, ``order``, ``augment``, ``split``.
    """
    params: dict[str, str] = {}
    dataset = config.get("dataset")
    for key, value in config.items():
        if key == "dataset" and isinstance(dataset, Mapping):
            params["dataset"] = str(dataset.get("name"))
            for k, v in dataset.items():
                if k != "name":
                    params.update(_flatten(f"dataset.{k}", v))
        elif key == "sources" and isinstance(value, Mapping):
            params.update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, Mapping):
            params.update(_flatten(key, value))
        else:
            params[key] = str(value)
    return params


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x  # NaN and inf are kept: a diverged run's history says so


def run_metrics(record: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> list[tuple[str, float, int]]:
    """(key, value, step) triples: final metrics at step 0, the history at step = epoch."""
    out = [(k, x, 0) for k, v in (record.get("metrics") or {}).items() if (x := _number(v)) is not None]
    for k, v in (extra or {}).items():
        if (x := _number(v)) is not None and math.isfinite(x):
            out.append((k, x, 0))
    if (seconds := _number(record.get("seconds"))) is not None:
        out.append(("run_seconds", seconds, 0))
    history = record.get("history") or {}
    epochs = history.get("epoch") or []
    for name, values in history.items():
        if name == "epoch" or not isinstance(values, list):
            continue
        key = "epoch_seconds" if name == "seconds" else name
        for i, v in enumerate(values):
            if (x := _number(v)) is not None:
                out.append((key, x, int(epochs[i]) if i < len(epochs) else i + 1))
    return out


def _run_name(config: Mapping[str, Any]) -> str:
    dataset = config.get("dataset")
    name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    eps = f" eps={float(config['smoothing']):g}" if float(config.get("smoothing", 0) or 0) else ""
    rep = f" repeat={config['repeat']}" if config.get("repeat") else ""
    return f"{config.get('backend')} {name} {config.get('model')} {config.get('arm')}{eps} seed={config.get('seed')}{rep}"


def _log(client, run_id: str, *, params=None, metrics=(), tags=None, timestamp: int = 0) -> None:
    from mlflow.entities import Metric, Param, RunTag

    params = [Param(k, v) for k, v in (params or {}).items()]
    tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metrics = [Metric(k, v, timestamp, step) for k, v, step in metrics]
    # log_batch takes at most 100 params, 100 tags and 1000 metrics per call.
    for i in range(0, max(len(params), len(tags)), 100):
        client.log_batch(run_id, params=params[i:i + 100], tags=tags[i:i + 100])
    for i in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH])


def _report_rows(study_dir: Path) -> dict[str, dict[str, Any]]:
    """run_id -> the report's recomputed per-run metrics (runs.csv), when a report exists."""
    path = study_dir / "runs.csv"
    if not path.exists():
        return {}
    from ablate.analysis.escape import read_csv

    table = read_csv(path)  # names the report neutralised for spreadsheets, read back as they are
    cols = [c for c in REPORT_RUN_METRICS if c in table]
    return {str(r["run_id"]): {c: r[c] for c in cols} for r in table.to_dict("records")}


def _export_parent(client, experiment_id: str, study: str, study_dir: Path, comparisons) -> tuple[str, int]:
    found = tracking.search_runs(client, experiment_id,
                                 f"tags.`{KIND_TAG}` = 'study' and tags.`{STUDY_TAG}` = '{study}'")
    if found:
        parent = found[0].info.run_id
        tags = found[0].data.tags
    else:
        parent = client.create_run(experiment_id, run_name=f"study {study}",
                                   tags={KIND_TAG: "study", STUDY_TAG: study}).info.run_id
        tags = {}
    logged = 0
    with tracking.failed_on_error(client, parent):
        table_path = study_dir / "comparisons.csv"
        if comparisons is not None:
            digest = hashlib.sha256(table_path.read_bytes()).hexdigest()
            if tags.get("ablate.comparisons_sha256") != digest:
                # A new report: its values go in at the next step, so earlier versions stay in the history.
                version = int(tags.get("ablate.report_version", "0")) + 1
                logged = log_comparisons(client, parent, comparisons, step=version)
                client.set_tag(parent, "ablate.comparisons_sha256", digest)
                client.set_tag(parent, "ablate.report_version", str(version))
        log_report_files(client, parent, study_dir)
    client.set_terminated(parent, status="FINISHED")
    return parent, logged


def log_report_files(client, run_id: str, folder: Path) -> None:
    """The report's files (and figures/) in ``folder`` as artifacts of ``run_id``."""
    for name in REPORT_FILES:
        if (folder / name).exists():
            client.log_artifact(run_id, str(folder / name))
    if (folder / "figures").is_dir():
        client.log_artifacts(run_id, str(folder / "figures"), artifact_path="figures")


def comparison_payload(table_path: Path) -> tuple[list[tuple[str, float]], dict[str, str], int]:
    """comparisons.csv -> (metrics, verdict tags, rows): each comparison's estimate, interval and verdict."""
    from ablate.analysis.escape import read_csv

    table = read_csv(table_path)  # the arm names as they are, not as neutralised for spreadsheets
    metrics, tags = [], {}
    for r in table.to_dict("records"):
        arms = f"{r['arm_a']} vs {r['arm_b']}" if r["arm_a"] != r["arm_b"] else str(r["arm_a"])
        eps = float(r["smoothing"])
        prefix = _key(f"{r['metric']}/{r['backend']}/{r['dataset']}/{r['model']}/eps{eps:g}/{arms}")
        for col in COMPARISON_METRICS:
            if (x := _number(r.get(col))) is not None and math.isfinite(x):
                metrics.append((f"{prefix}/{col}", x))
        metrics.append((f"{prefix}/verdict_code", VERDICT_CODES.get(r["verdict"], 0.0)))
        tags[f"verdict/{prefix}"] = str(r["verdict"])
    return metrics, tags, len(table)


def log_comparisons(client, run_id: str, payload, *, step: int) -> int:
    metrics, tags, rows = payload
    _log(client, run_id, metrics=[(k, x, step) for k, x in metrics])
    _log(client, run_id, tags=tags)
    return rows


def export_study(results: str | Path, *, study: str | None = None, tracking_uri: str | None = None,
                 experiment: str | None = None) -> ExportSummary:
    """Export one study; returns what was added, replaced and left alone.

    Every name and value is checked against MLflow's limits before anything is logged; an error
    after the parent run exists ends it FAILED.
    """
    results = Path(results)
    study = _pick_study(results, study)
    tracking_uri = tracking_uri or default_tracking_uri(results)
    tracking.check_location(tracking_uri, flag="--tracking-uri", read=False, write=True)  # fail first, and fast
    store = RunStore(results, study)
    name = experiment or f"ablate/{study}"
    extras = _report_rows(store.study_dir)
    planned = []
    for item in store.scan():
        if not isinstance(item, StoredRun):
            continue
        params, metrics = run_params(item.config), run_metrics(item.record, extras.get(item.run_id))
        tracking.check_names(metrics={k for k, _, _ in metrics}, params=params, what=f"run {item.run_id}")
        planned.append((item, params, metrics))
    table_path = store.study_dir / "comparisons.csv"
    comparisons = comparison_payload(table_path) if table_path.exists() else None
    if comparisons is not None:
        tracking.check_names(metrics={k for k, _ in comparisons[0]}, tags=comparisons[1], what="comparisons")

    with tracking.session(tracking_uri, flag="--tracking-uri", read=False, write=True) as client:
        experiment_id = _experiment_id(client, name, tracking_uri)
        parent, logged = _export_parent(client, experiment_id, study, store.study_dir, comparisons)
        with tracking.failed_on_error(client, parent):
            counts = _export_runs(client, experiment_id, study, parent, planned)
    return ExportSummary(study, tracking_uri, experiment_id, parent, *counts, logged)


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    """The experiment called ``name``, created when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # A local store keeps its artifacts beside the database, not in the current folder.
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _export_runs(client, experiment_id: str, study: str, parent: str, planned) -> tuple[int, int, int]:
    existing: dict[str, Any] = {}
    for run in tracking.search_runs(client, experiment_id,
                                    f"tags.`{KIND_TAG}` = 'run' and tags.`{STUDY_TAG}` = '{study}'"):
        existing.setdefault(run.data.tags.get(RUN_TAG), run)
    added = replaced = unchanged = 0
    for item, params, metrics in planned:
        rec = item.record
        tags = {KIND_TAG: "run", RUN_TAG: item.run_id, STUDY_TAG: study, "ablate.status": rec["status"],
                "ablate.attempt": str(rec.get("attempt", 1)), "ablate.finished_at": str(rec.get("finished_at")),
                "mlflow.parentRunId": parent}
        old = existing.get(item.run_id)
        if old is not None:
            same = all(old.data.tags.get(k) == tags[k] for k in ("ablate.status", "ablate.attempt",
                                                                  "ablate.finished_at"))
            if same:
                unchanged += 1
                continue
            client.delete_run(old.info.run_id)  # a re-run replaces what was exported before
            replaced += 1
        else:
            added += 1
        if rec.get("error"):
            tags["ablate.error"] = str(rec["error"]).strip()[-4000:]
        start = _ms(rec.get("started_at"))
        created = client.create_run(experiment_id, start_time=start, tags=tags,
                                    run_name=_run_name(item.config)).info.run_id
        with tracking.failed_on_error(client, created):
            _log(client, created, params=params, metrics=metrics, timestamp=start or 0)
        client.set_terminated(created, status="FINISHED" if rec["status"] == COMPLETED else "FAILED",
                              end_time=_ms(rec.get("finished_at")))
    return added, replaced, unchanged


# ------------------------------------------------------------------ report --mlflow --write-back
VERDICTS_NAME = "ablate verdicts"
SOURCE_TAG = "ablate.source_sha256"


@dataclass(frozen=True)
class VerdictsSummary:
    experiment: str
    run_id: str
    created: bool
    comparisons: int

    def describe(self) -> str:
        if not self.created:
            return (f"write-back: unchanged; run {self.run_id} ({VERDICTS_NAME!r}) in experiment "
                    f"{self.experiment!r} already holds these runs' verdicts with these settings")
        return (f"write-back: run {self.run_id} ({VERDICTS_NAME!r}) in experiment {self.experiment!r}: "
                f"{self.comparisons} comparison(s) and the report's files")


def source_digest(source, settings: Mapping[str, Any]) -> str:
    """What a verdicts run stands for: the source experiment, the runs read and the analysis settings."""
    text = json.dumps({"experiment": source.experiment_id, "runs": source.fingerprint, "settings": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_verdicts(client, source, folder: str | Path, settings: Mapping[str, Any]) -> VerdictsSummary:
    """Log the report in ``folder`` as one run "ablate verdicts" in the source experiment.

    source: :class:`ablate.export.mlflow_read.MlflowRuns`. Idempotent: a finished verdicts run whose
    tag ``ablate.source_sha256`` matches (same experiment, same runs, same settings) is left alone.
    Names are checked before the run is created; an error after that ends it FAILED.
    """
    folder = Path(folder)
    digest = source_digest(source, settings)
    for run in tracking.search_runs(client, source.experiment_id,
                       f"tags.`{KIND_TAG}` = 'verdicts' and tags.`{SOURCE_TAG}` = '{digest}'"):
        if run.info.status == "FINISHED":
            return VerdictsSummary(source.experiment_name, run.info.run_id, False, 0)
    payload = comparison_payload(folder / "comparisons.csv")
    tags = {KIND_TAG: "verdicts", SOURCE_TAG: digest, "ablate.source_experiment": source.experiment_name,
            "ablate.settings": json.dumps(settings, sort_keys=True, default=str)}
    tracking.check_names(metrics={k for k, _ in payload[0]}, tags={**payload[1], **tags}, what="verdicts")
    run_id = client.create_run(source.experiment_id, run_name=VERDICTS_NAME, tags=tags).info.run_id
    with tracking.failed_on_error(client, run_id):
        rows = log_comparisons(client, run_id, payload, step=0)
        log_report_files(client, run_id, folder)
    client.set_terminated(run_id, status="FINISHED")
    return VerdictsSummary(source.experiment_name, run_id, True, rows)

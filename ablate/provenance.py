"""What a study's records say about how and where it ran, for the report's methods and provenance.

Read from the stored records (their JSON part): the training settings each arm used,
the frameworks, versions and devices the workers reported, the ablate commits the runs came
from, and the commit and version of the ablate that writes the report. Plain data, so the
analysis layer can render it without touching the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import ablate
from ablate.execution.environment import git_commit
from ablate.execution.store import CorruptRecord, StoredRun
from ablate.statuses import COMPLETED

# Keys of a record's `environment` that describe the machine per run, not the software.
_PER_RUN = frozenset({"hostname", "worker_run", "worker_pid", "dataset_loads", "threads"})


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def collect(items: Iterable[StoredRun | CorruptRecord]) -> dict[str, Any]:
    """Summarise a study's records (what ``RunStore.scan`` yields; unusable ones are skipped).

    Returns ``{"ablate_version", "report_commit", "run_commits": [...], "environments": [{...}],
    "arms": {arm: {"method": str | None, "smoothing": [eps...], "train": [{...}, ...]}},
    "datasets": [...], "models": [...], "backends": [...], "functions": [...], "hosts": n}``;
    ``functions`` names each function defined in Python (a notebook cell's) that the runs used,
    with the hash of its source. ``environments``
    holds each distinct software/device description once (hostnames and per-worker
    counters dropped); ``train`` lists each distinct training setting an arm's completed runs used.
    """
    envs: dict[str, dict] = {}
    commits: dict[str, None] = {}
    hosts: set[str] = set()
    arms: dict[str, dict[str, Any]] = {}
    datasets: dict[str, None] = {}
    models: dict[str, None] = {}
    backends: dict[str, None] = {}
    functions: dict[str, None] = {}
    for item in items:
        if not isinstance(item, StoredRun):
            continue
        env = item.record.get("environment") or {}
        if isinstance(env, Mapping) and env:
            if env.get("hostname"):
                hosts.add(str(env["hostname"]))
            if env.get("ablate_commit"):
                commits[str(env["ablate_commit"])] = None
            software = {k: v for k, v in env.items() if k not in _PER_RUN and k != "ablate_commit"}
            envs.setdefault(_key(software), software)
        cfg = item.config
        try:
            arm = str(cfg["arm"])
            entry = arms.setdefault(arm, {"method": cfg.get("method"), "smoothing": [], "train": []})
            eps = float(cfg.get("smoothing", 0.0))
            if eps not in entry["smoothing"]:
                entry["smoothing"].append(eps)
            train = dict(cfg.get("train") or {})
            # The methods describe the analysed (completed) runs, not a setting that failed.
            if item.status == COMPLETED and train not in entry["train"]:
                entry["train"].append(train)
            dataset = cfg["dataset"]
            datasets[str(dataset["name"] if isinstance(dataset, Mapping) else dataset)] = None
            models[str(cfg["model"])] = None
            backends[str(cfg["backend"])] = None
            for token in _function_tokens(cfg):
                functions[token] = None
        except (KeyError, TypeError, ValueError):
            continue  # the report lists unusable records; nothing to describe here
    for entry in arms.values():
        entry["smoothing"].sort()
    return {"ablate_version": ablate.__version__, "report_commit": git_commit(),
            "run_commits": list(commits), "environments": list(envs.values()), "arms": arms,
            "datasets": list(datasets), "models": list(models), "backends": list(backends),
            "functions": sorted(functions), "hosts": len(hosts)}


def _function_tokens(cfg: Mapping[str, Any]) -> list[str]:
    """The functions handed to the grid in Python that a run used, as their ``name@sha256:...`` tokens."""
    dataset = cfg.get("dataset") if isinstance(cfg.get("dataset"), Mapping) else {}
    trick = cfg.get("trick") if isinstance(cfg.get("trick"), Mapping) else {}
    values = [cfg.get("model_factory"), dataset.get("loader"), *trick.values()]
    return [v for v in values if isinstance(v, str) and "@sha256:" in v]

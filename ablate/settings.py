"""A study's bound settings: what its first sweep records in ``study.json``, what a later sweep
must match, and the analysis settings read back as the frozen :class:`StudySettings`.

:func:`bind_settings` is called by a sweep (:mod:`ablate.launch`) before any run starts;
:func:`check_settings` is the same check without writing (``--dry-run``); the study
(:mod:`ablate.study`) reads :class:`StudySettings` for its report's defaults.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ablate.config import AnalysisConfig, SequentialSpec, portable
from ablate.errors import ConfigError
from ablate.execution.store import RunStore

STUDY_FILE = "study.json"


def _bound(grid) -> dict[str, Any]:
    """The settings a study is bound to: everything but which seeds, arms, backends, datasets,
    models and ε it holds (those may grow), keyed by the name that may grow."""
    import dataclasses

    def dataset(ds) -> dict[str, Any]:
        out = dataclasses.asdict(ds)
        out.pop("path")  # where the data lives is not what it is
        return out

    return portable({"arms": {a.name: {"method": a.method, "train": dataclasses.asdict(grid.arm_train[a.name])}
                              for a in grid.arms},
                     "datasets": {d.name: dataset(d) for d in grid.datasets},
                     "models": {m.name: {"torch": m.torch, "keras": m.keras} for m in grid.models},
                     "pairing": grid.pairing})


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b and key != "timeout":
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


def bind_settings(store: RunStore, grid) -> None:
    """Refuse a grid whose settings differ from the study's; record the union otherwise.

    A study may gain seeds, arms, backends, datasets, models and ε values; any other change
    (an arm's train settings, a dataset's split, a model's factory, the pairing) would mix
    two configurations under one name, so it needs a new study. Once runs are stored under a
    sequential design, that design (looks, spending, margins, alpha) is bound too: looks are
    fixed before the data, or the error rates do not hold. The other analysis settings are
    the report's defaults and follow the latest grid.
    """
    from ablate.execution.store import atomic_write

    payload = check_settings(store, grid)
    store.study_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=1, sort_keys=True).encode()
    atomic_write(store.study_dir / STUDY_FILE, lambda fh: fh.write(text))


def check_settings(store: RunStore, grid) -> dict[str, Any]:
    """What :func:`bind_settings` would write to study.json; raises its ConfigError, writes nothing."""
    previous = read_settings(store)
    new = _bound(grid)
    old = previous.get("bound")
    merged = new
    if old:
        problems: list[str] = []
        for section in ("arms", "datasets", "models"):
            for name in set(old.get(section, {})) & set(new[section]):
                problems += [f"{section[:-1]} {name!r}: {d}" for d in
                             _differences(old[section][name], new[section][name])]
        if old.get("pairing", "within-backend") != new["pairing"]:
            problems.append(f"pairing {old.get('pairing')!r} -> {new['pairing']!r}")
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"{grid.source}: study {grid.study!r} already holds runs with other settings: "
                              f"{problems[0]}{more}; use a new study name (e.g. `study: {grid.study}-2`) so "
                              "the two configurations are never mixed")
        merged = {section: {**old.get(section, {}), **new[section]} for section in ("arms", "datasets", "models")}
        merged["pairing"] = new["pairing"]
    analysis = {"margins": dict(grid.analysis.margins), "alpha": grid.analysis.alpha,
                "correction": grid.analysis.correction, "ece_bins": grid.analysis.ece_bins,
                "ece_binning": grid.analysis.ece_binning,
                "compare": [list(p) for p in grid.analysis.compare],
                "sequential": _sequential_settings(grid.analysis.sequential)}
    _check_design(grid, previous.get("analysis"), analysis, store)
    return {"study": grid.study, "grid": grid.source, "analysis": analysis, "bound": merged}


def _check_design(grid, old: Any, new: Mapping[str, Any], store: RunStore) -> None:
    """A sequential study that holds runs keeps its design: one line naming the first setting
    that changed, its bound value and the new one."""
    if not isinstance(old, Mapping) or not isinstance(old.get("sequential"), Mapping) or not _holds_runs(store):
        return
    was, now = old["sequential"], new["sequential"]
    if now is None:
        changes = [("analysis.sequential", was, None)]
    else:
        changes = [(f"analysis.sequential.{k}", was.get(k), now.get(k)) for k in ("looks", "spending")]
    changes += [(f"analysis.{k}", old[k], new[k]) for k in ("margins", "alpha") if k in old]
    for key, bound, given in changes:
        if bound != given:
            raise ConfigError(f"{grid.source}: `{key}`: study {grid.study!r} already ran waves with "
                              f"{_shown(bound)}, and a sequential design is bound once runs exist (looks are "
                              f"fixed before the data, or the error rates do not hold), but the grid now has "
                              f"{_shown(given)}; keep {_shown(bound)} or use a new study name "
                              f"(e.g. `study: {grid.study}-2`)")


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _holds_runs(store: RunStore) -> bool:
    """Whether any run record is stored (cheap: no record is read)."""
    from ablate.execution.store import RECORD

    runs = store.runs_dir
    return runs.is_dir() and any((d / RECORD).exists() for d in runs.iterdir() if not d.name.startswith("."))


def _sequential_settings(spec) -> dict[str, Any] | None:
    return None if spec is None else {"looks": list(spec.looks), "spending": spec.spending}


def read_settings(store: RunStore) -> dict[str, Any]:
    """study.json as a mapping; {} (with a warning) when it is missing or unreadable."""
    path = store.study_dir / STUDY_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except (OSError, ValueError) as exc:
        print(f"ablate: warning: ignoring unreadable {path} ({exc})", file=sys.stderr)
        return {}


@dataclass(frozen=True)
class StudySettings:
    """The analysis settings a study is bound to (``study.json``'s ``analysis``), typed.

    What the study does not record takes :class:`ablate.config.AnalysisConfig`'s default, so
    the defaults are stated once, there.
    """

    margins: Mapping[str, float]  # DEFAULT_MARGINS, updated by the grid's
    alpha: float
    correction: str
    ece_bins: int
    ece_binning: str
    compare: tuple[tuple[str, str], ...]  # () means every pair of arms
    sequential: SequentialSpec | None  # the grid's group-sequential design, if any

    @classmethod
    def from_mapping(cls, analysis: Mapping[str, Any]) -> StudySettings:
        base = AnalysisConfig()
        design = analysis.get("sequential")
        sequential = SequentialSpec(tuple(int(n) for n in design.get("looks") or ()), str(design.get("spending"))) \
            if isinstance(design, Mapping) else None
        return cls(margins={**base.margins, **analysis.get("margins", {})},
                   alpha=float(analysis.get("alpha", base.alpha)),
                   correction=str(analysis.get("correction", base.correction)),
                   ece_bins=int(analysis.get("ece_bins", base.ece_bins)),
                   ece_binning=str(analysis.get("ece_binning", base.ece_binning)),
                   compare=tuple(tuple(p) for p in analysis.get("compare", base.compare)), sequential=sequential)

    @classmethod
    def read(cls, store: RunStore) -> StudySettings:
        return cls.from_mapping(read_settings(store).get("analysis", {}))

    def pairs(self) -> list[tuple[str, str]] | None:
        """The arm pairs to compare; None: every pair."""
        return list(self.compare) or None

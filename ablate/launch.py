"""Launching a sweep: a grid's runs planned, every check made, then run on an executor.

:func:`prepare` makes every check :func:`run` makes, in its order; :func:`check` is
``run --dry-run``; :func:`sweep` takes the study's lock, binds its settings and hands the runs
to the executor (in waves for a sequential design). The study (:mod:`ablate.study`) reads what
they store; :mod:`ablate.api` re-exports these functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import Grid
from ablate.errors import ArgumentError, Interrupted
from ablate.execution.store import RunStore
from ablate.statuses import FINAL_STATUSES
from ablate.settings import bind_settings, check_settings
from ablate.study import Study, load_study


def load_grid(grid: str | Path | Mapping[str, Any] | Grid) -> Grid:
    """A validated grid from a YAML file, a mapping or a Grid (returned as it is)."""
    # The registries load with the first grid, not with the module, so importing the API stays light.
    from ablate.catalog import load_grid as _load

    return _load(grid)


def plan(grid, *, only: str | None = None, seeds: str | None = None) -> list:
    """The grid's runs (``RunSpec``), cut down to ``only`` (``key=value,...``) and ``seeds`` (``0-9``)."""
    from ablate.execution import selection

    grid = load_grid(grid)
    return selection.select(grid.runs(), only=only, seeds=seeds, grid_seeds=grid.seeds)


@dataclass(frozen=True)
class Prepared:
    """A sweep checked and ready to start: what :func:`run` executes and ``--dry-run`` lists."""

    grid: Grid
    runs: list  # the RunSpecs to run (sequential: those up to the last look)
    store: Any  # the study's RunStore
    run: str  # the executor's "module:function"
    options: dict[str, Any]  # its keyword arguments
    where: str  # the sweep's placement, in words
    notes: tuple[str, ...] = ()  # what a check could not look at here (data not fetched)


def prepare(grid, *, results: str | Path = "results", workers: int | None = None,
            gpus: str | Sequence[str] | None = None, per_gpu: int = 1, retries: int = 0, only: str | None = None,
            seeds: str | None = None, executor: str = "local", address: str | None = None,
            pack: int | str | None = None, fetch: bool = True) -> Prepared:
    """Every check :func:`run` makes before it starts, in its order; raises the first failure.

    ``fetch``: fetch a downloadable dataset that is not here (``run``); False (``--dry-run``)
    checks everything else and says in ``notes`` what waits for the download.
    """
    from ablate.execution import devices
    from ablate.execution.executors import EXECUTORS
    from ablate.execution.preflight import check_environment

    grid = load_grid(grid)
    if grid.analysis.sequential is not None and seeds is not None:
        raise ArgumentError("seeds", f"{grid.source} has `analysis.sequential`, whose looks choose the seeds to "
                            "run; drop {seeds} (or the sequential design)", mentions=("seeds",))
    runs = plan(grid, only=only, seeds=seeds)
    if grid.analysis.sequential is not None:
        last = sorted(set(grid.seeds))[grid.analysis.sequential.looks[-1] - 1]
        runs = [s for s in runs if s.seed <= last]  # seeds past the last look are never used
    entry = EXECUTORS.get(executor) if executor in EXECUTORS else None
    if entry is None:
        raise ArgumentError("executor", EXECUTORS.unknown(executor))
    for name, value in (("workers", workers), ("per_gpu", per_gpu)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ArgumentError(name, f"expected an integer >= 1, but got {value!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ArgumentError("retries", f"expected an integer >= 0, but got {retries!r}")
    if address is not None and not entry.uses_address:
        raise ArgumentError("address", "only applies with {executor} "
                            + " or ".join(n for n, e in EXECUTORS.items() if e.uses_address), mentions=("executor",))
    if not isinstance(gpus, str) and gpus is not None:
        gpus = ",".join(str(g) for g in gpus)
    from ablate.execution.packs import parse_pack

    packing = "auto" if pack is None else parse_pack(pack)
    store = RunStore(results, grid.study)
    options: dict[str, Any] = {"retries": retries, "per_gpu": per_gpu, "pack": packing}
    if entry.uses_address:
        # The cluster assigns devices; the driver's own GPUs say nothing about it.
        if gpus not in (None, "all", "none"):
            raise ArgumentError("gpus", f"with {{executor}} {executor} expected 'all' or 'none', but got {gpus!r}",
                                mentions=("executor",))
        options.update(address=address, gpus=0 if gpus == "none" else None, workers=workers)
        where = f"{executor} ({address or 'local'}), {per_gpu} run(s) per GPU"
    else:
        found = devices.discover_gpus()
        gpu_ids = found if gpus in (None, "all") else [] if gpus == "none" else devices.parse_gpu_list(gpus, found)
        workers = workers or min(4, os.cpu_count() or 1)
        options.update(workers=workers, gpus=gpu_ids)
        where = f"{len(gpu_ids)} GPU(s) x {per_gpu}" if gpu_ids else f"{workers} CPU worker(s)"
    if pack is not None and packing != 1:
        where += f", packs of {packing if packing != 'auto' else 'auto size'} (torch)"
    # Options first (cheap), then frameworks and data (may fetch a dataset once).
    notes = check_environment(grid, fetch=fetch)
    return Prepared(grid, runs, store, entry.run, options, where, tuple(notes or ()))


def check(grid, **options) -> Prepared:
    """``run --dry-run``: every check of :func:`run`, the study's bound settings included,
    without fetching data, taking the study's lock or writing anything."""
    prepared = prepare(grid, fetch=False, **options)
    check_settings(prepared.store, prepared.grid)
    return prepared


def run(grid, *, results: str | Path = "results", workers: int | None = None, gpus: str | Sequence[str] | None = None,
        per_gpu: int = 1, retries: int = 0, only: str | None = None, seeds: str | None = None,
        executor: str = "local", address: str | None = None, pack: int | str | None = None, log: Any = "stderr"):
    """Run every pending run of ``grid``; returns the :class:`~ablate.study.Study`, whose ``sweep``
    is this sweep's summary (counts and failures).

    ``grid`` may name functions where a grid file names ``module:function`` (a notebook cell's
    model, loader or trick part); they reach the workers by value.
    ``gpus``: None or "all" (every GPU found), "none" (CPU), or ids ("0,2" or ["0", "2"]).
    ``pack``: train up to K runs as one vectorised model (torch), ``"auto"`` to size packs to the
    GPU; None: ``auto`` on a GPU, unpacked on the CPU.
    A run that fails or diverges is stored with its status; this never raises for one.
    ``log``: a text stream for the sweep's opening line, None for none; by default the
    ``sys.stderr`` of the moment of the call.
    """
    grid = load_grid(grid)
    store = RunStore(results, grid.study)
    try:
        summary = sweep(grid, results=results, workers=workers, gpus=gpus, per_gpu=per_gpu, retries=retries,
                        only=only, seeds=seeds, executor=executor, address=address, pack=pack, log=log)
    except KeyboardInterrupt as exc:
        if type(exc) is not KeyboardInterrupt:
            raise  # SIGTERM and the like keep their own type
        statuses, _ = store.survey() if store.runs_dir.is_dir() else ({}, {})
        stored = sum(status in FINAL_STATUSES for status in statuses.values())
        raise Interrupted(f"the sweep was interrupted; its workers are stopped, and its {stored} stored run(s) in "
                          f"{store.study_dir} are kept and skipped next time") from None
    study = Study(store)
    study.sweep = summary
    return study


def sweep(grid, *, results: str | Path = "results", workers: int | None = None,
          gpus: str | Sequence[str] | None = None, per_gpu: int = 1, retries: int = 0, only: str | None = None,
          seeds: str | None = None, executor: str = "local", address: str | None = None,
          pack: int | str | None = None, log: Any = "stderr"):
    """:func:`run`, returning the sweep's summary (counts and failures) rather than the study."""
    from ablate.execution.orchestrator import study_lock
    from ablate.registry import resolve

    if isinstance(log, str) and log == "stderr":
        log = sys.stderr  # the stderr of the moment of the call (a notebook swaps it per cell)

    prepared = prepare(grid, results=results, workers=workers, gpus=gpus, per_gpu=per_gpu, retries=retries,
                       only=only, seeds=seeds, executor=executor, address=address, pack=pack)
    grid, runs, store, options = prepared.grid, prepared.runs, prepared.store, prepared.options
    # The lock first: a refused second driver says one thing, that it was refused.
    with study_lock(store):
        if log is not None:
            design = grid.analysis.sequential
            count = f"{len(runs)} run(s)" if design is None else \
                (f"at most {len(runs)} run(s) (sequential: looks at {', '.join(map(str, design.looks))} seeds, "
                 f"{design.spending} spending)")
            print(f"study {grid.study!r}: {count} on {prepared.where} -> {store.study_dir}", file=log)
        bind_settings(store, grid)
        execute = resolve(prepared.run)
        if grid.analysis.sequential is None:
            return execute(runs, store=store, results=str(results), **options)
        from ablate.sequential_run import run_in_waves

        def stored_runs():
            return load_study(store, ece_bins=grid.analysis.ece_bins, ece_binning=grid.analysis.ece_binning).runs

        return run_in_waves(grid, runs, execute=lambda wave: execute(wave, store=store, results=str(results),
                                                                     **options),
                            load=stored_runs, log=log)

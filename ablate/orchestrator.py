"""Run a grid's pending runs on persistent local worker processes.

Workers are slots: ``--workers N`` CPU slots, or ``per_gpu`` slots on each GPU. A slot
hosts one worker at a time, and a worker serves one backend (the Keras engine is fixed per
process), so the driver starts workers for the backends that still have work and routes
runs to them. A run that crashes its worker process is stored as ``failed`` by the driver;
everything else is stored by the worker. A failure never stops the sweep.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.config import RunSpec
from ablate.errors import StoreError
from ablate.progress import Progress
from ablate.store import RunStore


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: str | None  # the physical GPU id, or None for a CPU slot


@dataclass
class _Worker:
    wid: int
    backend: str
    slot: Slot
    process: Any
    tasks: Any
    current: dict[str, Any] | None = None
    ready: bool = False


@dataclass(frozen=True)
class SweepSummary:
    completed: int
    failed: int
    diverged: int
    skipped: int
    seconds: float
    failures: tuple[str, ...] = field(default_factory=tuple)


def plan_slots(*, workers: int, gpus: Sequence[str], per_gpu: int) -> list[Slot]:
    if gpus:
        return [Slot(i, g) for i, g in enumerate(g for g in gpus for _ in range(per_gpu))]
    return [Slot(i, None) for i in range(workers)]


def threads_per_worker(n_workers: int) -> int:
    """Split the cores so N workers do not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // max(1, n_workers))


@contextlib.contextmanager
def study_lock(store: RunStore) -> Iterator[None]:
    """One driver per study at a time; a second one gets a clear error, not a race."""
    store.study_dir.mkdir(parents=True, exist_ok=True)
    path = store.study_dir / ".lock"
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{store.study_dir}: another `ablate run` is using this study; "
                             f"wait for it or use another --results folder") from None
        fh.write(str(os.getpid()))
        fh.flush()
        yield


def run_local(runs: Sequence[RunSpec], *, store: RunStore, results: str | Path, workers: int = 1,
              gpus: Sequence[str] = (), per_gpu: int = 1, retries: int = 0,
              progress: Progress | None = None) -> SweepSummary:
    """Run every spec in ``runs`` not already completed in ``store``."""
    started = time.perf_counter()
    done_ids = store.completed_ids()
    todo = [s for s in runs if s.run_id not in done_ids]
    skipped = len(runs) - len(todo)
    progress = progress or Progress(total=len(todo), skipped=skipped, workers=len(gpus) * per_gpu or workers)
    progress.start()
    counts = collections.Counter()
    failures: list[str] = []
    if not todo:
        progress.finish()
        return SweepSummary(0, 0, 0, skipped, 0.0)

    slots = plan_slots(workers=workers, gpus=gpus, per_gpu=per_gpu)
    threads = None if gpus else threads_per_worker(len(slots))
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    pending: dict[str, collections.deque] = collections.defaultdict(collections.deque)
    attempts: dict[str, int] = {}
    for spec in todo:
        pending[spec.backend].append(spec)
        attempts[spec.run_id] = 1
    live: dict[int, _Worker] = {}
    free = list(slots)
    broken: dict[str, str] = {}
    next_wid = 0

    def spawn(backend: str, slot: Slot) -> None:
        nonlocal next_wid
        from ablate.worker import worker_main

        tasks = ctx.Queue()
        proc = ctx.Process(target=worker_main, name=f"ablate-worker-{next_wid}",
                           args=(next_wid, backend, slot.gpu, threads, str(results),
                                 store.study_dir.name, tasks, events), daemon=True)
        proc.start()
        live[next_wid] = _Worker(next_wid, backend, slot, proc, tasks)
        next_wid += 1

    def fill_slots() -> None:
        while free:
            load = {b: len(q) / (1 + sum(w.backend == b for w in live.values()))
                    for b, q in pending.items()
                    if q and b not in broken and len(q) > sum(w.backend == b and w.current is None
                                                              for w in live.values())}
            if not load:
                return
            spawn(max(load, key=load.get), free.pop(0))

    def finish(result: dict[str, Any], spec: RunSpec) -> None:
        status = result["status"]
        if status == "failed" and attempts[spec.run_id] <= retries:
            attempts[spec.run_id] += 1
            pending[spec.backend].appendleft(spec)
            progress.retry(spec.run_id, spec.describe(), result.get("error", ""))
            return
        counts[status] += 1
        if status != "completed":
            failures.append(f"{status}: {spec.describe()} ({spec.run_id}): {result.get('error', '')}")
        progress.run_done(spec.run_id, spec.describe(), status, result.get("seconds", 0.0), result.get("error", ""))

    def fail_pending(backend: str, reason: str) -> None:
        while pending[backend]:
            spec = pending[backend].popleft()
            _store_crash(store, spec, attempts[spec.run_id], reason)
            finish({"status": "failed", "error": reason, "seconds": 0.0}, spec)

    by_id = {s.run_id: s for s in todo}
    try:
        fill_slots()
        while live:
            try:
                kind, wid, payload = events.get(timeout=0.5)
            except queue.Empty:
                kind = None
            if kind is not None and wid in live:
                worker = live[wid]
                if kind == "ready":
                    if pending[worker.backend]:
                        spec = pending[worker.backend].popleft()
                        worker.current = {"run_id": spec.run_id, "spec": spec.to_dict(),
                                          "attempt": attempts[spec.run_id]}
                        worker.tasks.put(worker.current)
                        progress.run_started(spec.run_id)
                    else:
                        worker.tasks.put(None)
                        worker.current = None
                elif kind == "epoch":
                    progress.epoch(*payload)
                elif kind == "done":
                    spec = by_id[payload["run_id"]]
                    worker.current = None
                    finish(payload, spec)
                elif kind == "broken":
                    broken[worker.backend] = payload
                    progress.note(f"a {worker.backend} worker could not start: {payload}")
            # Reap exited workers; a death mid-run is stored as a failure of that run.
            for wid, worker in list(live.items()):
                if worker.process.is_alive():
                    continue
                worker.process.join()
                if worker.current is not None:
                    spec = by_id[worker.current["run_id"]]
                    reason = f"worker process died (exit code {worker.process.exitcode}) during the run"
                    _store_crash(store, spec, attempts[spec.run_id], reason)
                    finish({"status": "failed", "error": reason, "seconds": 0.0}, spec)
                del live[wid]
                free.append(worker.slot)
                if worker.backend in broken:
                    fail_pending(worker.backend, f"backend could not start: {broken[worker.backend]}")
            fill_slots()
            progress.tick()
    finally:
        for worker in live.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in live.values():
            worker.process.join(timeout=5)
        progress.finish()
    return SweepSummary(counts["completed"], counts["failed"], counts["diverged"], skipped,
                        time.perf_counter() - started, tuple(failures))


def _store_crash(store: RunStore, spec: RunSpec, attempt: int, reason: str) -> None:
    """Record a run whose worker died, unless the worker managed to store it first."""
    import datetime as _dt

    existing = store.read_record(spec.run_id)
    if existing is not None and getattr(existing, "status", None) == "completed":
        return
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
    from ablate import environment

    store.write({"run_id": spec.run_id, "config": spec.to_dict(), "attempt": attempt, "status": "failed",
                 "error": reason, "history": {}, "metrics": {}, "seconds": 0.0, "started_at": None,
                 "finished_at": now, "environment": environment.describe()})

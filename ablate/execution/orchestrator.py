"""Run a grid's pending runs on persistent local worker processes (the `local` executor).

Workers are slots: ``--workers N`` CPU slots, or ``per_gpu`` slots on each GPU. A slot
hosts one worker at a time, and a worker serves one backend (the Keras engine is fixed per
process), so the driver starts workers for the backends that still have work and routes
runs to them. Each worker talks to the driver over its own pipe, so a worker killed at any
moment cannot wedge the others. A run that crashes its worker is stored as ``failed`` by
the driver; everything else is stored by the worker. A failure never stops the sweep.

:class:`Ledger` is the part every executor shares (the Ray one too): what is pending per
backend, each run's attempt, retries, and the tally.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

from ablate.config import RunSpec
from ablate.errors import StoreError
from ablate.execution.progress import Progress, eta_groups
from ablate.execution.store import RunStore
from ablate.execution.worker import FINAL_STATUSES, utc_now, worker_main
from ablate.statuses import COMPLETED, DIVERGED, FAILED


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: str | None  # the physical GPU id, or None for a CPU slot


@dataclass(frozen=True)
class SweepSummary:
    completed: int
    failed: int
    diverged: int
    skipped: int
    seconds: float
    failures: tuple[str, ...] = field(default_factory=tuple)


def plan_slots(*, workers: int, gpus: Sequence[str], per_gpu: int) -> list[Slot]:
    """``per_gpu`` slots on each GPU, interleaved so the first workers spread over the GPUs."""
    if gpus:
        return [Slot(i, g) for i, g in enumerate(g for _ in range(per_gpu) for g in gpus)]
    return [Slot(i, None) for i in range(workers)]


def threads_per_worker(n_workers: int) -> int:
    """Split the cores so N workers do not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // max(1, n_workers))


@contextlib.contextmanager
def study_lock(store: RunStore) -> Iterator[None]:
    """One driver per study at a time; a second one gets a clear error, not a race."""
    store.study_dir.mkdir(parents=True, exist_ok=True)
    path = store.study_dir / ".lock"
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "?"
            raise StoreError(f"{store.study_dir}: another `ablate run` (pid {holder}) is using this study; "
                             f"wait for it or use another --results folder") from None
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        yield


def pending_runs(runs: Sequence[RunSpec], store: RunStore) -> tuple[list[RunSpec], int]:
    """The runs without a final record (each run id once, grid order kept), and how many were skipped.

    A run whose stored record fails validation is pending: its files are moved aside (never
    deleted) and one line on stderr says so, once, since the next look finds nothing there.
    """
    statuses, invalid = store.survey()
    done = {rid for rid, status in statuses.items() if status in FINAL_STATUSES}
    todo: dict[str, RunSpec] = {}
    for spec in runs:
        todo.setdefault(spec.run_id, spec)
    for rid, reason in invalid.items():
        if rid in todo:
            aside = store.move_aside(rid)
            print(f"ablate: warning: run {rid} had an unusable record ({reason}); moved it to {aside} "
                  f"and running it again", file=sys.stderr)
    skipped = sum(1 for rid in todo if rid in done)
    return [s for rid, s in todo.items() if rid not in done], skipped



class Ledger:
    """The driver's book of one sweep, shared by every executor.

    Runs wait in one queue per backend, as tasks of one run or, with ``pack`` > 1, packs of
    up to ``pack`` runs (see :mod:`ablate.execution.packs`). A failed run goes back to the
    front of its queue, alone, until ``retries`` more attempts are spent; a diverged run is
    final at once.
    """

    def __init__(self, todo: Sequence[RunSpec], *, store: RunStore, retries: int, progress: Progress,
                 pack: int = 1, pack_fit: bool = False):
        from ablate.execution.packs import plan_packs

        self.store = store
        self.retries = retries
        self.progress = progress
        self.pending: dict[str, collections.deque[list[RunSpec]]] = collections.defaultdict(collections.deque)
        self.pack_fit = pack_fit  # workers trim packs to their device's memory (`--pack auto`)
        self.attempts: dict[str, int] = {}
        self.by_id: dict[str, RunSpec] = {}
        self.broken: dict[str, str] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.full: str | None = None  # the one line of the first full-disk report: the sweep stops
        for group in plan_packs(todo, pack):
            self.pending[group[0].backend].append(group)
        for spec in todo:
            self.attempts[spec.run_id] = 1
            self.by_id[spec.run_id] = spec

    def take(self, backend: str) -> dict[str, Any] | None:
        """The next task for a worker of ``backend``, or None when that backend has no work."""
        if backend in self.broken or not self.pending[backend]:
            return None
        group = self.pending[backend].popleft()
        for spec in group:
            self.progress.run_started(spec.run_id)
        if len(group) == 1:
            spec = group[0]
            return {"run_id": spec.run_id, "spec": spec.to_dict(), "attempt": self.attempts[spec.run_id]}
        return {"run_ids": [s.run_id for s in group], "specs": [s.to_dict() for s in group],
                "attempts": [self.attempts[s.run_id] for s in group], "fit": self.pack_fit}

    def choose_backend(self, workers: Iterable[tuple[str, bool]]) -> str | None:
        """Which backend a free slot should host, given the live workers as (backend, busy).

        The backend with the most pending runs per worker wins, among those with more pending
        runs than idle workers already waiting for them.
        """
        total: collections.Counter[str] = collections.Counter()
        idle: collections.Counter[str] = collections.Counter()
        for backend, busy in workers:
            total[backend] += 1
            idle[backend] += not busy
        load = {b: len(q) / (1 + total[b]) for b, q in self.pending.items()
                if b not in self.broken and len(q) > idle[b]}
        return max(load, key=load.get) if load else None

    def finish(self, run_id: str, result: dict[str, Any]) -> None:
        spec = self.by_id[run_id]
        status = result["status"]
        error = result.get("error") or ""
        if status == FAILED and self.attempts[run_id] <= self.retries and spec.backend not in self.broken:
            self.attempts[run_id] += 1
            self.pending[spec.backend].appendleft([spec])
            self.progress.retry(run_id, spec.describe(), error)
            return
        self.counts[status] += 1
        if status != COMPLETED:
            self.failures.append(f"{status}: {spec.describe()} ({run_id}): {error}")
        self.progress.run_done(run_id, spec.describe(), status, result.get("seconds", 0.0), error)

    def crashed(self, run_id: str, reason: str, seconds: float = 0.0) -> None:
        """The process executing ``run_id`` died: store the run as failed (a retry may follow).

        seconds: how long it ran before it died or was killed (0 when it never started)."""
        spec = self.by_id[run_id]
        status = store_crash(self.store, spec, self.attempts[run_id], reason, seconds=seconds)
        error = reason if status == FAILED else ""
        if status == DIVERGED:  # stored just before its process died: its own reason stands
            error = getattr(self.store.read_record(run_id), "record", {}).get("error") or ""
        self.finish(run_id, {"status": status, "error": error, "seconds": seconds})

    def abandon(self, backend: str, reason: str) -> None:
        """A backend's worker cannot start: every run still waiting for it fails with the reason."""
        self.broken[backend] = reason
        self.progress.note(f"a {backend} worker could not start: {reason}")
        while self.pending[backend]:
            for spec in self.pending[backend].popleft():
                self.crashed(spec.run_id, f"backend could not start: {reason}")

    def disk_full(self, line: str) -> None:
        """A worker could not store a run: the disk is full. Nothing more is dispatched; the runs
        in hand are not stored (they run again next time) and the sweep ends with ``line``."""
        if self.full is None:
            self.full = line
        self.pending.clear()

    def has_work(self) -> bool:
        return any(q for b, q in self.pending.items() if b not in self.broken)

    def summary(self, skipped: int, seconds: float) -> SweepSummary:
        return SweepSummary(self.counts[COMPLETED], self.counts[FAILED], self.counts[DIVERGED], skipped,
                            seconds, tuple(self.failures))


def task_run_ids(task: dict[str, Any] | None) -> list[str] | None:
    """The run ids a task carries (one, or a pack's), or None for no task."""
    if task is None:
        return None
    return list(task["run_ids"]) if "run_ids" in task else [task["run_id"]]


def task_results(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A worker's answer to a task as per-run results (a pack answers ``{"pack": [...]}``)."""
    return list(result["pack"]) if "pack" in result else [result]


def store_crash(store: RunStore, spec: RunSpec, attempt: int, reason: str, *, seconds: float = 0.0) -> str:
    """Record a run whose process died, unless it managed to store a final record first.

    seconds: how long the run had been running (e.g. until its train.timeout killed it).

    Returns the status the run ends with: the stored one (``completed`` or ``diverged``) if
    it was stored after all, else ``failed``.
    """
    from ablate.execution import environment

    existing = store.read_record(spec.run_id)
    if getattr(existing, "status", None) in FINAL_STATUSES:
        return existing.status
    try:
        store.write({"run_id": spec.run_id, "config": spec.to_json(), "attempt": attempt, "status": FAILED,
                     "error": reason, "history": {}, "metrics": {}, "seconds": float(seconds),
                     "started_at": None,
                     "finished_at": utc_now(), "environment": environment.describe()})
    except (StoreError, OSError):
        pass  # the tally still says failed, and the run stays pending on disk
    return FAILED


@dataclass
class _Worker:
    wid: int
    backend: str
    slot: Slot
    process: Any
    conn: Any
    current: list[str] | None = None  # the run ids in hand (one, or a pack's)
    error: str | None = None  # why it could not start
    deadline: float | None = None  # monotonic time by which the run in hand must end (train.timeout)
    began: float | None = None  # monotonic time the task in hand was sent
    killed_for: str | None = None  # why the driver killed it
    hung_up: bool = False  # its end of the pipe is closed: wait on its exit only


def run_local(runs: Sequence[RunSpec], *, store: RunStore, results: str | Path, workers: int = 1,
              gpus: Sequence[str] = (), per_gpu: int = 1, retries: int = 0,
              progress: Progress | None = None, pack: int | str = 1) -> SweepSummary:
    """Run every spec in ``runs`` without a final record in ``store``; a run's failure never raises.

    ``pack``: runs per pack (1: unpacked), or "auto" (see :func:`packs.resolve_pack`).
    """
    from ablate.execution.packs import resolve_pack

    started = time.perf_counter()
    todo, skipped = pending_runs(runs, store)
    slots = plan_slots(workers=workers, gpus=gpus, per_gpu=per_gpu)
    progress = progress or Progress(total=len(todo), skipped=skipped, workers=len(slots), groups=eta_groups(todo))
    progress.start()
    size, fit = resolve_pack(pack, runs=len(todo), slots=len(slots), on_gpu=bool(gpus))
    ledger = Ledger(todo, store=store, retries=retries, progress=progress, pack=size, pack_fit=fit)
    if not todo:
        progress.finish()
        return ledger.summary(skipped, 0.0)

    threads = threads_per_worker(len(slots))
    ctx = mp.get_context("spawn")  # a fork would inherit the driver's state; workers start clean
    live: dict[int, _Worker] = {}
    free = list(slots)
    next_wid = 0

    def spawn(backend: str, slot: Slot) -> None:
        nonlocal next_wid
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker_main, name=f"ablate-worker-{next_wid}", daemon=True,
                           args=(next_wid, backend, slot.gpu, threads, str(results), store.study_dir.name, theirs))
        proc.start()
        theirs.close()  # so the worker's death shows as end-of-file here
        live[next_wid] = _Worker(next_wid, backend, slot, proc, ours)
        next_wid += 1

    def fill_slots() -> None:
        while free:
            backend = ledger.choose_backend((w.backend, w.current is not None or w.error is not None)
                                            for w in live.values())
            if backend is None:
                return
            spawn(backend, free.pop(0))

    def dispatch(worker: _Worker) -> None:
        task = ledger.take(worker.backend)
        worker.current = task_run_ids(task)
        # A pack's members share their train settings, so one timeout applies to the task.
        timeout = ledger.by_id[worker.current[0]].train.timeout if worker.current else None
        worker.deadline = time.monotonic() + timeout if timeout else None
        worker.began = time.monotonic()
        try:
            worker.conn.send(task)
        except OSError:
            pass  # it died; reaping stores its run as failed

    def receive(worker: _Worker) -> None:
        while True:
            try:
                if not worker.conn.poll():
                    return
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                # A closed pipe stays readable: waiting on it would spin until the process is gone.
                worker.hung_up = True
                return
            if kind == "ready":
                dispatch(worker)
            elif kind == "epoch":
                progress.epoch(*payload)
            elif kind == "done":
                worker.current = None
                for result in task_results(payload):
                    ledger.finish(result["run_id"], result)
                dispatch(worker)
            elif kind == "broken":
                worker.error = payload
            elif kind == "full":
                ledger.disk_full(payload)

    def reap(worker: _Worker) -> None:
        receive(worker)  # whatever it said before dying
        worker.process.join()
        worker.conn.close()
        del live[worker.wid]
        free.append(worker.slot)
        ran = time.monotonic() - worker.began if worker.began is not None else 0.0
        for run_id in () if ledger.full else worker.current or ():
            ledger.crashed(run_id, worker.killed_for or
                           f"worker process died (exit code {worker.process.exitcode}) during the run",
                           seconds=ran)
        if worker.error is not None and worker.backend not in ledger.broken:
            ledger.abandon(worker.backend, worker.error)

    def enforce_timeouts() -> None:
        """Kill a worker whose run is past its train.timeout; reaping stores the run failed and
        frees the slot for a fresh worker. SIGKILL: a hung run may not heed SIGTERM."""
        now = time.monotonic()
        for worker in live.values():
            if worker.current and worker.deadline is not None and now > worker.deadline and not worker.killed_for:
                timeout = ledger.by_id[worker.current[0]].train.timeout
                worker.killed_for = f"timed out after {timeout:g} s"
                worker.process.kill()

    try:
        fill_slots()
        while live and ledger.full is None:
            handles = ({w.conn: w for w in live.values() if not w.hung_up}
                       | {w.process.sentinel: w for w in live.values()})
            for handle in wait_any(list(handles), timeout=0.5):
                worker = handles[handle]
                if worker.wid not in live:
                    continue
                if handle is worker.conn:
                    receive(worker)
                else:  # its sentinel: it is exiting (the fd closes a moment before the exit is seen)
                    worker.process.join(timeout=5)
                if not worker.process.is_alive():
                    reap(worker)
            enforce_timeouts()
            fill_slots()
            progress.tick()
    finally:
        # After the sweep no worker is busy. After an interrupt (Ctrl-C, SIGTERM) a busy one
        # is stopped at once: its record is written last and atomically, so the run simply
        # runs again next time; an idle one is asked to leave.
        for worker in live.values():
            if worker.current is not None:
                worker.process.terminate()
                continue
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + 5
        for worker in live.values():
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=5)
        progress.finish()
    if ledger.full is not None:
        raise StoreError(ledger.full)  # one line, naming the folder (see store.DiskFull)
    return ledger.summary(skipped, time.perf_counter() - started)

"""The ``ray`` executor: the same sweep on an existing Ray cluster, or on a local Ray.

Each slot is a Ray actor that reserves ``1/per_gpu`` of a GPU (or one CPU when the cluster
has no GPU) and hosts a :class:`~ablate.execution.worker.RunExecutor`: it imports its framework once,
loads each dataset once, then executes runs, one actor task per run. Actors rather than
plain tasks, because a process's GPU is fixed when its framework first initialises CUDA,
while Ray may hand a reused task worker another GPU (and by default does not reuse GPU task
workers at all, which would re-import the framework for every run).

The Keras engine, the thread limits and, for CPU actors, a hidden GPU go through each
actor's ``runtime_env`` env_vars, so they hold before anything in the actor imports a
framework. Ray sets ``CUDA_VISIBLE_DEVICES`` itself for GPU actors. The actors write the
records to the results folder, which must be shared by every node, atomically and under
each run's claim; a run already completed is never executed again, whoever asks.

Ray is imported only inside these functions: ``pip install 'ablate[ray]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import RunSpec
from ablate.errors import ConfigError, StoreError
from ablate.execution.orchestrator import Ledger, SweepSummary, pending_runs, task_results, task_run_ids
from ablate.execution.progress import Progress, eta_groups
from ablate.execution.store import RunStore


class RunActor:
    """One slot: a persistent RunExecutor for one backend in its own Ray worker process."""

    def __init__(self, backend: str, results: str, study: str, threads: int, use_gpu: bool):
        from ablate.execution.worker import RunExecutor, redirect_output

        self.error: str | None = None
        log_dir = Path(results) / study / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            with redirect_output(log_dir / f"worker-{os.getpid()}.log"):
                self.executor = RunExecutor(backend, device="cuda" if use_gpu else "cpu", threads=threads,
                                            results=results, study=study)
        except Exception as exc:  # noqa: BLE001 - reported to the driver by ready()
            self.error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """None once the framework is imported, else why this backend cannot start."""
        return self.error

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        from ablate.execution.store import DiskFull, disk_full

        try:
            if "specs" in task:  # a pack: this actor trains all of it within its GPU share
                return {"pack": self.executor.run_pack(task["specs"], attempts=task["attempts"],
                                                       fit=task.get("fit", False))}
            return self.executor.run(task["spec"], attempt=task["attempt"])
        except (OSError, DiskFull) as exc:  # a full disk stops the sweep (see orchestrator.Ledger.disk_full)
            if not disk_full(exc):
                raise
            return {"full": str(exc if isinstance(exc, DiskFull) else DiskFull(self.executor.store.study_dir, exc))}


@dataclass
class _Slot:
    wid: int
    backend: str
    handle: Any
    current: list[str] | None = None  # run ids in hand (one, or a pack's)
    started: bool = False
    deadline: float | None = None  # monotonic time by which the run in hand must end (train.timeout)
    began: float | None = None  # monotonic time the task in hand was sent


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed; "
                          "install it with: pip install 'ablate[ray]'") from None
    return ray


def plan_capacity(resources: dict[str, float], *, gpus: int | None, per_gpu: int,
                  workers: int | None) -> tuple[int, dict[str, float], int]:
    """(slots, per-actor resource request, threads per actor) from the cluster's resources.

    ``gpus``: None uses every GPU of the cluster, 0 none, N at most N.
    """
    cluster_gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    n_gpus = cluster_gpus if gpus is None else min(gpus, cluster_gpus)
    if n_gpus > 0:
        slots = n_gpus * per_gpu
        # GPU runs need little CPU: reserve one core each, use a fair share of threads.
        return slots, {"num_gpus": 1.0 / per_gpu, "num_cpus": 1}, max(1, cpus // slots)
    slots = min(workers, cpus) if workers else cpus
    per_actor = max(1, cpus // slots)
    return slots, {"num_cpus": per_actor}, per_actor


def run_ray(runs: Sequence[RunSpec], *, store: RunStore, results: str | Path, address: str | None = None,
            gpus: int | None = None, per_gpu: int = 1, retries: int = 0, workers: int | None = None,
            progress: Progress | None = None, pack: int | str = 1) -> SweepSummary:
    """Run every spec in ``runs`` without a final record in ``store``, on Ray.

    ``pack``: runs per pack, or "auto" (see :func:`ablate.execution.packs.resolve_pack`).

    ``address``: None starts a local Ray for this sweep (and stops it after), ``"auto"`` or
    ``HOST:PORT`` joins an existing cluster. An already initialised Ray is used as it is.
    """
    from ablate.execution.packs import resolve_pack
    from ablate.execution.worker import worker_environment

    ray = _import_ray()
    started = time.perf_counter()
    todo, skipped = pending_runs(runs, store)
    results = str(Path(results).resolve())
    study = store.study_dir.name
    ours = False
    if todo and not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
        if address is None:
            kwargs["include_dashboard"] = False
        ray.init(address=address, **kwargs)
        ours = True
    try:
        if todo:
            slots, request, threads = plan_capacity(ray.cluster_resources(), gpus=gpus, per_gpu=per_gpu,
                                                    workers=workers)
        else:
            slots, request, threads = 1, {}, 1
        progress = progress or Progress(total=len(todo), skipped=skipped, workers=slots, groups=eta_groups(todo))
        progress.start()
        size, fit = resolve_pack(pack, runs=len(todo), slots=slots, on_gpu="num_gpus" in request)
        ledger = Ledger(todo, store=store, retries=retries, progress=progress, pack=size, pack_fit=fit)
        if todo:
            _drive(ray, ledger, slots=slots, request=request, threads=threads, results=results, study=study,
                   env_for=lambda b: worker_environment(b, gpu=None, threads=threads),
                   use_gpu="num_gpus" in request)
        progress.finish()
        if ledger.full is not None:
            raise StoreError(ledger.full)  # one line, naming the folder (see store.DiskFull)
        return ledger.summary(skipped, time.perf_counter() - started)
    finally:
        if ours:
            ray.shutdown()


def _drive(ray, ledger: Ledger, *, slots: int, request: dict[str, float], threads: int, results: str,
           study: str, env_for, use_gpu: bool) -> None:
    """The driver loop: keep ``slots`` actors busy, each on its backend's queue."""
    actor_cls = ray.remote(max_restarts=0, max_task_retries=0)(RunActor)
    live: dict[int, _Slot] = {}
    waiting: dict[Any, tuple[int, str]] = {}  # ObjectRef -> (slot id, "ready" | "run")
    next_wid = 0

    def spawn(backend: str) -> None:
        nonlocal next_wid
        env = env_for(backend)
        if use_gpu:
            env.pop("CUDA_VISIBLE_DEVICES")  # Ray assigns the GPU
        handle = actor_cls.options(runtime_env={"env_vars": env}, **request).remote(
            backend, results, study, threads, use_gpu)
        live[next_wid] = _Slot(next_wid, backend, handle)
        waiting[handle.ready.remote()] = (next_wid, "ready")
        next_wid += 1

    def retire(slot: _Slot) -> None:
        del live[slot.wid]
        ray.kill(slot.handle, no_restart=True)

    def dispatch(slot: _Slot) -> None:
        task = ledger.take(slot.backend)
        if task is None:
            retire(slot)
            return
        slot.current = task_run_ids(task)
        # A pack's members share their train settings, so one timeout applies to the task.
        timeout = ledger.by_id[slot.current[0]].train.timeout
        slot.deadline = time.monotonic() + timeout if timeout else None
        slot.began = time.monotonic()
        waiting[slot.handle.run.remote(task)] = (slot.wid, "run")

    def enforce_timeouts() -> None:
        """Kill an actor whose run is past its train.timeout and store the run failed; fill()
        starts a fresh actor in its place. Its pending result is ignored when it resolves."""
        now = time.monotonic()
        for slot in list(live.values()):
            if slot.current and slot.deadline is not None and now > slot.deadline:
                live.pop(slot.wid)
                ray.kill(slot.handle, no_restart=True)
                for run_id in slot.current:
                    ledger.crashed(run_id, f"timed out after {ledger.by_id[run_id].train.timeout:g} s",
                                   seconds=now - slot.began if slot.began is not None else 0.0)

    def fill() -> None:
        while len(live) < slots:
            backend = ledger.choose_backend((s.backend, s.current is not None or not s.started)
                                            for s in live.values())
            if backend is None:
                return
            spawn(backend)

    try:
        fill()
        while live and ledger.full is None:
            done, _ = ray.wait(list(waiting), num_returns=1, timeout=0.5)
            for ref in done:
                wid, kind = waiting.pop(ref)
                slot = live.get(wid)
                if slot is None:
                    continue
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    reason = f"Ray worker died ({type(exc).__name__}): {str(exc).strip().splitlines()[0]}"
                    live.pop(wid)
                    ray.kill(slot.handle, no_restart=True)
                    if slot.current is not None:
                        ran = time.monotonic() - slot.began if slot.began is not None else 0.0
                        for run_id in slot.current:  # a lost actor's runs run again
                            ledger.crashed(run_id, reason, seconds=ran)
                    elif kind == "ready":
                        ledger.abandon(slot.backend, reason)
                    continue
                if kind == "ready":
                    if value is not None:
                        retire(slot)
                        ledger.abandon(slot.backend, value)
                        continue
                    slot.started = True
                elif "full" in value:
                    ledger.disk_full(value["full"])
                    break
                else:
                    slot.current = None
                    for result in task_results(value):
                        ledger.finish(result["run_id"], result)
                dispatch(slot)
            enforce_timeouts()
            fill()
            ledger.progress.tick()
    finally:
        for slot in list(live.values()):
            ray.kill(slot.handle, no_restart=True)

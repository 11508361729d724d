"""A persistent worker: imports one framework once, loads each dataset once, runs many runs.

The framework, its Keras engine, the visible GPU and the thread pools are fixed through
environment variables set before anything imports a framework; that is why a worker
serves one backend only. Each run's record is written by the worker, atomically and last,
to the shared results folder, so a worker killed mid-run leaves no record and the run
simply runs again. The same :class:`RunExecutor` serves the local process pool
(:func:`worker_main`) and the Ray executor's actors.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ablate.statuses import FAILED, FINAL_STATUSES  # noqa: F401 - FINAL_STATUSES: stored outcomes never executed again

DATASET_CACHE = 8  # datasets (per spec, folder and split seed) a worker keeps loaded
CLAIM = ".claim"  # in a run's folder: flock-ed by whoever is executing that run


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def worker_environment(backend: str, *, gpu: str | None, threads: int | None) -> dict[str, str]:
    """The variables a framework reads once, at import: engine, visible GPU, thread pools.

    ``gpu`` is the physical id this worker may see; None hides every GPU.
    """
    from ablate.backends import engine

    env: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                           "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"),
                           # Several runs share a GPU: claim memory as needed, not all of it at start.
                           "TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                           # An empty value hides every GPU from a CPU worker.
                           "CUDA_VISIBLE_DEVICES": "" if gpu is None else str(gpu)}
    eng = engine(backend)
    if eng is not None:
        env["KERAS_BACKEND"] = eng
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            env[var] = str(threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
    return env


def pin_environment(*, backend: str, gpu: str | None, threads: int | None) -> None:
    """Apply :func:`worker_environment` to this process; call it before any framework import."""
    os.environ.update(worker_environment(backend, gpu=gpu, threads=threads))


@contextlib.contextmanager
def redirect_output(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr, C-level writes included, to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab", buffering=0) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def claim_run(folder: Path) -> Iterator[None]:
    """Hold a run's claim while executing it, so no two processes ever execute one run at once.

    A lock left by a killed process is released by the kernel, so claims never go stale.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / CLAIM, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_claimed(folder: Path) -> bool:
    """Whether some process is executing this run right now (for `ablate status`)."""
    path = folder / CLAIM
    if not path.exists():
        return False
    try:
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


class RunExecutor:
    """Loads a backend once and executes run specs, writing each record to the store."""

    def __init__(self, backend_name: str, *, device: str | None, threads: int | None, results: str,
                 study: str):
        from ablate import backends

        from ablate.execution.store import RunStore

        self.backend = backends.load(backend_name)
        self.backend.configure(device=device, threads=threads, deterministic=True)
        # Asked once, here: a worker whose framework cannot reach its device fails at start,
        # with the framework's reason, rather than once per run.
        self.backend_env = dict(self.backend.environment())
        self.store = RunStore(results, study)
        self._datasets: dict[Any, Any] = {}
        self.dataset_loads = 0
        self.served = 0
        # Which process served a run, and what it could see: proves reuse and GPU pinning.
        self.worker_info = {"worker_pid": os.getpid(),
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                            "threads": threads}

    def dataset(self, spec, origin: str | None = None, split: int = 0):
        from ablate.data.catalogue import load_dataset

        if (spec, origin, split) not in self._datasets:
            if len(self._datasets) >= DATASET_CACHE:  # a factorial `split` makes one dataset per seed
                self._datasets.pop(next(iter(self._datasets)))
            self._datasets[spec, origin, split] = load_dataset(
                spec.name, path=spec.path, loader=spec.loader, search_paths=(origin,) if origin else (),
                train_size=spec.train_size, test_size=spec.test_size, val_fraction=spec.val_fraction,
                preprocess=spec.preprocess, image_size=spec.image_size, split_seed=split,
                bootstrap=spec.bootstrap)
            self.dataset_loads += 1
        return self._datasets[spec, origin, split]

    def run(self, spec_dict: Mapping[str, Any], *, attempt: int = 1, on_epoch=None) -> dict[str, Any]:
        """Execute one run and store it; returns a short summary for the driver.

        A run whose stored outcome is final (completed or diverged) is not executed again:
        its stored status comes back with ``skipped`` True.
        """
        from ablate.config import RunSpec

        spec = RunSpec.from_dict(spec_dict)
        folder = self.store.run_dir(spec.run_id)
        with claim_run(folder):
            existing = self.store.read_record(spec.run_id)
            status = getattr(existing, "status", None)
            if status in FINAL_STATUSES:
                return {"run_id": spec.run_id, "status": status, "skipped": True,
                        "seconds": float(existing.record.get("seconds") or 0.0),
                        "error": existing.record.get("error") or ""}
            # Temporary files of a writer killed mid-write; we hold the claim, so none is live.
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            return self._run_claimed(spec, attempt, on_epoch)

    def _run_claimed(self, spec, attempt: int, on_epoch) -> dict[str, Any]:
        from ablate.execution.runner import RunOutcome, execute

        run_id = spec.run_id
        started_at = utc_now()
        self.served += 1
        with redirect_output(self.store.log_path(run_id)):
            print(f"== {started_at} attempt {attempt} pid {os.getpid()}: {spec.describe()} ({run_id})",
                  flush=True)
            try:
                data = self.dataset(spec.dataset, spec.origin, spec.source_seed("split"))
            except Exception as exc:  # noqa: BLE001 - a missing dataset fails this run only
                outcome = RunOutcome(status=FAILED, error=f"{type(exc).__name__}: {exc}")
            else:
                outcome = execute(spec, self.backend, data, on_epoch=on_epoch)
            if outcome.error:
                print(outcome.error, flush=True)
            print(f"== {utc_now()} {outcome.status} in {outcome.seconds:.2f}s", flush=True)
        return self._store(spec, attempt, outcome, started_at)

    def _store(self, spec, attempt: int, outcome, started_at: str, extra: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
        """Write one run's record (atomically, last) and return the driver's summary of it."""
        from ablate.errors import StoreError
        from ablate.execution import environment
        from ablate.execution.runner import summarize_outcome
        from ablate.execution.store import DiskFull, disk_full

        run_id = spec.run_id
        env = environment.describe(self.backend_env)
        env.update(self.worker_info, worker_run=self.served, dataset_loads=self.dataset_loads)
        record = {"run_id": run_id, "config": spec.to_json(), "attempt": attempt,
                  **summarize_outcome(outcome), "started_at": started_at, "finished_at": utc_now(),
                  "environment": env, **(extra or {})}
        try:
            self.store.write(record, outcome.arrays or None)
        except (StoreError, OSError) as exc:  # e.g. a permission error fails this run, not the worker
            if disk_full(exc):  # nothing more can be stored: the worker tells the driver, which stops
                raise exc if isinstance(exc, DiskFull) else DiskFull(self.store.study_dir, exc) from exc
            return {"run_id": run_id, "status": FAILED, "seconds": outcome.seconds,
                    "error": f"could not store the run: {exc}"}
        error_line = (outcome.error or "").strip().splitlines()[-1:] or [""]
        return {"run_id": run_id, "status": outcome.status, "seconds": outcome.seconds, "error": error_line[0]}


    def run_pack(self, spec_dicts: Sequence[Mapping[str, Any]], *, attempts: Sequence[int], fit: bool = False,
                 on_epoch=None) -> list[dict[str, Any]]:
        """Execute runs as one pack (see :mod:`ablate.execution.pack_runner`); one summary per run.

        Every member's claim is held for the whole pack and every record is written at the
        end, so a pack killed mid-way leaves no record and all its members run again. Members
        with a final record are skipped, as by :meth:`run`. ``fit``: split the pack into packs
        this device's memory holds. ``on_epoch(run_id, epoch, epochs, row)``.
        """
        from ablate.config import RunSpec

        specs = [RunSpec.from_dict(d) for d in spec_dicts]
        attempt_of = {s.run_id: a for s, a in zip(specs, attempts)}
        with contextlib.ExitStack() as stack:
            for folder in sorted({self.store.run_dir(s.run_id) for s in specs}):  # one order: no deadlock
                stack.enter_context(claim_run(folder))
            results: dict[str, dict[str, Any]] = {}
            todo = []
            for spec in specs:
                existing = self.store.read_record(spec.run_id)
                if getattr(existing, "status", None) in FINAL_STATUSES:
                    results[spec.run_id] = {"run_id": spec.run_id, "status": existing.status, "skipped": True,
                                            "seconds": float(existing.record.get("seconds") or 0.0),
                                            "error": existing.record.get("error") or ""}
                else:
                    for tmp in self.store.run_dir(spec.run_id).glob(".*.tmp"):
                        tmp.unlink(missing_ok=True)
                    todo.append(spec)
            for group in self._fit(todo) if fit else [todo]:
                if group:
                    results.update(self._pack_claimed(group, attempt_of, on_epoch))
        return [results[s.run_id] for s in specs]

    def _fit(self, specs: list) -> list[list]:
        """Split a pack into packs that fit this device's memory (`--pack auto`)."""
        from ablate.execution.pack_runner import fit_pack_size
        from ablate.execution.packs import plan_packs

        if not specs:
            return []
        try:
            size = fit_pack_size(specs, self.backend, self.dataset(specs[0].dataset, specs[0].origin,
                                                                   specs[0].source_seed("split")))
        except Exception:  # noqa: BLE001 - the pack itself will fail with this error, stored per run
            return [specs]
        return plan_packs(specs, size)

    def _pack_claimed(self, specs: list, attempt_of: Mapping[str, int], on_epoch) -> dict[str, dict[str, Any]]:
        from ablate.execution.pack_runner import PackOutOfMemory, execute_pack
        from ablate.execution.packs import plan_packs
        from ablate.execution.runner import RunOutcome

        started_at = utc_now()
        self.served += len(specs)
        ids = [s.run_id for s in specs]
        pack_id = "pack-" + ids[0]
        for spec in specs[1:]:
            with open(self.store.log_path(spec.run_id), "a") as fh:
                fh.write(f"== {started_at} in {pack_id} of {len(specs)} runs; its log: {self.store.log_path(ids[0])}\n")

        def member_epoch(member: int, epoch: int, epochs: int, row) -> None:
            if on_epoch is not None:
                on_epoch(ids[member], epoch, epochs, row)

        with redirect_output(self.store.log_path(ids[0])):
            print(f"== {started_at} pid {os.getpid()}: {pack_id}, {len(specs)} runs:", flush=True)
            for spec in specs:
                print(f"   attempt {attempt_of[spec.run_id]}: {spec.describe()} ({spec.run_id})", flush=True)
            try:
                data = self.dataset(specs[0].dataset, specs[0].origin, specs[0].source_seed("split"))
            except Exception as exc:  # noqa: BLE001 - a missing dataset fails these runs only
                outcomes = [RunOutcome(status=FAILED, error=f"{type(exc).__name__}: {exc}") for _ in specs]
            else:
                try:
                    outcomes = execute_pack(specs, self.backend, data, on_epoch=member_epoch)
                except PackOutOfMemory as exc:
                    outcomes = None
                    print(f"== {utc_now()} {exc}: trying again in packs of {(len(specs) + 1) // 2}", flush=True)
            for spec, outcome in zip(specs, outcomes or ()):
                if outcome.error:
                    print(f"{spec.run_id}: {outcome.error}", flush=True)
                print(f"== {utc_now()} {spec.run_id} {outcome.status}", flush=True)
        if outcomes is None:  # halve (the arms of a seed stay together) until the packs fit
            self.served -= len(specs)
            results = {}
            for group in plan_packs(specs, (len(specs) + 1) // 2):
                results.update(self._pack_claimed(group, attempt_of, on_epoch))
            return results
        results = {}
        for index, (spec, outcome) in enumerate(zip(specs, outcomes)):
            extra = {"pack": {"id": pack_id, "size": len(specs), "index": index, "members": ids,
                              "seconds": outcome.seconds * len(specs)}}
            results[spec.run_id] = self._store(spec, attempt_of[spec.run_id], outcome, started_at, extra)
        return results


class DriverGone(BaseException):
    """The driver died; a BaseException so the runner's failure handling does not record it."""


def worker_main(worker_id: int, backend_name: str, gpu: str | None, threads: int | None,
                results: str, study: str, conn) -> None:
    """Process entry point. Protocol over ``conn``: send ("ready"), then for each task received
    send ("epoch", ...) events and one ("done", result); a None task, or the driver's end
    closing, ends the worker.

    Ctrl-C reaches every process of the terminal's group: a worker ignores it and the driver,
    which gets it too, stops the workers, so the user sees one line, not a traceback per worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve(worker_id, backend_name, gpu, threads, results, study, conn)
    except KeyboardInterrupt:  # one that arrived before SIGINT was ignored
        pass
    # Every record is written (atomically) before its "done" is sent, and logs are closed per
    # run: nothing is left for the interpreter's teardown, which with a framework loaded costs
    # about 0.6 s per worker, paid at the end of every sweep.
    sys.stdout.flush()
    sys.stderr.flush()
    conn.close()
    os._exit(0)


def _serve(worker_id: int, backend_name: str, gpu: str | None, threads: int | None,
           results: str, study: str, conn) -> None:
    """The worker's life; a full disk anywhere (a record, a log) is sent as one ("full", line)."""
    from ablate.execution.store import DiskFull, disk_full

    try:
        _serve_tasks(worker_id, backend_name, gpu, threads, results, study, conn)
    except (OSError, DiskFull) as exc:
        if not disk_full(exc):
            raise
        with contextlib.suppress(OSError):
            conn.send(("full", str(exc if isinstance(exc, DiskFull) else DiskFull(Path(results) / study, exc))))


def _serve_tasks(worker_id: int, backend_name: str, gpu: str | None, threads: int | None,
                 results: str, study: str, conn) -> None:
    from ablate.execution.store import disk_full

    pin_environment(backend=backend_name, gpu=gpu, threads=threads)
    # Framework start-up chatter goes to the worker's log, not over the driver's progress display.
    log_dir = Path(results) / study / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        with redirect_output(log_dir / f"worker-{os.getpid()}.log"):
            executor = RunExecutor(backend_name, device="cuda" if gpu is not None else "cpu",
                                   threads=threads, results=results, study=study)
    except BaseException as exc:  # noqa: BLE001 - report why this worker cannot start
        if disk_full(exc):
            raise
        conn.send(("broken", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", {"pid": os.getpid()}))
        while True:
            task = conn.recv()
            if task is None:
                return

            def send_epoch(rid: str, epoch: int, epochs: int) -> None:
                try:
                    conn.send(("epoch", (rid, epoch, epochs)))
                except OSError:
                    raise DriverGone from None

            if "specs" in task:  # a pack
                results = executor.run_pack(task["specs"], attempts=task["attempts"], fit=task.get("fit", False),
                                            on_epoch=lambda rid, epoch, epochs, row: send_epoch(rid, epoch, epochs))
                conn.send(("done", {"pack": results}))
                continue
            result = executor.run(task["spec"], attempt=task["attempt"],
                                  on_epoch=lambda epoch, epochs, row, _rid=task["run_id"]: send_epoch(_rid, epoch,
                                                                                                      epochs))
            conn.send(("done", result))
    except (EOFError, OSError, DriverGone) as exc:
        if disk_full(exc):
            raise
        # The driver was killed: stop without recording the run in hand, which the next
        # driver runs again.
        return

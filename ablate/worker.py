"""A persistent worker process: imports one framework once, then runs many runs.

The framework, its Keras engine and the GPU are fixed through environment variables set
here, before anything imports a framework; that is why a worker serves one backend only.
Each run's record is written by the worker, atomically, to the shared results folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def pin_environment(*, backend: str, gpu: str | None, threads: int | None) -> None:
    """Environment a framework reads once, at import: engine, visible GPU, thread pools."""
    from backends import engine

    eng = engine(backend)
    if eng is not None:
        os.environ["KERAS_BACKEND"] = eng
    # An empty CUDA_VISIBLE_DEVICES hides every GPU from a CPU worker.
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS"):
            os.environ[var] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


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


class RunExecutor:
    """Loads a backend once and executes run specs, writing each record to the store."""

    def __init__(self, backend_name: str, *, device: str | None, threads: int | None, results: str,
                 study: str):
        import backends

        from ablate.store import RunStore

        self.backend = backends.load(backend_name)
        self.backend.configure(device=device, threads=threads, deterministic=True)
        self.store = RunStore(results, study)
        self._datasets: dict[Any, Any] = {}

    def dataset(self, spec):
        from ablate.datasets import load_dataset

        if spec not in self._datasets:
            self._datasets[spec] = load_dataset(
                spec.name, path=spec.path, train_size=spec.train_size, test_size=spec.test_size,
                val_fraction=spec.val_fraction, preprocess=spec.preprocess, image_size=spec.image_size)
        return self._datasets[spec]

    def run(self, spec_dict: Mapping[str, Any], *, attempt: int = 1, on_epoch=None) -> dict[str, Any]:
        """Execute one run and store it; returns a short summary for the driver."""
        from ablate import environment
        from ablate.config import RunSpec
        from ablate.runner import RunOutcome, execute, summarize_outcome

        spec = RunSpec.from_dict(spec_dict)
        run_id = spec.run_id
        started_at = _now()
        log = self.store.log_path(run_id)
        with redirect_output(log):
            print(f"== {started_at} attempt {attempt}: {spec.describe()} ({run_id})", flush=True)
            try:
                data = self.dataset(spec.dataset)
            except Exception as exc:  # noqa: BLE001 - a missing dataset fails this run only
                outcome = RunOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")
            else:
                outcome = execute(spec, self.backend, data, on_epoch=on_epoch)
            if outcome.error:
                print(outcome.error, flush=True)
        record = {
            "run_id": run_id, "config": spec.to_dict(), "attempt": attempt,
            **summarize_outcome(outcome), "started_at": started_at, "finished_at": _now(),
            "environment": environment.describe(dict(self.backend.environment())),
        }
        self.store.write(record, outcome.arrays or None)
        error_line = (outcome.error or "").strip().splitlines()[-1:] or [""]
        return {"run_id": run_id, "status": outcome.status, "seconds": outcome.seconds,
                "error": error_line[0]}


def worker_main(worker_id: int, backend_name: str, gpu: str | None, threads: int | None,
                results: str, study: str, tasks, events) -> None:
    """Process entry point. Protocol: send ("ready"), receive a task or None, report, repeat."""
    pin_environment(backend=backend_name, gpu=gpu, threads=threads)
    # Framework start-up chatter goes to the worker's log, not over the driver's progress display.
    log_dir = Path(results) / study / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        with redirect_output(log_dir / f"worker-{os.getpid()}.log"):
            executor = RunExecutor(backend_name, device="cuda" if gpu is not None else "cpu",
                                   threads=threads, results=results, study=study)
    except BaseException as exc:  # noqa: BLE001 - report why this worker cannot start
        events.put(("broken", worker_id, f"{type(exc).__name__}: {exc}"))
        return
    events.put(("ready", worker_id, None))
    while True:
        task = tasks.get()
        if task is None:
            return
        run_id = task["run_id"]

        def on_epoch(epoch: int, epochs: int, row, _rid=run_id) -> None:
            events.put(("epoch", worker_id, (_rid, epoch, epochs)))

        result = executor.run(task["spec"], attempt=task["attempt"], on_epoch=on_epoch)
        events.put(("done", worker_id, result))
        events.put(("ready", worker_id, None))

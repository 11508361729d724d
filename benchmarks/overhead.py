"""What the orchestrator costs and what it buys, measured side by side in one process.

    python benchmarks/overhead.py                       # a few minutes on 2 cores
    python benchmarks/overhead.py --runs 12 --run-seconds 10 --gpu-runs 32

1. Per-run overhead: the same runs, of a calibrated length, executed by a bare loop in one
   process (``runner.execute`` on a backend and dataset loaded once, nothing stored; run
   before and after the sweeps to average out drift) and by the orchestrator with one
   persistent worker (dispatch, log capture, atomic record and arrays). Once the worker is
   warm, a run costs its cadence, the time between two consecutive completions; the
   overhead is the cadence less the bare loop's run time, and, free of machine drift, the
   cadence less the worker's own time inside ``execute``.
2. Throughput on the CPU with 1 and with 2 workers (runs/min, worker start-up included).
3. With a GPU: runs/min on one GPU with ``--per-gpu 1`` against ``--per-gpu 4``, per backend.

Every run is the same configuration with another seed, so all have the same length.
Timings are wall-clock on a machine that may be shared: compare within one invocation.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablate.catalog import parse_grid  # noqa: E402
from ablate.config import RunSpec  # noqa: E402
from ablate.execution.devices import discover_gpus  # noqa: E402
from ablate.execution.progress import Progress, format_table as table  # noqa: E402
from ablate.execution.store import RunStore  # noqa: E402


def _specs(*, backend: str, dataset: dict, model: str, epochs: int, n: int, first_seed: int = 0) -> list[RunSpec]:
    grid = parse_grid({"study": "bench", "datasets": [dataset], "models": [model], "backends": [backend],
                       "arms": ["none"], "seeds": list(range(first_seed, first_seed + n)),
                       "train": {"epochs": epochs, "batch_size": 32, "lr": 0.01, "monitor_size": 256}})
    return grid.runs()


def _stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@dataclasses.dataclass
class Sweep:
    wall: float  # seconds, driver start to end, worker start-up included
    startup: float  # driver start to the first run's start
    cadence: float  # seconds between consecutive completions once warm (per worker)
    run_seconds: float  # mean time inside runner.execute
    n: int
    slots: int
    gap: float  # mean over warm runs: time between a worker's consecutive completions less the run itself

    @property
    def runs_per_min(self) -> float:
        return 60.0 * self.n / self.wall

    @property
    def warm_runs_per_min(self) -> float:
        return 60.0 * self.slots / self.cadence if self.cadence else float("nan")


def orchestrated(specs: list[RunSpec], *, workers: int = 1, gpus: tuple[str, ...] = (), per_gpu: int = 1) -> Sweep:
    from ablate.execution.orchestrator import run_local

    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as root:
        store = RunStore(root, "bench")
        t0 = time.time()
        summary = run_local(specs, store=store, results=root, workers=workers, gpus=list(gpus), per_gpu=per_gpu,
                            progress=Progress(total=len(specs), stream=io.StringIO(), live=False))
        wall = time.time() - t0
        if summary.completed != len(specs):
            raise SystemExit(f"benchmark sweep failed: {summary.failures[:3]}")
        records = [store.read_record(s.run_id).record for s in specs]
    finished = sorted(_stamp(r["finished_at"]) for r in records)
    slots = workers if not gpus else len(gpus) * per_gpu
    # Completions after the first of each worker are paced by warm runs only.
    warm = finished[slots - 1:] if len(finished) > slots else finished
    cadence = (warm[-1] - warm[0]) / (len(warm) - 1) * slots if len(warm) > 1 else float("nan")
    startup = min(_stamp(r["started_at"]) for r in records) - t0
    # Exact per-run cost of orchestration, free of machine drift: what a warm worker spends
    # between two runs' completions beyond the second run's own time inside execute.
    by_pid: dict[int, list[dict]] = {}
    for r in records:
        by_pid.setdefault(r["environment"]["worker_pid"], []).append(r)
    gaps = []
    for rs in by_pid.values():
        rs.sort(key=lambda r: r["finished_at"])
        gaps += [_stamp(b["finished_at"]) - _stamp(a["finished_at"]) - b["seconds"] for a, b in zip(rs, rs[1:])]
    return Sweep(wall, startup, cadence, statistics.fmean(r["seconds"] for r in records), len(specs), slots,
                 statistics.fmean(gaps) if gaps else float("nan"))


def _bare_child(spec_dicts: list[dict], threads: int, conn) -> None:
    from ablate.execution.worker import pin_environment

    pin_environment(backend=spec_dicts[0]["backend"], gpu=None, threads=threads)
    t0 = time.perf_counter()
    from ablate import backends
    from ablate.data.catalogue import load_dataset
    from ablate.execution.runner import execute

    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    backend = backends.load(specs[0].backend)
    backend.configure(device="cpu", threads=threads, deterministic=True)
    ds = specs[0].dataset
    data = load_dataset(ds.name, path=ds.path, train_size=ds.train_size, test_size=ds.test_size,
                        val_fraction=ds.val_fraction, preprocess=ds.preprocess)
    setup = time.perf_counter() - t0
    times = []
    for spec in specs:
        t = time.perf_counter()
        outcome = execute(spec, backend, data)
        times.append(time.perf_counter() - t)
        if outcome.status != "completed":
            raise SystemExit(f"bare run failed: {outcome.error}")
    conn.send((times, setup))


def bare_loop(specs: list[RunSpec], threads: int) -> tuple[list[float], float]:
    """``runner.execute`` in a plain loop, in a fresh process set up like a CPU worker (same
    environment, threads, one backend and one dataset load) but with no orchestrator: nothing
    dispatched, captured or stored. Returns the run times and the one-off import + load time."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_bare_child, args=([s.to_dict() for s in specs], threads, theirs))
    proc.start()
    theirs.close()
    try:
        result = ours.recv()
    except EOFError:
        raise SystemExit("the bare loop's process failed") from None
    proc.join()
    return result


def calibrate(args, dataset: dict, threads: int) -> tuple[int, float]:
    """Epochs for a run of about --run-seconds, from a warm one-epoch run in this process."""
    probe = _specs(backend=args.backend, dataset=dataset, model=args.model, epochs=2, n=2, first_seed=10_000)
    times, _ = bare_loop(probe, threads)
    per_epoch = times[-1] / 2
    return max(1, round(args.run_seconds / per_epoch)), per_epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="runs per CPU measurement (default 6)")
    parser.add_argument("--run-seconds", type=float, default=4.0,
                        help="target length of one CPU run, calibrated in epochs (default 4)")
    parser.add_argument("--backend", default="torch", help="backend of the CPU measurements (default torch)")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--path", default=None, help="the dataset's folder, as a grid's `path:`")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--gpu-runs", type=int, default=16, help="runs per GPU measurement (default 16)")
    parser.add_argument("--gpu-epochs", type=int, default=10)
    parser.add_argument("--gpu-backends", default="torch", help="comma-separated (default torch)")
    parser.add_argument("--sections", default="cpu,gpu", help="cpu, gpu or both (default both)")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    dataset = {"name": args.dataset, **({"path": args.path} if args.path else {}),
               **({"train_size": args.train_size} if args.train_size else {})}
    cores = os.cpu_count() or 1
    ratios: list[tuple] = [("measure", "value")]
    print(f"# ablate orchestrator benchmark  ({cores} cores, {args.backend} {args.dataset} {args.model})")

    if "cpu" in sections:
        epochs, per_epoch = calibrate(args, dataset, cores)
        specs = _specs(backend=args.backend, dataset=dataset, model=args.model, epochs=epochs, n=args.runs)
        print(f"calibrated: {per_epoch:.3f} s/epoch -> {epochs} epochs per run, {args.runs} runs per measurement")
        # The bare loop runs before and after the sweeps, so drift on a shared machine is averaged.
        bare, setup = bare_loop(specs, cores)
        one = orchestrated(specs, workers=1)
        two = orchestrated(specs, workers=2)
        after, _ = bare_loop(specs, cores)
        bare_mean = statistics.fmean(bare + after)
        bare_sd = statistics.stdev(bare + after)
        overhead = one.cadence - bare_mean
        in_worker = one.gap
        rows = [("", "runs", "wall s", "start-up s", "s/run warm", "runs/min", "runs/min warm"),
                ("bare loop (one process)", args.runs, f"{bare_mean * args.runs:.1f}", "-", f"{bare_mean:.3f}",
                 f"{60 / bare_mean:.1f}", f"{60 / bare_mean:.1f}"),
                ("orchestrator, 1 CPU worker", one.n, f"{one.wall:.1f}", f"{one.startup:.1f}", f"{one.cadence:.3f}",
                 f"{one.runs_per_min:.1f}", f"{one.warm_runs_per_min:.1f}"),
                ("orchestrator, 2 CPU workers", two.n, f"{two.wall:.1f}", f"{two.startup:.1f}",
                 f"{two.cadence:.3f}", f"{two.runs_per_min:.1f}", f"{two.warm_runs_per_min:.1f}")]
        print("\n## CPU\n" + table(rows))
        print(f"\nper-run overhead once warm, against the bare loop: {overhead:+.3f} s "
              f"({100 * overhead / bare_mean:+.2f}% of a {bare_mean:.1f} s run, {100 * overhead / 10:+.2f}% of a "
              f"10 s run; bare runs vary by +-{bare_sd:.3f} s on this machine)")
        print(f"per-run overhead once warm, between a worker's completions beyond the run itself: "
              f"{in_worker:+.4f} s ({100 * in_worker / one.run_seconds:+.3f}% of a {one.run_seconds:.1f} s run, "
              f"{100 * in_worker / 10:+.3f}% of a 10 s run; with 2 workers {two.gap:+.4f} s)")
        print(f"drift check: the worker's own runs took {one.run_seconds:.3f} s inside execute against the bare "
              f"loop's {bare_mean:.3f} s; it is the same code, so that difference "
              f"({one.run_seconds - bare_mean:+.3f} s) is the machine, not the orchestrator")
        print(f"one-off: bare import + dataset load {setup:.1f} s; orchestrator worker start-up {one.startup:.1f} s")
        ratios += [("orchestrator / bare, s per warm run", f"{one.cadence / bare_mean:.3f}"),
                   ("overhead per run vs bare loop, s", f"{overhead:+.3f}"),
                   ("overhead per run vs bare loop, % of a 10 s run", f"{100 * overhead / 10:+.2f}%"),
                   ("overhead per run beyond the run itself, s", f"{in_worker:+.4f}"),
                   ("overhead beyond the run itself, % of a 10 s run", f"{100 * in_worker / 10:+.3f}%"),
                   ("2 workers / 1 worker, runs/min", f"{two.runs_per_min / one.runs_per_min:.2f}x")]

    gpus = discover_gpus()
    if "gpu" in sections and gpus:
        rows = [("backend", "per-gpu", "runs", "wall s", "start-up s", "runs/min", "runs/min warm", "s/run inside")]
        for backend in args.gpu_backends.split(","):
            specs = _specs(backend=backend, dataset=dataset, model=args.model, epochs=args.gpu_epochs,
                           n=args.gpu_runs)
            res = {}
            for per_gpu in (1, 4):
                res[per_gpu] = s = orchestrated(specs, gpus=(gpus[0],), per_gpu=per_gpu)
                rows.append((backend, per_gpu, s.n, f"{s.wall:.1f}", f"{s.startup:.1f}", f"{s.runs_per_min:.1f}",
                             f"{s.warm_runs_per_min:.1f}", f"{s.run_seconds:.2f}"))
            ratios += [(f"GPU {backend}: per-gpu 4 / per-gpu 1, runs/min",
                        f"{res[4].runs_per_min / res[1].runs_per_min:.2f}x"),
                       (f"GPU {backend}: per-gpu 4 / per-gpu 1, runs/min once warm",
                        f"{res[4].warm_runs_per_min / res[1].warm_runs_per_min:.2f}x")]
        print(f"\n## GPU {gpus[0]} ({args.gpu_epochs} epochs per run)\n" + table(rows))
    elif "gpu" in sections:
        print("\n## GPU\nno GPU found (CUDA_VISIBLE_DEVICES / nvidia-smi -L): skipped")

    print("\n## Ratios\n" + table(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What packs buy: the same grid unpacked and packed, measured side by side in one invocation.

    python benchmarks/packs.py                      # CPU part: about 5 minutes on 2 idle cores
    python benchmarks/packs.py --sections gpu       # GPU part (skipped without CUDA)

1. CPU: a digits/MLP grid of 30 runs (10 seeds x none/explicit/loss), through the local
   executor with ``--workers 2`` unpacked (the best unpacked setting on 2 cores) against
   ``--workers 2 --pack 15`` (each worker trains 15 runs as one model). Runs per hour
   count the whole sweep, worker start-up included; the ratio is packed / unpacked.
2. GPU, when CUDA is present: Fashion-MNIST (the real files if found, else Fashion-MNIST-
   shaped noise) with small-cnn, and CIFAR-shaped noise (45,000 32x32x3 training images,
   batch 8) with MiniGoogLeNet for one epoch, at ``--per-gpu 1``, ``--per-gpu 4`` and
   ``--pack auto``; prints GPU-seconds per run, runs per hour and mean GPU utilisation
   (``nvidia-smi``, sampled every second).

Timings are wall-clock on a machine that may be shared: compare only within one invocation.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablate.catalog import parse_grid  # noqa: E402
from ablate.config import RunSpec  # noqa: E402
from ablate.execution.devices import discover_gpus  # noqa: E402
from ablate.execution.orchestrator import run_local  # noqa: E402
from ablate.execution.progress import Progress, format_table as table  # noqa: E402
from ablate.execution.store import RunStore  # noqa: E402

ARMS = ["none", "explicit", "loss"]


def grid_runs(*, dataset: dict, model: str, seeds: int, epochs: int, batch_size: int, arms=ARMS) -> list[RunSpec]:
    grid = parse_grid({"study": "bench", "datasets": [dataset], "models": [model], "backends": ["torch"],
                       "arms": list(arms), "smoothing": [0.1], "seeds": seeds,
                       "train": {"epochs": epochs, "batch_size": batch_size, "lr": 0.01, "monitor_size": 256}})
    return grid.runs()


class GpuSampler:
    """Mean GPU utilisation (%) from ``nvidia-smi``, sampled once a second while in a ``with`` block."""

    def __init__(self, gpus: list[str]):
        self.gpus, self.samples, self._stop = gpus, [], threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        smi = shutil.which("nvidia-smi")
        while smi and not self._stop.wait(1.0):
            try:
                out = subprocess.run([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", ",".join(self.gpus)], capture_output=True, text=True, timeout=10).stdout
                self.samples.extend(float(v) for v in out.split())
            except (OSError, subprocess.SubprocessError, ValueError):
                pass

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")


def sweep(specs: list[RunSpec], *, workers: int = 1, gpus: tuple[str, ...] = (), per_gpu: int = 1,
          pack: int | str = 1) -> dict:
    """One sweep into a fresh store; wall seconds and the tally."""
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp, "bench")
        quiet = Progress(total=len(specs), stream=io.StringIO(), live=False)
        sampler = GpuSampler(list(gpus))
        t0 = time.perf_counter()
        with sampler:
            summary = run_local(specs, store=store, results=tmp, workers=workers, gpus=gpus, per_gpu=per_gpu,
                                pack=pack, progress=quiet)
        wall = time.perf_counter() - t0
        records = [store.read_record(s.run_id).record for s in specs]
        accuracy = [r["metrics"]["accuracy"] for r in records if r["status"] == "completed"] or [float("nan")]
    if summary.failed or summary.diverged:
        print(f"  warning: {summary.failed} failed, {summary.diverged} diverged: {summary.failures[:1]}")
    return {"wall": wall, "runs": len(specs), "completed": summary.completed, "util": sampler.mean,
            "runs_per_hour": summary.completed / wall * 3600, "accuracy": statistics.fmean(accuracy)}


def cpu_section(args) -> None:
    specs = grid_runs(dataset={"name": "digits"}, model="mlp", seeds=args.cpu_seeds, epochs=args.cpu_epochs,
                      batch_size=32)
    pack = max(1, len(specs) // 2)
    print(f"CPU: digits/mlp, {len(specs)} runs ({args.cpu_seeds} seeds x {len(ARMS)} arms), "
          f"{args.cpu_epochs} epochs, batch 32; {args.repeats} repeat(s), alternating")
    rows = {"--workers 2": [], f"--workers 2 --pack {pack}": []}
    for _ in range(args.repeats):
        rows["--workers 2"].append(sweep(specs, workers=2))
        rows[f"--workers 2 --pack {pack}"].append(sweep(specs, workers=2, pack=pack))
    out = []
    for name, results in rows.items():
        wall = statistics.fmean(r["wall"] for r in results)
        out.append([name, f"{wall:.1f}", f"{statistics.fmean(r['runs_per_hour'] for r in results):.0f}",
                    f"{statistics.fmean(r['accuracy'] for r in results):.4f}"])
    print(table([["setting", "wall s", "runs/hour", "mean test accuracy"], *out]))
    unpacked, packed = (statistics.fmean(r["runs_per_hour"] for r in rs) for rs in rows.values())
    print(f"packed / unpacked runs per hour: {packed / unpacked:.2f}x (target >= 1.5x)")
    alone, together = in_process(specs[:pack])
    print(f"in one process, one thread, no worker start-up: {pack} runs one by one {alone:.1f} s, "
          f"as one pack {together:.1f} s ({alone / together:.2f}x)")


def in_process(specs: list[RunSpec]) -> tuple[float, float]:
    """Seconds to train ``specs`` one by one, and as one pack, in this process on one thread."""
    from ablate.execution.pack_runner import execute_pack
    from ablate.execution.runner import execute
    from ablate.execution.worker import RunExecutor

    with tempfile.TemporaryDirectory() as tmp:
        executor = RunExecutor("torch", device="cpu", threads=1, results=tmp, study="bench")
        data = executor.dataset(specs[0].dataset)
        t0 = time.perf_counter()
        for spec in specs:
            execute(spec, executor.backend, data)
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        execute_pack(specs, executor.backend, data)
        return alone, time.perf_counter() - t0


def _write_idx(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> None:
    """Fashion-MNIST-shaped noise in the IDX files the catalogue reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with gzip.open(folder / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">II", 0x801, n) + labels.tobytes())


def _write_cifar(folder: Path, rng: np.random.Generator, n_test: int) -> None:
    """CIFAR-10-shaped noise (50,000 training images: 45,000 after the validation split)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", 10_000) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n).tolist()}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


def gpu_section(args) -> None:
    gpus = discover_gpus()
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not gpus or not cuda:
        print("GPU: skipped (no CUDA GPU on this machine)")
        return
    gpu = (gpus[0],)
    from ablate.data.catalogue import check_available

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            check_available("fashion-mnist", args.fashion_path, download=False)
            fashion, label = {"name": "fashion-mnist", "path": args.fashion_path}, "Fashion-MNIST"
        except Exception:  # noqa: BLE001 - no files here: the same shapes, as noise
            _write_idx(Path(tmp) / "fashion", rng, 60_000, 10_000)
            fashion, label = {"name": "fashion-mnist", "path": str(Path(tmp) / "fashion")}, "Fashion-MNIST-shaped noise"
        _write_cifar(Path(tmp) / "cifar", rng, 1_000)
        cases = [
            (f"{label}, small-cnn, batch 128, {args.gpu_epochs} epoch(s)",
             grid_runs(dataset=fashion, model="small-cnn", seeds=args.gpu_seeds, epochs=args.gpu_epochs,
                       batch_size=128)),
            ("CIFAR-shaped noise (45,000 x 32x32x3), minigooglenet, batch 8, 1 epoch",
             grid_runs(dataset={"name": "cifar10", "path": str(Path(tmp) / "cifar"), "test_size": 1000},
                       model="minigooglenet", seeds=args.gpu_seeds, epochs=1, batch_size=8)),
        ]
        for title, specs in cases:
            print(f"GPU {gpu[0]}: {title}; {len(specs)} runs")
            rows = []
            for name, kw in (("--per-gpu 1", {"per_gpu": 1}), ("--per-gpu 4", {"per_gpu": 4}),
                             ("--pack auto", {"per_gpu": 1, "pack": "auto"})):
                r = sweep(specs, gpus=gpu, **kw)
                rows.append([name, f"{r['wall']:.1f}", f"{r['wall'] / max(1, r['completed']):.2f}",
                             f"{r['runs_per_hour']:.0f}", f"{r['util']:.0f}"])
            print(table([["setting", "wall s", "GPU-s/run", "runs/hour", "GPU util %"], *rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="cpu,gpu", help="cpu, gpu or both (default both)")
    parser.add_argument("--cpu-seeds", type=int, default=10, help="seeds of the CPU grid (x3 arms; default 10)")
    parser.add_argument("--cpu-epochs", type=int, default=60, help="epochs per CPU run (default 60: about 2 s a run alone)")
    parser.add_argument("--repeats", type=int, default=1, help="CPU sweeps per setting (default 1)")
    parser.add_argument("--gpu-seeds", type=int, default=4, help="seeds of each GPU grid (x3 arms; default 4)")
    parser.add_argument("--gpu-epochs", type=int, default=1, help="Fashion-MNIST epochs (default 1)")
    parser.add_argument("--fashion-path", default=None, help="Fashion-MNIST's folder (default: the usual places)")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",")}
    if "cpu" in sections:
        cpu_section(args)
    if "gpu" in sections:
        gpu_section(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m ablate``: run a grid, report on it, and inspect what is there.

User errors print as one line; ``ABLATE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from ablate.errors import AblateError, ConfigError

DEFAULT_RESULTS = "results"

EPILOG = """\
examples:
  python -m ablate run examples/quick.yaml            run every pending cell of the grid
  python -m ablate run examples/quick.yaml --dry-run  list the runs without running them
  python -m ablate status examples/quick.yaml         what is done, failed and pending
  python -m ablate report --study quick               tables, report.md and figures
  python -m ablate datasets                           which datasets are available here
  python -m ablate models --input 32x32x3             parameter counts per backend

Set ABLATE_DEBUG=1 to see full tracebacks.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Ablation grids for label smoothing (none / explicit / loss) over Keras and PyTorch, "
                    "with paired equivalence and difference tests on accuracy and calibration.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run every pending cell of a grid file",
                         description="Expand GRID and run every cell not already completed. Records go to "
                                     "RESULTS/<study>/runs/; completed and diverged runs are skipped on a re-run, "
                                     "failed ones run again.")
    run.add_argument("grid", help="grid YAML file (see README: grid-file reference)")
    run.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR",
                     help="results root (default: ./results)")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="parallel CPU worker processes when no GPU is used (default: number of cores, at most 4); "
                          "with --executor ray, at most N concurrent CPU runs (default: every CPU of the cluster)")
    run.add_argument("--gpus", default=None, metavar="IDS",
                     help="comma-separated GPU ids to use (default: every GPU found; 'none' forces the CPU; "
                          "with --executor ray only 'all' or 'none')")
    run.add_argument("--per-gpu", type=int, default=1, metavar="N",
                     help="concurrent runs packed on each GPU (default: 1)")
    run.add_argument("--pack", default=None, metavar="K|auto",
                     help="train up to K runs that share backend, dataset, model and training settings as one "
                          "vectorised model (torch only); auto sizes packs to GPU memory "
                          "(default: auto on a GPU, 1 = unpacked on the CPU)")
    run.add_argument("--retries", type=int, default=0, metavar="N",
                     help="re-run a failed run up to N more times (diverged runs are not retried)")
    run.add_argument("--only", default=None, metavar="KEY=VALUE,...",
                     help="run a subset, e.g. backend=torch,arm=loss (keys: backend, dataset, model, arm, smoothing)")
    run.add_argument("--seeds", default=None, metavar="RANGE",
                     help="run only these seeds, e.g. 0-9 or 0,2,5")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local persistent worker processes (default), or Ray: one actor per slot, records "
                          "written to the shared --results folder")
    run.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                     help="Ray cluster address for --executor ray (default: start a local Ray)")
    run.add_argument("--dry-run", action="store_true", help="list the runs and exit without running")

    report = sub.add_parser("report", help="aggregate stored runs into tables, report.md and figures",
                            description="Recompute metrics from stored probabilities, run the paired tests and "
                                        "write runs.csv, summary.csv, comparisons.csv, report.md and figures.")
    report.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results root (default: ./results)")
    report.add_argument("--study", default=None, help="study name (default: the only study under --results)")
    report.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RESULTS/<study>)")
    report.add_argument("--runs", default=None, metavar="FILE.csv",
                        help="analyse a per-run table made elsewhere (columns: arm, seed, metrics, and optional "
                             "backend, dataset, model, smoothing) instead of stored runs")
    report.add_argument("--margin", action="append", default=[], metavar="METRIC=VALUE",
                        help="equivalence margin in the metric's units, e.g. accuracy=0.005 (repeatable)")
    report.add_argument("--alpha", type=float, default=None, help="significance level (default: grid's, else 0.05)")
    report.add_argument("--correction", choices=("holm", "bh"), default=None,
                        help="multiplicity correction (default: holm)")
    report.add_argument("--ece-bins", type=int, default=None, metavar="N", help="ECE bins (default: 15)")
    report.add_argument("--ece-binning", choices=("uniform", "quantile"), default=None,
                        help="equal-width (default) or equal-mass bins")
    report.add_argument("--no-figures", action="store_true", help="write the tables and report.md only")

    status = sub.add_parser("status", help="done / failed / diverged / pending per cell of a grid")
    status.add_argument("grid", help="grid YAML file")
    status.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results root (default: ./results)")
    status.add_argument("--only", default=None, metavar="KEY=VALUE,...", help="count a subset, as for run")
    status.add_argument("--seeds", default=None, metavar="RANGE", help="count only these seeds, as for run")

    sub.add_parser("datasets", help="list the datasets, whether each is available here, shapes and classes")

    models = sub.add_parser("models", help="trainable parameter count per model and backend")
    models.add_argument("--input", default="32x32x3", metavar="HxWxC", help="input shape (default: 32x32x3)")
    models.add_argument("--classes", type=int, default=10, help="number of classes (default: 10)")
    models.add_argument("--backends", default="torch,keras", help="comma-separated backends (default: torch,keras)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "report": _cmd_report, "status": _cmd_status,
                "datasets": _cmd_datasets, "models": _cmd_models}[args.command](args)
    except AblateError as exc:
        if os.environ.get("ABLATE_DEBUG") == "1":
            traceback.print_exc()
        print(f"ablate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; completed runs are stored and will be skipped next time", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------- run
def _cmd_run(args) -> int:
    from ablate.execution import devices
    from ablate.execution import selection
    from ablate.config import load_grid
    from ablate.execution.preflight import check_environment
    from ablate.execution.store import RunStore

    grid = load_grid(args.grid)
    runs = selection.select(grid.runs(), only=args.only, seeds=args.seeds)
    store = RunStore(args.results, grid.study)
    if args.dry_run:
        statuses = store.statuses()
        for spec in runs:
            print(f"{spec.run_id}  {statuses.get(spec.run_id, 'pending'):<9}  {spec.describe()}")
        counts = {k: sum(statuses.get(s.run_id) == k for s in runs) for k in ("completed", "diverged", "failed")}
        print(f"{len(runs)} run(s); {counts['completed']} completed and {counts['diverged']} diverged "
              f"(skipped), {len(runs) - counts['completed'] - counts['diverged']} to run "
              f"({counts['failed']} of them failed before)")
        return 0
    for name, value in (("--workers", args.workers), ("--per-gpu", args.per_gpu)):
        if value is not None and value < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, but got {value}")
    from ablate.execution.packs import parse_pack

    pack = parse_pack(args.pack)
    if args.retries < 0:
        raise ConfigError(f"--retries: expected an integer >= 0, but got {args.retries}")
    if args.address is not None and args.executor != "ray":
        raise ConfigError("--address: only applies with --executor ray")
    # Options first (cheap), then frameworks and data (may fetch a dataset once).
    check_environment(grid)
    if args.executor == "ray":
        # Ray assigns devices across the cluster; the driver's own GPUs say nothing about it.
        if args.gpus not in (None, "all", "none"):
            raise ConfigError(f"--gpus: with --executor ray expected 'all' or 'none', but got {args.gpus!r}")
        ray_gpus = 0 if args.gpus == "none" else None
        where = f"Ray ({args.address or 'local'}), {args.per_gpu} run(s) per GPU"
    else:
        found = devices.discover_gpus()
        if args.gpus in (None, "all"):
            gpus = found
        elif args.gpus == "none":
            gpus = []
        else:
            gpus = devices.parse_gpu_list(args.gpus, found)
        workers = args.workers or min(4, os.cpu_count() or 1)
        where = f"{len(gpus)} GPU(s) x {args.per_gpu}" if gpus else f"{workers} CPU worker(s)"
    if args.pack is not None and pack != 1:
        where += f", packs of {pack if pack != 'auto' else 'auto size'} (torch)"
    print(f"study {grid.study!r}: {len(runs)} run(s) on {where} -> {store.study_dir}", file=sys.stderr)
    from ablate.execution.orchestrator import study_lock
    from ablate.study import write_study_settings

    with study_lock(store):
        write_study_settings(store, grid)
        if args.executor == "ray":
            from ablate.execution.executors.ray import run_ray

            summary = run_ray(runs, store=store, results=args.results, address=args.address, gpus=ray_gpus,
                              per_gpu=args.per_gpu, retries=args.retries, workers=args.workers,
                              pack="auto" if args.pack is None else pack)
        else:
            from ablate.execution.orchestrator import run_local

            summary = run_local(runs, store=store, results=args.results, workers=workers, gpus=gpus,
                                per_gpu=args.per_gpu, retries=args.retries,
                                pack="auto" if args.pack is None else pack)
    for line in summary.failures:
        print(f"  {line}", file=sys.stderr)
    print(f"next: python -m ablate report --results {args.results} --study {grid.study}", file=sys.stderr)
    return 1 if summary.failed else 0


# ---------------------------------------------------------------------------- report
def _cmd_report(args) -> int:
    from ablate import study
    from ablate.analysis import report

    margins = report.parse_margins(args.margin)
    if args.runs:
        out = Path(args.out or Path(args.runs).with_suffix("").as_posix() + "_report")
        written = report.report_from_table(args.runs, out=out, margins=margins, alpha=args.alpha,
                                           correction=args.correction, figures=not args.no_figures)
    else:
        written = study.report_study(args.results, study=args.study, out=args.out, margins=margins,
                                      alpha=args.alpha, correction=args.correction, ece_bins=args.ece_bins,
                                      ece_binning=args.ece_binning, figures=not args.no_figures)
    for path in written:
        print(path)
    return 0


# ---------------------------------------------------------------------------- status
def _cmd_status(args) -> int:
    from ablate.config import load_grid
    from ablate.execution.status import format_status, grid_status
    from ablate.execution.store import RunStore

    grid = load_grid(args.grid)
    from ablate.execution import selection

    runs = selection.select(grid.runs(), only=args.only, seeds=args.seeds)
    print(format_status(grid_status(runs, RunStore(args.results, grid.study))))
    return 0


# -------------------------------------------------------------------------- datasets
def _cmd_datasets(args) -> int:
    from ablate.data.catalogue import describe_datasets

    rows = [("dataset", "available", "input", "classes", "train", "test", "where / how to obtain")]
    for info in describe_datasets():
        shape = "x".join(str(d) for d in info.input_shape) if info.input_shape else "-"
        rows.append((info.name, "yes" if info.available else "no", shape,
                     str(info.num_classes or "-"), str(info.n_train or "-"), str(info.n_test or "-"),
                     info.location))
    _print_table(rows)
    return 0


# ---------------------------------------------------------------------------- models
def _cmd_models(args) -> int:
    import subprocess

    try:
        shape = tuple(int(v) for v in args.input.lower().split("x"))
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--input: expected HxWxC like 32x32x3, but got {args.input!r}") from None
    if args.classes < 2:
        raise ConfigError(f"--classes: expected an integer >= 2, but got {args.classes}")
    from ablate import backends

    names = list(dict.fromkeys(backends.canonical(b.strip()) for b in args.backends.split(",") if b.strip()))
    if not names:
        raise ConfigError(f"--backends: expected a comma-separated list of backends, but got {args.backends!r}")
    rows = [("model", "backend", "input", "classes", "trainable parameters")]
    notes: dict[str, str] = {}  # model -> why it cannot take this input
    # Each backend counts in its own process: Keras' engine is fixed per process. A model
    # too small for the input is a row with "-" and a note, not a failure of the command.
    for name in names:
        backends.check_installed(name)
        code = ("import json\nfrom ablate import backends\nfrom ablate.config import MODELS\nfrom ablate.errors import BackendError\n"
                f"b = backends.load({name!r})\nout = {{}}\nfor m in MODELS:\n    try:\n"
                f"        out[m] = b.count_parameters(model=m, input_shape={shape!r}, num_classes={args.classes})\n"
                "    except BackendError as e:\n        out[m] = str(e)\nprint(json.dumps(out))")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              cwd=Path(__file__).resolve().parent.parent)
        if proc.returncode != 0:
            raise AblateError(f"counting parameters with {name} failed: "
                              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        import json

        for model, count in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            if isinstance(count, str):
                notes.setdefault(model, count)
                count = "-"
            else:
                count = f"{count:,}"
            rows.append((model, name, "x".join(map(str, shape)), str(args.classes), count))
    rows[1:] = sorted(rows[1:])
    _print_table(rows)
    for _, why in sorted(notes.items()):
        print(f"note: {why}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    from ablate.execution.progress import format_table

    print(format_table(rows))

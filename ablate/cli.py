"""``python -m ablate``: run a grid, report on it, and inspect what is there.

User errors print as one line; ``ABLATE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path

from ablate.errors import AblateError, ArgumentError, ConfigError, as_flag

DEFAULT_RESULTS = "results"

EPILOG = """\
examples:
  python -m ablate run examples/quick.yaml            run every pending cell of the grid
  python -m ablate run examples/quick.yaml --dry-run  list the runs without running them
  python -m ablate status examples/quick.yaml         what is done, failed and pending
  python -m ablate report --study quick               tables, report.md, report.html and figures
  python -m ablate export mlflow --study quick        runs and verdicts into MLflow (results/mlflow.db)
  python -m ablate report --mlflow http://127.0.0.1:5000 --experiment NAME --write-back
                                                      verdicts on runs already in MLflow, logged back there
  python -m ablate datasets                           which datasets are available here
  python -m ablate models --input 32x32x3             parameter counts per backend
  python -m ablate plugins                            every registered method, model, dataset, backend

Set ABLATE_DEBUG=1 to see full tracebacks.
"""


def _parser() -> argparse.ArgumentParser:
    # The option vocabularies come from their owners, so a choice here can never drift from them.
    from ablate.analysis.sequential import SPENDINGS
    from ablate.config import BINNINGS, CORRECTIONS

    parser = argparse.ArgumentParser(
        prog="python -m ablate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Ablation grids of training tricks (the built-ins that `plugins` lists, or your own) over "
                    "Keras and PyTorch, your models and your data, with paired equivalence and difference tests on "
                    "accuracy and calibration.")
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
    run.add_argument("--executor", default="local", metavar="NAME",
                     help="where runs execute: local persistent worker processes (default), or ray: one actor "
                          "per slot, records written to the shared --results folder (see `plugins`)")
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
    report.add_argument("--mlflow", default=None, metavar="URI",
                        help="analyse runs already in MLflow: a tracking URI (http://HOST:PORT, sqlite:///FILE.db "
                             "or an ./mlruns folder); needs --experiment")
    report.add_argument("--experiment", default=None, metavar="NAME", help="with --mlflow: the experiment to read")
    report.add_argument("--arm", default=None, metavar="PARAM",
                        help="with --mlflow: the param naming each run's arm (default: arm)")
    report.add_argument("--seed", default=None, metavar="PARAM",
                        help="with --mlflow: the param holding each run's integer seed (default: seed)")
    report.add_argument("--by", default=None, metavar="PARAM,...",
                        help="with --mlflow: params that define the cells (backend, dataset, model and smoothing "
                             "fill those columns; others are shown beside the model)")
    report.add_argument("--metrics", default=None, metavar="A,B",
                        help="with --mlflow: metrics to read (default: every metric present on all finished runs)")
    report.add_argument("--filter", default=None, metavar="EXPR",
                        help="with --mlflow: an MLflow search filter, e.g. \"params.dataset = 'cifar10'\"")
    report.add_argument("--include-parents", action="store_true",
                        help="with --mlflow: read parent runs too (default: leaf runs only)")
    report.add_argument("--write-back", action="store_true",
                        help="with --mlflow: log the report and each verdict into the experiment as one run "
                             "\"ablate verdicts\" (again with the same runs and settings: nothing changes)")
    report.add_argument("--margin", action="append", default=[], metavar="METRIC=VALUE",
                        help="equivalence margin in the metric's units, e.g. accuracy=0.005 (repeatable)")
    report.add_argument("--alpha", type=float, default=None, help="significance level (default: grid's, else 0.05)")
    report.add_argument("--correction", choices=CORRECTIONS, default=None,
                        help="multiplicity correction (default: holm)")
    report.add_argument("--ece-bins", type=int, default=None, metavar="N", help="ECE bins (default: 15)")
    report.add_argument("--ece-binning", choices=BINNINGS, default=None,
                        help="equal-width (default) or equal-mass bins")
    report.add_argument("--compare", action="append", default=[], metavar="ARM_A:ARM_B",
                        help="compare these two arms (differences are ARM_A minus ARM_B; repeatable; "
                             "default: every pair of arms, an arm without smoothing first)")
    report.add_argument("--no-figures", action="store_true", help="write the tables and report.md only")
    report.add_argument("--sequential", default=None, metavar="N1,N2,...",
                        help="also analyse as a group-sequential design looked at after these seed counts, "
                             "e.g. 5,10,15,20: comparisons.csv gains decision and decided_at, report.md the "
                             "runs saved, plus sequential.csv and figures/sequential.png")
    report.add_argument("--spending", default=None, metavar="NAME",
                        help=f"alpha spending for --sequential: {' or '.join(SPENDINGS)} (the first is the default)")
    report.add_argument("--latex", action="store_true",
                        help="also write comparisons.tex and summary.tex (booktabs tables for a paper)")

    export = sub.add_parser("export", help="export a study's runs and report to a tracker (mlflow)",
                            description="Export every stored run of a study to MLflow (one MLflow run per ablate "
                                        "run, under one parent run per study holding the report and each "
                                        "comparison's verdict). Exporting again adds only new or re-run runs.")
    export.add_argument("target", choices=("mlflow",), help="where to export (mlflow)")
    export.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results root (default: ./results)")
    export.add_argument("--study", default=None, help="study name (default: the only study under --results)")
    export.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: sqlite:///RESULTS/mlflow.db)")
    export.add_argument("--experiment", default=None, metavar="NAME",
                        help="MLflow experiment name (default: ablate/<study>)")

    status = sub.add_parser("status", help="done / failed / diverged / pending per cell of a grid")
    status.add_argument("grid", help="grid YAML file")
    status.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results root (default: ./results)")
    status.add_argument("--only", default=None, metavar="KEY=VALUE,...", help="count a subset, as for run")
    status.add_argument("--seeds", default=None, metavar="RANGE", help="count only these seeds, as for run")

    probe = sub.add_parser("probe", help="train a grid's pairs side by side and find the step where they part",
                           description="Train the grid's runs (first seed) for N optimiser steps from shared "
                                       "initial weights; every K steps record each run's loss and the relative "
                                       "L2 distance between paired runs' weights. Writes probe.csv, probe.md "
                                       "and probe.png.")
    probe.add_argument("grid", help="grid YAML file")
    probe.add_argument("--steps", type=int, default=200, metavar="N", help="optimiser steps (default: 200)")
    probe.add_argument("--every", type=int, default=10, metavar="K",
                       help="record weights every K steps (default: 10)")
    probe.add_argument("--seed", type=int, default=None, help="which of the grid's seeds (default: the first)")
    probe.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default: cpu)")
    probe.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results root (default: ./results)")
    probe.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RESULTS/<study>/probe)")
    probe.add_argument("--no-figures", action="store_true", help="write probe.csv and probe.md only")

    sub.add_parser("datasets", help="list the datasets, whether each is available here, shapes and classes")
    sub.add_parser("plugins", help="list every registry: tricks, models, datasets, backends, executors")

    models = sub.add_parser("models", help="trainable parameter count per model and backend")
    models.add_argument("--input", default="32x32x3", metavar="HxWxC", help="input shape (default: 32x32x3)")
    models.add_argument("--classes", type=int, default=10, help="number of classes (default: 10)")
    models.add_argument("--backends", default="torch,keras", help="comma-separated backends (default: torch,keras)")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the driver is, so it stops its workers as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


# Where each command writes, for the hint when that place is read-only.
WRITES_TO = {"run": "--results DIR", "report": "--out DIR"}
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous = None
    if args.command == "run" and _in_main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return {"run": _cmd_run, "report": _cmd_report, "status": _cmd_status, "plugins": _cmd_plugins,
                "export": _cmd_export, "probe": _cmd_probe,
                "datasets": _cmd_datasets, "models": _cmd_models}[args.command](args)
    except ArgumentError as exc:  # the Python API names its argument; the command line, its flag
        _debug_traceback()
        print(f"ablate: error: {exc.spelled(as_flag)}", file=sys.stderr)
        return 2
    except AblateError as exc:
        _debug_traceback()
        print(f"ablate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        _debug_traceback()
        print(f"ablate: error: {_describe_os_error(exc, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"ablate: {what}; completed runs are stored and will be skipped next time", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _debug_traceback() -> None:
    if os.environ.get("ABLATE_DEBUG") == "1":
        traceback.print_exc()


def _describe_os_error(exc: OSError, command: str) -> str:
    """One line: what could not be written or read, and for a read-only place where to write instead."""
    where = exc.filename if exc.filename is not None else "?"
    if exc.errno in READ_ONLY_ERRNOS and command in WRITES_TO:
        return (f"{where} is read-only ({exc.strerror}); `{command}` needs a writable folder: "
                f"choose one with {WRITES_TO[command]}")
    return f"{where}: {exc.strerror or exc}"


def next_hint(results: str | Path, study: str) -> str:
    """The command that reports on a study, quoted for a shell and for argparse: a value that
    begins with ``-`` (a study named ``-rf``) is written ``--study=-rf``, which argparse never
    mistakes for an option."""
    return f"next: python -m ablate report {_option('--results', str(results))} {_option('--study', study)}"


def _option(flag: str, value: str) -> str:
    quoted = shlex.quote(value)
    return f"{flag}={quoted}" if value.startswith("-") else f"{flag} {quoted}"


# ------------------------------------------------------------------------------- run
def _cmd_run(args) -> int:
    from collections import Counter

    from ablate import api
    from ablate.execution.store import RunStore
    from ablate.statuses import COMPLETED, DIVERGED, FAILED, FINAL_STATUSES

    grid = api.load_grid(args.grid)
    options = dict(results=args.results, workers=args.workers, gpus=args.gpus, per_gpu=args.per_gpu,
                   retries=args.retries, only=args.only, seeds=args.seeds, executor=args.executor,
                   address=args.address, pack=args.pack)
    if args.dry_run:
        # Every check `run` makes (options, frameworks, data, models, the study's bound settings),
        # so a dry run that says yes is a run that starts.
        prepared = api.check(grid, **options)
        runs = prepared.runs
        for note in prepared.notes:
            print(f"note: {note}")
        valid, invalid = RunStore(args.results, grid.study).survey()
        statuses = {rid: "invalid" for rid in invalid} | valid  # an invalid record runs again
        for spec in runs:
            print(f"{spec.run_id}  {statuses.get(spec.run_id, 'pending'):<9}  {spec.describe()}")
        counts = Counter(statuses.get(spec.run_id) for spec in runs)
        invalid = f", {counts['invalid']} with an invalid record" if counts["invalid"] else ""
        print(f"{len(runs)} run(s); {counts[COMPLETED]} completed and {counts[DIVERGED]} diverged "
              f"(skipped), {len(runs) - sum(counts[k] for k in FINAL_STATUSES)} to run "
              f"({counts[FAILED]} of them failed before{invalid})")
        if grid.analysis.sequential is not None:
            print(_SEQUENTIAL_NOTE)
        return 0
    summary = api.sweep(grid, **options)
    for line in summary.failures:
        print(f"  {line}", file=sys.stderr)
    print(next_hint(args.results, grid.study), file=sys.stderr)
    return 1 if summary.failed else 0


# ---------------------------------------------------------------------------- report
def _cmd_report(args) -> int:
    _check_mlflow_flags(args)
    if args.mlflow:  # a tracker that cannot answer is said first, before the analysis' imports
        from ablate.export import tracking

        tracking.check_location(args.mlflow, flag="--mlflow", read=True, write=args.write_back)
    from ablate import study
    from ablate.analysis import report
    from ablate.cli_options import check_spending_option, parse_looks, parse_margins, parse_pairs

    margins = parse_margins(args.margin)
    looks = parse_looks(args.sequential) if args.sequential is not None else None
    if args.spending is not None and looks is None:
        raise ConfigError("--spending: only applies with --sequential")
    spending = check_spending_option(args.spending)
    pairs = parse_pairs(args.compare)
    report.check_options(alpha=args.alpha, ece_bins=args.ece_bins)
    if args.runs or args.mlflow:
        for flag, value in (("--ece-bins", args.ece_bins), ("--ece-binning", args.ece_binning)):
            if value is not None:
                raise ConfigError(f"{flag}: applies to stored runs only; with {'--runs' if args.runs else '--mlflow'}"
                                  f" the metrics come from the table")
    if args.mlflow:
        return _report_mlflow(args, margins=margins, looks=looks, spending=spending, pairs=pairs)
    if args.runs:
        out = Path(args.out or Path(args.runs).with_suffix("").as_posix() + "_report")
        written = report.report_from_table(args.runs, out=out, margins=margins, alpha=args.alpha,
                                           correction=args.correction, figures=not args.no_figures,
                                           sequential=looks, spending=spending, pairs=pairs, latex=args.latex)
    else:
        written = study.report_study(args.results, study=args.study, out=args.out, margins=margins,
                                      alpha=args.alpha, correction=args.correction, ece_bins=args.ece_bins,
                                      ece_binning=args.ece_binning, figures=not args.no_figures,
                                      sequential=looks, spending=spending, pairs=pairs, latex=args.latex)
    for path in written:
        print(path)
    return 0


_MLFLOW_ONLY = ("experiment", "arm", "seed", "by", "metrics", "filter", "include_parents", "write_back")


def _check_mlflow_flags(args) -> None:
    if args.mlflow and args.runs:
        raise ConfigError("--mlflow: reads runs from MLflow instead of a table; give --mlflow or --runs, not both")
    if not args.mlflow:
        for name in _MLFLOW_ONLY:
            if getattr(args, name) not in (None, False):
                raise ConfigError(f"--{name.replace('_', '-')}: only applies with --mlflow URI")
    elif not args.experiment:
        raise ConfigError("--experiment: --mlflow needs the name of the experiment to read")


def _report_mlflow(args, *, margins, looks, spending, pairs) -> int:
    from ablate.analysis import report
    from ablate.export import mlflow_read, tracking

    selection = mlflow_read.Selection(
        experiment=args.experiment, arm=(args.arm or "arm").strip(), seed=(args.seed or "seed").strip(),
        by=mlflow_read.parse_names(args.by, "--by") or (), metrics=mlflow_read.parse_names(args.metrics, "--metrics"),
        filter=args.filter, include_parents=args.include_parents)
    out = Path(args.out or _folder_name(args.experiment) + "_report")
    with tracking.session(args.mlflow, flag="--mlflow", read=True, write=args.write_back) as client:
        source = mlflow_read.read_runs(client, args.mlflow, selection)
        written = report.report_from_frame(
            source.runs, out=out, title=f"MLflow experiment `{source.experiment_name}`", margins=margins,
            alpha=args.alpha, correction=args.correction, figures=not args.no_figures, sequential=looks,
            spending=spending, pairs=pairs, latex=args.latex, overrides=source.confounds, write_runs=True,
            source=source.describe())
        for path in written:
            print(path)
        if args.write_back:
            from ablate.export import mlflow

            settings = {"selection": selection.settings(), "margins": margins, "alpha": args.alpha,
                        "correction": args.correction, "pairs": pairs, "sequential": looks, "spending": spending}
            result = mlflow.write_verdicts(client, source, out, settings)
            print(result.describe())
    return 0


def _folder_name(name: str) -> str:
    """An experiment name as a folder name in the current folder (``ablate/x`` -> ``ablate_x``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "mlflow"


# ---------------------------------------------------------------------------- export
def _cmd_export(args) -> int:
    from ablate.export import mlflow

    summary = mlflow.export_study(args.results, study=args.study, tracking_uri=args.tracking_uri,
                                  experiment=args.experiment)
    print(summary.describe())
    print(f"view: mlflow ui --backend-store-uri {summary.tracking_uri}")
    return 0


# ----------------------------------------------------------------------------- probe
def _cmd_probe(args) -> int:
    from ablate.api import load_grid
    from ablate.execution import probe
    from ablate.execution.preflight import check_environment

    grid = load_grid(args.grid)
    check_environment(grid)
    result = probe.probe(grid, steps=args.steps, every=args.every, device=args.device, seed=args.seed,
                         log=sys.stderr)
    out = Path(args.out) if args.out else Path(args.results) / grid.study / "probe"
    written = [probe.write_csv(result, out / "probe.csv")]
    text = probe.summary_text(result)
    from ablate import files
    from ablate.analysis.escape import markdown_document

    files.write_text(out / "probe.md", markdown_document(text))
    written.append(out / "probe.md")
    if not args.no_figures:
        import pandas as pd

        from ablate.analysis.figures import probe as probe_figure
        from ablate.analysis.figures._style import save_figure

        save_figure(probe_figure.distance_by_step(pd.read_csv(out / "probe.csv")), out / "probe.png")
        written.append(out / "probe.png")
    print(text)
    for path in written:
        print(path)
    return 0


# ---------------------------------------------------------------------------- status
def _cmd_status(args) -> int:
    from ablate import api
    from ablate.execution.status import format_status, grid_status
    from ablate.execution.store import RunStore

    grid = api.load_grid(args.grid)
    runs = api.plan(grid, only=args.only, seeds=args.seeds)
    print(format_status(grid_status(runs, RunStore(args.results, grid.study))))
    if grid.analysis.sequential is not None:
        print(_SEQUENTIAL_NOTE)
    return 0


_SEQUENTIAL_NOTE = ("note: the grid has `analysis.sequential`: `run` gives seeds only to arms whose comparisons are "
                    "undecided, so runs listed as pending may never be needed")


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
        code = ("import json\nfrom ablate import backends\nfrom ablate.backends.models import MODELS\n"
                "from ablate.errors import BackendError\n"
                f"b = backends.load({name!r})\nout = {{}}\nfor m in MODELS.names():\n    try:\n"
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


def _cmd_plugins(args) -> int:
    from ablate import catalog

    for point, entries in catalog.describe().items():
        print(f"{point}:")
        width = max(len(n) for n, _ in entries)
        for name, description in entries:
            print(f"  {name:<{width}}  {description}")
    print("Grids may also name their own models ({name, torch: 'module:function', keras: 'module:function'}), "
          "datasets ({name, loader: 'module:function'}), tricks ({name: {targets, batch, torch_loss, keras_loss, "
          "params}}) and arms ({name: {method, params, train}}); installed packages register models, datasets and "
          "tricks under the entry-point groups ablate.models, ablate.datasets and ablate.tricks.")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    from ablate.execution.progress import format_table

    print(format_table(rows))

"""The divergence probe: where do two runs that should be identical part?

``ablate probe GRID`` trains the grid's runs (its first seed, repeat 0) side by side for N
optimiser steps, from shared initial weights, feeding every run of a (dataset, model, seed,
eps) group the batches the runner would feed it. Every K steps it records each run's
training loss (and at step 1) and the relative L2 distance ``||w_a - w_b|| / ||w_a||`` between paired
runs' weights (every weight, batch-norm statistics included, in the shared layout of
:mod:`ablate.backends.weights`). At every step it checks whether a pair's losses differ by
more than :data:`LOSS_TOLERANCE` relative, and keeps the first step they do.

Pair kinds (taken from each arm's smoothing method, never from arm names). Two arms pair
only when they are the same apart from the method: the same train settings (an arm `calm`
with method explicit and momentum 0.5 is no control for `loss`) and the same trick params.
Every pair is labelled by its arms' names:

* ``explicit vs loss``: same backend and seed; the objectives are identical, so on the CPU
  the runs should never part;
* ``same run twice``: one run trained twice; the nondeterminism floor (0 on the CPU);
* ``across backends``: the same arm and seed on two backends, from shared weights; where
  the frameworks' numerics part;
* ``none vs explicit``: a real difference; parts at step 1 (the positive control).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ablate import tricks
from ablate.config import Grid, RunSpec
from ablate.errors import ConfigError
from ablate.execution.runner import (batch_rngs, batch_step, bound_loss, host_batches, loss_smoothing, run_targets, run_trick,
                                     soft_targets)

LOSS_TOLERANCE = 1e-6  # relative loss difference at which a pair counts as parted
KINDS = ("explicit vs loss", "same run twice", "across backends", "none vs explicit")
COLUMNS = ("step", "kind", "arms", "dataset", "model", "seed", "smoothing", "run_a", "run_b",
           "loss_a", "loss_b", "relative_loss_difference", "relative_distance")


@dataclass(frozen=True)
class PairSummary:
    """One pair's outcome: ``parted_at`` is the first step whose losses differ by more than
    :data:`LOSS_TOLERANCE` relative (None if they never did), ``final_distance`` the last
    recorded relative weight distance."""

    kind: str
    run_a: str
    run_b: str
    parted_at: int | None
    final_distance: float
    arms: str = ""  # "arm_a vs arm_b", by name


@dataclass(frozen=True)
class Cap:
    """``--steps`` beyond what a group trains: the probe stops at ``steps``, the group's
    ``epochs`` x ``per_epoch`` optimiser steps."""

    asked: int
    steps: int
    epochs: int
    per_epoch: int
    dataset: str
    model: str

    def describe(self) -> str:
        return (f"--steps {self.asked} is more than the {self.steps} optimiser steps the grid trains on "
                f"{self.dataset} with {self.model} ({self.epochs} epoch(s) x {self.per_epoch} batches); "
                f"the probe stops at step {self.steps}")


@dataclass(frozen=True)
class ProbeResult:
    rows: tuple[dict, ...]  # one per recorded step and pair, keys COLUMNS
    pairs: tuple[PairSummary, ...]
    steps: int
    every: int
    caps: tuple[Cap, ...] = ()  # where --steps was more than a group trains


def method(spec: RunSpec) -> str:
    """The smoothing method of ``spec``'s arm (none / explicit / loss)."""
    return getattr(spec, "method", spec.arm)


def _label(spec: RunSpec, copy: int = 0) -> str:
    eps = f" eps={spec.smoothing:g}" if method(spec) != "none" else ""
    return f"{spec.backend} {spec.arm}{eps}" + (" (again)" if copy else "")


def plan_pairs(specs: Sequence[RunSpec]) -> list[tuple[str, int, int]]:
    """Pairs among ``specs`` (one group: same dataset, model and seed) as (kind, i, j).

    ``same run twice`` pairs each backend's first run with a copy appended after ``specs``
    (index ``len(specs) + k`` for the k-th backend).
    """
    pairs: list[tuple[str, int, int]] = []
    n = len(specs)
    backends = list(dict.fromkeys(s.backend for s in specs))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = specs[i], specs[j]
            ma, mb = method(a), method(b)
            if not same_but_method(a, b):
                continue
            if a.backend == b.backend:
                if {ma, mb} == {"explicit", "loss"} and a.smoothing == b.smoothing:
                    pairs.append(("explicit vs loss", *((i, j) if ma == "explicit" else (j, i))))
                elif {ma, mb} == {"none", "explicit"}:
                    pairs.append(("none vs explicit", *((i, j) if ma == "none" else (j, i))))
            elif a.arm == b.arm and a.smoothing == b.smoothing:
                pairs.append(("across backends", i, j))
    for k, backend in enumerate(backends):
        first = next(i for i, s in enumerate(specs) if s.backend == backend)
        pairs.append(("same run twice", first, n + k))
    return pairs


def same_but_method(a: RunSpec, b: RunSpec) -> bool:
    """Whether two runs' arms differ in nothing but their method: train settings (the time
    limit aside) and trick params alike."""
    return (dataclasses.replace(a.train, timeout=None) == dataclasses.replace(b.train, timeout=None)
            and dict(a.params) == dict(b.params))


def arms_label(a: RunSpec, b: RunSpec) -> str:
    """A pair by its arms' names: ``calm vs loss``; one arm on two backends names the backends."""
    if a.arm == b.arm:
        return f"{a.arm} ({a.backend} vs {b.backend})" if a.backend != b.backend else f"{a.arm} (twice)"
    return f"{a.arm} vs {b.arm}"


def _batches(spec: RunSpec, data, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(x, targets, lr) for the first ``steps`` optimiser steps, exactly as the runner makes them.

    Mirrors :func:`ablate.execution.runner._train`: ``default_rng(seed)`` draws each epoch's
    permutation and the augmentation, the `explicit` arm's targets are smoothed here.
    """
    cfg = spec.train
    trick = run_trick(spec)
    trick_rng = tricks.trick_rng(spec.source_seed("augment"), trick.name)
    targets = run_targets(spec, data.y_train, data.num_classes, trick_rng)
    mix = batch_step(spec, trick)
    order_rng, rng = batch_rngs(spec)
    n = len(data.x_train)
    per_epoch = math.ceil(n / cfg.batch_size)
    done = 0
    for epoch in range(cfg.epochs):
        order = order_rng.permutation(n)
        for _, idx, xb, lr in host_batches(data.x_train, order, rng, cfg, epoch, per_epoch):
            if done == steps:
                return
            tb = targets[idx]
            if mix is not None:
                xb, tb = mix(xb, tb, trick_rng)
            yield xb, tb, lr
            done += 1


def total_steps(spec: RunSpec, n_train: int) -> int:
    return spec.train.epochs * math.ceil(n_train / spec.train.batch_size)


def probe_group(specs: Sequence[RunSpec], backends: dict, data, *, steps: int, every: int,
                initial_weights) -> tuple[list[dict], list[PairSummary]]:
    """Train one group's runs in lockstep; see the module doc. ``backends``: name -> backend."""
    from ablate.backends.weights import relative_distance

    copies = list(dict.fromkeys(s.backend for s in specs))
    runs = list(specs) + [next(s for s in specs if s.backend == b) for b in copies]
    labels = [_label(s) for s in specs] + [_label(s, copy=1) for s in runs[len(specs):]]
    pairs = plan_pairs(specs)
    trainers = []
    for spec in runs:
        kw = {"initial_weights": initial_weights} if initial_weights is not None else {}
        trainers.append(backends[spec.backend].create_trainer(
            model=spec.model, input_shape=data.input_shape, num_classes=data.num_classes, train=spec.train,
            loss_smoothing=loss_smoothing(spec), seed=spec.seed, soft_targets=soft_targets(spec),
            factory=spec.model_factory, search_paths=(spec.origin,) if spec.origin else (),
            loss=bound_loss(spec), **kw))
    streams = [_batches(spec, data, steps) for spec in runs]
    parted: dict[int, int | None] = {p: None for p in range(len(pairs))}
    losses = [math.nan] * len(runs)
    rows: list[dict] = []
    distances = [math.nan] * len(pairs)
    first = specs[0]

    def record(step: int) -> None:
        shared = [t.shared_weights() for t in trainers]
        for p, (kind, i, j) in enumerate(pairs):
            distances[p] = relative_distance(shared[i], shared[j])
            rows.append({"step": step, "kind": kind, "arms": arms_label(runs[i], runs[j]),
                         "dataset": first.dataset.name, "model": first.model,
                         "seed": first.seed, "smoothing": runs[j].smoothing or runs[i].smoothing,
                         "run_a": labels[i], "run_b": labels[j], "loss_a": losses[i], "loss_b": losses[j],
                         "relative_loss_difference": _relative(losses[i], losses[j]),
                         "relative_distance": distances[p]})

    record(0)
    for step in range(1, steps + 1):
        for r, (trainer, stream) in enumerate(zip(trainers, streams)):
            xb, yb, lr = next(stream)
            losses[r] = trainer.train_step(xb, yb, lr)
        for p, (_, i, j) in enumerate(pairs):
            if parted[p] is None and _relative(losses[i], losses[j]) > LOSS_TOLERANCE:
                parted[p] = step
        if step % every == 0 or step in (1, steps):  # step 1 shows where the controls start
            record(step)
    summaries = [PairSummary(kind, labels[i], labels[j], parted[p], distances[p], arms_label(runs[i], runs[j]))
                 for p, (kind, i, j) in enumerate(pairs)]
    return rows, summaries


def _relative(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale > 0 else 0.0


def probe(grid: Grid, *, steps: int = 200, every: int = 10, device: str = "cpu",
          seed: int | None = None, log=None) -> ProbeResult:
    """Run the probe over ``grid``'s first seed (or ``seed``); see the module doc.

    ``--steps`` beyond what a group trains (its epochs x batches) is capped there: each cap is
    written to ``log`` (a text stream) before that group trains, and kept in the result.
    """
    from ablate import backends as registry
    from ablate.backends import weights
    from ablate.data.catalogue import load_dataset

    if steps < 1:
        raise ConfigError(f"--steps: expected an integer >= 1, but got {steps}")
    if every < 1:
        raise ConfigError(f"--every: expected an integer >= 1, but got {every}")
    seed = grid.seeds[0] if seed is None else seed
    specs = [dataclasses.replace(s, pairing="cross-backend") for s in grid.runs()
             if s.repeat == 0 and s.seed == seed]
    if not specs:
        raise ConfigError(f"--seed: expected one of the grid's seeds {list(grid.seeds)}, but got {seed}")
    loaded = {}
    for name in dict.fromkeys(s.backend for s in specs):
        loaded[name] = registry.load(name)
        loaded[name].configure(device=device, threads=None, deterministic=True)
    rows: list[dict] = []
    summaries: list[PairSummary] = []
    caps: list[Cap] = []
    used_steps = steps
    planned = []  # (runs, data, steps, initial weights) per group, all planned before any trains
    for dataset in grid.datasets:
        data = load_dataset(dataset.name, path=dataset.path, loader=dataset.loader,
                            search_paths=(grid.base_dir,) if grid.base_dir else (), train_size=dataset.train_size,
                            test_size=dataset.test_size, val_fraction=dataset.val_fraction,
                            preprocess=dataset.preprocess, image_size=dataset.image_size,
                            split_seed=specs[0].source_seed("split"), bootstrap=dataset.bootstrap)
        for model in grid.model_names:
            group = [s for s in specs if s.dataset == dataset and s.model == model]
            user = any(s.model_factory for s in group)
            initial = (weights.draw(model, data.input_shape, data.num_classes, specs[0].source_seed("init"))
                       if not user and weights.has_layout(model) else None)
            if initial is None:
                # Without a shared layout each backend draws its own weights: no cross pairs.
                group = [s for s in group if s.backend == group[0].backend]
            # `none` pairs with every eps; each eps is its own group with the `none` run.
            for eps in sorted({s.smoothing for s in group if method(s) != "none"}) or [0.0]:
                sub = [s for s in group if method(s) == "none" or s.smoothing == eps]
                shortest = min(sub, key=lambda s: total_steps(s, len(data.x_train)))
                n_steps = min(steps, total_steps(shortest, len(data.x_train)))
                if n_steps < steps:
                    cap = Cap(steps, n_steps, shortest.train.epochs,
                              math.ceil(len(data.x_train) / shortest.train.batch_size), dataset.name, model)
                    if cap not in caps:
                        caps.append(cap)
                used_steps = min(used_steps, n_steps)
                planned.append((sub, data, n_steps, initial))
    for cap in caps if log is not None else ():
        print(f"note: {cap.describe()}", file=log, flush=True)
    for sub, data, n_steps, initial in planned:
        r, p = probe_group(sub, loaded, data, steps=n_steps, every=every, initial_weights=initial)
        rows += r
        summaries += p
    return ProbeResult(tuple(rows), tuple(summaries), used_steps, every, tuple(caps))


def write_csv(result: ProbeResult, path: Path) -> Path:
    """probe.csv, atomically, with formula-like text cells neutralised (see ablate.analysis.escape)."""
    import io

    from ablate import files
    from ablate.analysis.escape import csv_cell

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in result.rows)
    return files.write_text(path, buffer.getvalue())


def summary_text(result: ProbeResult) -> str:
    """Markdown: per pair kind, the first step at which a pair's losses part, and the distance."""
    lines = ["## Divergence probe", "",
             f"{result.steps} optimiser steps from shared initial weights; weights compared every "
             f"{result.every} steps (relative L2 distance); a pair parts at the first step whose losses "
             f"differ by more than {LOSS_TOLERANCE:g} relative.", ""]
    lines += [f"Capped: {cap.describe()}." for cap in result.caps] + ([""] if result.caps else [])
    for kind in KINDS:
        mine = [p for p in result.pairs if p.kind == kind]
        if not mine:
            continue
        parted = [p.parted_at for p in mine if p.parted_at is not None]
        when = (f"first parted at step {min(parted)} ({len(parted)} of {len(mine)} pair(s) parted)"
                if parted else f"never parted in {result.steps} steps ({len(mine)} pair(s))")
        worst = max((p.final_distance for p in mine), default=math.nan)
        arms = ", ".join(dict.fromkeys(p.arms for p in mine if p.arms))
        lines.append(f"- **{kind}** (arms {arms}): {when}; largest final relative distance {worst:.3g}."
                     if arms else f"- **{kind}**: {when}; largest final relative distance {worst:.3g}.")
        for p in mine:
            at = f"step {p.parted_at}" if p.parted_at is not None else "never"
            lines.append(f"  - {p.run_a} vs {p.run_b}: parted {at}, final distance {p.final_distance:.3g}")
    return "\n".join(lines) + "\n"

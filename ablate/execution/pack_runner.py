"""The training loop of :mod:`ablate.execution.runner` for a pack: K runs trained as one.

:func:`execute_pack` trains runs grouped by :mod:`ablate.execution.packs`. Every member
keeps what the unpacked run would have: its seed's initial weights, its batch order and augmentation
draws from ``np.random.default_rng(seed)``, its own targets and loss smoothing, and its own
outcome. A member whose loss stops being finite is ``diverged`` (checked once per epoch,
the error names the epoch) and masked; the others go on.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ablate.analysis import calibration
from ablate.config import RunSpec
from ablate.data.augment import draw_augmentation
from ablate.data.catalogue import Dataset
from ablate.backends.base import PACKS
from ablate.errors import BackendError, ConfigError
from ablate.execution.packs import pack_key
from ablate import tricks
from ablate.execution.runner import (HISTORY_KEYS, RunOutcome, _mix_drawer, batch_rngs, bound_loss, final_metrics,
                                     loss_smoothing, run_targets, run_trick, smooth_labels,
                                     smoothed_cross_entropy, trainer_options)
from ablate.execution.schedules import learning_rate
from ablate.statuses import COMPLETED, DIVERGED, FAILED


class PackOutOfMemory(Exception):
    """A pack of more than one run did not fit its device; the caller splits it and tries again."""


def execute_pack(specs: Sequence[RunSpec], backend: Any, data: Dataset,
                 on_epoch: Callable[[int, int, int, Mapping[str, float]], None] | None = None) -> list[RunOutcome]:
    """Train ``specs`` (one pack key) as one pack; one outcome per spec, in order.

    ``on_epoch(member, epoch, epochs, row)`` follows each member's epoch. A crash fails every
    member with the traceback; ``seconds`` of each member is its share of the pack's time.
    Raises only :class:`PackOutOfMemory`: the backend ran out of device memory with more than
    one member (nothing was stored; a smaller pack may fit).
    """
    started = time.perf_counter()
    outcomes = [RunOutcome(status=COMPLETED, error=None) for _ in specs]
    too_large = False
    try:
        if len({pack_key(s) for s in specs}) != 1:
            raise ConfigError("a pack's runs must share backend, dataset, model and training settings")
        _train_pack(list(specs), backend, data, outcomes, on_epoch)
    except Exception as exc:  # noqa: BLE001 - failures are results
        too_large = len(specs) > 1 and backend.is_out_of_memory(exc)
        error = traceback.format_exc(limit=20)
        for out in outcomes:
            if out.status == COMPLETED:
                out.status, out.error = FAILED, error
    if too_large:  # raised out here: the caught error's traceback would hold the pack's tensors
        backend.release_memory()
        raise PackOutOfMemory(f"a pack of {len(specs)} runs ran out of device memory")
    share = (time.perf_counter() - started) / max(1, len(specs))
    for out in outcomes:
        out.seconds = share
    return outcomes


def fit_pack_size(specs: Sequence[RunSpec], backend: Any, data: Dataset) -> int:
    """``--pack auto`` on this worker: how many of ``specs`` (one pack key) its device's free memory holds.

    One member is built and its footprint measured on a real batch (``Backend.pack_member_bytes``);
    1 when the backend reports no device memory or does not train packs.
    """
    from ablate.execution.packs import auto_pack_size

    free = backend.free_device_memory()
    if not free or not backend.supports(PACKS):
        return 1
    spec = specs[0]
    trainer = backend.create_trainer(**trainer_options(spec, data))
    need = backend.pack_member_bytes(trainer, data.x_train[:spec.train.batch_size], num_train=len(data.x_train),
                                     num_classes=data.num_classes)
    del trainer
    backend.release_memory()
    return auto_pack_size(free_bytes=free, member_bytes=need, shared_bytes=4 * data.x_train.size)


def member_targets(specs: Sequence[RunSpec], data: Dataset, trick_rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """(K, N, C) float32: each member's training targets with its loss smoothing folded in.

    y·(1−ε)+ε/K is what torch's label_smoothing does to probability targets, so one loss
    serves members of any ε.
    """
    out = []
    for spec, rng in zip(specs, trick_rngs):
        targets = run_targets(spec, data.y_train, data.num_classes, rng)
        eps = loss_smoothing(spec)
        out.append(smooth_labels(targets, eps) if eps > 0 else targets)
    return np.stack(out)


def _train_pack(specs: list[RunSpec], backend: Any, data: Dataset, outcomes: list[RunOutcome],
                on_epoch) -> None:
    if not backend.supports(PACKS):
        raise BackendError(f"backend {backend.name!r} does not train packs; run with --pack 1")
    cfg = specs[0].train
    n = len(data.x_train)
    member_tricks = [run_trick(s) for s in specs]
    trick_rngs = [tricks.trick_rng(s.source_seed("augment"), t.name) for s, t in zip(specs, member_tricks)]
    targets = member_targets(specs, data, trick_rngs)
    # Members share a pack key, so one trick loss (or none) serves them all.
    eps = [t.effective_smoothing(s.smoothing) if t.smooth_loss else 0.0 for s, t in zip(specs, member_tricks)]
    pack = backend.create_pack(member_options=[trainer_options(s, data) for s in specs],
                               seeds=[s.source_seed("init") for s in specs], x_train=data.x_train, targets=targets,
                               loss_fn=bound_loss(specs[0], member_tricks[0]))
    mix_draws = [_mix_drawer(s, t) for s, t in zip(specs, member_tricks)]
    hw = tuple(data.x_train.shape[1:3]) if data.is_image else None
    order_rngs, rngs = zip(*(batch_rngs(s) for s in specs))
    steps = math.ceil(n / cfg.batch_size)
    monitor = np.random.default_rng(0).permutation(n)[:min(n, cfg.monitor_size)] if cfg.monitor_size else None
    h, w = data.x_train.shape[1:3] if data.is_image else (0, 0)
    live = list(range(len(specs)))

    def diverge(member: int, why: str) -> None:
        outcomes[member].status, outcomes[member].error = DIVERGED, why
        pack.kill(member)
        live.remove(member)

    val_probs = None
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        orders = [rng.permutation(n) for rng in order_rngs]
        lr = cfg.lr
        for step in range(steps):
            sl = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
            idx = np.stack([order[sl] for order in orders])  # (K, B)
            draws = None
            if cfg.augment is not None:
                a = cfg.augment
                draws = [draw_augmentation(idx.shape[1], h, w, rng, width_shift=a.width_shift,
                                           height_shift=a.height_shift, horizontal_flip=a.horizontal_flip)
                         for rng in rngs]
            lr = learning_rate(cfg.schedule, base_lr=cfg.lr, epoch=epoch, epochs=cfg.epochs,
                               step_in_epoch=step, steps_per_epoch=steps, power=cfg.power)
            mixes = None
            if mix_draws[0] is not None:
                mixes = [draw(r, idx.shape[1], hw) for draw, r in zip(mix_draws, trick_rngs)]
            pack.step(idx, draws, lr, mixes)
        totals = pack.take_totals()  # the one sync of the epoch
        for m in list(live):
            if not math.isfinite(totals[m]):
                diverge(m, f"non-finite training loss ({totals[m]}) in epoch {epoch + 1} (checked once per epoch)")
        if not live:
            return
        val_probs = pack.predict(data.x_val)
        train_probs = pack.predict(data.x_train[monitor]) if monitor is not None else None
        seconds = (time.perf_counter() - t0) / len(specs)
        for m in list(live):
            if not np.all(np.isfinite(val_probs[m])):
                diverge(m, f"non-finite validation probabilities after epoch {epoch + 1}")
                continue
            row: dict[str, float] = {
                "epoch": epoch + 1, "lr": lr, "train_objective": totals[m] / n,
                "val_objective": smoothed_cross_entropy(val_probs[m], data.y_val, eps[m]),
                "val_nll": calibration.nll(val_probs[m], data.y_val),
                "val_accuracy": calibration.accuracy(val_probs[m], data.y_val), "seconds": seconds}
            if train_probs is not None:
                row["train_nll"] = calibration.nll(train_probs[m], data.y_train[monitor])
                row["train_accuracy"] = calibration.accuracy(train_probs[m], data.y_train[monitor])
            else:
                row["train_nll"] = row["train_accuracy"] = float("nan")
            for key in HISTORY_KEYS:
                outcomes[m].history[key].append(float(row[key]))
            if on_epoch is not None:
                on_epoch(m, epoch + 1, cfg.epochs, row)
        if not live:
            return

    test_probs = pack.predict(data.x_test)
    for m in list(live):
        if not np.all(np.isfinite(test_probs[m])):
            diverge(m, "non-finite test probabilities after training")
            continue
        outcomes[m].metrics = final_metrics(test_probs[m], data.y_test)
        outcomes[m].arrays = {"test_probs": test_probs[m].astype(np.float32),
                              "test_labels": data.y_test.astype(np.int64),
                              "val_probs": val_probs[m].astype(np.float32),
                              "val_labels": data.y_val.astype(np.int64)}

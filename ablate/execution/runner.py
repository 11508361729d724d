"""Train and evaluate one run with a backend. The core owns everything that must be paired.

Batch order and augmentation draws come from ``np.random.default_rng(seed)``, never from a
framework's global state, so every arm and smoothing value with the same seed sees the
same batches in the same order. A trick's own draws (mixup's λ, say) come from its own
generator (:func:`ablate.tricks.trick_rng`), so they shift nothing else. Smoothed training
targets (the `explicit` and `both` tricks) and a trick's targets part are made here, on a
copy; validation and test labels stay hard. Every metric is computed here from
probabilities, with the same code for every backend.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate import tricks
from ablate.analysis import calibration
from ablate.data.augment import augment_batch, draw_augmentation
from ablate.config import RunSpec, framework_of
from ablate.data.catalogue import Dataset
from ablate.errors import DivergedError
from ablate.execution.schedules import learning_rate
from ablate.backends.base import DEVICE_DATA
from ablate.registry import resolve
from ablate.statuses import COMPLETED, DIVERGED, FAILED, Status

HISTORY_KEYS = ("epoch", "lr", "train_objective", "train_nll", "train_accuracy",
                "val_objective", "val_nll", "val_accuracy", "seconds")


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """labels: (n,) ints -> (n, K) float32 one-hot."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def smooth_labels(targets: np.ndarray, eps: float) -> np.ndarray:
    """The Keras notebook's ``smooth_labels``, y*(1-eps) + eps/K, returned as a new array.

    targets: (n, K) one-hot. Unlike the notebook's in-place version, the caller's array is
    never modified.
    """
    k = targets.shape[1]
    return (targets * (1.0 - eps) + eps / k).astype(np.float32)


def smoothed_cross_entropy(probs: np.ndarray, labels: np.ndarray, eps: float) -> float:
    """Mean cross-entropy against targets smoothed by eps; eps=0 is the plain NLL.

    probs: (n, K) probabilities; labels: (n,) hard labels. This is what Keras reports as
    the `loss` arm's validation loss, which is why that arm's validation loss sits above
    its NLL.
    """
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))
    nll = -logp[np.arange(len(labels)), labels]
    uniform = -logp.mean(axis=1)
    return float(np.mean((1.0 - eps) * nll + eps * uniform))


@dataclass
class RunOutcome:
    status: Status  # see ablate.statuses
    error: str | None
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    metrics: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0


def final_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The record's headline metrics; the report recomputes them from the same arrays."""
    return {"accuracy": calibration.accuracy(probs, labels), "ece": calibration.ece(probs, labels),
            "nll": calibration.nll(probs, labels), "brier": calibration.brier(probs, labels)}


def run_trick(spec: RunSpec) -> tricks.Trick:
    """``spec``'s trick: the registered entry, or the grid-declared trick the spec carries."""
    t = spec.trick
    if t is None:
        return tricks.get(spec.method)
    refs = ", ".join(f"{p} {getattr(t, p)}" for p in t.parts())
    return tricks.Trick(name=t.name, description=t.description or f"user trick {t.name!r} ({refs})",
                        phrase=t.name, targets=t.targets, batch=t.batch, torch_loss=t.torch_loss,
                        keras_loss=t.keras_loss, params=dict(t.params))


def trick_part(spec: RunSpec, trick: tricks.Trick, part: str) -> Callable[..., Any] | None:
    """One part of ``trick`` as a callable (a reference resolves from the grid's folder first), or None."""
    value = getattr(trick, part)
    if value is None or callable(value):
        return value
    return resolve(value, (spec.origin,) if spec.origin else ())


def bound_loss(spec: RunSpec, trick: tricks.Trick | None = None) -> Callable[..., Any] | None:
    """The trick's loss for ``spec``'s framework with its params bound, or None (the framework's cross-entropy)."""
    trick = trick or run_trick(spec)
    fn = trick_part(spec, trick, tricks.LOSS_PART[framework_of(spec.backend)])
    if fn is None:
        return None
    params = dict(spec.params)

    def loss(a, b):
        return fn(a, b, **params)

    loss.__name__ = getattr(fn, "__name__", "trick_loss")  # Keras names a loss after its function
    return loss


def soft_targets(spec: RunSpec) -> bool:
    """Whether ``spec``'s trick hands the trainer smoothed targets (explicit, both)."""
    return run_trick(spec).smooth_targets and spec.smoothing > 0


def run_targets(spec: RunSpec, labels: np.ndarray, num_classes: int,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """The training targets ``(n, K)`` float32 the trainer is handed: one-hot, smoothed when the trick
    smooths them, then through the trick's targets part (drawing from ``rng``, the trick's generator)."""
    hard = one_hot(labels, num_classes)
    targets = smooth_labels(hard, spec.smoothing) if soft_targets(spec) else hard
    trick = run_trick(spec)
    part = trick_part(spec, trick, "targets")
    if part is None:
        return targets
    out = part(targets.copy(), rng if rng is not None else tricks.trick_rng(spec.source_seed("augment"), trick.name),
               **spec.params)
    out = np.asarray(out)
    if out.shape != targets.shape or out.dtype != np.float32:
        raise ValueError(f"trick {trick.name!r}: targets part returned {out.dtype} {out.shape}, "
                         f"expected float32 {targets.shape}")
    return out


def loss_smoothing(spec: RunSpec) -> float:
    """The framework loss's own smoothing: eps when the trick smooths in the loss, else 0."""
    return spec.smoothing if run_trick(spec).smooth_loss else 0.0


def trainer_options(spec: RunSpec, data: Dataset) -> dict[str, Any]:
    """Every ``create_trainer`` keyword for ``spec`` on ``data``; packs build members with the same."""
    return dict(model=spec.model, input_shape=data.input_shape, num_classes=data.num_classes, train=spec.train,
                loss_smoothing=loss_smoothing(spec), seed=spec.source_seed("init"), soft_targets=soft_targets(spec),
                factory=spec.model_factory, search_paths=(spec.origin,) if spec.origin else (),
                loss=bound_loss(spec), **shared_initial_weights(spec, data.input_shape, data.num_classes))


def batch_step(spec: RunSpec, trick: tricks.Trick) -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """The trick's per-step batch part with its params bound: (x, targets, rng) -> (x, targets), or None."""
    fn = trick_part(spec, trick, "batch")
    if fn is None:
        return None
    params = dict(spec.params)

    def step(x: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return fn(x, targets, rng, **params)

    return step


def execute(spec: RunSpec, backend, dataset: Dataset,
            on_epoch: Callable[[int, int, Mapping[str, float]], None] | None = None) -> RunOutcome:
    """Train ``spec`` on ``dataset`` with an already configured backend; never raises.

    A crash becomes status ``failed`` with the traceback; a non-finite loss becomes
    ``diverged`` and stops the run at once.
    """
    started = time.perf_counter()
    outcome = RunOutcome(status=COMPLETED, error=None)
    try:
        _train(spec, backend, dataset, outcome, on_epoch)
    except DivergedError as exc:
        outcome.status, outcome.error = DIVERGED, str(exc)
    except Exception:  # noqa: BLE001 - failures are results
        outcome.status, outcome.error = FAILED, traceback.format_exc(limit=20)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _train(spec: RunSpec, backend, data: Dataset, outcome: RunOutcome,
           on_epoch: Callable[[int, int, Mapping[str, float]], None] | None) -> None:
    cfg = spec.train
    k = data.num_classes
    eps = spec.smoothing
    trick = run_trick(spec)
    trick_rng = tricks.trick_rng(spec.source_seed("augment"), trick.name)
    targets = run_targets(spec, data.y_train, k, trick_rng)
    if cfg.augment is not None and not data.is_image:
        raise ValueError(f"train.augment shifts and flips images, but {data.name} holds feature vectors")
    trainer = backend.create_trainer(**trainer_options(spec, data))
    mix_batch = batch_step(spec, trick)

    order_rng, rng = batch_rngs(spec)
    n = len(data.x_train)
    steps = math.ceil(n / cfg.batch_size)
    # A fixed subset, the same for every run, for the end-of-epoch training metrics.
    monitor = np.random.default_rng(0).permutation(n)[:min(n, cfg.monitor_size)] if cfg.monitor_size else None
    # What the optimiser's loss is against hard labels: the loss's own smoothing, compounded
    # with the targets' when both smooth (plain NLL for every other trick).
    objective_eps = trick.effective_smoothing(eps) if trick.smooth_loss else 0.0
    hist = outcome.history
    # A trainer that can hold the training set on its device gets only indices and
    # augmentation draws per step, and is read back once per epoch (see `_device_epoch`).
    # A trick's numpy batch part needs the batch on the host.
    device_ok = trainer.supports(DEVICE_DATA) and not trick.host_only()
    if trainer.supports(DEVICE_DATA) and trick.host_only():
        print(f"== trick {trick.name!r} has a numpy batch part: this run trains on the host path, "
              "not on device-resident data", flush=True)
    on_device = trainer.bind_data(data.x_train, targets) if device_ok else None
    hw = tuple(data.x_train.shape[1:3]) if data.is_image else None
    mix_draw = _mix_drawer(spec, trick)

    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = order_rng.permutation(n)
        total, seen = 0.0, 0
        if on_device is not None:
            total, seen, lr = _device_epoch(on_device, order, rng, cfg, epoch, steps, data.x_train.shape[1:3],
                                            mix=(lambda b: mix_draw(trick_rng, b, hw)) if mix_draw else None)
        for step, idx, xb, lr in (host_batches(data.x_train, order, rng, cfg, epoch, steps)
                                  if on_device is None else ()):
            tb = targets[idx]
            if mix_batch is not None:
                xb, tb = mix_batch(xb, tb, trick_rng)
            loss = trainer.train_step(xb, tb, lr)
            if not math.isfinite(loss):
                raise DivergedError(f"non-finite training loss ({loss}) at epoch {epoch + 1}, step {step + 1}")
            total += loss * len(idx)
            seen += len(idx)

        val_probs = trainer.predict(data.x_val)
        if not np.all(np.isfinite(val_probs)):
            raise DivergedError(f"non-finite validation probabilities after epoch {epoch + 1}")
        row: dict[str, float] = {
            "epoch": epoch + 1, "lr": lr, "train_objective": total / max(seen, 1),
            "val_objective": smoothed_cross_entropy(val_probs, data.y_val, objective_eps),
            "val_nll": calibration.nll(val_probs, data.y_val),
            "val_accuracy": calibration.accuracy(val_probs, data.y_val)}
        if monitor is not None:
            train_probs = trainer.predict(data.x_train[monitor])
            row["train_nll"] = calibration.nll(train_probs, data.y_train[monitor])
            row["train_accuracy"] = calibration.accuracy(train_probs, data.y_train[monitor])
        else:
            row["train_nll"] = row["train_accuracy"] = float("nan")
        row["seconds"] = time.perf_counter() - t0
        for key in HISTORY_KEYS:
            hist[key].append(float(row[key]))
        if on_epoch is not None:
            on_epoch(epoch + 1, cfg.epochs, row)

    test_probs = trainer.predict(data.x_test)
    if not np.all(np.isfinite(test_probs)):
        raise DivergedError("non-finite test probabilities after training")
    outcome.metrics = final_metrics(test_probs, data.y_test)
    outcome.arrays = {"test_probs": test_probs.astype(np.float32), "test_labels": data.y_test.astype(np.int64),
                      "val_probs": val_probs.astype(np.float32), "val_labels": data.y_val.astype(np.int64)}


def shared_initial_weights(spec: RunSpec, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    """The ``create_trainer`` keyword for ``spec``'s pairing: under ``cross-backend``, the
    (model, seed)'s weights drawn once in numpy, the same for every backend and arm.

    A built-in model's layout is planned in :mod:`ablate.backends.weights`; any other model's is
    read off the built model, so the keyword is a callable ``layout -> arrays`` that the backend
    calls with it (:func:`ablate.backends.weights.draw_layout`; preflight checked that every
    backend builds the same layout, so every backend draws the same arrays)."""
    if getattr(spec, "pairing", "within-backend") != "cross-backend":
        return {}
    from ablate.backends import weights

    if spec.model_factory is None and weights.has_layout(spec.model):
        return {"initial_weights": weights.draw(spec.model, tuple(input_shape), num_classes, spec.source_seed("init"))}
    seed = spec.source_seed("init")

    def draw_for(layout):
        return weights.draw_layout(layout, seed)

    return {"initial_weights": draw_for}


AUGMENT_STREAM = 1  # mixed into the augment seed when it has its own generator (see batch_rngs)


def batch_rngs(spec: RunSpec) -> tuple[np.random.Generator, np.random.Generator]:
    """(batch-order generator, augmentation generator) of ``spec``.

    When the ``order`` and ``augment`` seeds are equal (always under ``seeds: N``, and whenever
    ``augment`` follows ``order``) they are one generator, ``default_rng(seed)``, drawn in step
    order as before sources existed; otherwise augmentation draws come from their own
    ``default_rng([augment, AUGMENT_STREAM])``, so batch order does not move with them.
    """
    order = np.random.default_rng(spec.source_seed("order"))
    augment = spec.source_seed("augment")
    if augment == spec.source_seed("order"):
        return order, order
    return order, np.random.default_rng([augment, AUGMENT_STREAM])


def host_batches(x_train: np.ndarray, order: np.ndarray, rng: np.random.Generator, cfg, epoch: int,
                 steps: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, float]]:
    """One epoch's batches on the host: (step, indices, augmented x, learning rate) per step.

    order: (N,) this epoch's permutation; augmentation draws come from ``rng`` in step order,
    so every caller (the runner, the probe) sees the same batches for the same seed.
    """
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        xb = x_train[idx]
        if cfg.augment is not None:
            xb = augment_batch(xb, rng, width_shift=cfg.augment.width_shift, height_shift=cfg.augment.height_shift,
                               horizontal_flip=cfg.augment.horizontal_flip)
        lr = learning_rate(cfg.schedule, base_lr=cfg.lr, epoch=epoch, epochs=cfg.epochs,
                           step_in_epoch=step, steps_per_epoch=steps, power=cfg.power)
        yield step, idx, xb, lr


def _mix_drawer(spec: RunSpec, trick: tricks.Trick) -> Callable[..., Any] | None:
    """(rng, batch size, (H, W) or None) -> a MixDraw for a built-in batch trick, params bound; else None."""
    if trick.draw is None:
        return None
    params = dict(spec.params)
    return lambda rng, b, hw: trick.draw(rng, b, hw, **params)


def _device_epoch(on_device, order: np.ndarray, rng: np.random.Generator, cfg, epoch: int, steps: int,
                  hw: tuple[int, int], mix: Callable[[int], Any] | None = None) -> tuple[float, int, float]:
    """One epoch of steps on device-resident data; the same batches, draws and rates as the host loop.

    order: (N,) this epoch's permutation; mix: batch size -> the step's MixDraw (from the trick's
    own generator), or None. Returns (summed loss, examples seen, last lr). The loss is read
    once, at the end: a non-finite one is divergence, reported for this epoch.
    """
    seen, lr = 0, cfg.lr
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        draws = None
        if cfg.augment is not None:
            draws = draw_augmentation(len(idx), hw[0], hw[1], rng, width_shift=cfg.augment.width_shift,
                                      height_shift=cfg.augment.height_shift,
                                      horizontal_flip=cfg.augment.horizontal_flip)
        lr = learning_rate(cfg.schedule, base_lr=cfg.lr, epoch=epoch, epochs=cfg.epochs,
                           step_in_epoch=step, steps_per_epoch=steps, power=cfg.power)
        on_device.step(idx, draws, lr, mix(len(idx)) if mix is not None else None)
        seen += len(idx)
    total = on_device.take_total()
    if not math.isfinite(total):
        raise DivergedError(f"non-finite training loss ({total}) in epoch {epoch + 1} (checked once per epoch)")
    return total, seen, lr


def summarize_outcome(outcome: RunOutcome) -> dict[str, Any]:
    """The JSON-ready part of an outcome."""
    return {"status": outcome.status, "error": outcome.error, "history": outcome.history,
            "metrics": outcome.metrics, "seconds": outcome.seconds}

"""Learning-rate schedules as pure functions of (epoch, step), shared by every backend.

Each backend asks `learning_rate` for the rate before every optimiser step, so the
Keras and PyTorch arms of a study follow the same curve to the last bit.

- ``"constant"``: ``base_lr``.
- ``"polynomial"``: the Keras notebook's ``PolynomialDecay``, updated once per epoch:
  ``base_lr * (1 - epoch / epochs) ** power``.
- ``"one-cycle"``: ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults, updated
  every step: a cosine warm-up from ``base_lr / 25`` to ``base_lr`` over the first 30%
  of the steps, then a cosine anneal to ``base_lr / (25 * 1e4)``. Only the learning
  rate is scheduled; OneCycleLR's momentum cycling is not part of this module.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from ablate.errors import ConfigError

ScheduleName = Literal["constant", "polynomial", "one-cycle"]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)

# torch.optim.lr_scheduler.OneCycleLR defaults.
ONE_CYCLE_PCT_START = 0.3
ONE_CYCLE_DIV_FACTOR = 25.0
ONE_CYCLE_FINAL_DIV_FACTOR = 1e4


def learning_rate(
    name: ScheduleName,
    *,
    base_lr: float,
    epoch: int,
    epochs: int,
    step_in_epoch: int = 0,
    steps_per_epoch: int = 1,
    power: float = 1.0,
) -> float:
    """The learning rate for the optimiser step (`epoch`, `step_in_epoch`), both 0-based.

    `epochs` and `steps_per_epoch` give the whole run (``epochs * steps_per_epoch``
    steps); `power` is used by ``"polynomial"`` only.
    Raises ConfigError for an unknown name or a bad setting, ValueError for a position
    outside the run.
    """
    _check_settings(name, base_lr=base_lr, epochs=epochs, steps_per_epoch=steps_per_epoch, power=power)
    if not 0 <= epoch < epochs:
        raise ValueError(f"Expected `epoch` in 0..{epochs - 1}, but got {epoch}.")
    if not 0 <= step_in_epoch < steps_per_epoch:
        raise ValueError(f"Expected `step_in_epoch` in 0..{steps_per_epoch - 1}, but got {step_in_epoch}.")
    if name == "constant":
        return float(base_lr)
    if name == "polynomial":
        return float(base_lr * (1.0 - epoch / float(epochs)) ** power)
    return _one_cycle(base_lr, epoch * steps_per_epoch + step_in_epoch, epochs * steps_per_epoch)


def learning_rates(
    name: ScheduleName,
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int = 1,
    power: float = 1.0,
) -> np.ndarray:
    """The whole schedule: a float64 array of shape (epochs, steps_per_epoch)."""
    _check_settings(name, base_lr=base_lr, epochs=epochs, steps_per_epoch=steps_per_epoch, power=power)
    return np.array(
        [
            [
                learning_rate(
                    name,
                    base_lr=base_lr,
                    epoch=e,
                    epochs=epochs,
                    step_in_epoch=s,
                    steps_per_epoch=steps_per_epoch,
                    power=power,
                )
                for s in range(steps_per_epoch)
            ]
            for e in range(epochs)
        ],
        dtype=np.float64,
    )


def _check_settings(name: str, *, base_lr: float, epochs: int, steps_per_epoch: int, power: float) -> None:
    if name not in SCHEDULE_NAMES:
        raise ConfigError(f"Expected argument `schedule` to be one of {SCHEDULE_NAMES}, but got {name!r}.")
    if not (isinstance(base_lr, (int, float)) and math.isfinite(base_lr) and base_lr > 0):
        raise ConfigError(f"Expected argument `lr` to be a positive finite number, but got {base_lr!r}.")
    for field, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"Expected argument `{field}` to be an integer >= 1, but got {value!r}.")
    if not (isinstance(power, (int, float)) and math.isfinite(power) and power > 0):
        raise ConfigError(f"Expected argument `power` to be a positive finite number, but got {power!r}.")


def _one_cycle(max_lr: float, step: int, total_steps: int) -> float:
    # Mirrors OneCycleLR.get_lr (two phases, cosine) operation for operation, so the
    # values agree with torch's to the last bit rather than only approximately.
    initial_lr = max_lr / ONE_CYCLE_DIV_FACTOR
    min_lr = initial_lr / ONE_CYCLE_FINAL_DIV_FACTOR
    phases = (
        (float(ONE_CYCLE_PCT_START * total_steps) - 1, initial_lr, max_lr),
        (total_steps - 1, max_lr, min_lr),
    )
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return float(end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1))
        start_step = end_step
    raise AssertionError("unreachable: the last phase always matches")

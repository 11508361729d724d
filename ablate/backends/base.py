"""The backend contract: what the core needs from a training framework, and nothing more.

The core owns data, batch order, augmentation, label smoothing of targets (the
`explicit` arm), learning-rate schedules and every metric. A backend only builds a model,
takes optimiser steps on the batches it is handed and returns class probabilities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal, get_args

import numpy as np

from ablate.config import TrainConfig

# Optional parts of the contract. A trainer or backend lists those it implements in its
# `capabilities`; the core asks `supports(...)` instead of probing for attributes.
Capability = Literal["device_data", "shared_weights", "packs"]
CAPABILITIES: Final[tuple[Capability, ...]] = get_args(Capability)
DEVICE_DATA: Final[Capability] = "device_data"  # Trainer.bind_data: the training set held on the device
SHARED_WEIGHTS: Final[Capability] = "shared_weights"  # Trainer.shared_weights/shared_gradients (neutral layout)
PACKS: Final[Capability] = "packs"  # Backend.create_pack: K runs trained as one vectorised model


class Trainer(ABC):
    """One model with its optimiser, for one run.

    Inputs are float32 arrays as the data stores them: images channels-last ``x: (B, H, W, C)``,
    feature vectors ``x: (B, F)``; targets are ``(B, K)`` float32 probability vectors (one-hot,
    or smoothed when the arm's method smooths targets).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()  # among DEVICE_DATA, SHARED_WEIGHTS

    def supports(self, capability: Capability) -> bool:
        """Whether this trainer implements the optional part ``capability`` of the contract."""
        return capability in self.capabilities

    @abstractmethod
    def train_step(self, x: np.ndarray, targets: np.ndarray, lr: float) -> float:
        """One optimiser step at learning rate ``lr``; returns the batch's objective (mean loss)."""

    @abstractmethod
    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(n, K)`` float32 in inference mode (no dropout, BN running stats)."""

    @abstractmethod
    def gradients(self, x: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        """Gradients of the training objective w.r.t. each trainable weight, without updating.

        Used by the conformance suite to show that `explicit` and `loss` smoothing coincide.
        """

    @abstractmethod
    def weights(self) -> list[np.ndarray]:
        """Copies of the trainable weights, in a fixed order."""

    def bind_data(self, x_train: np.ndarray, targets: np.ndarray) -> Any:
        """(DEVICE_DATA) Hold the training set on the device once; returns the steps object the
        runner trains an epoch with (indices and augmentation draws per step, no host batches)."""
        raise NotImplementedError(f"{type(self).__name__} does not hold data on its device")

    def shared_weights(self) -> list[tuple[str, np.ndarray]]:
        """(SHARED_WEIGHTS) Every weight (batch-norm statistics included) in the neutral layout of
        :mod:`ablate.backends.weights`, by name; used by the divergence probe."""
        raise NotImplementedError(f"{type(self).__name__} has no shared weight layout")

    def shared_gradients(self, x: np.ndarray, targets: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(SHARED_WEIGHTS) :meth:`gradients` of the trainable weights, by neutral name and in the
        neutral layout."""
        raise NotImplementedError(f"{type(self).__name__} has no shared weight layout")


class Backend(ABC):
    """A framework adapter; one instance per worker process."""

    name: str
    capabilities: ClassVar[frozenset[Capability]] = frozenset()  # among PACKS

    def supports(self, capability: Capability) -> bool:
        """Whether this backend implements the optional part ``capability`` of the contract."""
        return capability in self.capabilities

    def create_pack(self, *, member_options: list[dict[str, Any]], seeds: list[int], x_train: np.ndarray,
                    targets: np.ndarray, loss_fn: Callable[..., object] | None = None) -> Any:
        """(PACKS) K runs as one vectorised trainer: each member built by :meth:`create_trainer`
        with its ``member_options``; targets ``(K, N, C)`` with loss smoothing folded in;
        ``loss_fn`` the members' one trick loss, or None for the framework's cross-entropy."""
        raise NotImplementedError(f"backend {self.name!r} does not train packs")

    def pack_member_bytes(self, trainer: Trainer, x_batch: np.ndarray, *, num_train: int, num_classes: int) -> int:
        """(PACKS) Device bytes one more pack member needs, measured on ``trainer`` with one
        training batch ``x_batch`` (B, ...), for ``--pack auto``."""
        raise NotImplementedError(f"backend {self.name!r} does not train packs")

    @abstractmethod
    def configure(self, *, device: str | None = None, threads: int | None = None,
                  deterministic: bool = True) -> None:
        """Pick the device (``"cpu"`` or ``"cuda"``), thread limits and determinism settings.

        Called once per process, before the first trainer is created.
        """

    @abstractmethod
    def create_trainer(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                       train: TrainConfig, loss_smoothing: float, seed: int, soft_targets: bool = False,
                       factory: str | None = None, search_paths: Sequence[str] = (),
                       initial_weights: list[tuple[str, np.ndarray]] | Callable[..., list] | None = None,
                       loss: Callable[..., object] | None = None) -> Trainer:
        """Build a model with weights drawn from ``seed`` and its optimiser.

        ``loss_smoothing`` > 0 selects the framework's own smoothed cross-entropy; 0 gives plain
        cross-entropy on the targets handed to ``train_step``. ``soft_targets`` says those
        targets are already smoothed (so they are not one-hot). ``factory`` is a user model's
        ``module:function`` (looked up in ``search_paths`` first); None builds the registered
        model ``model``. The framework is seeded with ``seed`` before the factory is called.
        ``initial_weights`` (``pairing: cross-backend``): named arrays in the neutral layout of
        :mod:`ablate.backends.weights` that replace the drawn weights, or a callable that takes
        the built model's neutral ``(name, shape)`` layout and returns them (a plug-in model);
        a mismatch is a one-line BackendError. ``loss``: a trick's loss in this framework's argument order, its params
        already bound, returning the batch mean; None is the framework's cross-entropy above.
        """

    def call_model(self, *, model: str, input_shape: tuple[int, ...], num_classes: int, x: np.ndarray,
                   factory: str | None = None, search_paths: Sequence[str] = (),
                   layout: bool = False) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]] | str | None]:
        """Build ``model`` (seeded with 0) and call it once in inference mode on ``x`` (as
        :class:`Trainer` inputs), for preflight. Returns its raw outputs as float64 numpy and,
        with ``layout``, its neutral weight layout (or why it has none). An output that is not a
        tensor is a one-line BackendError."""
        raise NotImplementedError(f"{type(self).__name__} cannot call a model once")

    def free_device_memory(self) -> int | None:
        """Free bytes on this backend's accelerator, for `--pack auto`; None on the CPU."""
        return None

    def is_out_of_memory(self, error: BaseException) -> bool:
        """Whether ``error`` is the framework saying the device ran out of memory."""
        return False

    def release_memory(self) -> None:
        """Give cached device memory back after a failed attempt (no-op by default)."""

    @abstractmethod
    def environment(self) -> Mapping[str, str]:
        """Framework versions and the device actually used, for the run record."""

    @abstractmethod
    def count_parameters(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                         factory: str | None = None, search_paths: Sequence[str] = ()) -> int:
        """Trainable parameter count of ``model`` for this input shape and class count."""

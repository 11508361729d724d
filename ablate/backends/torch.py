"""PyTorch backend. Models live in :mod:`backends.torch_models`."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ablate.config import TrainConfig
from ablate.backends import torch_models
from ablate.backends.base import Backend, Trainer


class TorchTrainer(Trainer):
    def __init__(self, model: nn.Module, train: TrainConfig, loss_smoothing: float, device: torch.device):
        self.device = device
        self.model = model.to(device)
        self.loss_smoothing = loss_smoothing
        # With smoothing the framework's own smoothed loss sees hard class indices (the `loss`
        # arm); without it, cross-entropy takes the probability targets as given.
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=loss_smoothing)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if train.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                                             weight_decay=train.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)

    def _tensors(self, x: np.ndarray, targets: np.ndarray | None = None):
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)
        xt = xt.contiguous().to(self.device, non_blocking=True)
        if targets is None:
            return xt, None
        tt = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).to(self.device)
        return xt, (tt.argmax(dim=1) if self.loss_smoothing > 0 else tt)

    def _objective(self, x: np.ndarray, targets: np.ndarray) -> torch.Tensor:
        xt, tt = self._tensors(x, targets)
        return self.loss_fn(self.model(xt), tt)

    def train_step(self, x: np.ndarray, targets: np.ndarray, lr: float) -> float:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._objective(x, targets)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def bind_data(self, x_train: np.ndarray, targets: np.ndarray):
        """Put the training set on this trainer's device once; see `torch_device.DeviceSteps`."""
        from ablate.backends.torch_device import DeviceSteps

        return DeviceSteps(self, x_train, targets)

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        self.model.eval()
        out = []
        for start in range(0, len(x), batch_size):
            xt, _ = self._tensors(x[start:start + batch_size])
            out.append(torch.softmax(self.model(xt).double(), dim=1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def gradients(self, x: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self._objective(x, targets).backward()
        grads = [p.grad.detach().cpu().numpy().copy() for p in self.model.parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        return grads

    def weights(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.model.parameters() if p.requires_grad]


class TorchBackend(Backend):
    name = "torch"

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def configure(self, *, device: str | None = None, threads: int | None = None,
                  deterministic: bool = True) -> None:
        if threads:
            torch.set_num_threads(threads)
            try:
                torch.set_num_interop_threads(max(1, min(threads, 2)))
            except RuntimeError:  # only settable before the first parallel op
                pass
        want_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
        self.device = torch.device("cuda:0" if want_cuda else "cpu")
        if deterministic:
            # cuBLAS needs a fixed workspace for deterministic matmuls; harmless on the CPU.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

    def create_trainer(self, *, model: str, input_shape: tuple[int, int, int], num_classes: int,
                       train: TrainConfig, loss_smoothing: float, seed: int) -> TorchTrainer:
        torch.manual_seed(seed)  # the same seed gives every arm the same initial weights
        net = torch_models.build_model(model, tuple(input_shape), num_classes)
        return TorchTrainer(net, train, loss_smoothing, self.device)

    def device_memory_bytes(self) -> int | None:
        """Total memory of this backend's GPU, for `--pack auto`; None on the CPU."""
        if self.device.type != "cuda":
            return None
        return int(torch.cuda.get_device_properties(self.device).total_memory)

    def environment(self) -> Mapping[str, str]:
        env = {"framework": "torch", "torch": torch.__version__, "device": str(self.device)}
        if self.device.type == "cuda":
            env["gpu"] = torch.cuda.get_device_name(self.device)
            env["cuda"] = str(torch.version.cuda)
        return env

    def count_parameters(self, *, model: str, input_shape: tuple[int, int, int], num_classes: int) -> int:
        return torch_models.count_trainable(model, tuple(input_shape), num_classes)


def create_backend(name: str) -> TorchBackend:
    return TorchBackend()

"""PyTorch backend. Models live in :mod:`backends.torch_models`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import torch
from torch import nn

from ablate.config import TrainConfig
from ablate.backends import torch_losses, torch_models
from ablate.backends.base import DEVICE_DATA, PACKS, SHARED_WEIGHTS, Backend, Trainer
from ablate.errors import BackendError

# Layer kinds of the shared layout (backends/weights.py) and the torch modules holding them.
_SHARED_KINDS = (("conv", nn.Conv2d), ("bn", nn.BatchNorm2d), ("dense", nn.Linear))


class TorchTrainer(Trainer):
    capabilities = frozenset({DEVICE_DATA, SHARED_WEIGHTS})

    def __init__(self, model: nn.Module, train: TrainConfig, loss_smoothing: float, device: torch.device,
                 soft_targets: bool = False, loss: Callable[..., torch.Tensor] | None = None):
        self.device = device
        self.model = model.to(device)
        # The framework's smoothed loss sees hard class indices when the targets are one-hot
        # (the `loss` method), as a user of nn.CrossEntropyLoss would write it; probability
        # targets otherwise (smoothed targets, possibly smoothed again by the loss).
        # A trick's own loss always sees probability targets.
        self.hard_indices = loss is None and loss_smoothing > 0 and not soft_targets
        self.loss_fn = loss if loss is not None else partial(torch_losses.cross_entropy,
                                                              label_smoothing=loss_smoothing)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if train.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                                             weight_decay=train.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)

    # The public tensor-level steps, which the device path (torch_device) and packs
    # (torch_pack) build on instead of reaching into the trainer.
    def to_tensors(self, x: np.ndarray, targets: np.ndarray | None = None):
        """(x, targets) as this trainer's device tensors: x channels-first for images; targets
        as the loss takes them (:meth:`loss_targets`), or None."""
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if xt.ndim == 4:  # images: channels-last in the core, channels-first in torch
            xt = xt.permute(0, 3, 1, 2)
        xt = xt.contiguous().to(self.device, non_blocking=True)
        if targets is None:
            return xt, None
        tt = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).to(self.device)
        return xt, self.loss_targets(tt)

    def loss_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """(B, K) probability targets on the device -> what :meth:`objective` takes: class
        indices for the framework's smoothed loss on one-hot targets, else the probabilities."""
        return targets.argmax(dim=1) if self.hard_indices else targets

    def objective(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss (batch mean) of ``logits`` against :meth:`loss_targets` targets."""
        return self.loss_fn(logits, targets)

    def _objective(self, x: np.ndarray, targets: np.ndarray) -> torch.Tensor:
        xt, tt = self.to_tensors(x, targets)
        return self.objective(self.model(xt), tt)

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
            xt, _ = self.to_tensors(x[start:start + batch_size])
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

    def shared_weights(self) -> list[tuple[str, np.ndarray]]:
        return export_shared_weights(self.model)

    def shared_gradients(self, x: np.ndarray, targets: np.ndarray) -> list[tuple[str, np.ndarray]]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self._objective(x, targets).backward()
        out = [(name, _from_torch(kind, t.grad.detach().cpu().numpy()))
               for name, t, kind in _shared_slots(self.model) if t.grad is not None]
        self.optimizer.zero_grad(set_to_none=True)
        return out


# ------------------------------------------------------------ shared initial weights

def _shared_slots(model: nn.Module) -> list[tuple[str, torch.Tensor, str]]:
    """(neutral name, tensor, layout kind) for every tensor the shared layout fills.

    Layers are numbered per kind in module order, which is creation order; a parameter
    outside conv / batch-norm / linear layers cannot be filled, so the model is refused.
    """
    slots: list[tuple[str, torch.Tensor, str]] = []
    counts: dict[str, int] = {}
    for module in model.modules():
        kind = next((k for k, cls in _SHARED_KINDS if isinstance(module, cls)), None)
        if kind is None:
            continue
        i = counts[kind] = counts.get(kind, -1) + 1
        if kind == "bn":
            parts = [("gamma", module.weight), ("beta", module.bias),
                     ("mean", module.running_mean), ("var", module.running_var)]
        else:
            parts = [("kernel", module.weight), ("bias", module.bias)]
        slots += [(f"{kind}{i}.{suffix}", t, kind if suffix == "kernel" else "vector")
                  for suffix, t in parts if t is not None]
    covered = {id(t) for _, t, _ in slots}
    left = [name for name, p in model.named_parameters() if id(p) not in covered]
    if left:
        raise BackendError(f"shared weights: the torch model has parameters outside Conv2d, "
                           f"BatchNorm2d and Linear layers ({', '.join(left[:3])}), which the shared "
                           f"layout cannot fill; use pairing: within-backend")
    return slots


def _to_torch(kind: str, array: np.ndarray) -> np.ndarray:
    """Neutral -> torch layout: conv HWIO -> OIHW, dense (in, out) -> (out, in)."""
    if kind == "conv":
        return array.transpose(3, 2, 0, 1)
    return array.T if kind == "dense" else array


def _from_torch(kind: str, array: np.ndarray) -> np.ndarray:
    """Torch -> neutral layout, the inverse of :func:`_to_torch`."""
    if kind == "conv":
        return array.transpose(2, 3, 1, 0).copy()
    return array.T.copy() if kind == "dense" else array.copy()


def load_shared_weights(model: nn.Module, arrays) -> None:
    """Fill ``model`` with the neutral-layout ``arrays`` (ordered (name, array) pairs).

    Raises a one-line BackendError when the names or shapes do not match the model.
    """
    slots = _shared_slots(model)
    given = dict(arrays)
    names = [name for name, _, _ in slots]
    if set(names) != set(given):
        missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
        raise BackendError(f"shared weights: the torch model's layers do not match the shared layout "
                           f"(missing {missing[:3]}, unexpected {extra[:3]}); use pairing: within-backend")
    with torch.no_grad():
        for name, tensor, kind in slots:
            value = np.ascontiguousarray(_to_torch(kind, np.asarray(given[name], np.float32)))
            if tuple(tensor.shape) != value.shape:
                raise BackendError(f"shared weights: {name} has shape {given[name].shape}, but the torch "
                                   f"model needs {_from_torch(kind, np.empty(tuple(tensor.shape))).shape}")
            tensor.copy_(torch.from_numpy(value))


def shared_layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """The model's neutral (name, shape) layout, for :func:`ablate.backends.weights.draw_layout`."""
    def neutral(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if kind == "conv":
            return (shape[2], shape[3], shape[1], shape[0])
        return shape[::-1] if kind == "dense" else shape

    return [(name, neutral(kind, tuple(t.shape))) for name, t, kind in _shared_slots(model)]


def _layout_or_reason(model: nn.Module):
    try:
        return shared_layout(model)
    except BackendError as exc:
        return str(exc)


def export_shared_weights(model: nn.Module) -> list[tuple[str, np.ndarray]]:
    """The model's weights in the neutral layout, batch-norm statistics included."""
    return [(name, _from_torch(kind, t.detach().cpu().numpy())) for name, t, kind in _shared_slots(model)]


class TorchBackend(Backend):
    name = "torch"
    capabilities = frozenset({PACKS})

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
            # Deterministic mode also fills every new tensor with NaN (one extra kernel per
            # allocation); nothing here reads memory before writing it, so keep that off.
            torch.utils.deterministic.fill_uninitialized_memory = False
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

    def create_trainer(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                       train: TrainConfig, loss_smoothing: float, seed: int, soft_targets: bool = False,
                       factory: str | None = None, search_paths: Sequence[str] = (),
                       initial_weights=None, loss=None) -> TorchTrainer:
        torch.manual_seed(seed)  # the same seed gives every arm the same initial weights
        net = torch_models.build_model(model, tuple(input_shape), num_classes, factory, search_paths)
        if initial_weights is not None:  # pairing: cross-backend
            if callable(initial_weights):  # a plug-in model: drawn for the layout it built
                initial_weights = initial_weights(shared_layout(net))
            load_shared_weights(net, initial_weights)
        return TorchTrainer(net, train, loss_smoothing, self.device, soft_targets, loss)

    def call_model(self, *, model: str, input_shape: tuple[int, ...], num_classes: int, x: np.ndarray,
                   factory: str | None = None, search_paths: Sequence[str] = (), layout: bool = False):
        torch.manual_seed(0)
        net = torch_models.build_model(model, tuple(input_shape), num_classes, factory, search_paths)
        net.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x, np.float32))
        with torch.no_grad():
            out = net(xt)
        if not isinstance(out, torch.Tensor):
            raise BackendError(f"returned {type(out).__name__}, not a tensor of logits (batch, K)")
        return out.detach().double().cpu().numpy(), (_layout_or_reason(net) if layout else None)
    def create_pack(self, *, member_options, seeds, x_train, targets, loss_fn=None):
        from ablate.backends.torch_pack import create_pack

        return create_pack(self, member_options=member_options, seeds=seeds, x_train=x_train, targets=targets,
                           loss_fn=loss_fn)

    def pack_member_bytes(self, trainer, x_batch, *, num_train, num_classes) -> int:
        from ablate.backends.torch_pack import member_bytes

        return member_bytes(trainer, x_batch, num_train=num_train, num_classes=num_classes)

    def free_device_memory(self) -> int | None:
        """Free memory of this backend's GPU (other workers on it count as used); None on the CPU."""
        if self.device.type != "cuda":
            return None
        free, _total = torch.cuda.mem_get_info(self.device)
        return int(free)

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, torch.OutOfMemoryError)

    def release_memory(self) -> None:
        import gc

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def environment(self) -> Mapping[str, str]:
        env = {"framework": "torch", "torch": torch.__version__, "device": str(self.device)}
        if self.device.type == "cuda":
            env["gpu"] = torch.cuda.get_device_name(self.device)
            env["cuda"] = str(torch.version.cuda)
        return env

    def count_parameters(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                         factory: str | None = None, search_paths: Sequence[str] = ()) -> int:
        return torch_models.count_trainable(model, tuple(input_shape), num_classes, factory, search_paths)


def create_backend(name: str) -> TorchBackend:
    return TorchBackend()

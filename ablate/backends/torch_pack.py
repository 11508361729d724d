"""A pack: K same-shaped torch models trained as one vectorised model (torch.func).

Each member is built by the backend's own ``create_trainer`` (so with ``torch.manual_seed``
of its seed, exactly as the unpacked run), then the members' weights and buffers are
stacked along a new leading axis and the step is ``vmap`` of ``functional_call`` over it.
Batch norm buffers are stacked too and passed batched, so each member's running
statistics are updated from its own batch only. The optimiser is the members' own
optimiser class and settings, applied to the stacked tensors; SGD and Adam are
elementwise, so each member's slice takes the step it would take alone.

Per member k: its own batch rows and augmentation draws (``(K, B)`` indices), its own
targets ``(K, N, C)`` (smoothed as its trick smooths them, loss smoothing folded in) and its
own mixing draws. Every member calls the one loss an unpacked run calls: torch's
cross-entropy (:mod:`ablate.backends.torch_losses`) or the trick's loss, shared by the pack.
Losses are summed on the device and read once per epoch (``take_totals``). A member
marked dead (diverged) has its loss and gradients zeroed; the others go on.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from ablate.backends import torch_losses
from ablate.backends.torch_device import apply_mix, draws_to_device, gather_batch, upload_images


class PackTrainer:
    """K members (``TorchTrainer`` s built by the backend), trained in lockstep as one model.

    x_train: (N, H, W, C); targets: (K, N, C) float32, member k's training targets with any
    loss smoothing already applied (``y·(1−ε)+ε/K`` is what torch's ``label_smoothing`` does to
    probability targets); loss_fn: the members' one loss ``(logits, targets) -> mean``, None
    for torch's cross-entropy.
    """

    def __init__(self, members: list[Any], x_train: np.ndarray, targets: np.ndarray,
                 loss_fn: Any | None = None, *, seed: int):
        if not members:
            raise ValueError("a pack needs at least one member")
        self.k = len(members)
        self.device = dev = members[0].device
        modules = [m.model for m in members]
        self.params, self.buffers = stack_module_state(modules)
        # A weightless copy of the architecture for functional_call; the stacked tensors are the state.
        self.base = copy.deepcopy(modules[0]).to("meta")
        opt = members[0].optimizer
        settings = dict(opt.defaults)
        if "foreach" in settings and settings.get("fused") is not True:
            # One kernel per step for all weights: the same elementwise arithmetic, fewer launches.
            settings["foreach"] = True
        self.optimizer = type(opt)(list(self.params.values()), **settings)
        self._all_alive = True
        self.images = upload_images(x_train, dev)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).to(dev)
        self.loss_fn = loss_fn if loss_fn is not None else torch_losses.cross_entropy
        self.alive = torch.ones(self.k, dtype=torch.bool, device=dev)
        self._members = torch.arange(self.k, device=dev)
        self._totals = torch.zeros(self.k, dtype=torch.float64, device=dev)
        # Dropout draws come from this generator's stream (not the unpacked run's); seeded, so a
        # pack is reproducible.
        torch.manual_seed(seed)

    # -- training --------------------------------------------------------------------------
    def _member_loss(self, params, buffers, x, t):
        """One member: x (B, C, H, W), t (B, C) target probabilities -> the unpacked run's loss."""
        return self.loss_fn(functional_call(self.base, (params, buffers), (x,)), t)

    def _losses(self, idx: np.ndarray, draws: list[Any] | None, mixes: list[Any] | None = None) -> torch.Tensor:
        """idx: (K, B) rows per member; draws: K augmentation draws or None; mixes: K mixing
        draws or None -> (K,) losses."""
        k, b = idx.shape
        it = torch.from_numpy(np.ascontiguousarray(idx, np.int64)).to(self.device, non_blocking=True)
        if draws is not None:
            dx, dy, flip = (torch.cat(parts) for parts in zip(*(draws_to_device(d, self.device) for d in draws)))
            xb = gather_batch(self.images, it.reshape(-1), dx, dy, flip)
        else:
            xb = gather_batch(self.images, it.reshape(-1))
        xb = xb.reshape(k, b, *xb.shape[1:])
        tb = self.targets[self._members[:, None], it]  # (K, B, C): member k's targets of its rows
        if mixes is not None:  # each member mixed with its own draw, exactly as unpacked
            pairs = [apply_mix(xb[m], tb[m], mix) for m, mix in enumerate(mixes)]
            xb = torch.stack([x for x, _ in pairs])
            tb = torch.stack([t for _, t in pairs])
        self.base.train()
        return vmap(self._member_loss, randomness="different")(self.params, self.buffers, xb, tb)

    def step(self, idx: np.ndarray, draws: list[Any] | None, lr: float, mixes: list[Any] | None = None) -> None:
        """One optimiser step for every live member; idx: (K, B); mixes: K mixing draws or None. No sync."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        live = self._losses(idx, draws, mixes)
        if not self._all_alive:
            # A dead member contributes nothing: where() also keeps its NaN out of the sum.
            live = torch.where(self.alive, live, torch.zeros_like(live))
        live.sum().backward()
        if not self._all_alive:
            for p in self.params.values():
                mask = self.alive.reshape(-1, *([1] * (p.dim() - 1)))
                p.grad = torch.where(mask, p.grad, torch.zeros_like(p.grad))
        self.optimizer.step()
        self._totals += live.detach().double() * idx.shape[1]

    def take_totals(self) -> np.ndarray:
        """Each member's summed batch losses since the last call, (K,) float64; one sync, then reset."""
        out = self._totals.cpu().numpy().copy()
        self._totals.zero_()
        return out

    def kill(self, member: int) -> None:
        """Stop training ``member`` (diverged): its updates are zeroed from now on."""
        self.alive[member] = False
        self._all_alive = False

    # -- inspection ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """x: (n, H, W, C) -> (K, n, C) float32 probabilities, every member in inference mode."""
        self.base.eval()
        out = []
        images = upload_images(x, self.device, cache=False)  # once per call, not per chunk
        for start in range(0, len(x), batch_size):
            chunk = images[start:start + batch_size]
            xt = (chunk.permute(0, 3, 1, 2) if chunk.ndim == 4 else chunk).contiguous()
            logits = vmap(lambda p, b: functional_call(self.base, (p, b), (xt,)))(self.params, self.buffers)
            out.append(torch.softmax(logits.double(), dim=-1).float().cpu().numpy())
        return np.concatenate(out, axis=1) if out else np.zeros((self.k, 0, 0), np.float32)

    def losses_and_gradients(self, idx: np.ndarray, draws: list[Any] | None = None,
                             mixes: list[Any] | None = None):
        """Each member's loss (K,) and gradients (list over weights of (K, ...)), without updating."""
        self.optimizer.zero_grad(set_to_none=True)
        saved = {n: b.clone() for n, b in self.buffers.items()}
        losses = self._losses(idx, draws, mixes)
        losses.sum().backward()
        grads = [p.grad.detach().cpu().numpy().copy() for p in self.params.values()]
        self.optimizer.zero_grad(set_to_none=True)
        for n, b in saved.items():  # a look, not a step: put the batch-norm statistics back
            self.buffers[n].copy_(b)
        return losses.detach().cpu().numpy(), grads

    def weights(self, member: int) -> list[np.ndarray]:
        """Member ``member``'s trainable weights, in the unpacked trainer's order."""
        return [p[member].detach().cpu().numpy().copy() for p in self.params.values()]

    def buffers_of(self, member: int) -> list[np.ndarray]:
        return [b[member].detach().cpu().numpy().copy() for b in self.buffers.values()]


def member_bytes(trainer: Any, x_batch: np.ndarray, *, num_train: int, num_classes: int) -> int:
    """Device bytes one more member of a pack needs, measured on ``trainer`` (a ``TorchTrainer``).

    x_batch: (B, ...) one training batch. The activations one training step keeps for the
    backward pass are counted as the autograd graph saves them (so any model, any device),
    three times over: themselves, the gradients the backward pass makes of them, and the
    forward pass's temporaries and allocator slack; then weights, their gradients and two
    optimiser slots, and the member's (N, C) float32 targets. A CPU test checks that K times
    this covers a real pack's peak memory without overstating it more than 3x.
    """
    model = trainer.model
    state_ptrs = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[tuple[int, int], int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in state_ptrs:  # weights are counted below, once
            saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    model.train()
    state = {n: b.clone() for n, b in model.named_buffers()}
    xt, _ = trainer.to_tensors(x_batch)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        logp = torch.log_softmax(model(xt), dim=-1)
        loss = -logp.mean()
    del loss, logp
    with torch.no_grad():  # a measurement, not a step: put the batch-norm statistics back
        for name, buffer in model.named_buffers():
            buffer.copy_(state[name])
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return int(3 * sum(saved.values()) + 4 * weights + 4 * num_train * num_classes)


def create_pack(backend: Any, *, member_options: list[dict[str, Any]], seeds: list[int],
                x_train: np.ndarray, targets: np.ndarray, loss_fn: Any | None = None) -> PackTrainer:
    """Build each member with the backend's ``create_trainer`` (its seed's initial weights), then stack.

    member_options: per member, the ``create_trainer`` keywords an unpacked run of it would use;
    targets: (K, N, C) with loss smoothing folded in; loss_fn: the members' trick loss or None.
    """
    members = [backend.create_trainer(**options) for options in member_options]
    return PackTrainer(members, x_train, targets, loss_fn, seed=seeds[0])

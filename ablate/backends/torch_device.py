"""Training data that lives on the torch device: uploaded once per worker, gathered and augmented there.

The core still draws every batch order and augmentation choice from the run's
``np.random.Generator``; only the indices ``(B,)`` and the draws (shift offsets and flip
bits, ``(B,)`` each) cross to the device per step. The images are gathered there with the
same integer arithmetic as :func:`ablate.data.augment.apply_augmentation`, so a device batch
equals the numpy batch bit for bit. The loss is summed on the device and read back once
per epoch, so no step waits for the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Uploaded arrays, per process (one worker = one process): id(array) -> (array, device, tensor).
# The array itself is kept, so its id cannot be reused by another array while cached.
_UPLOADS: dict[tuple[int, str], tuple[np.ndarray, torch.Tensor]] = {}
_MAX_UPLOADS = 8


def upload_images(x: np.ndarray, device: torch.device, *, cache: bool = True) -> torch.Tensor:
    """x: (N, H, W, C) -> the same (N, H, W, C) float32 on ``device``, uploaded once per array.

    Kept channels-last: `gather_batch` then permutes each batch exactly as the host path does, so
    the batch has the host batch's strides too (convolutions pick kernels by stride).
    """
    key = (id(x), str(device))
    hit = _UPLOADS.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    if not cache:  # a one-off array (an evaluation subset): do not let it push the training set out
        return xt
    if len(_UPLOADS) >= _MAX_UPLOADS:
        _UPLOADS.pop(next(iter(_UPLOADS)))
    _UPLOADS[key] = (x, xt)
    return xt


def gather_batch(images: torch.Tensor, idx: torch.Tensor, dx: torch.Tensor | None = None,
                 dy: torch.Tensor | None = None, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``idx`` of images (N, H, W, C), shifted (nearest fill) and flipped as drawn, as (B, C, H, W).

    idx, dx, dy: (B,) int64; flip: (B,) bool; dx None means no augmentation. The pixels equal
    bit for bit the numpy `apply_augmentation` of the same rows and draws (the same pure
    gather), and the layout is the host path's: ``permute(0, 3, 1, 2).contiguous()``.
    """
    if images.ndim == 2:  # feature vectors (N, F): nothing to shift, flip or permute
        return images[idx].contiguous()
    if dx is None:
        xb = images[idx]
    else:
        _, h, w, _ = images.shape
        dev = images.device
        rows = torch.clamp(torch.arange(h, device=dev)[None, :] - dy[:, None], 0, h - 1)  # (B, H)
        cols = torch.clamp(torch.arange(w, device=dev)[None, :] - dx[:, None], 0, w - 1)  # (B, W)
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        xb = images[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return xb.permute(0, 3, 1, 2).contiguous()


def draws_to_device(draws: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An augmentation draw (anything with ``dx``, ``dy`` (n,) ints and ``flip`` (n,) bools) as tensors."""
    return (torch.from_numpy(np.asarray(draws.dx, np.int64)).to(device, non_blocking=True),
            torch.from_numpy(np.asarray(draws.dy, np.int64)).to(device, non_blocking=True),
            torch.from_numpy(np.asarray(draws.flip, np.bool_)).to(device, non_blocking=True))


def apply_mix(xb: torch.Tensor, tb: torch.Tensor, draw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixing draw (``perm`` (B,), ``lam``, ``box`` or None, ``apply``; see ``ablate.tricks.MixDraw``)
    applied on the device to xb (B, C, H, W) or (B, F) and targets tb (B, K).

    The same float32 arithmetic as the numpy ``ablate.tricks.apply_mix``, so the two agree bit
    for bit: ``lam·a + (1−lam)·b``, or the box copied from the partner rows.
    """
    if not draw.apply:
        return xb, tb
    perm = torch.from_numpy(np.asarray(draw.perm, np.int64)).to(xb.device, non_blocking=True)
    lam = torch.tensor(np.float32(draw.lam), device=xb.device)
    rest = torch.tensor(np.float32(1.0) - np.float32(draw.lam), device=xb.device)
    if draw.box is None:
        # Keep the batch's strides (a one-channel batch keeps the host path's permuted ones):
        # convolutions pick kernels by stride, and the host batch has these.
        mixed = torch.empty_strided(xb.shape, xb.stride(), dtype=xb.dtype, device=xb.device)
        xb = mixed.copy_(lam * xb + rest * xb[perm])
    else:
        y0, y1, x0, x1 = draw.box
        xb = xb.clone()
        xb[:, :, y0:y1, x0:x1] = xb[perm][:, :, y0:y1, x0:x1]
    return xb, lam * tb + rest * tb[perm]


class DeviceSteps:
    """Optimiser steps of one `TorchTrainer` on training data already on its device.

    x_train: (N, H, W, C); targets: (N, K) float32 (one-hot or smoothed), as the numpy path
    would hand them to ``train_step``. Same model, loss and optimiser as ``train_step``, so a
    step is bitwise the same as ``train_step`` on the same batch.
    """

    def __init__(self, trainer: Any, x_train: np.ndarray, targets: np.ndarray):
        self.trainer = trainer
        dev = trainer.device
        self.images = upload_images(x_train, dev)
        tt = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).to(dev)
        # As `train_step` hands them to the loss (hard class indices for the `loss` arm).
        self.targets = trainer.loss_targets(tt)
        self._total = torch.zeros((), dtype=torch.float64, device=dev)

    def step(self, idx: np.ndarray, draws: Any | None, lr: float, mix: Any | None = None) -> None:
        """One optimiser step on rows ``idx`` (B,) with augmentation ``draws`` (or None) and a
        trick's mixing draw ``mix`` (or None); no sync."""
        tr = self.trainer
        dev = tr.device
        it = torch.from_numpy(np.asarray(idx, np.int64)).to(dev, non_blocking=True)
        aug = draws_to_device(draws, dev) if draws is not None else (None, None, None)
        xb = gather_batch(self.images, it, *aug)
        tb = self.targets[it]
        if mix is not None:
            xb, tb = apply_mix(xb, tb, mix)
        tr.model.train()
        for group in tr.optimizer.param_groups:
            group["lr"] = lr
        tr.optimizer.zero_grad(set_to_none=True)
        loss = tr.objective(tr.model(xb), tb)
        loss.backward()
        tr.optimizer.step()
        # The same double arithmetic as the host loop's `total += float(loss) * len(idx)`.
        self._total += loss.detach().double() * len(idx)

    def take_total(self) -> float:
        """The summed batch losses since the last call (one device sync), then reset."""
        total = float(self._total)
        self._total.zero_()
        return total

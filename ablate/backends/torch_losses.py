"""The torch losses: the one cross-entropy every torch path calls, and the built-in focal loss.

Torch's argument order, ``fn(logits, targets)``: logits ``(B, K)``, targets ``(B, K)``
probabilities (or ``(B,)`` class indices for the cross-entropy); a scalar, the batch mean.
The unpacked run, the device-resident path and the pack's vmapped member all call these.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Torch's own cross-entropy (what ``nn.CrossEntropyLoss(label_smoothing=ε)`` computes)."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss −Σ y·(1−p)^γ·log p, mean over the batch; soft targets allowed, γ = 0 is cross-entropy."""
    logp = torch.log_softmax(logits, dim=-1)
    # The floor keeps (1−p)^γ differentiable where p rounds to 1 and γ < 1.
    weight = torch.clamp(1.0 - logp.exp(), min=1e-12) ** gamma
    return -(targets * weight * logp).sum(dim=-1).mean()


def evaluate(fn, logits: np.ndarray, targets: np.ndarray, params) -> np.ndarray:
    """``fn(logits, targets, **params)`` on numpy (n, K) inputs, for preflight; the value as numpy."""
    value = fn(torch.from_numpy(logits), torch.from_numpy(targets), **params)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected a torch tensor, but got {type(value).__name__}")
    return value.detach().cpu().numpy()

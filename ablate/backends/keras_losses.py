"""The Keras losses, written with ``keras.ops`` so that one function serves every Keras engine.

Keras' argument order, ``fn(targets, logits)``: targets ``(B, K)`` probabilities, logits
``(B, K)``; a scalar, the batch mean. Same arithmetic as :mod:`ablate.backends.torch_losses`.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import ops


def cross_entropy(label_smoothing: float = 0.0) -> keras.losses.Loss:
    """Keras' own cross-entropy on logits, smoothing its targets by ``label_smoothing``."""
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)


def focal(targets, logits, gamma: float = 2.0):
    """Focal loss −Σ y·(1−p)^γ·log p, mean over the batch; soft targets allowed, γ = 0 is cross-entropy."""
    logp = ops.log_softmax(logits, axis=-1)
    weight = ops.power(ops.maximum(1.0 - ops.exp(logp), 1e-12), gamma)
    return -ops.mean(ops.sum(targets * weight * logp, axis=-1))


def evaluate(fn, logits: np.ndarray, targets: np.ndarray, params) -> np.ndarray:
    """``fn(targets, logits, **params)`` on numpy (n, K) inputs, for preflight; the value as numpy."""
    value = fn(ops.convert_to_tensor(targets), ops.convert_to_tensor(logits), **params)
    return np.asarray(ops.convert_to_numpy(value))

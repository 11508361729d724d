"""Stratified splits and preprocessing fitted on the training split; pure numpy."""

from __future__ import annotations

import numpy as np


def _stratified_split(y: np.ndarray, n_take: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..n-1 into (take, rest), len(take) == n_take, keeping class shares.

    y: (n,) class labels. Each class gets floor(n_take * share) places, and the places
    left over go to the largest remainders (ties: larger class, then lower label).
    Within a class the positions come from `rng.permutation`, classes in label order.
    Returns two sorted int64 arrays.
    """
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = n_take * counts / len(y)
    alloc = np.floor(quota).astype(np.int64)
    short = n_take - int(alloc.sum())
    if short > 0:
        order = np.lexsort((np.arange(len(classes)), -counts, -(quota - alloc)))
        alloc[order[:short]] += 1
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    take = np.concatenate([rng.permutation(idx)[:k] for idx, k in zip(by_class, alloc)] + [np.empty(0, np.int64)])
    take = np.sort(take.astype(np.int64))
    rest = np.setdiff1d(np.arange(len(y), dtype=np.int64), take, assume_unique=True)
    return take, rest


def _fit_preprocessing(kind: str, x: np.ndarray, max_value: float) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) such that the preprocessed images are (x - shift) * scale.

    x: (n, H, W, C) training images (uint8), or (n, F) feature vectors. The shapes
    broadcast against x: "none" -> scalars; "mean_subtract" -> (H, W, C) or (F,) shift;
    "standardize" -> (C,) or (F,) both: per channel, or per feature.
    """
    if kind == "none":
        return np.float32(0.0), np.float32(1.0 / max_value)
    if kind == "mean_subtract":
        return x.mean(axis=0, dtype=np.float64).astype(np.float32), np.float32(1.0)
    if x.dtype == np.uint8 and x.size * 255**2 < 2**53:
        total, total_sq = _uint8_moments(x)
    else:
        # Per-channel moments in float64, a chunk at a time, so a CIFAR-sized array is never
        # copied whole to float64.
        total = np.zeros(x.shape[-1])
        total_sq = np.zeros(x.shape[-1])
        for start in range(0, len(x), 4096):
            chunk = x[start : start + 4096].astype(np.float64)
            axes = tuple(range(chunk.ndim - 1))
            total += chunk.sum(axis=axes)
            total_sq += np.square(chunk).sum(axis=axes)
    count = x.size / x.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std[std == 0] = 1.0  # a constant channel is left centred, not divided by zero
    return mean.astype(np.float32), (1.0 / std).astype(np.float32)


def _uint8_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x: (..., C) uint8 -> per-channel sums of x and of x**2, (C,) float64 each.

    From each channel's histogram of the 256 values, a few times faster than summing x as float64.
    Both sums are integers below 2**53 (the caller checks), so they are exact either way: the
    moments, and every preprocessed image, are bit for bit those of the float64 sums.
    """
    channels = x.shape[-1]
    flat = x.reshape(-1, channels)
    offsets = np.arange(channels, dtype=np.intp) * 256  # channel c's values count in bins c*256 ...
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(flat), 1 << 20):
        part = flat[start : start + (1 << 20)].astype(np.intp) + offsets
        counts += np.bincount(part.ravel(), minlength=256 * channels).reshape(channels, 256)
    values = np.arange(256, dtype=np.int64)
    return (counts @ values).astype(np.float64), (counts @ values**2).astype(np.float64)


def _transform(x: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """x: (n, ...) uint8 or float -> a new float32 array of the same shape, (x - shift) * scale."""
    out = x.astype(np.float32)
    out -= shift
    out *= scale
    return out

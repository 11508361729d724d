"""The parsed, unprocessed arrays of one dataset, checked once: a built-in's files, or what a user's
loader returned. Every array is read-only, because the caches share it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ablate.errors import AblateError, DatasetError
from ablate.registry import resolve


@dataclass(frozen=True)
class Raw:
    """Parsed, unprocessed arrays; all read-only because they live in the cache."""

    x_train: np.ndarray  # (n_train, H, W, C) uint8
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, H, W, C) uint8
    y_test: np.ndarray  # (n_test,) int64
    class_names: tuple[str, ...]
    max_value: float  # the largest pixel value the format can hold: 255, or 16 for digits


def freeze(name, location, x_train, y_train, x_test, y_test, class_names, max_value) -> Raw:
    """Check shapes and labels, convert to (uint8 NHWC, int64) and make read-only."""
    arrays = []
    for x, y, split in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        x = np.ascontiguousarray(x, dtype=np.uint8)
        y = np.asarray(y).reshape(-1).astype(np.int64)
        if x.ndim != 4 or len(x) != len(y):
            raise DatasetError(
                f"{name}: {location} holds {split} images of shape {x.shape} with {len(y)} labels; "
                "expected (n, H, W, C) and n labels"
            )
        if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
            raise DatasetError(
                f"{name}: {split} labels in {location} span {y.min()}..{y.max()}, "
                f"outside 0..{len(class_names) - 1} for {len(class_names)} classes"
            )
        x.flags.writeable = False
        y.flags.writeable = False
        arrays += [x, y]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DatasetError(
            f"{name}: training images {arrays[0].shape[1:]} and test images {arrays[2].shape[1:]} differ in {location}"
        )
    if len(arrays[1]) == 0:
        raise DatasetError(f"{name}: no training images in {location}")
    return Raw(*arrays, class_names=class_names, max_value=max_value)


_USER_CACHE: dict[tuple, Raw] = {}


def load_user(name: str, loader: str | Callable, search_paths: tuple[str, ...]) -> Raw:
    """Call a user loader once per process and check what it returns."""
    key = (name, loader if isinstance(loader, str) else id(loader), search_paths)
    if key in _USER_CACHE:
        return _USER_CACHE[key]
    if isinstance(loader, str):
        try:
            loader = resolve(loader, search_paths)
        except AblateError as exc:
            raise DatasetError(f"{name}: loader {exc}") from None
    try:
        out = loader()
    except Exception as exc:  # noqa: BLE001 - the user's loader failed: one line naming it
        raise DatasetError(f"{name}: the loader raised {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    keys = ("x_train", "y_train", "x_test", "y_test")
    class_names = None
    if isinstance(out, Mapping):
        missing = [k for k in keys if k not in out]
        if missing:
            raise DatasetError(f"{name}: the loader's dict lacks {', '.join(missing)}; expected keys {keys} "
                               "(and optionally class_names)")
        parts = [out[k] for k in keys]
        class_names = out.get("class_names")
    elif isinstance(out, (tuple, list)) and len(out) == 4:
        parts = list(out)
    else:
        raise DatasetError(f"{name}: the loader must return (x_train, y_train, x_test, y_test) or a dict with "
                           f"those keys, but returned {type(out).__name__}")
    raw = _check_user_arrays(name, *parts, class_names=class_names)
    _USER_CACHE[key] = raw
    return raw


def _check_user_arrays(name, x_train, y_train, x_test, y_test, *, class_names) -> Raw:
    """Numeric x of one example shape in both splits, integer labels 0..K-1 with K >= 2."""
    arrays = []
    for x, y, split in ((x_train, y_train, "x_train"), (x_test, y_test, "x_test")):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.dtype.kind not in "biuf" or x.dtype == bool:
            raise DatasetError(f"{name}: {split} must be numeric, but has dtype {x.dtype}")
        if x.ndim not in (2, 4):
            raise DatasetError(f"{name}: {split} must have shape (n, F) or (n, H, W, C), but has {x.shape}")
        if len(x) == 0:
            raise DatasetError(f"{name}: {split} is empty; both splits need examples")
        ylab = "y_" + split[2:]
        if y.ndim != 1 or len(y) != len(x):
            raise DatasetError(f"{name}: {ylab} must be a vector of {len(x)} labels, but has shape {y.shape}")
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise DatasetError(f"{name}: {ylab} must hold integer class labels, but has dtype {y.dtype}")
        xf = x.astype(np.float32)
        if not np.all(np.isfinite(xf)):
            raise DatasetError(f"{name}: {split} holds NaN or infinite values")
        xf.flags.writeable = False
        y = y.astype(np.int64)
        y.flags.writeable = False
        arrays += [xf, y]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DatasetError(f"{name}: x_train examples {arrays[0].shape[1:]} and x_test examples "
                           f"{arrays[2].shape[1:]} differ in shape")
    y_all = np.concatenate([arrays[1], arrays[3]])
    k = int(y_all.max()) + 1 if class_names is None else len(class_names)
    if class_names is not None and y_all.min() >= 0 and y_all.max() >= k:
        raise DatasetError(f"{name}: class_names has {k} name(s), but the labels span 0..{y_all.max()}, "
                           f"which is {int(y_all.max()) + 1} classes; give one name per class")
    if y_all.min() < 0 or y_all.max() >= k:
        raise DatasetError(f"{name}: labels span {y_all.min()}..{y_all.max()}, outside 0..{k - 1}")
    if k < 2:
        raise DatasetError(f"{name}: expected at least 2 classes, but the labels hold {k}")
    check_every_class(name, arrays[1], k, "the loader's y_train")
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(str(i) for i in range(k))
    return Raw(*arrays, class_names=names, max_value=1.0)


def check_every_class(name: str, y_train: np.ndarray, k: int, where: str) -> None:
    """Labels must be 0..K-1 with every class in the training split: a class it lacks would be a
    phantom in the probabilities and in eps/K. One line naming the missing classes."""
    missing = np.setdiff1d(np.arange(k), y_train)
    if len(missing):
        shown = ", ".join(str(int(c)) for c in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise DatasetError(f"{name}: labels must be 0..K-1 with every class in the training split, but "
                           f"{where} has no example of class(es) {shown} (K = {k}); relabel the classes "
                           f"0..{k - len(missing) - 1}, or give each class training examples")

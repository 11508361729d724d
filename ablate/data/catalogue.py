"""Datasets as preprocessed NHWC float32 numpy arrays, read without any training framework.

Each registered dataset's :class:`~ablate.data.sources.Source` says where its files are and how to
read them (:mod:`ablate.data.sources` lists the built-ins); `path` overrides its default folders.
When nothing is found and ``download=True``, a source that keras.datasets can fetch
(fashion-mnist, mnist and cifar10) is downloaded through ``keras.datasets`` (imported only then;
it needs internet). An explicit `path` is never replaced by a download.

Splits, all stratified by class (each class keeps its share, rounded by largest
remainder), indices kept in file order:

- ``train_size``: a subset of the official training data, drawn from
  ``np.random.default_rng(split_seed)``;
- ``val_fraction``: a validation split of that training data (after subsetting), drawn
  from the same generator; it never touches the test set;
- ``test_size``: a subset of the test set drawn with the fixed seed
  ``TEST_SUBSET_SEED``, so every ``split_seed`` is scored on the same test images.

Preprocessing is fitted on the training split (the validation split removed) and then
applied to train, validation and test alike:

- ``"standardize"``: per-channel ``(x - mean_c) / std_c``;
- ``"mean_subtract"``: per-pixel ``x - mean[h, w, c]`` in raw pixel units (0..255;
  0..16 for digits), exactly as the Keras notebook, which does not divide by 255;
- ``"none"``: ``x / max`` (255; 16 for digits), i.e. values in [0, 1].

Parsed raw arrays are cached on disk (:mod:`ablate.data.cache`, memory-mapped read-only, keyed by
the source files' paths, sizes and modification times) and in-process, so a machine decodes each
dataset once and a worker that trains many runs reads it once; every `load_dataset` call returns
fresh arrays.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ablate.data import cache as dataset_cache
from ablate.data.formats import source_files
from ablate.data.raw import Raw, check_every_class, freeze, load_user
from ablate.data.sources import (
    BUILTIN_DATASETS,
    DATASETS,
    DEFAULT_IMAGE_SIZE,
    FASHION_MNIST_DEBIAN_DIR,
    READERS,
    DatasetEntry,
    Found,
    looked_text,
)
from ablate.data.splits import _fit_preprocessing, _stratified_split, _transform
from ablate.errors import DatasetError

__all__ = ["BUILTIN_DATASETS", "DATASETS", "DATASET_NAMES", "DEFAULT_IMAGE_SIZE", "FASHION_MNIST_DEBIAN_DIR",
           "PREPROCESS_NAMES", "Dataset", "DatasetEntry", "DatasetInfo", "check_available", "describe_datasets",
           "load_dataset"]

Preprocess = Literal["standardize", "mean_subtract", "none"]
PREPROCESS_NAMES: tuple[str, ...] = get_args(Preprocess)

TEST_SUBSET_SEED = 0
DATASET_NAMES = BUILTIN_DATASETS


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split three ways and preprocessed; every array is a fresh copy.

    x_train: (n_train, *input_shape) float32 — images (n, H, W, C) or features (n, F);
    y_train: (n_train,) int64 class indices.
    x_val, y_val: (n_val, *input_shape), (n_val,): held out from the training data.
    x_test, y_test: (n_test, *input_shape), (n_test,).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: (H, W, C) for images, (F,) for feature vectors."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"n_train={len(self.y_train)}, n_val={len(self.y_val)}, n_test={len(self.y_test)})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """One row of `python -m ablate datasets`."""

    name: str
    available: bool  # found on this machine (a download fallback does not count)
    location: str  # where it was found and in which format, or how to obtain it
    input_shape: tuple[int, ...] | None  # (H, W, C); imagenette at the default image_size; None: unknown
    num_classes: int | None  # None: a plug-in that does not declare it
    n_train: int | None  # official training images (before train_size/val_fraction); None if unknown
    n_test: int | None


# ---------------------------------------------------------------------------- public API


def load_dataset(
    name: str,
    *,
    path: str | None = None,
    loader: str | Callable | None = None,
    search_paths: Sequence[str] = (),
    train_size: int | None = None,
    test_size: int | None = None,
    val_fraction: float = 0.1,
    preprocess: Preprocess = "standardize",
    image_size: int | None = None,
    split_seed: int = 0,
    download: bool = True,
    bootstrap: bool = False,
) -> Dataset:
    """Load, split and preprocess one dataset (see the module docstring for the rules).

    ``loader`` (a callable or ``module:function``, looked up in ``search_paths`` first, then
    installed packages) makes a user dataset: it returns ``(x_train, y_train, x_test, y_test)``
    or a dict with those keys and optionally ``class_names``; ``x`` is numeric of shape
    ``(n, H, W, C)`` (images) or ``(n, F)`` (features), ``y`` integers in 0..K-1 with K >= 2.
    A plug-in registered under ``ablate.datasets`` brings its own loader.
    Raises DatasetError (one line) when the dataset is unknown, missing or malformed, or
    an argument is out of range.
    """
    if loader is None and name in DATASETS and DATASETS.get(name).loader is not None:
        loader = DATASETS.get(name).loader
    if loader is None:
        _check_name(name)
    size = _check_options(
        name,
        user=loader is not None,
        path=path,
        train_size=train_size,
        test_size=test_size,
        val_fraction=val_fraction,
        preprocess=preprocess,
        image_size=image_size,
        split_seed=split_seed,
    )
    if loader is not None:
        raw = load_user(name, loader, tuple(search_paths))
    else:
        found = _resolve(name, path, download=download)
        raw = _load_raw(name, found.kind, found.location, size, _sources_key(found))

    rng = np.random.default_rng(split_seed)
    n_avail = len(raw.y_train)
    pool = np.arange(n_avail)
    if train_size is not None:
        if train_size > n_avail:
            raise DatasetError(
                f"{name}: `train_size` must be at most {n_avail} (the training images available), got {train_size}"
            )
        pool, _ = _stratified_split(raw.y_train, train_size, rng)
    n_val = _val_count(name, len(pool), val_fraction)
    val_pos, train_pos = _stratified_split(raw.y_train[pool], n_val, rng)
    train_idx, val_idx = pool[train_pos], pool[val_pos]
    if bootstrap:  # Bouthillier et al.'s data sampling: a resample of the training split, same size
        train_idx = train_idx[rng.integers(0, len(train_idx), len(train_idx))]

    test_idx = np.arange(len(raw.y_test))
    if test_size is not None:
        if test_size > len(raw.y_test):
            raise DatasetError(
                f"{name}: `test_size` must be at most {len(raw.y_test)} (the test images available), got {test_size}"
            )
        test_idx, _ = _stratified_split(raw.y_test, test_size, np.random.default_rng(TEST_SUBSET_SEED))

    if loader is not None:  # a loader's classes are its labels: none may be a phantom
        check_every_class(name, raw.y_train[train_idx], len(raw.class_names),
                           "the training split left after `train_size` and `val_fraction`")
    x_train = raw.x_train[train_idx]
    shift, scale = _fit_preprocessing(preprocess, x_train, raw.max_value)
    return Dataset(
        name=name,
        x_train=_transform(x_train, shift, scale),
        y_train=raw.y_train[train_idx],
        x_val=_transform(raw.x_train[val_idx], shift, scale),
        y_val=raw.y_train[val_idx],
        x_test=_transform(raw.x_test[test_idx], shift, scale),
        y_test=raw.y_test[test_idx],
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
    )


def check_available(name: str, path: str | None = None, *, download: bool = True) -> None:
    """Raise DatasetError (one line) unless `name` can be loaded; looks only at folder listings.

    With ``download=True`` a dataset that keras.datasets can download counts as
    available when keras is installed; whether there is internet is found out at load.
    """
    _check_name(name)
    _resolve(name, path, download=download)


def describe_datasets(paths: Mapping[str, str] | None = None) -> list[DatasetInfo]:
    """One `DatasetInfo` per registered dataset (plug-ins last), for `python -m ablate datasets`.

    paths: optional {dataset name: folder} overrides, as a grid's `path:` would give.
    Shapes and counts come from file headers and listings, not from decoding the data,
    except CIFAR-10's python format, whose pickles must be read to count their rows.
    A plug-in's loader is not called: it shows what its entry declares (``known``), else "-".
    """
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(DATASETS.names()))
    if unknown:
        raise DatasetError(f"Expected dataset names among {DATASETS.names()}, but got {unknown}")
    return [describe_dataset(name, paths.get(name)) for name in DATASETS.names()]


def describe_dataset(name: str, path: str | None = None) -> DatasetInfo:
    """One registered dataset's `DatasetInfo` (see :func:`describe_datasets`); `path` as a grid's."""
    entry = DATASETS.get(name)
    if entry.loader is not None or entry.source is None:
        return _describe_plugin(entry)
    source = entry.source
    if source.path_unused and path is not None:
        raise DatasetError(f"{name}: `path` is not used ({source.path_unused})")
    # What the entry declares, where the files cannot tell.
    shape, k = entry.known[:2] if entry.known is not None else (None, None)
    found, looked = _locate(name, path)
    if found is None:
        location = f"not found ({source.searched(looked)}); {entry.how_to_obtain}"
        return DatasetInfo(name, False, location, shape, k, None, None)
    try:
        shape, k, n_train, n_test = source.describe(found)
    except DatasetError as exc:  # one broken copy must not hide the other datasets
        return DatasetInfo(name, False, f"unreadable: {exc}", shape, k, None, None)
    return DatasetInfo(name, True, source.where(found), shape, k, n_train, n_test)


def _describe_plugin(entry: DatasetEntry) -> DatasetInfo:
    """A plug-in's row: its loader as where it comes from, and only the sizes it declares."""
    loader = entry.loader
    if not isinstance(loader, str):
        loader = f"{getattr(loader, '__module__', '?')}:{getattr(loader, '__qualname__', type(loader).__name__)}"
    shape, k, n_train, n_test = entry.known if entry.known is not None else (None, None, None, None)
    return DatasetInfo(entry.name, True, f"plug-in loader {loader} ({entry.description})", shape, k,
                       n_train, n_test)


# ------------------------------------------------------------------- argument checking


def _check_name(name: str) -> None:
    """A dataset read from files: a built-in, or a plug-in entry with a source."""
    if name not in BUILTIN_DATASETS and (name not in DATASETS or DATASETS.get(name).source is None):
        raise DatasetError(f"Expected a dataset name among {DATASET_NAMES}, but got {name!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_options(
    name: str,
    *,
    user: bool = False,
    path: str | None,
    train_size: int | None,
    test_size: int | None,
    val_fraction: float,
    preprocess: str,
    image_size: int | None,
    split_seed: int,
) -> int:
    """Validate load_dataset's arguments; returns the image size (0 where it does not apply)."""
    source = DATASETS.get(name).source if name in DATASETS else None
    if source is not None and source.path_unused and path is not None:
        raise DatasetError(f"{name}: `path` is not used ({source.path_unused}), got {path!r}")
    for field, value in (("train_size", train_size), ("test_size", test_size)):
        if value is not None and not (_is_int(value) and value >= 1):
            raise DatasetError(f"{name}: `{field}` must be a positive integer or null, got {value!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise DatasetError(f"{name}: `val_fraction` must be a number in [0, 1), got {val_fraction!r}")
    if preprocess not in PREPROCESS_NAMES:
        raise DatasetError(f"{name}: `preprocess` must be one of {PREPROCESS_NAMES}, got {preprocess!r}")
    if not (_is_int(split_seed) and split_seed >= 0):
        raise DatasetError(f"{name}: `split_seed` must be a non-negative integer, got {split_seed!r}")
    if user or not DATASETS.get(name).resizable:
        if image_size is not None:
            raise DatasetError(f"{name}: `image_size` applies only to "
                               f"{', '.join(n for n, d in DATASETS.items() if d.resizable)}, got {image_size!r}")
        return 0
    if image_size is None:
        return DEFAULT_IMAGE_SIZE
    if not (_is_int(image_size) and 8 <= image_size <= 1024):
        raise DatasetError(f"{name}: `image_size` must be an integer in 8..1024, got {image_size!r}")
    return int(image_size)


def _val_count(name: str, n: int, val_fraction: float) -> int:
    """Validation images out of n training images: round(fraction * n), at least 1 if fraction > 0."""
    if val_fraction == 0:
        return 0
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise DatasetError(
            f"{name}: `val_fraction` {val_fraction} of {n} training images leaves none to train on; "
            "use a larger train_size or a smaller val_fraction"
        )
    return n_val


# ----------------------------------------------------------------------- locating data


def _default_dirs(name: str) -> list[Path]:
    """Folders searched, in order, when no `path` is given (a seam: tests point it elsewhere)."""
    return DATASETS.get(name).source.default_dirs()


def _locate(name: str, path: str | None) -> tuple[Found | None, list[Path]]:
    """Search locally only: (what was found or None, the places looked at)."""
    folders = [Path(path).expanduser()] if path is not None else _default_dirs(name)
    return DATASETS.get(name).source.locate(folders)


def _resolve(name: str, path: str | None, *, download: bool) -> Found:
    """Where to load `name` from: a local find, else a keras download, else DatasetError."""
    found, looked = _locate(name, path)
    if found is not None:
        return found
    entry = DATASETS.get(name)
    message = f"{name}: {entry.source.missing(looked)}; {entry.how_to_obtain}"
    if path is None and entry.source.downloads:
        if not download:
            raise DatasetError(message + "; the download is off here (download: false)")
        if importlib.util.find_spec("keras") is None:
            raise DatasetError(message + "; keras is not installed here, so it cannot download")
        return Found("keras", looked_text(looked))
    raise DatasetError(message)


# ----------------------------------------------------------------------- raw loading


def _sources_key(found: Found) -> str:
    """A fingerprint of the files a format reads (path, size, mtime), so that a changed file is
    never served from this process's cache either; "" for data that is not read from files."""
    if found.kind not in READERS:
        return ""
    try:
        return dataset_cache.fingerprint(source_files(found.kind, Path(found.location)), Path(found.location)) or ""
    except DatasetError:
        return ""  # the reader reports it


@functools.lru_cache(maxsize=8)
def _load_raw(name: str, kind: str, location: str, image_size: int, sources: str = "") -> Raw:
    """Parse a dataset once per process; keyed by where it was found, the image size and the
    fingerprint of its files. Files are parsed once per machine: see :mod:`ablate.data.cache`."""
    entry = DATASETS.get(name)
    if kind == "keras":
        parts = entry.source.download(name, location, entry.how_to_obtain)
    else:
        parts = entry.source.read(Found(kind, location), image_size)
    x_train, y_train, x_test, y_test, class_names = parts
    if class_names is None:  # the files do not name them: the entry does, else the classes are numbered
        k = entry.known[1] if entry.known is not None else int(np.max(y_train, initial=0)) + 1
        class_names = entry.class_names or tuple(str(i) for i in range(k))
    return freeze(name, location, x_train, y_train, x_test, y_test, tuple(class_names), entry.source.max_value)

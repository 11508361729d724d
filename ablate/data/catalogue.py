"""Datasets as preprocessed NHWC float32 numpy arrays, read without any training framework.

Where each dataset comes from (`path` overrides the default folders):

- ``digits``: scikit-learn's ``load_digits`` (1797 8x8 images, pixel values 0..16).
  It has no official test split, so a fixed stratified 25% (449 images, drawn with
  seed ``DIGITS_SPLIT_SEED``, independent of ``split_seed``) is its test set.
- ``fashion-mnist`` / ``mnist``: a folder with the four IDX files
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzipped or not).
  Fashion-MNIST defaults to the Debian package's folder ``/usr/share/datasets/fashion-mnist``;
  MNIST also accepts the ``mnist.npz`` that ``keras.datasets`` saves.
- ``cifar10``: ``cifar-10-batches-py`` (the pickles that Keras downloads) or
  ``cifar-10-batches-bin`` (binary records); `path` may name either folder or its parent.
- ``imagenette``: a folder with ``train/`` and ``val/`` folders of class folders of
  JPEG/PNG images (fastai's imagenette2-160), squashed to ``image_size`` (default 128)
  with bilinear resampling after conversion to RGB, like the fastai notebook's
  ``make_rgb`` + ``ResizeFixed``. Class names are the sorted folder names.

The Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) is searched
too; when nothing is found and ``download=True``, fashion-mnist, mnist and cifar10 are
downloaded through ``keras.datasets`` (imported only then; it needs internet). An
explicit `path` is never replaced by a download.

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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ablate.data.formats import (
    CIFAR10_CLASS_NAMES,
    _IDX_IMAGES_MAGIC,
    _IDX_STEMS,
    _cifar_bin_count,
    _cifar_bin_names,
    _cifar_py_names,
    _idx_file,
    _list_image_folder,
    _npz_shapes,
    _read_cifar_bin,
    _read_cifar_py,
    _read_idx_folder,
    _read_idx_header,
    _read_image_folder,
    _read_mnist_npz,
    _unpickle,
    source_files,
)
from ablate.data import cache as dataset_cache
from ablate.data.splits import _fit_preprocessing, _stratified_split, _transform
from ablate.errors import AblateError, DatasetError
from ablate.registry import Registry, resolve

Preprocess = Literal["standardize", "mean_subtract", "none"]
PREPROCESS_NAMES: tuple[str, ...] = get_args(Preprocess)

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
TEST_SUBSET_SEED = 0
DEFAULT_IMAGE_SIZE = 128
FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"

_DIGITS_N = 1797
_IDX_FILE_LIST = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset. Built-ins are read from files by :mod:`ablate.data.formats`;
    a plug-in gives a ``loader`` (a callable or ``module:function``, see :func:`load_dataset`)."""

    name: str
    description: str
    known: tuple[tuple[int, ...], int, int | None, int | None] | None = None  # shape, classes, n_train, n_test
    class_names: tuple[str, ...] | None = None  # None: the files name them
    how_to_obtain: str = ""
    what_is_missing: str = ""
    keras_download: bool = False  # keras.datasets can fetch it when no local copy is found
    resizable: bool = False  # takes `image_size`
    loader: Any = None


def _from_entry_point(name: str, obj: Any) -> DatasetEntry:
    if isinstance(obj, DatasetEntry):
        return obj
    if isinstance(obj, Mapping):
        return DatasetEntry(name, str(obj.get("description", "plug-in dataset")), loader=obj["loader"])
    if callable(obj):
        return DatasetEntry(name, (obj.__doc__ or "plug-in dataset").strip().splitlines()[0], loader=obj)
    raise DatasetError(f"entry point {name!r} in ablate.datasets must give a loader function, got {type(obj).__name__}")


DATASETS: Registry[DatasetEntry] = Registry("dataset", group="ablate.datasets", from_entry_point=_from_entry_point)
_BUILTINS: tuple[DatasetEntry, ...] = (
    DatasetEntry("digits", "scikit-learn's 8x8 handwritten digits (ships with scikit-learn)",
                 ((8, 8, 1), 10, _DIGITS_N - round(DIGITS_TEST_FRACTION * _DIGITS_N),
                  round(DIGITS_TEST_FRACTION * _DIGITS_N)),
                 tuple(str(d) for d in range(10)), "install scikit-learn (pip install scikit-learn)"),
    DatasetEntry("fashion-mnist", "Zalando's Fashion-MNIST, 28x28 greyscale, 10 classes (IDX files)",
                 ((28, 28, 1), 10, 60000, 10000),
                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
                 "install the Debian package `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), "
                 f"pass `path:` to a folder holding {_IDX_FILE_LIST}, "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 "no IDX files", keras_download=True),
    DatasetEntry("mnist", "MNIST handwritten digits, 28x28 greyscale (IDX files or keras' mnist.npz)",
                 ((28, 28, 1), 10, 60000, 10000), tuple(str(d) for d in range(10)),
                 f"pass `path:` to a folder holding {_IDX_FILE_LIST} (or keras's mnist.npz), "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 "no IDX files or mnist.npz", keras_download=True),
    DatasetEntry("cifar10", "CIFAR-10, 32x32 colour, 10 classes (python pickles or binary batches)",
                 ((32, 32, 3), 10, 50000, 10000), CIFAR10_CLASS_NAMES,
                 f"download {CIFAR10_URL}, untar it and pass `path:` to cifar-10-batches-py (or its parent), "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 "no cifar-10-batches-py or cifar-10-batches-bin folder", keras_download=True),
    DatasetEntry("imagenette", "fastai's Imagenette (10 ImageNet classes), folders of JPEGs squashed to image_size",
                 ((DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), 10, 9469, 3925), None,
                 f"download fastai's imagenette2-160 ({IMAGENETTE_URL}), untar it and pass `path:` "
                 "to the folder holding train/ and val/",
                 "no train/ and val/ class folders", resizable=True),
)
for _entry in _BUILTINS:
    DATASETS.register(_entry.name, _entry)
# The built-ins, which read files. Taken from the table above, not from DATASETS.names(), which
# would load the ablate.datasets entry points at import time.
BUILTIN_DATASETS: tuple[str, ...] = tuple(e.name for e in _BUILTINS)
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


@dataclass(frozen=True)
class _Found:
    kind: Literal["sklearn", "idx", "npz", "cifar-py", "cifar-bin", "folder", "keras"]
    location: str  # a folder or file; for "keras", the folders that were searched


@dataclass(frozen=True)
class _Raw:
    """Parsed, unprocessed arrays; all read-only because they live in the cache."""

    x_train: np.ndarray  # (n_train, H, W, C) uint8
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, H, W, C) uint8
    y_test: np.ndarray  # (n_test,) int64
    class_names: tuple[str, ...]
    max_value: float  # the largest pixel value the format can hold: 255, or 16 for digits


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
        raw = _load_user(name, loader, tuple(search_paths))
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
        _check_every_class(name, raw.y_train[train_idx], len(raw.class_names),
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


_USER_CACHE: dict[tuple, _Raw] = {}


def _load_user(name: str, loader: str | Callable, search_paths: tuple[str, ...]) -> _Raw:
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


def _check_user_arrays(name, x_train, y_train, x_test, y_test, *, class_names) -> _Raw:
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
    _check_every_class(name, arrays[1], k, "the loader's y_train")
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(str(i) for i in range(k))
    return _Raw(*arrays, class_names=names, max_value=1.0)


def _check_every_class(name: str, y_train: np.ndarray, k: int, where: str) -> None:
    """Labels must be 0..K-1 with every class in the training split: a class it lacks would be a
    phantom in the probabilities and in eps/K. One line naming the missing classes."""
    missing = np.setdiff1d(np.arange(k), y_train)
    if len(missing):
        shown = ", ".join(str(int(c)) for c in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise DatasetError(f"{name}: labels must be 0..K-1 with every class in the training split, but "
                           f"{where} has no example of class(es) {shown} (K = {k}); relabel the classes "
                           f"0..{k - len(missing) - 1}, or give each class training examples")


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
    infos = []
    for name, entry in DATASETS.items():
        if entry.loader is not None:
            infos.append(_describe_plugin(entry))
            continue
        path = paths.get(name)
        if name == "digits" and path is not None:
            raise DatasetError("digits: `path` is not used (the data ships with scikit-learn)")
        found, looked = _locate(name, path)
        if found is None:
            shape, k, n_train, n_test = DATASETS.get(name).known
            where = ", ".join(str(p) for p in looked) or "scikit-learn"
            location = f"not found ({where}); {DATASETS.get(name).how_to_obtain}"
            infos.append(DatasetInfo(name, False, location, shape, k, None, None))
            continue
        try:
            shape, k, n_train, n_test = _describe_found(name, found)
        except DatasetError as exc:  # one broken copy must not hide the other datasets
            shape, k, _, _ = DATASETS.get(name).known
            infos.append(DatasetInfo(name, False, f"unreadable: {exc}", shape, k, None, None))
            continue
        infos.append(DatasetInfo(name, True, _describe_location(found), shape, k, n_train, n_test))
    return infos


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
    if name not in DATASET_NAMES:
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
    if name == "digits" and path is not None:
        raise DatasetError(f"digits: `path` is not used (the data ships with scikit-learn), got {path!r}")
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


def _keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"


def _default_dirs(name: str) -> list[Path]:
    """Folders searched, in order, when no `path` is given."""
    keras_dir = _keras_datasets_dir()
    if name == "fashion-mnist":
        return [Path(FASHION_MNIST_DEBIAN_DIR), keras_dir / "fashion-mnist"]
    if name == "mnist":
        return [keras_dir / "mnist", keras_dir]
    if name == "cifar10":
        # Keras 3 extracts the archive into cifar-10-batches-py-target/.
        return [keras_dir, keras_dir / "cifar-10-batches-py-target"]
    if name == "imagenette":
        fastai_data = Path(os.environ.get("FASTAI_HOME", "~/.fastai")).expanduser() / "data"
        return [fastai_data / "imagenette2-160", fastai_data / "imagenette2-320", fastai_data / "imagenette2"]
    return []



def _find_in(name: str, where: Path) -> _Found | None:
    """The dataset in folder `where` (or, for cifar10, one level below), if its files are there."""
    if name in ("fashion-mnist", "mnist"):
        if where.is_dir() and all(_idx_file(where, stem) for stem in _IDX_STEMS.values()):
            return _Found("idx", str(where))
        if name == "mnist":
            npz = where if where.suffix == ".npz" else where / "mnist.npz"
            if npz.is_file():
                return _Found("npz", str(npz))
        return None
    if name == "cifar10":
        for folder in (where, where / "cifar-10-batches-py", where / "cifar-10-batches-bin"):
            if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
                return _Found("cifar-py", str(folder))
            if (folder / "data_batch_1.bin").is_file() and (folder / "test_batch.bin").is_file():
                return _Found("cifar-bin", str(folder))
        return None
    if name == "imagenette":
        if (where / "train").is_dir() and (where / "val").is_dir():
            return _Found("folder", str(where))
        return None
    raise AssertionError(name)


def _locate(name: str, path: str | None) -> tuple[_Found | None, list[Path]]:
    """Search locally only: (what was found or None, the places looked at)."""
    if name == "digits":
        found = importlib.util.find_spec("sklearn") is not None
        return (_Found("sklearn", "scikit-learn"), []) if found else (None, [])
    looked = [Path(path).expanduser()] if path is not None else _default_dirs(name)
    for folder in looked:
        found = _find_in(name, folder)
        if found is not None:
            return found, looked
    return None, looked


def _resolve(name: str, path: str | None, *, download: bool) -> _Found:
    """Where to load `name` from: a local find, else a keras download, else DatasetError."""
    found, looked = _locate(name, path)
    if found is not None:
        return found
    if name == "digits":
        raise DatasetError(f"digits: scikit-learn is not installed; {DATASETS.get('digits').how_to_obtain}")
    where = ", ".join(str(p) + ("" if p.exists() else " (does not exist)") for p in looked)
    message = f"{name}: {DATASETS.get(name).what_is_missing} in {where}; {DATASETS.get(name).how_to_obtain}"
    if path is None and DATASETS.get(name).keras_download:
        if not download:
            raise DatasetError(message + "; the download is off here (download: false)")
        if importlib.util.find_spec("keras") is None:
            raise DatasetError(message + "; keras is not installed here, so it cannot download")
        return _Found("keras", where)
    raise DatasetError(message)


# ------------------------------------------------------------------------ describing


def _describe_location(found: _Found) -> str:
    kinds = {
        "sklearn": "bundled",
        "idx": "IDX files",
        "npz": "keras mnist.npz",
        "cifar-py": "python pickles",
        "cifar-bin": "binary batches",
        "folder": "image folders",
    }
    return f"{found.location} ({kinds[found.kind]})"


def _describe_found(name: str, found: _Found) -> tuple[tuple[int, int, int], int, int, int]:
    """(input shape, classes, n_train, n_test) of a local dataset, cheaply."""
    if found.kind == "sklearn":
        return DATASETS.get("digits").known
    folder = Path(found.location)
    if found.kind == "idx":
        n_train, h, w = _read_idx_header(_idx_file(folder, _IDX_STEMS["train_images"]), _IDX_IMAGES_MAGIC)
        n_test = _read_idx_header(_idx_file(folder, _IDX_STEMS["test_images"]), _IDX_IMAGES_MAGIC)[0]
        return (h, w, 1), 10, n_train, n_test
    if found.kind == "npz":
        shapes = _npz_shapes(folder, ("x_train", "x_test"))
        (n_train, h, w), (n_test, _, _) = shapes
        return (h, w, 1), 10, n_train, n_test
    if found.kind == "cifar-bin":
        sizes = [_cifar_bin_count(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
        k = len(_cifar_bin_names(folder))
        return (32, 32, 3), k, sum(sizes), _cifar_bin_count(folder / "test_batch.bin")
    if found.kind == "cifar-py":
        n_train = sum(len(_unpickle(folder / f"data_batch_{i}")[b"labels"]) for i in range(1, 6))
        n_test = len(_unpickle(folder / "test_batch")[b"labels"])
        return (32, 32, 3), len(_cifar_py_names(folder)), n_train, n_test
    if found.kind == "folder":
        names, train, _, test, _ = _list_image_folder(folder)
        return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), len(names), len(train), len(test)
    raise AssertionError(found.kind)


# ----------------------------------------------------------------------- raw loading


_FILE_READERS: dict[str, Callable[[Path, int], tuple]] = {
    "idx": lambda where, size: _read_idx_folder(where),
    "npz": lambda where, size: _read_mnist_npz(where),
    "cifar-py": lambda where, size: _read_cifar_py(where),
    "cifar-bin": lambda where, size: _read_cifar_bin(where),
    "folder": _read_image_folder,
}


def _sources_key(found: _Found) -> str:
    """A fingerprint of the files a format reads (path, size, mtime), so that a changed file is
    never served from this process's cache either; "" for data that is not read from files."""
    if found.kind not in _FILE_READERS:
        return ""
    try:
        return dataset_cache.fingerprint(source_files(found.kind, Path(found.location)), Path(found.location)) or ""
    except DatasetError:
        return ""  # the reader reports it


@functools.lru_cache(maxsize=8)
def _load_raw(name: str, kind: str, location: str, image_size: int, sources: str = "") -> _Raw:
    """Parse a dataset once per process; keyed by where it was found, the image size and the
    fingerprint of its files. Files are parsed once per machine: see :mod:`ablate.data.cache`."""
    if kind == "sklearn":
        parts = _read_digits()
    elif kind in _FILE_READERS:
        where = Path(location)
        parts = dataset_cache.cached(lambda: _FILE_READERS[kind](where, image_size), kind=kind, location=location,
                                     image_size=image_size, sources=source_files(kind, where))
    elif kind == "keras":
        parts = _download_with_keras(name, location)
    else:
        raise AssertionError(kind)
    x_train, y_train, x_test, y_test, class_names = parts
    if class_names is None:
        class_names = DATASETS.get(name).class_names
    max_value = 16.0 if name == "digits" else 255.0
    return _freeze(name, location, x_train, y_train, x_test, y_test, tuple(class_names), max_value)


def _freeze(name, location, x_train, y_train, x_test, y_test, class_names, max_value) -> _Raw:
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
    return _Raw(*arrays, class_names=class_names, max_value=max_value)


def _read_digits():
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[..., None]  # (1797, 8, 8, 1), values 0..16
    y = bunch.target.astype(np.int64)
    test, train = _stratified_split(y, round(DIGITS_TEST_FRACTION * len(y)), np.random.default_rng(DIGITS_SPLIT_SEED))
    return x[train], y[train], x[test], y[test], None


def _download_with_keras(name: str, looked: str):
    try:
        import keras  # lazy: importing keras starts a framework

        module = {
            "fashion-mnist": keras.datasets.fashion_mnist,
            "mnist": keras.datasets.mnist,
            "cifar10": keras.datasets.cifar10,
        }[name]
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as e:  # no internet, a bad archive, a broken install: all one line
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise DatasetError(
            f"{name}: not found in {looked} and the keras.datasets download failed ({reason}); {DATASETS.get(name).how_to_obtain}"
        ) from e
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    if x_train.ndim == 3:  # (n, 28, 28) greyscale
        x_train, x_test = x_train[..., None], x_test[..., None]
    elif x_train.shape[1] == 3 and x_train.shape[-1] != 3:  # keras set to channels_first
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return x_train, y_train, x_test, y_test, None

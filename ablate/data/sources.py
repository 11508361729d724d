"""The datasets registry, and each dataset's source: where its files are, what they hold, how to read them.

A :class:`Source` locates a dataset (its default folders, or `path`), describes a local copy
cheaply (from headers and listings) and reads it into raw arrays; the catalogue asks the source
and never the dataset's name. One subclass per kind of source (`path` overrides the default folders):

- :class:`ScikitDigits` (``digits``): scikit-learn's ``load_digits`` (1797 8x8 images, pixel
  values 0..16). It has no official test split, so a fixed stratified 25% (449 images, drawn
  with seed ``DIGITS_SPLIT_SEED``, independent of ``split_seed``) is its test set.
- :class:`IdxFolder` (``fashion-mnist`` / ``mnist``): a folder with the four IDX files
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzipped or not).
  Fashion-MNIST defaults to the Debian package's folder ``/usr/share/datasets/fashion-mnist``;
  MNIST also accepts the ``mnist.npz`` that ``keras.datasets`` saves.
- :class:`CifarBatches` (``cifar10``): ``cifar-10-batches-py`` (the pickles that Keras downloads)
  or ``cifar-10-batches-bin`` (binary records); `path` may name either folder or its parent.
- :class:`ImageFolders` (``imagenette``): a folder with ``train/`` and ``val/`` folders of class
  folders of JPEG/PNG images (fastai's imagenette2-160), squashed to ``image_size`` (default 128)
  with bilinear resampling after conversion to RGB, like the fastai notebook's ``make_rgb`` +
  ``ResizeFixed``. Class names are the sorted folder names.

The Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) is searched too; a
source with a ``keras_dataset`` can be downloaded through ``keras.datasets`` (imported only then).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ablate.data import cache as dataset_cache
from ablate.data.formats import (
    _IDX_IMAGES_MAGIC,
    _IDX_STEMS,
    CIFAR10_CLASS_NAMES,
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
from ablate.data.splits import _stratified_split
from ablate.errors import DatasetError
from ablate.registry import Registry

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
DEFAULT_IMAGE_SIZE = 128
FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"

_DIGITS_N = 1797
_DIGITS_KNOWN = ((8, 8, 1), 10, _DIGITS_N - round(DIGITS_TEST_FRACTION * _DIGITS_N),
                 round(DIGITS_TEST_FRACTION * _DIGITS_N))
_IDX_FILE_LIST = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)

Shape = tuple[tuple[int, ...], int, int, int]  # input shape, classes, n_train, n_test
Parts = tuple  # (x_train, y_train, x_test, y_test, class_names or None), as the format readers return


@dataclass(frozen=True)
class Found:
    kind: str  # the format: "sklearn", "idx", "npz", "cifar-py", "cifar-bin", "folder", or "keras" (download)
    location: str  # a folder or file; for "keras", the folders that were searched


# The format readers, by format (not by dataset): (where, image size) -> Parts.
READERS: dict[str, Callable[[Path, int], tuple]] = {
    "idx": lambda where, size: _read_idx_folder(where),
    "npz": lambda where, size: _read_mnist_npz(where),
    "cifar-py": lambda where, size: _read_cifar_py(where),
    "cifar-bin": lambda where, size: _read_cifar_bin(where),
    "folder": _read_image_folder,
}


def keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"


def looked_text(looked: Sequence[Path]) -> str:
    """The folders searched, each marked when it does not exist."""
    return ", ".join(str(p) + ("" if p.exists() else " (does not exist)") for p in looked)


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from. Subclasses say which formats they find and read.

    dirs: the folders searched, in order, when no `path` is given; ``{keras}`` is the Keras
    cache (``$KERAS_HOME/datasets``) and ``{fastai}`` fastai's (``$FASTAI_HOME/data``), read
    when searched. keras_dataset: the ``keras.datasets`` module that downloads it, or None.
    """

    dirs: tuple[str, ...] = ()
    keras_dataset: str | None = None

    formats: ClassVar[Mapping[str, str]] = {}  # format kind -> how `python -m ablate datasets` names it
    what_is_missing: ClassVar[str] = ""  # what a searched folder lacked, for the not-found message
    max_value: ClassVar[float] = 255.0  # the largest pixel value the format can hold
    path_unused: ClassVar[str] = ""  # why `path` is refused; "" where it is taken

    @property
    def downloads(self) -> bool:
        return self.keras_dataset is not None

    def default_dirs(self) -> list[Path]:
        """Folders searched, in order, when no `path` is given."""
        fastai = Path(os.environ.get("FASTAI_HOME", "~/.fastai")).expanduser() / "data"
        return [Path(d.format(keras=keras_datasets_dir(), fastai=fastai)) for d in self.dirs]

    def find_in(self, where: Path) -> Found | None:
        """The dataset in folder `where`, if its files are there."""
        raise NotImplementedError

    def locate(self, folders: Sequence[Path]) -> tuple[Found | None, list[Path]]:
        """Search locally only: (what was found or None, the places looked at)."""
        for folder in folders:
            found = self.find_in(folder)
            if found is not None:
                return found, list(folders)
        return None, list(folders)

    def missing(self, looked: Sequence[Path]) -> str:
        """What was not found where: the start of the not-found message."""
        return f"{self.what_is_missing} in {looked_text(looked)}"

    def searched(self, looked: Sequence[Path]) -> str:
        """Where `datasets` says it looked."""
        return ", ".join(str(p) for p in looked)

    def where(self, found: Found) -> str:
        """A local copy as `python -m ablate datasets` shows it: the place and the format."""
        return f"{found.location} ({self.formats[found.kind]})"

    def describe(self, found: Found) -> Shape:
        """(input shape, classes, n_train, n_test) of a local copy, cheaply."""
        raise NotImplementedError

    def read(self, found: Found, image_size: int) -> Parts:
        """Parse a local copy, through the on-disk cache (:mod:`ablate.data.cache`)."""
        where = Path(found.location)
        return dataset_cache.cached(lambda: READERS[found.kind](where, image_size), kind=found.kind,
                                    location=found.location, image_size=image_size,
                                    sources=source_files(found.kind, where))

    def download(self, name: str, looked: str, how_to_obtain: str) -> Parts:
        """Fetch it through keras.datasets (needs internet); any failure is one line."""
        try:
            import keras  # lazy: importing keras starts a framework

            (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, self.keras_dataset).load_data()
        except Exception as e:  # no internet, a bad archive, a broken install: all one line
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            raise DatasetError(
                f"{name}: not found in {looked} and the keras.datasets download failed ({reason}); {how_to_obtain}"
            ) from e
        x_train, x_test = np.asarray(x_train), np.asarray(x_test)
        if x_train.ndim == 3:  # (n, 28, 28) greyscale
            x_train, x_test = x_train[..., None], x_test[..., None]
        elif x_train.shape[1] == 3 and x_train.shape[-1] != 3:  # keras set to channels_first
            x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
        return x_train, y_train, x_test, y_test, None


@dataclass(frozen=True)
class ScikitDigits(Source):
    """scikit-learn's bundled digits, with a fixed stratified test split."""

    formats: ClassVar[Mapping[str, str]] = {"sklearn": "bundled"}
    max_value: ClassVar[float] = 16.0
    path_unused: ClassVar[str] = "the data ships with scikit-learn"

    def locate(self, folders: Sequence[Path]) -> tuple[Found | None, list[Path]]:
        found = importlib.util.find_spec("sklearn") is not None
        return (Found("sklearn", "scikit-learn"), []) if found else (None, [])

    def missing(self, looked: Sequence[Path]) -> str:
        return "scikit-learn is not installed"

    def searched(self, looked: Sequence[Path]) -> str:
        return "scikit-learn"

    def describe(self, found: Found) -> Shape:
        return _DIGITS_KNOWN

    def read(self, found: Found, image_size: int) -> Parts:
        from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

        bunch = load_digits()
        x = bunch.images.astype(np.uint8)[..., None]  # (1797, 8, 8, 1), values 0..16
        y = bunch.target.astype(np.int64)
        test, train = _stratified_split(y, round(DIGITS_TEST_FRACTION * len(y)),
                                        np.random.default_rng(DIGITS_SPLIT_SEED))
        return x[train], y[train], x[test], y[test], None


@dataclass(frozen=True)
class IdxFolder(Source):
    """The four MNIST-style IDX files in a folder; with ``npz``, keras' mnist.npz too."""

    npz: bool = False

    formats: ClassVar[Mapping[str, str]] = {"idx": "IDX files", "npz": "keras mnist.npz"}

    @property
    def what_is_missing(self) -> str:  # type: ignore[override]
        return "no IDX files or mnist.npz" if self.npz else "no IDX files"

    def find_in(self, where: Path) -> Found | None:
        if where.is_dir() and all(_idx_file(where, stem) for stem in _IDX_STEMS.values()):
            return Found("idx", str(where))
        if self.npz:
            npz = where if where.suffix == ".npz" else where / "mnist.npz"
            if npz.is_file():
                return Found("npz", str(npz))
        return None

    def describe(self, found: Found) -> Shape:
        folder = Path(found.location)
        if found.kind == "npz":
            (n_train, h, w), (n_test, _, _) = _npz_shapes(folder, ("x_train", "x_test"))
            return (h, w, 1), 10, n_train, n_test
        n_train, h, w = _read_idx_header(_idx_file(folder, _IDX_STEMS["train_images"]), _IDX_IMAGES_MAGIC)
        n_test = _read_idx_header(_idx_file(folder, _IDX_STEMS["test_images"]), _IDX_IMAGES_MAGIC)[0]
        return (h, w, 1), 10, n_train, n_test


@dataclass(frozen=True)
class CifarBatches(Source):
    """CIFAR-10's python pickles or binary batches, in the folder or one level below it."""

    formats: ClassVar[Mapping[str, str]] = {"cifar-py": "python pickles", "cifar-bin": "binary batches"}
    what_is_missing: ClassVar[str] = "no cifar-10-batches-py or cifar-10-batches-bin folder"

    def find_in(self, where: Path) -> Found | None:
        for folder in (where, where / "cifar-10-batches-py", where / "cifar-10-batches-bin"):
            if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
                return Found("cifar-py", str(folder))
            if (folder / "data_batch_1.bin").is_file() and (folder / "test_batch.bin").is_file():
                return Found("cifar-bin", str(folder))
        return None

    def describe(self, found: Found) -> Shape:
        folder = Path(found.location)
        if found.kind == "cifar-bin":
            sizes = [_cifar_bin_count(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
            k = len(_cifar_bin_names(folder))
            return (32, 32, 3), k, sum(sizes), _cifar_bin_count(folder / "test_batch.bin")
        # The python format's pickles must be read to count their rows.
        n_train = sum(len(_unpickle(folder / f"data_batch_{i}")[b"labels"]) for i in range(1, 6))
        n_test = len(_unpickle(folder / "test_batch")[b"labels"])
        return (32, 32, 3), len(_cifar_py_names(folder)), n_train, n_test


@dataclass(frozen=True)
class ImageFolders(Source):
    """train/ and val/ folders of class folders of images, squashed to the image size."""

    formats: ClassVar[Mapping[str, str]] = {"folder": "image folders"}
    what_is_missing: ClassVar[str] = "no train/ and val/ class folders"

    def find_in(self, where: Path) -> Found | None:
        if (where / "train").is_dir() and (where / "val").is_dir():
            return Found("folder", str(where))
        return None

    def describe(self, found: Found) -> Shape:
        names, train, _, test, _ = _list_image_folder(Path(found.location))
        return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), len(names), len(train), len(test)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset. A built-in (or a plug-in with files) has a ``source`` that finds and
    reads them; a plug-in may instead give a ``loader`` (a callable or ``module:function``, see
    :func:`ablate.data.catalogue.load_dataset`), which wins over a source."""

    name: str
    description: str
    known: tuple[tuple[int, ...], int, int | None, int | None] | None = None  # shape, classes, n_train, n_test
    class_names: tuple[str, ...] | None = None  # None: the files name them
    how_to_obtain: str = ""
    resizable: bool = False  # takes `image_size`
    loader: Any = None
    source: Source | None = None


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
    DatasetEntry("digits", "scikit-learn's 8x8 handwritten digits (ships with scikit-learn)", _DIGITS_KNOWN,
                 tuple(str(d) for d in range(10)), "install scikit-learn (pip install scikit-learn)",
                 source=ScikitDigits()),
    DatasetEntry("fashion-mnist", "Zalando's Fashion-MNIST, 28x28 greyscale, 10 classes (IDX files)",
                 ((28, 28, 1), 10, 60000, 10000),
                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
                 "install the Debian package `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), "
                 f"pass `path:` to a folder holding {_IDX_FILE_LIST}, "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 source=IdxFolder((FASHION_MNIST_DEBIAN_DIR, "{keras}/fashion-mnist"), "fashion_mnist")),
    DatasetEntry("mnist", "MNIST handwritten digits, 28x28 greyscale (IDX files or keras' mnist.npz)",
                 ((28, 28, 1), 10, 60000, 10000), tuple(str(d) for d in range(10)),
                 f"pass `path:` to a folder holding {_IDX_FILE_LIST} (or keras's mnist.npz), "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 source=IdxFolder(("{keras}/mnist", "{keras}"), "mnist", npz=True)),
    DatasetEntry("cifar10", "CIFAR-10, 32x32 colour, 10 classes (python pickles or binary batches)",
                 ((32, 32, 3), 10, 50000, 10000), CIFAR10_CLASS_NAMES,
                 f"download {CIFAR10_URL}, untar it and pass `path:` to cifar-10-batches-py (or its parent), "
                 "or leave `path:` out so keras.datasets downloads it (needs internet)",
                 # Keras 3 extracts the archive into cifar-10-batches-py-target/.
                 source=CifarBatches(("{keras}", "{keras}/cifar-10-batches-py-target"), "cifar10")),
    DatasetEntry("imagenette", "fastai's Imagenette (10 ImageNet classes), folders of JPEGs squashed to image_size",
                 ((DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), 10, 9469, 3925), None,
                 f"download fastai's imagenette2-160 ({IMAGENETTE_URL}), untar it and pass `path:` "
                 "to the folder holding train/ and val/", resizable=True,
                 source=ImageFolders(("{fastai}/imagenette2-160", "{fastai}/imagenette2-320", "{fastai}/imagenette2"))),
)
for _entry in _BUILTINS:
    DATASETS.register(_entry.name, _entry)
# The built-ins, which read files. Taken from the table above, not from DATASETS.names(), which
# would load the ablate.datasets entry points at import time.
BUILTIN_DATASETS: tuple[str, ...] = tuple(e.name for e in _BUILTINS)

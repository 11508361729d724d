"""Readers for the file formats datasets come in: IDX, keras' mnist.npz, CIFAR-10's python
pickles and binary batches, and folders of class folders of images.

Each reader returns raw arrays, ``x: (n, H, W, C)`` uint8 and ``y: (n,)`` labels, and raises a
one-line DatasetError naming the file when it is missing, truncated or malformed.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ablate.errors import DatasetError

_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_CIFAR_RECORD = 1 + 3 * 32 * 32  # binary format: a label byte, then CHW pixels
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

def _idx_file(folder: Path, stem: str) -> Path | None:
    # Also accept the "train-images.idx3-ubyte" spelling some archives use.
    dotted = stem.replace("-idx", ".idx")
    for candidate in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _open_maybe_gzip(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _idx_dims(f, path: Path, magic: int) -> tuple[int, ...]:
    """Read an IDX header (big-endian magic number, then one uint32 per dimension)."""
    head = f.read(4)
    if len(head) < 4:
        raise DatasetError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
    (found,) = struct.unpack(">I", head)
    if found != magic:
        raise DatasetError(
            f"{path}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"(unsigned bytes, {magic & 0xFF} dimensions)"
        )
    ndim = magic & 0xFF
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header")
    return struct.unpack(f">{ndim}I", raw_dims)


def _read_idx_header(path: Path, magic: int) -> tuple[int, ...]:
    try:
        with _open_maybe_gzip(path) as f:
            return _idx_dims(f, path, magic)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read IDX file ({type(e).__name__}: {e})") from e


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes as a uint8 array of the header's shape."""
    try:
        with _open_maybe_gzip(path) as f:
            dims = _idx_dims(f, path, magic)
            expected = int(np.prod(dims))
            data = f.read(expected)
    except (OSError, EOFError, zlib.error) as e:  # includes gzip.BadGzipFile and a cut-off gzip stream
        raise DatasetError(f"{path}: cannot read IDX file ({type(e).__name__}: {e})") from e
    if len(data) < expected:
        raise DatasetError(
            f"{path}: truncated IDX file: header says {dims} ({expected} bytes), found {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_idx_folder(folder: Path):
    files = {key: _idx_file(folder, stem) for key, stem in _IDX_STEMS.items()}
    x_train = _read_idx(files["train_images"], _IDX_IMAGES_MAGIC)[..., None]
    y_train = _read_idx(files["train_labels"], _IDX_LABELS_MAGIC)
    x_test = _read_idx(files["test_images"], _IDX_IMAGES_MAGIC)[..., None]
    y_test = _read_idx(files["test_labels"], _IDX_LABELS_MAGIC)
    return x_train, y_train, x_test, y_test, None


def _npz_shapes(path: Path, keys: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Array shapes inside an .npz, read from the .npy headers only."""
    shapes = []
    try:
        with zipfile.ZipFile(path) as archive:
            for key in keys:
                with archive.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape = np.lib.format.read_array_header_1_0(f)[0]
                    else:
                        shape = np.lib.format.read_array_header_2_0(f)[0]
                    shapes.append(tuple(shape))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot read mnist.npz ({type(e).__name__}: {e})") from e
    return shapes


def _read_mnist_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            parts = [f[key] for key in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot read mnist.npz ({type(e).__name__}: {e})") from e
    x_train, y_train, x_test, y_test = parts
    return x_train[..., None], y_train, x_test[..., None], y_test, None


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches contain (numpy arrays), never arbitrary code."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # Protocol 5 stores an array as (buffer, dtype, shape, order), rebuilt by
            # frombuffer(...).reshape(...): data only, no code.
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module.startswith("numpy.core") and importlib.util.find_spec("numpy._core") is not None:
            module = "numpy._core" + module[len("numpy.core"):]  # numpy 2 moved it; the old name warns
        return super().find_class(module, name)


_CIFAR_PICKLE_MAX_BYTES = 64 * 2**20  # a real batch is about 31 MB


def _unpickle(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > _CIFAR_PICKLE_MAX_BYTES:
            raise DatasetError(f"{path}: {size:,} bytes is far more than a CIFAR-10 python batch (about 31 MB); "
                               "expected the files of cifar-10-python.tar.gz")
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except DatasetError:
        raise
    except (Exception, MemoryError) as e:  # noqa: BLE001 - the unpickler is restricted: any failure means a bad file
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise DatasetError(f"{path}: cannot read CIFAR-10 pickle ({why}); expected the python-format batches "
                           "of cifar-10-python.tar.gz") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _cifar_py_names(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASS_NAMES
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(meta)[b"label_names"])


def _cifar_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except KeyError as e:
        raise DatasetError(f"{path}: CIFAR-10 batch without the key {e.args[0]!r}") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: expected b'data' of shape (n, 3072) uint8, got {data.shape} {data.dtype}")
    # Rows are CHW (1024 red, 1024 green, 1024 blue), each row-major.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_cifar_py(folder: Path):
    batches = []
    for i in range(1, 6):
        path = folder / f"data_batch_{i}"
        if not path.is_file():
            raise DatasetError(f"cifar10: {path} is missing (cifar-10-batches-py holds data_batch_1..5)")
        batches.append(_cifar_py_batch(path))
    x_test, y_test = _cifar_py_batch(folder / "test_batch")
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    return x_train, y_train, x_test, y_test, _cifar_py_names(folder)


def _cifar_bin_count(path: Path) -> int:
    if not path.is_file():
        raise DatasetError(f"cifar10: {path} is missing (cifar-10-batches-bin holds data_batch_1..5.bin)")
    size = path.stat().st_size
    if size % _CIFAR_RECORD:
        raise DatasetError(
            f"{path}: truncated CIFAR-10 binary batch ({size} bytes is not a multiple of {_CIFAR_RECORD})"
        )
    return size // _CIFAR_RECORD


def _cifar_bin_names(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return CIFAR10_CLASS_NAMES
    return tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())


def _cifar_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    n = _cifar_bin_count(path)
    records = np.fromfile(path, dtype=np.uint8).reshape(n, _CIFAR_RECORD)
    return records[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1), records[:, 0]


def _read_cifar_bin(folder: Path):
    batches = [_cifar_bin_batch(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
    x_test, y_test = _cifar_bin_batch(folder / "test_batch.bin")
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    return x_train, y_train, x_test, y_test, _cifar_bin_names(folder)


def _list_image_folder(root: Path):
    """(class names, train files, train labels, val files, val labels) of train/ and val/."""
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"imagenette: {root / 'train'} holds no class folders")
    index = {c: i for i, c in enumerate(classes)}
    splits = []
    for split in ("train", "val"):
        files, labels = [], []
        for class_dir in sorted(d for d in (root / split).iterdir() if d.is_dir()):
            if class_dir.name not in index:
                raise DatasetError(f"imagenette: class folder {class_dir} has no counterpart in {root / 'train'}")
            images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            files += images
            labels += [index[class_dir.name]] * len(images)
        splits += [files, np.array(labels, dtype=np.int64)]
    return (tuple(classes), *splits)


def _decode_images(files: Sequence[Path], size: int, out: np.ndarray) -> None:
    """Decode ``files`` into ``out`` (len(files), size, size, 3): RGB, squashed with bilinear resampling."""
    from PIL import Image

    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                out[i] = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        except (OSError, ValueError) as e:
            raise DatasetError(f"imagenette: cannot read image {path} ({e})") from e


def _read_image_folder(root: Path, size: int, n_jobs: int | None = None):
    try:
        import PIL  # noqa: F401 - lazy: only imagenette needs Pillow
    except ImportError as e:
        raise DatasetError("imagenette: reading images needs Pillow; pip install pillow") from e
    from joblib import Parallel, delayed

    classes, train_files, y_train, val_files, y_val = _list_image_folder(root)
    n_jobs = n_jobs or min(8, os.cpu_count() or 1)

    def read_all(files: list[Path]) -> np.ndarray:
        out = np.empty((len(files), size, size, 3), dtype=np.uint8)
        # Pillow releases the GIL while decoding and resizing, so threads decode in parallel and
        # write straight into `out`; chunks of 64 images keep the scheduling cheap.
        chunks = [slice(i, min(i + 64, len(files))) for i in range(0, len(files), 64)]
        Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_decode_images)(files[c], size, out[c]) for c in chunks)
        return out

    return read_all(train_files), y_train, read_all(val_files), y_val, classes


def source_files(kind: str, location: Path) -> list[Path]:
    """Every file the reader of ``kind`` reads at ``location`` (for the cache's key).

    A missing file is listed too, so the key cannot be made and the reader reports it.
    """
    if kind == "idx":
        return [_idx_file(location, stem) or location / f"{stem}.gz" for stem in _IDX_STEMS.values()]
    if kind == "npz":
        return [location]
    if kind == "cifar-py":
        meta = [location / "batches.meta"] if (location / "batches.meta").is_file() else []
        return [location / f"data_batch_{i}" for i in range(1, 6)] + [location / "test_batch"] + meta
    if kind == "cifar-bin":
        meta = [location / "batches.meta.txt"] if (location / "batches.meta.txt").is_file() else []
        return [location / f"data_batch_{i}.bin" for i in range(1, 6)] + [location / "test_batch.bin"] + meta
    if kind == "folder":
        _, train_files, _, val_files, _ = _list_image_folder(location)
        return list(train_files) + list(val_files)
    raise AssertionError(kind)

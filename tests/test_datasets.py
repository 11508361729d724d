"""Every dataset format, written small in tmp_path, then loaded, split and described."""

import gzip
import importlib.machinery
import os
import pickle
import struct
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import ablate.data.catalogue as ds
from ablate.data.catalogue import DATASET_NAMES, Dataset, check_available, describe_datasets, load_dataset
from ablate.errors import DatasetError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the machine's real data folders or another test's cache, or the network."""
    nowhere = tmp_path / "nowhere"
    monkeypatch.setattr(ds, "_default_dirs", lambda name: [nowhere])
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` fails: no download here
    monkeypatch.setattr(ds.importlib.util, "find_spec", _find_spec_without_keras)
    ds._load_raw.cache_clear()
    yield
    ds._load_raw.cache_clear()


_real_find_spec = ds.importlib.util.find_spec


def _find_spec_without_keras(name, *args):
    return None if name == "keras" else _real_find_spec(name, *args)


# --------------------------------------------------------------------------- writers


def ids_to_images(ids, h, w):
    """uint8 images (n, h, w) whose first two pixels encode an id (id // 256, id % 256)."""
    rng = np.random.default_rng(len(ids))
    x = rng.integers(0, 256, size=(len(ids), h, w), dtype=np.uint8)
    x[:, 0, 0] = np.asarray(ids) // 256
    x[:, 0, 1] = np.asarray(ids) % 256
    return x


def image_ids(x):
    """Recover the ids of ids_to_images from preprocess="none" output (n, h, w, 1)."""
    raw = np.rint(x[..., 0] * 255).astype(np.int64)
    return raw[:, 0, 0] * 256 + raw[:, 0, 1]


def write_idx(path, array, magic=None, gz=True):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        Path(path).write_bytes(payload)


def balanced_labels(n, k=10, seed=0):
    return np.random.default_rng(seed).permutation(np.arange(n) % k).astype(np.uint8)


def write_idx_folder(folder, n_train=100, n_test=40, h=6, w=5, gz=True):
    """The four MNIST-style files; image ids 0..n_train-1 (train) and 1000.. (test)."""
    folder.mkdir(parents=True, exist_ok=True)
    y_train, y_test = balanced_labels(n_train, seed=1), balanced_labels(n_test, seed=2)
    x_train = ids_to_images(np.arange(n_train), h, w)
    x_test = ids_to_images(1000 + np.arange(n_test), h, w)
    write_idx(folder / "train-images-idx3-ubyte", x_train, gz=gz)
    write_idx(folder / "train-labels-idx1-ubyte", y_train, gz=gz)
    write_idx(folder / "t10k-images-idx3-ubyte", x_test, gz=gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz=gz)
    return x_train, y_train, x_test, y_test


def cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def chw_rows(x):
    """NHWC uint8 -> (n, 3072) rows as the CIFAR files store them (CHW, row-major)."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar_py(parent, per_batch=6, n_test=10, old_numpy_pickles=False):
    """cifar-10-batches-py with the real files' keys, pickled with protocol 2 as the originals."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 7):
        n = n_test if i == 6 else per_batch
        x = cifar_images(n, seed=i)
        y = [int(v) for v in balanced_labels(n, seed=i)]
        batch = {
            b"batch_label": b"testing batch 1 of 1" if i == 6 else f"training batch {i} of 5".encode(),
            b"labels": y,
            b"data": chw_rows(x),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        blob = pickle.dumps(batch, protocol=2)
        if old_numpy_pickles:  # what the 2009 files name: numpy.core, not numpy._core
            blob = blob.replace(b"numpy._core", b"numpy.core")
        (folder / ("test_batch" if i == 6 else f"data_batch_{i}")).write_bytes(blob)
        xs.append(x)
        ys.append(np.array(y))
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def write_cifar_bin(parent, per_batch=6, n_test=10):
    folder = parent / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 7):
        n = n_test if i == 6 else per_batch
        x, y = cifar_images(n, seed=10 + i), balanced_labels(n, seed=10 + i)
        records = np.concatenate([y[:, None], chw_rows(x)], axis=1).astype(np.uint8)
        (folder / ("test_batch.bin" if i == 6 else f"data_batch_{i}.bin")).write_bytes(records.tobytes())
        xs.append(x)
        ys.append(y)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR_NAMES) + "\n\n")
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


COLOURS = {"n01440764": (200, 30, 30), "n02102040": (30, 200, 30), "n02979186": (30, 30, 200)}


def write_image_folder(root):
    """imagenette layout: train/ and val/ class folders; solid colours, mixed sizes and formats."""
    from PIL import Image

    for split, per_class in (("train", 4), ("val", 2)):
        for class_name, colour in COLOURS.items():
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for j in range(per_class):
                size = (40 + 7 * j, 30 + 5 * j)
                if j % 2 == 0:
                    Image.new("RGB", size, colour).save(folder / f"{class_name}_{j}.JPEG", quality=95)
                else:
                    Image.new("RGB", size, colour).save(folder / f"{class_name}_{j}.png")
    # A greyscale PNG, as imagenette has a few; it must come back as three channels.
    Image.new("L", (20, 20), 128).save(root / "train" / "n01440764" / "grey.png")
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    x_train, y_train, x_test, y_test = write_idx_folder(tmp_path / "f", gz=gz)
    d = load_dataset("fashion-mnist", path=str(tmp_path / "f"), val_fraction=0, preprocess="none")
    assert isinstance(d, Dataset)
    assert d.input_shape == (6, 5, 1) and d.num_classes == 10 and d.class_names[0] == "T-shirt/top"
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.rint(d.x_train[..., 0] * 255), x_train)  # file order kept
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(np.rint(d.x_test[..., 0] * 255), x_test)
    np.testing.assert_array_equal(d.y_test, y_test)
    assert d.x_val.shape == (0, 6, 5, 1)


def test_mnist_from_idx_and_npz(tmp_path):
    x_train, y_train, x_test, y_test = write_idx_folder(tmp_path / "idx")
    a = load_dataset("mnist", path=str(tmp_path / "idx"), val_fraction=0, preprocess="none")
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    b = load_dataset("mnist", path=str(tmp_path), val_fraction=0, preprocess="none")
    assert a.class_names == tuple("0123456789")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_idx_bad_magic(tmp_path):
    write_idx_folder(tmp_path / "f")
    write_idx(tmp_path / "f" / "train-images-idx3-ubyte", np.zeros((3, 4, 4)), magic=0x00000903)
    with pytest.raises(DatasetError, match="magic number 0x00000903, expected 0x00000803"):
        load_dataset("fashion-mnist", path=str(tmp_path / "f"))


def test_idx_truncated(tmp_path):
    write_idx_folder(tmp_path / "f", gz=False)
    path = tmp_path / "f" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match="truncated IDX file"):
        load_dataset("fashion-mnist", path=str(tmp_path / "f"))


def test_idx_broken_gzip(tmp_path):
    write_idx_folder(tmp_path / "f")
    path = tmp_path / "f" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetError, match="t10k-labels"):
        load_dataset("fashion-mnist", path=str(tmp_path / "f"))


def test_idx_label_count_mismatch(tmp_path):
    write_idx_folder(tmp_path / "f")
    write_idx(tmp_path / "f" / "train-labels-idx1-ubyte", balanced_labels(99))
    with pytest.raises(DatasetError, match="99 labels"):
        load_dataset("fashion-mnist", path=str(tmp_path / "f"))


@pytest.mark.parametrize("old_numpy_pickles", [False, True])
@pytest.mark.parametrize("point_at", ["folder", "parent"])
def test_cifar_python_format(tmp_path, point_at, old_numpy_pickles):
    x_train, y_train, x_test, y_test = write_cifar_py(tmp_path, old_numpy_pickles=old_numpy_pickles)
    path = tmp_path / "cifar-10-batches-py" if point_at == "folder" else tmp_path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the numpy.core -> numpy._core mapping must not warn
        d = load_dataset("cifar10", path=str(path), val_fraction=0, preprocess="none")
    assert d.input_shape == (32, 32, 3) and d.class_names == tuple(CIFAR_NAMES)
    np.testing.assert_array_equal(np.rint(d.x_train * 255), x_train)
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(np.rint(d.x_test * 255), x_test)
    np.testing.assert_array_equal(d.y_test, y_test)


def test_cifar_pickle_refuses_code(tmp_path):
    write_cifar_py(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(os.getcwd, protocol=2))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        load_dataset("cifar10", path=str(tmp_path))


def test_cifar_python_missing_batch(tmp_path):
    write_cifar_py(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="data_batch_4 is missing"):
        load_dataset("cifar10", path=str(tmp_path))


@pytest.mark.parametrize("point_at", ["folder", "parent"])
def test_cifar_binary_format(tmp_path, point_at):
    x_train, y_train, x_test, y_test = write_cifar_bin(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" if point_at == "folder" else tmp_path
    d = load_dataset("cifar10", path=str(path), val_fraction=0, preprocess="none")
    assert d.class_names == tuple(CIFAR_NAMES)
    np.testing.assert_array_equal(np.rint(d.x_train * 255), x_train)
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(np.rint(d.x_test * 255), x_test)
    np.testing.assert_array_equal(d.y_test, y_test)


def test_cifar_binary_truncated(tmp_path):
    write_cifar_bin(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="not a multiple of 3073"):
        load_dataset("cifar10", path=str(tmp_path))


def test_imagenette_folder(tmp_path):
    write_image_folder(tmp_path / "imagenette2-160")
    path = str(tmp_path / "imagenette2-160")
    d = load_dataset("imagenette", path=path, image_size=16, val_fraction=0, preprocess="none")
    assert d.class_names == tuple(sorted(COLOURS))
    assert d.num_classes == 3 and d.input_shape == (16, 16, 3)
    assert len(d.y_train) == 13 and len(d.y_test) == 6  # 4 per class + the greyscale one; 2 per class
    np.testing.assert_array_equal(np.bincount(d.y_train), [5, 4, 4])
    np.testing.assert_array_equal(np.bincount(d.y_test), [2, 2, 2])
    pixels = np.rint(d.x_train * 255)
    for image, label in zip(pixels, d.y_train):
        colour = (128, 128, 128) if np.allclose(image, 128) else COLOURS[d.class_names[label]]
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), colour, atol=3)  # JPEG is lossy
    default = load_dataset("imagenette", path=path, val_fraction=0)
    assert default.input_shape == (128, 128, 3)


def test_imagenette_unknown_val_class(tmp_path):
    write_image_folder(tmp_path / "im")
    (tmp_path / "im" / "val" / "n99999999").mkdir()
    with pytest.raises(DatasetError, match="n99999999"):
        load_dataset("imagenette", path=str(tmp_path / "im"))


def test_digits():
    d = load_dataset("digits", val_fraction=0, preprocess="none")
    assert d.input_shape == (8, 8, 1) and d.num_classes == 10
    assert len(d.y_train) == 1348 and len(d.y_test) == 449
    assert d.x_train.max() == 1.0 and d.x_train.min() == 0.0  # 0..16 scaled by 16
    # The test split is fixed: it does not move with split_seed.
    other = load_dataset("digits", val_fraction=0.2, split_seed=5, preprocess="none")
    np.testing.assert_array_equal(other.x_test, d.x_test)
    # Stratified: each class holds ~25% of its images in the test set.
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)
    assert np.all(np.abs(np.bincount(d.y_test) - 0.25 * counts) <= 1)


def test_digits_rejects_path():
    with pytest.raises(DatasetError, match="digits: `path` is not used"):
        load_dataset("digits", path="/somewhere")


# ----------------------------------------------------------------------------- splits


def test_stratified_split_counts_and_determinism():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    take, rest = ds._stratified_split(y, 20, np.random.default_rng(0))
    assert len(take) == 20 and len(rest) == 80
    np.testing.assert_array_equal(np.bincount(y[take]), [10, 6, 3, 1])
    np.testing.assert_array_equal(np.union1d(take, rest), np.arange(100))
    again, _ = ds._stratified_split(y, 20, np.random.default_rng(0))
    np.testing.assert_array_equal(take, again)
    other, _ = ds._stratified_split(y, 20, np.random.default_rng(1))
    assert not np.array_equal(take, other)
    # Remainders: 7 of (50, 30, 15, 5) -> quotas 3.5, 2.1, 1.05, 0.35 -> 3 + 1, 2, 1, 0.
    take, _ = ds._stratified_split(y, 7, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[take], minlength=4), [4, 2, 1, 0])


def test_train_size_val_and_test_subsets(tmp_path):
    write_idx_folder(tmp_path / "f", n_train=200, n_test=100)
    settings = dict(path=str(tmp_path / "f"), train_size=100, val_fraction=0.2, test_size=50, preprocess="none")
    d = load_dataset("fashion-mnist", **settings)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (80, 20, 50)
    # Balanced labels stay balanced in every split.
    np.testing.assert_array_equal(np.bincount(d.y_train), [8] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_val), [2] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test), [5] * 10)
    train_ids, val_ids, test_ids = image_ids(d.x_train), image_ids(d.x_val), image_ids(d.x_test)
    assert not set(train_ids) & set(val_ids)
    assert set(train_ids) | set(val_ids) <= set(range(200))  # never from the test set
    assert set(test_ids) <= set(range(1000, 1100))
    # Same seed, same split; another seed, another split but the same test subset.
    again = load_dataset("fashion-mnist", **settings)
    np.testing.assert_array_equal(image_ids(again.x_val), val_ids)
    other = load_dataset("fashion-mnist", **settings, split_seed=1)
    assert set(image_ids(other.x_train)) != set(train_ids)
    np.testing.assert_array_equal(image_ids(other.x_test), test_ids)


def test_val_fraction_rounding(tmp_path):
    write_idx_folder(tmp_path / "f", n_train=30)
    d = load_dataset("fashion-mnist", path=str(tmp_path / "f"), val_fraction=0.01)
    assert len(d.y_val) == 1 and len(d.y_train) == 29  # at least one validation image


# ----------------------------------------------------------------------- preprocessing


def test_standardize_fitted_on_train_only(tmp_path):
    x_train, y_train, _, _ = write_cifar_py(tmp_path, per_batch=20)
    d = load_dataset("cifar10", path=str(tmp_path), val_fraction=0.25, preprocess="standardize")
    np.testing.assert_allclose(d.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(d.x_train.std(axis=(0, 1, 2)), 1, atol=1e-4)
    # The statistics come from the training split alone: undo them with the raw train images.
    raw = load_dataset("cifar10", path=str(tmp_path), val_fraction=0.25, preprocess="none")
    train_raw = raw.x_train.astype(np.float64) * 255
    mean, std = train_raw.mean(axis=(0, 1, 2)), train_raw.std(axis=(0, 1, 2))
    np.testing.assert_allclose(d.x_val, (raw.x_val * 255 - mean) / std, atol=1e-4)
    np.testing.assert_allclose(d.x_test, (raw.x_test * 255 - mean) / std, atol=1e-4)
    assert np.abs(d.x_val.mean(axis=(0, 1, 2))).max() > 1e-4  # the validation split was not fitted


def test_mean_subtract_is_per_pixel_in_pixel_units(tmp_path):
    write_idx_folder(tmp_path / "f", n_train=100, n_test=40)
    d = load_dataset("fashion-mnist", path=str(tmp_path / "f"), val_fraction=0.1, preprocess="mean_subtract")
    raw = load_dataset("fashion-mnist", path=str(tmp_path / "f"), val_fraction=0.1, preprocess="none")
    mean = (raw.x_train.astype(np.float64) * 255).mean(axis=0)  # (H, W, 1)
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(d.x_test, raw.x_test * 255 - mean, atol=1e-3)
    np.testing.assert_allclose(d.x_val, raw.x_val * 255 - mean, atol=1e-3)


def test_none_scales_to_unit_interval(tmp_path):
    write_idx_folder(tmp_path / "f")
    d = load_dataset("fashion-mnist", path=str(tmp_path / "f"), preprocess="none")
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


# ---------------------------------------------------------------------- cache, safety


def test_cache_reads_once_and_results_are_independent(tmp_path):
    write_idx_folder(tmp_path / "f")
    a = load_dataset("fashion-mnist", path=str(tmp_path / "f"), preprocess="none")
    a.x_train[:] = -1
    a.y_train[:] = -1
    b = load_dataset("fashion-mnist", path=str(tmp_path / "f"), preprocess="none")
    assert b.x_train.min() >= 0 and b.y_train.min() >= 0
    assert ds._load_raw.cache_info().hits == 1 and ds._load_raw.cache_info().misses == 1
    raw = ds._load_raw("fashion-mnist", "idx", str(tmp_path / "f"), 0)
    assert not raw.x_train.flags.writeable and not raw.y_train.flags.writeable


def test_import_pulls_in_no_framework():
    code = (
        "import sys, ablate.data.catalogue, ablate.data.augment, ablate.execution.schedules; "
        "heavy = ('torch', 'tensorflow', 'keras', 'matplotlib', 'sklearn', 'PIL'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(ds.__file__).parents[2]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------- missing, download


def test_missing_dataset_is_one_line_with_how_to(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", download=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("fashion-mnist: no IDX files in ")
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message and "train-images-idx3-ubyte.gz" in message


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imagenette"])
def test_missing_explicit_path(tmp_path, name):
    with pytest.raises(DatasetError) as info:
        check_available(name, str(tmp_path / "empty"))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    assert str(tmp_path / "empty") in message and "does not exist" in message


def test_imagenette_missing_says_where_to_get_it():
    with pytest.raises(DatasetError, match="imagenette2-160.tgz"):
        check_available("imagenette")


def fake_keras(monkeypatch, load_data):
    keras = types.ModuleType("keras")
    keras.__spec__ = importlib.machinery.ModuleSpec("keras", None)
    keras.datasets = types.SimpleNamespace(
        fashion_mnist=types.SimpleNamespace(load_data=load_data),
        mnist=types.SimpleNamespace(load_data=load_data),
        cifar10=types.SimpleNamespace(load_data=load_data),
    )
    monkeypatch.setitem(sys.modules, "keras", keras)
    monkeypatch.setattr(ds.importlib.util, "find_spec", _real_find_spec)


def test_keras_download_fallback(monkeypatch):
    calls = []

    def load_data():
        calls.append(1)
        x = ids_to_images(np.arange(50), 28, 28)
        y = balanced_labels(50)
        return (x, y), (x[:20], y[:20])

    fake_keras(monkeypatch, load_data)
    check_available("fashion-mnist")
    d = load_dataset("fashion-mnist", val_fraction=0, preprocess="none")
    assert d.input_shape == (28, 28, 1) and len(d.y_train) == 50
    np.testing.assert_array_equal(image_ids(d.x_train), np.arange(50))
    load_dataset("fashion-mnist")
    assert calls == [1]  # cached


def test_keras_download_cifar_labels_reshaped(monkeypatch):
    def load_data():
        x = cifar_images(30, seed=0)
        y = balanced_labels(30)[:, None]  # keras gives (n, 1) labels for CIFAR
        return (x, y), (x[:10], y[:10])

    fake_keras(monkeypatch, load_data)
    d = load_dataset("cifar10", val_fraction=0)
    assert d.y_train.shape == (30,) and d.input_shape == (32, 32, 3)


def test_keras_download_failure_is_one_line(monkeypatch):
    def load_data():
        raise OSError("URL fetch failure on https://example.invalid:\n  no route to host")

    fake_keras(monkeypatch, load_data)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cifar10: not found in ") and "download failed (OSError: URL fetch failure" in message


def test_explicit_path_never_downloads(tmp_path, monkeypatch):
    def load_data():
        raise AssertionError("must not download")

    fake_keras(monkeypatch, load_data)
    with pytest.raises(DatasetError, match="no IDX files"):
        load_dataset("fashion-mnist", path=str(tmp_path))


def test_no_keras_no_download():
    with pytest.raises(DatasetError, match="keras is not installed"):
        check_available("mnist")


# ------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(train_size=101), r"`train_size` must be at most 100 \(.*\), got 101"),
        (dict(test_size=41), r"`test_size` must be at most 40 \(.*\), got 41"),
        (dict(train_size=0), r"`train_size` must be a positive integer or null, got 0"),
        (dict(val_fraction=1.0), r"`val_fraction` must be a number in \[0, 1\), got 1.0"),
        (dict(train_size=1, val_fraction=0.1), r"leaves none to train on"),
        (dict(preprocess="zca"), r"`preprocess` must be one of \('standardize', 'mean_subtract', 'none'\), got 'zca'"),
        (dict(image_size=32), r"`image_size` applies only to imagenette"),
        (dict(split_seed=-1), r"`split_seed` must be a non-negative integer"),
    ],
)
def test_argument_errors(tmp_path, kwargs, pattern):
    write_idx_folder(tmp_path / "f", n_train=100, n_test=40)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("fashion-mnist", path=str(tmp_path / "f"), **kwargs)


def test_unknown_dataset_lists_names():
    with pytest.raises(DatasetError) as info:
        check_available("svhn")
    assert all(name in str(info.value) for name in DATASET_NAMES)


# -------------------------------------------------------------------------- describe


def test_describe_on_test_folders(tmp_path):
    write_idx_folder(tmp_path / "fashion", n_train=100, n_test=40, h=6, w=5)
    x_train, y_train, x_test, y_test = write_idx_folder(tmp_path / "m", n_train=70, n_test=30)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    write_cifar_bin(tmp_path / "c", per_batch=6, n_test=10)
    write_image_folder(tmp_path / "im")
    paths = {
        "fashion-mnist": str(tmp_path / "fashion"),
        "mnist": str(tmp_path),
        "cifar10": str(tmp_path / "c"),
        "imagenette": str(tmp_path / "im"),
    }
    infos = describe_datasets(paths)
    by_name = {i.name: i for i in infos}
    assert tuple(by_name) == DATASET_NAMES
    rows = {n: (i.available, i.input_shape, i.num_classes, i.n_train, i.n_test) for n, i in by_name.items()}
    assert rows == {
        "digits": (True, (8, 8, 1), 10, 1348, 449),
        "fashion-mnist": (True, (6, 5, 1), 10, 100, 40),
        "mnist": (True, (6, 5, 1), 10, 70, 30),
        "cifar10": (True, (32, 32, 3), 10, 30, 10),
        "imagenette": (True, (128, 128, 3), 3, 13, 6),
    }
    assert by_name["mnist"].location.endswith("mnist.npz (keras mnist.npz)")
    assert by_name["cifar10"].location == f"{tmp_path / 'c' / 'cifar-10-batches-bin'} (binary batches)"


def test_describe_cifar_python_and_missing(tmp_path):
    write_cifar_py(tmp_path, per_batch=4, n_test=7)
    by_name = {i.name: i for i in describe_datasets({"cifar10": str(tmp_path)})}
    assert (by_name["cifar10"].n_train, by_name["cifar10"].n_test) == (20, 7)
    fashion = by_name["fashion-mnist"]
    assert not fashion.available and fashion.n_train is None
    assert fashion.input_shape == (28, 28, 1) and "dataset-fashion-mnist" in fashion.location


def test_describe_matches_load(tmp_path):
    write_image_folder(tmp_path / "im")
    info = {i.name: i for i in describe_datasets({"imagenette": str(tmp_path / "im")})}["imagenette"]
    d = load_dataset("imagenette", path=str(tmp_path / "im"), val_fraction=0)
    described = (info.input_shape, info.num_classes, info.n_train, info.n_test)
    assert described == (d.input_shape, d.num_classes, len(d.y_train), len(d.y_test))


@pytest.mark.skipif(
    not Path(ds.FASHION_MNIST_DEBIAN_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
def test_debian_fashion_mnist_header(monkeypatch):
    monkeypatch.setattr(ds, "_default_dirs", lambda name: [Path(ds.FASHION_MNIST_DEBIAN_DIR)])
    fashion = {i.name: i for i in describe_datasets()}["fashion-mnist"]
    row = (fashion.available, fashion.input_shape, fashion.n_train, fashion.n_test)
    assert row == (True, (28, 28, 1), 60000, 10000)


@pytest.mark.skipif(
    not Path(ds.FASHION_MNIST_DEBIAN_DIR).is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
def test_debian_fashion_mnist_loads(monkeypatch):
    monkeypatch.setattr(ds, "_default_dirs", lambda name: [Path(ds.FASHION_MNIST_DEBIAN_DIR)])
    d = load_dataset("fashion-mnist", train_size=1000, test_size=500, val_fraction=0.1)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (900, 100, 500)
    np.testing.assert_array_equal(np.bincount(d.y_train), [90] * 10)
    assert d.class_names[9] == "Ankle boot"


def test_describe_survives_one_unreadable_copy(tmp_path):
    """A corrupt local copy is listed as unreadable; the other datasets are still described."""
    from ablate.data.catalogue import describe_datasets

    bad = tmp_path / "cifar-10-batches-py"
    bad.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (bad / name).write_bytes(b"not a pickle")
    infos = {i.name: i for i in describe_datasets({"cifar10": str(bad)})}
    assert not infos["cifar10"].available and "unreadable" in infos["cifar10"].location
    assert infos["digits"].available

"""ablate.data.cache: parsed arrays decoded once per machine, never served for changed files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ablate.data import cache, formats, sources
from ablate.data import catalogue as ds
from ablate.errors import DatasetError
from tests.test_datasets import (CIFAR_NAMES, image_ids, write_cifar_py, write_idx, write_idx_folder,
                                 write_image_folder)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache folder and a fresh in-process cache for each test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ABLATE_CACHE", str(folder))
    ds._load_raw.cache_clear()
    yield folder
    ds._load_raw.cache_clear()


def _load(path, **kw):
    ds._load_raw.cache_clear()  # what a new worker process sees: nothing in memory, the disk cache
    return ds.load_dataset("fashion-mnist", path=str(path), preprocess="none", val_fraction=0, **kw)


def _no_reader(monkeypatch):
    """Fail if any format reader runs: whatever loads now comes from the disk cache."""
    def boom(*args, **kwargs):
        raise AssertionError("the files were parsed again")

    for name in ("_read_idx_folder", "_read_cifar_py", "_read_image_folder"):
        monkeypatch.setattr(sources, name, boom)
    monkeypatch.setitem(sources.READERS, "idx", boom)
    monkeypatch.setitem(sources.READERS, "cifar-py", boom)
    monkeypatch.setitem(sources.READERS, "folder", boom)


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("ABLATE_CACHE", "off")
    assert cache.cache_dir() is None
    monkeypatch.delenv("ABLATE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "ablate"


def test_second_load_is_served_memory_mapped_and_read_only(cache_dir, tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "f")
    first = _load(tmp_path / "f")
    assert any(cache_dir.rglob("output.pkl")), "nothing was cached"
    _no_reader(monkeypatch)
    again = _load(tmp_path / "f")
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    raw = ds._load_raw("fashion-mnist", "idx", str(tmp_path / "f"), 0, ds._sources_key(ds._resolve(
        "fashion-mnist", str(tmp_path / "f"), download=False)))
    assert isinstance(raw.x_train.base, np.memmap) or isinstance(raw.x_train, np.memmap)
    assert not raw.x_train.flags.writeable


def test_a_changed_source_file_is_parsed_again(cache_dir, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    x_train, y_train, _, _ = write_idx_folder(folder)
    before = _load(folder)
    # Same size, other pixels: ids shifted by 500; the modification time moves on.
    path = folder / "train-images-idx3-ubyte.gz"
    stat = path.stat()
    from tests.test_datasets import ids_to_images
    write_idx(folder / "train-images-idx3-ubyte", ids_to_images(500 + np.arange(len(y_train)), 6, 5))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = _load(folder)
    assert set(image_ids(after.x_train)) == set(500 + image_ids(before.x_train))


def test_a_truncated_source_file_is_never_served_from_the_cache(cache_dir, tmp_path):
    folder = tmp_path / "f"
    write_idx_folder(folder, gz=False)
    _load(folder)
    path = folder / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated IDX file"):
        _load(folder)
    path.write_bytes(data)  # restored (a new mtime): loads again
    assert len(_load(folder).y_train) == 100


def test_an_added_or_removed_image_changes_the_key(cache_dir, tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "im"
    write_image_folder(root)
    load = lambda: ds.load_dataset("imagenette", path=str(root), image_size=8, val_fraction=0,  # noqa: E731
                                   preprocess="none")
    n = len(load().y_train)
    ds._load_raw.cache_clear()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "train" / "n02102040" / "extra.png")
    assert len(load().y_train) == n + 1
    ds._load_raw.cache_clear()
    (root / "train" / "n02102040" / "extra.png").unlink()
    assert len(load().y_train) == n
    # And the image size is part of the key.
    ds._load_raw.cache_clear()
    assert ds.load_dataset("imagenette", path=str(root), image_size=12, val_fraction=0).input_shape == (12, 12, 3)


def test_cifar_pickles_are_cached_too(cache_dir, tmp_path, monkeypatch):
    write_cifar_py(tmp_path)
    first = ds.load_dataset("cifar10", path=str(tmp_path), preprocess="none", val_fraction=0)
    ds._load_raw.cache_clear()
    _no_reader(monkeypatch)
    again = ds.load_dataset("cifar10", path=str(tmp_path), preprocess="none", val_fraction=0)
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert again.class_names == tuple(CIFAR_NAMES)


def test_cache_off_parses_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", "off")
    write_idx_folder(tmp_path / "f")
    _load(tmp_path / "f")
    _no_reader(monkeypatch)
    with pytest.raises(AssertionError, match="parsed again"):
        _load(tmp_path / "f")


def test_the_image_folder_is_decoded_in_parallel_in_order(tmp_path):
    """joblib.Parallel decodes chunks into place: the result equals decoding one image at a time."""
    from PIL import Image

    root = tmp_path / "im"
    rng = np.random.default_rng(0)
    for split, n in (("train", 150), ("val", 70)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for j in range(n // 2):
                Image.fromarray(rng.integers(0, 256, (10, 13, 3), dtype=np.uint8)).save(
                    root / split / c / f"{j:03d}.png")
    x_train, y_train, x_val, y_val, classes = formats._read_image_folder(root, 6, n_jobs=2)
    _, files, _, _, _ = formats._list_image_folder(root)
    one = np.empty((len(files), 6, 6, 3), dtype=np.uint8)
    formats._decode_images(files, 6, one)
    np.testing.assert_array_equal(x_train, one)
    assert classes == ("a", "b") and len(y_val) == 70


def test_a_new_process_loads_from_the_cache(cache_dir, tmp_path):
    """What a second worker sees: the first process filled the cache; the second never parses."""
    write_idx_folder(tmp_path / "f")
    env = {**os.environ, "ABLATE_CACHE": str(cache_dir)}
    code = ("import sys; import ablate.data.catalogue as c; import ablate.data.sources as s; "
            "s.READERS['idx'] = (lambda *a: sys.exit('parsed')) if sys.argv[1] == 'cached' else "
            "s.READERS['idx']; "
            f"d = c.load_dataset('fashion-mnist', path={str(tmp_path / 'f')!r}); print(len(d.y_train))")
    first = subprocess.run([sys.executable, "-c", code, "first"], env=env, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-c", code, "cached"], env=env, cwd=REPO, capture_output=True,
                            text=True)
    assert second.returncode == 0 and second.stdout == first.stdout, second.stderr

"""The two seed notebooks as grids: the example files' settings, and one epoch of the Keras
notebook's grid on a tiny CIFAR-10 in the real python format, in both backends, through
``python -m ablate run``.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ablate.catalog import load_grid
from ablate.config import AugmentSpec
from ablate.execution.store import RunStore, StoredRun

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ------------------------------------------------------------- CIFAR-10, python format


class _Py2Pickler(pickle._Pickler):
    """Pickles the way Python 2's cPickle wrote the CIFAR-10 files in 2009: protocol 2,
    every string (keys, file names, the array's raw bytes) as a byte STRING opcode, and
    numpy's reconstructor under its old name ``numpy.core.multiarray``.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _py2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as fh:
        _Py2Pickler(fh, protocol=2).dump(obj)


def write_cifar10_py(parent: Path, per_class: int = 1, test_per_class: int = 2):
    """A tiny ``cifar-10-batches-py``: data_batch_1..5, test_batch and batches.meta with the
    real files' keys, types and layout (rows of 3072 uint8 in CHW order, labels as a list).

    Each data batch holds `per_class` images of every class, the test batch
    `test_per_class`. Returns (x_train, y_train, x_test, y_test) as NHWC uint8 / int arrays
    in file order.
    """
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    splits = []
    for i, (name, label, k) in enumerate(
            [(f"data_batch_{b}", f"training batch {b} of 5", per_class) for b in range(1, 6)]
            + [("test_batch", "testing batch 1 of 1", test_per_class)]):
        y = rng.permutation(np.repeat(np.arange(10), k))
        # Class-dependent brightness, so a model has something to learn.
        x = np.clip(rng.normal(40 + 20 * y[:, None, None, None], 30, size=(len(y), 32, 32, 3)), 0, 255)
        x = x.astype(np.uint8)
        _py2_pickle({
            "batch_label": label,
            "labels": [int(v) for v in y],
            "data": np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072)),
            "filenames": [f"{CIFAR_NAMES[v]}_s_{i:02d}{j:04d}.png" for j, v in enumerate(y)],
        }, folder / name)
        splits.append((x, y))
    _py2_pickle({"num_cases_per_batch": 10 * per_class, "label_names": list(CIFAR_NAMES), "num_vis": 3072},
                folder / "batches.meta")
    x_train = np.concatenate([x for x, _ in splits[:5]])
    y_train = np.concatenate([y for _, y in splits[:5]])
    return x_train, y_train, splits[5][0], splits[5][1]


def test_tiny_cifar10_reads_like_the_real_files(tmp_path):
    """The official recipe (pickle.load(..., encoding="bytes")) and ablate agree on it."""
    from ablate.data.catalogue import _load_raw, load_dataset

    x_train, y_train, x_test, y_test = write_cifar10_py(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    head = (folder / "data_batch_1").read_bytes()
    assert head[:3] == b"\x80\x02}" and b"_codecs" not in head and b"numpy.core.multiarray" in head
    with open(folder / "data_batch_1", "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].shape == (10, 3072) and batch[b"data"].dtype == np.uint8
    assert batch[b"batch_label"] == b"training batch 1 of 5"
    with open(folder / "batches.meta", "rb") as fh:
        assert pickle.load(fh, encoding="bytes")[b"label_names"][0] == b"airplane"

    _load_raw.cache_clear()
    try:
        data = load_dataset("cifar10", path=str(tmp_path), val_fraction=0.1, preprocess="none")
    finally:
        _load_raw.cache_clear()
    assert data.input_shape == (32, 32, 3) and data.class_names == CIFAR_NAMES
    assert len(data.y_train) + len(data.y_val) == len(y_train) == 50
    np.testing.assert_array_equal(data.y_test, y_test)
    np.testing.assert_array_equal(np.rint(data.x_test * 255).astype(np.uint8), x_test)


# ------------------------------------------------------------------ the example grids


def test_keras_notebook_grid_has_the_notebooks_settings():
    grid = load_grid(EXAMPLES / "keras_notebook.yaml")
    (ds,) = grid.datasets
    assert (ds.name, ds.preprocess, ds.image_size) == ("cifar10", "mean_subtract", None)
    assert grid.model_names == ("minigooglenet",)
    assert grid.backends == ("torch", "keras/tensorflow")
    assert grid.arm_names == ("none", "explicit", "loss", "notebook-explicit", "notebook-loss")
    assert grid.smoothing == (0.1,)
    assert len(grid.seeds) >= 5
    t = grid.train
    assert (t.epochs, t.batch_size, t.optimizer, t.lr, t.momentum) == (32, 8, "sgd", 5e-3, 0.9)
    assert (t.schedule, t.power, t.weight_decay) == ("polynomial", 1.0, 0.0)
    assert t.augment == AugmentSpec(width_shift=0.1, height_shift=0.1, horizontal_flip=True)
    # The notebook as run: momentum 0.7 for its explicit model, 0.9 for its loss model, whose
    # labels smooth_labels had already smoothed in place (method `both`).
    methods = {a.name: a.method for a in grid.arms}
    assert methods["notebook-explicit"] == "explicit" and methods["notebook-loss"] == "both"
    assert dict(grid.override_text) == {"notebook-explicit": {"momentum": 0.7},
                                        "notebook-loss": {"momentum": 0.9}}
    by_arm = {r.arm: r.train for r in grid.runs()}
    assert by_arm["notebook-explicit"].momentum == 0.7
    assert by_arm["loss"].momentum == by_arm["explicit"].momentum == by_arm["notebook-loss"].momentum == 0.9
    assert by_arm["notebook-explicit"].lr == by_arm["notebook-loss"].lr == 5e-3  # nothing else differs
    assert ("notebook-explicit", "notebook-loss") in grid.pairs() and ("explicit", "loss") in grid.pairs()
    assert len(grid.runs()) == 5 * 2 * len(grid.seeds)


def test_fastai_notebook_grid_has_the_notebooks_settings():
    grid = load_grid(EXAMPLES / "fastai_notebook.yaml")
    (ds,) = grid.datasets
    assert (ds.name, ds.image_size) == ("imagenette", 128)
    assert grid.model_names == ("fastai-cnn",)
    assert grid.backends == ("torch", "keras/tensorflow")
    assert grid.arm_names == ("none", "explicit", "loss") and grid.smoothing == (0.1,)
    t = grid.train
    # get_learner(nfs, data, 0.4, conv_layer, ...) with plain SGD and no scheduler callback,
    # bs = 128, fit(1) + fit(10), no augmentation.
    assert (t.batch_size, t.optimizer, t.lr, t.schedule) == (128, "sgd", 0.4, "constant")
    assert (t.momentum, t.weight_decay, t.augment) == (0.0, 0.0, None)
    assert 8 <= t.epochs <= 12
    assert not grid.override_text
    assert len(grid.runs()) == 3 * 2 * len(grid.seeds)


@pytest.mark.parametrize("name, runs", [("keras_notebook.yaml", 50), ("fastai_notebook.yaml", 30)])
def test_example_grid_dry_run(name, runs, tmp_path):
    """A dry run makes every check `run` makes: imagenette, which nothing downloads, is given as a
    tiny folder; CIFAR-10, which `run` would download, is named in a note."""
    from tests.test_datasets import write_image_folder

    grid = EXAMPLES / name
    if name == "fastai_notebook.yaml":
        write_image_folder(tmp_path / "imagenette")
        spec = yaml.safe_load(grid.read_text())
        spec["datasets"][0]["path"] = str(tmp_path / "imagenette")
        grid = tmp_path / name
        grid.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-m", "ablate", "run", str(grid), "--dry-run",
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith(f"{runs} run(s)")


# --------------------------------------------------------- one epoch, both backends


@pytest.mark.slow  # 1 to 1.5 minutes on 2 busy cores, most of it Keras tracing MiniGoogLeNet
def test_keras_notebook_one_epoch_on_tiny_cifar10_both_backends(tmp_path):
    """The Keras notebook's own grid, cut to 1 epoch and 1 seed, on a tiny CIFAR-10."""
    _, _, _, y_test = write_cifar10_py(tmp_path / "data")
    spec = yaml.safe_load((EXAMPLES / "keras_notebook.yaml").read_text())
    spec["study"] = "nb"
    spec["datasets"][0]["path"] = str(tmp_path / "data" / "cifar-10-batches-py")
    # 50 training images: 10 for validation leave 40, five whole batches of 8, so Keras
    # traces one training step, not a second one for a ragged last batch.
    spec["datasets"][0]["val_fraction"] = 0.2
    spec["seeds"] = 1
    spec["train"].update(epochs=1, monitor_size=10)
    # The notebook's two arms as it ran them, and the baseline.
    spec["arms"] = {k: v for k, v in spec["arms"].items() if k in ("none", "notebook-explicit", "notebook-loss")}
    spec["analysis"]["compare"] = [["notebook-explicit", "notebook-loss"]]
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "ablate", "run", str(grid), "--results", str(results),
                           "--workers", "2", "--gpus", "none"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = [r for r in RunStore(results, "nb").scan()]
    assert all(isinstance(r, StoredRun) for r in runs), runs
    assert sorted((r.config["backend"], r.config["arm"]) for r in runs) == sorted(
        (b, a) for b in ("torch", "keras/tensorflow") for a in ("none", "notebook-explicit", "notebook-loss"))
    for run in runs:
        assert run.status == "completed", (run.config["backend"], run.config["arm"], run.record["error"])
        assert run.config["model"] == "minigooglenet"
        assert run.config["train"]["momentum"] == (0.7 if run.config["arm"] == "notebook-explicit" else 0.9)
        arrays = run.arrays()
        assert arrays["test_probs"].shape == (len(y_test), 10)
        np.testing.assert_allclose(arrays["test_probs"].sum(axis=1), 1.0, atol=1e-4)
        np.testing.assert_array_equal(arrays["test_labels"], y_test)
        assert run.record["history"]["epoch"] == [1]

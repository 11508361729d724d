"""Issue 11, the grid side: a study is bound to its settings, run ids do not depend on where
files live, options that would fail every run are refused before any run starts."""

from __future__ import annotations

import numpy as np
import pytest

from ablate.catalog import load_grid
from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.errors import ConfigError, DatasetError
from ablate.execution.preflight import check_environment
from ablate.execution.store import RunStore
from ablate.settings import bind_settings
from ablate.study import load_study
from tests.helpers import grid_text

GRID = grid_text("bound", data=(400, 200), arms=["none", "explicit", "loss"], seeds=2,
                 train={"epochs": 2, "batch_size": 32, "lr": 0.05, "momentum": 0.9})


def _grid(tmp_path, text, name="grid.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_grid(path)


def test_a_study_refuses_a_grid_with_other_settings(tmp_path):
    store = RunStore(tmp_path / "results", "bound")
    bind_settings(store, _grid(tmp_path, GRID + "overrides: {explicit: {train: {momentum: 0.7}}}\n"))
    # The same study without the override would compare explicit (0.7) against loss (0.9) silently.
    with pytest.raises(ConfigError, match=r"study 'bound' already holds runs with other settings: arm "
                                          r"'explicit': train.momentum 0.7 -> 0.9; use a new study name"):
        bind_settings(store, _grid(tmp_path, GRID))
    plain = RunStore(tmp_path / "results", "plain")
    bind_settings(plain, _grid(tmp_path, GRID.replace("study: bound", "study: plain")))
    with pytest.raises(ConfigError, match=r"train.epochs 2 -> 3 \(and 2 more\)"):  # one per arm
        bind_settings(plain, _grid(tmp_path, GRID.replace("study: bound", "study: plain").replace("epochs: 2",
                                                                                                 "epochs: 3")))
    with pytest.raises(ConfigError, match=r"dataset 'digits': train_size 400 -> 300"):
        bind_settings(plain, _grid(tmp_path, GRID.replace("study: bound", "study: plain")
                                   .replace("train_size: 400", "train_size: 300")))


def test_a_study_may_grow(tmp_path):
    store = RunStore(tmp_path / "results", "bound")
    bind_settings(store, _grid(tmp_path, GRID))
    grown = GRID.replace("seeds: 2", "seeds: 5").replace("smoothing: [0.1]", "smoothing: [0.1, 0.2]")
    grown = grown.replace("arms: [none, explicit, loss]", "arms: [none, explicit, loss, both]")
    grown = grown.replace("backends: [torch]", "backends: [torch, keras]").replace("models: [mlp]",
                                                                                  "models: [mlp, small-cnn]")
    bind_settings(store, _grid(tmp_path, grown))
    bind_settings(store, _grid(tmp_path, GRID))  # and shrink back: the bound settings are the union
    assert set(__import__("json").loads((store.study_dir / "study.json").read_text())["bound"]["arms"]) == \
        {"none", "explicit", "loss", "both"}


def _record(store, spec, acc):
    probs = np.full((4, 10), 0.02, np.float32)
    probs[:, 0] = 0.82
    store.write({"run_id": spec.run_id, "config": spec.to_dict(), "status": "completed", "error": None,
                 "history": {}, "metrics": {"accuracy": acc}, "seconds": 1.0},
                {"test_probs": probs, "test_labels": np.zeros(4, np.int64), "val_probs": probs,
                 "val_labels": np.zeros(4, np.int64)})


def test_report_takes_arm_settings_from_the_records(tmp_path):
    store = RunStore(tmp_path, "s")
    for seed in range(3):
        for arm, momentum in (("explicit", 0.7), ("loss", 0.9), ("none", 0.9)):
            _record(store, RunSpec("torch", DatasetSpec("digits"), "mlp", arm, 0.1 if arm != "none" else 0.0,
                                   seed, 0, TrainConfig(momentum=momentum)), 0.9)
    # No study.json at all: the confound still comes from the records.
    loaded = load_study(store)
    assert loaded.arm_settings == {"explicit": {"momentum": 0.7}, "loss": {}, "none": {}}


def test_records_that_differ_in_settings_are_never_mixed(tmp_path):
    store = RunStore(tmp_path, "s")
    for seed, epochs in ((0, 2), (1, 3)):
        _record(store, RunSpec("torch", DatasetSpec("digits"), "mlp", "loss", 0.1, seed, 0,
                               TrainConfig(epochs=epochs)), 0.9)
    with pytest.raises(Exception, match=r"arm 'loss' has runs trained with different settings \(epochs 2 vs 3\)"):
        load_study(store)


def test_run_ids_do_not_depend_on_where_data_or_checkout_live(tmp_path):
    grid_text = GRID.replace("datasets: [{name: digits, train_size: 400, test_size: 200}]",
                             "datasets: [{name: fashion-mnist, path: data/fm, train_size: 400}]")
    (tmp_path / "a").mkdir()
    (tmp_path / "elsewhere" / "b").mkdir(parents=True)
    ids_a = [r.run_id for r in _grid(tmp_path / "a", grid_text).runs()]
    ids_b = [r.run_id for r in _grid(tmp_path / "elsewhere" / "b", grid_text).runs()]
    assert ids_a == ids_b
    # ...while the path itself still points at each checkout's data.
    assert _grid(tmp_path / "a", grid_text).datasets[0].path.endswith("a/data/fm")


def test_run_ids_of_the_built_in_arms_are_stable():
    # Hashes of a plain grid are what earlier versions stored: resuming an old study keeps its runs.
    spec = RunSpec("torch", DatasetSpec("digits"), "mlp", "loss", 0.1, 0, 0, TrainConfig())
    assert "method" not in spec.identity() and "origin" not in spec.identity()
    assert spec.run_id == RunSpec("torch", DatasetSpec("digits", path="/x"), "mlp", "loss", 0.1, 0, 0,
                                  TrainConfig(), origin="/y").run_id


@pytest.mark.parametrize("old, new, expected", [
    ("train_size: 400", "train_size: 5000", "`datasets[0]`.train_size: expected at most 1348"),
    ("test_size: 200", "test_size: 5000", "`datasets[0]`.test_size: expected at most 449"),
    ("test_size: 200}", "test_size: 200, val_fraction: 0.999}", "val_fraction: 0.999 of 400 training examples"),
    ("models: [mlp]", "models: [minigooglenet]", "`models[0]`: model 'minigooglenet' needs inputs of at least 31x31"),
])
def test_options_that_would_fail_every_run_are_refused_first(tmp_path, old, new, expected):
    with pytest.raises(ConfigError) as info:
        check_environment(_grid(tmp_path, GRID.replace(old, new)))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_image_size_out_of_range_is_a_grid_error(tmp_path):
    with pytest.raises(ConfigError, match=r"`datasets\[0\].image_size`: expected an integer <= 1024"):
        _grid(tmp_path, GRID.replace("datasets: [{name: digits, train_size: 400, test_size: 200}]",
                                     "datasets: [{name: imagenette, image_size: 2048}]"))


def test_empty_grid_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping of grid keys at top level, but got an empty file"):
        _grid(tmp_path, "")


def test_garbage_cifar_folder_is_one_line(tmp_path):
    from ablate.data.catalogue import load_dataset

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        # A length opcode asking for an absurd allocation, as random bytes may.
        (folder / name).write_bytes(b"\x80\x04\x95" + b"\xff" * 8 + rng.bytes(64))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", path=str(folder))
    message = str(info.value)
    assert "cannot read CIFAR-10 pickle" in message and "cifar-10-python.tar.gz" in message
    assert "\n" not in message

"""Grid parsing and validation: every bad input is one line naming file, key, choices, value."""

from __future__ import annotations

import dataclasses

import pytest

from ablate.catalog import load_grid, parse_grid
from ablate.config import RunSpec
from ablate.execution.preflight import check_environment
from ablate.errors import ConfigError
from tests.conftest import TINY_GRID


def test_tiny_grid_expands(write_grid):
    grid = load_grid(write_grid(TINY_GRID))
    runs = grid.runs()
    # 2 backends x (none + explicit + loss at one eps) x 2 seeds
    assert len(runs) == 2 * 3 * 2
    assert {r.backend for r in runs} == {"torch", "keras/tensorflow"}
    none = [r for r in runs if r.arm == "none"]
    assert all(r.smoothing == 0.0 for r in none)
    assert len({r.run_id for r in runs}) == len(runs)
    # seeds are outermost, so a half-done sweep has whole pairs
    assert [r.seed for r in runs[:6]] == [0] * 6


def test_none_arm_runs_once_per_seed_not_per_eps(write_grid):
    grid = load_grid(write_grid(TINY_GRID.replace("smoothing: [0.1]", "smoothing: [0.05, 0.1, 0.2]")))
    runs = grid.runs()
    per_seed = [r for r in runs if r.seed == 0 and r.backend == "torch"]
    assert sorted((r.arm, r.smoothing) for r in per_seed) == [
        ("explicit", 0.05), ("explicit", 0.1), ("explicit", 0.2), ("loss", 0.05), ("loss", 0.1),
        ("loss", 0.2), ("none", 0.0)]


def test_run_id_is_stable_and_round_trips(write_grid):
    spec = load_grid(write_grid(TINY_GRID)).runs()[3]
    again = RunSpec.from_dict(spec.to_dict())
    assert again == spec and again.run_id == spec.run_id
    other = dataclasses.replace(spec, seed=spec.seed + 7)
    assert other.run_id != spec.run_id


def test_overrides_apply_to_one_arm(write_grid):
    grid = load_grid(write_grid(TINY_GRID + "overrides: {explicit: {train: {momentum: 0.7}}}\n"))
    by_arm = {r.arm: r.train.momentum for r in grid.runs()}
    assert by_arm == {"none": 0.9, "explicit": 0.7, "loss": 0.9}
    assert grid.override_text == {"explicit": {"momentum": 0.7}}


def test_seed_list_and_defaults(write_grid):
    grid = load_grid(write_grid(TINY_GRID.replace("seeds: 2", "seeds: [3, 9]")))
    assert grid.seeds == (3, 9)
    assert grid.analysis.margins["accuracy"] == 0.005 and grid.analysis.alpha == 0.05


@pytest.mark.parametrize("old,new,expected", [
    ("study: tiny", "study: tiny\ncolour: red", "unknown key 'colour'; allowed keys: study"),
    ("backends: [torch, keras]", "backends: [torch, mxnet]",
     "`backends[1]`: expected one of ('keras', 'torch', 'keras/tensorflow', 'keras/jax', 'keras/torch'), but got 'mxnet'"),
    ("arms: [none, explicit, loss]", "arms: [none, mixplus]",
     "`arms[1]`: expected one of ('none', 'explicit', 'loss', 'both', 'mixup', 'cutmix', 'focal') (tricks; name arms of your own"),
    ("datasets: [{name: digits, train_size: 400, test_size: 200}]", "datasets: [svhn]",
     "`datasets[0].name`: expected one of ('digits', 'fashion-mnist', 'mnist', 'cifar10', 'imagenette') (or a mapping"),
    ("models: [mlp]", "models: [resnet50]", "`models[0]`: expected one of ('mlp', 'small-cnn'"),
    ("smoothing: [0.1]", "smoothing: [1.0]", "`smoothing[0]`: expected a value in (0, 1), but got 1.0"),
    ("smoothing: [0.1]", "smoothing: [0]", "`smoothing[0]`: expected a value in (0, 1), but got 0"),
    ("smoothing: [0.1]", "smoothing: [-0.2]", "`smoothing[0]`: expected a value in (0, 1), but got -0.2"),
    ("smoothing: [0.1]", "smoothing: ['a']", "`smoothing[0]`: expected a number, but got 'a'"),
    ("train: {epochs: 2,", "train: {epoch: 2,", "unknown key 'epoch' in `train`; allowed keys: epochs"),
    ("schedule: polynomial", "schedule: cosine", "`train.schedule`: expected one of ('constant', 'polynomial', 'one-cycle'), but got 'cosine'"),
    ("seeds: 2", "seeds: 0", "`seeds`: expected an integer >= 1, but got 0"),
    ("seeds: 2", "seeds: [1, 1]", "`seeds`: expected distinct seeds"),
    ("study: tiny", "study: ../escape", "`study`: expected a folder-safe name"),
    ("smoothing: [0.1]\n", "", "`smoothing`: missing; arms ['explicit', 'loss'] need"),
    # Non-finite numbers compare false with every bound: they must be refused by name.
    ("smoothing: [0.1]", "smoothing: [.nan]", "`smoothing[0]`: expected a finite number, but got nan"),
    ("lr: 0.05", "lr: .inf", "`train.lr`: expected a finite number, but got inf"),
    ("momentum: 0.9", "momentum: .nan", "`train.momentum`: expected a finite number"),
    ("study: tiny", "study: \"a\\0b\"", "`study`: expected a folder-safe name"),
    ("study: tiny", "study: \"a\\nb\"", "`study`: expected a folder-safe name"),
    ("study: tiny", "study: " + "x" * 256, "`study`: expected a folder-safe name"),
    ("seeds: 2", "seeds: 100000000", "`seeds`: expected an integer <= 100000"),
    ("arms: [none, explicit, loss]", "arms: {a: {method: mixplus}}", "`arms.a.method`: expected one of ('none'"),
    ("arms: [none, explicit, loss]", "arms: {mine: {}}", "`arms.mine`: missing `method`"),
    ("arms: [none, explicit, loss]", "arms: {explicit: {train: {momentum: 2}}}",
     "`arms.explicit.train.momentum`: expected a value in [0, 1)"),
    ("models: [mlp]", "models: [{name: tiny, torch: 'not a ref'}]", "`models[0].torch`: expected a reference"),
    ("models: [mlp]", "models: [{name: tiny, torch: 'mymodels:tiny'}]",
     "`models[0]`: model 'tiny' has no `keras:` factory, but backend 'keras/tensorflow' is in the grid"),
    ("models: [mlp]", "models: [{name: mlp, torch: 'a:b', keras: 'a:c'}]", "`models[0].name`: 'mlp' is a built-in"),
    ("datasets: [{name: digits, train_size: 400, test_size: 200}]", "datasets: [{name: digits, loader: 'm:f'}]",
     "`datasets[0].name`: expected a new dataset name for a `loader`"),
    ("study: tiny", "study: tiny\nanalysis: {compare: [[none, mixplus]]}", "`analysis.compare[0][1]`: expected one of"),
    ("study: tiny", "study: tiny\nanalysis: {compare: [[loss, loss]]}", "`analysis.compare[0]`: expected two different"),
    ("study: tiny", "study: tiny\npairing: sideways", "`pairing`: expected one of ('within-backend', 'cross-backend')"),
])
def test_bad_grids_fail_with_one_line(write_grid, old, new, expected):
    path = write_grid(TINY_GRID.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_override_of_unknown_arm_and_key(write_grid):
    with pytest.raises(ConfigError, match="`overrides`: expected keys among the grid's arms"):
        load_grid(write_grid(TINY_GRID + "overrides: {mixplus: {train: {lr: 0.1}}}\n"))
    with pytest.raises(ConfigError, match="unknown key 'lrate' in `overrides.loss.train`"):
        load_grid(write_grid(TINY_GRID + "overrides: {loss: {train: {lrate: 0.1}}}\n"))


def test_not_yaml_and_missing_file(tmp_path, write_grid):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(write_grid("study: [unclosed\n"))
    with pytest.raises(ConfigError, match="grid file not found"):
        load_grid(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a mapping of grid keys"):
        parse_grid(["a", "b"], "x.yaml")


def test_missing_framework_names_install_hint(write_grid, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    grid = load_grid(write_grid(TINY_GRID))
    with pytest.raises(ConfigError) as info:
        check_environment(grid)
    assert "`backends[1]`" in str(info.value) and "pip install" in str(info.value) and "tensorflow" in str(info.value)


def test_missing_dataset_says_how_to_obtain(write_grid, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    grid = load_grid(write_grid(TINY_GRID.replace(
        "datasets: [{name: digits, train_size: 400, test_size: 200}]",
        f"datasets: [{{name: fashion-mnist, path: {empty}}}]")))
    with pytest.raises(ConfigError) as info:
        check_environment(grid)
    message = str(info.value)
    assert "`datasets[0]`" in message and "fashion-mnist" in message and "\n" not in message


def test_undownloadable_dataset_fails_before_any_run(write_grid, tmp_path, monkeypatch):
    """Without a local copy the driver tries the download once; no internet is one line up front."""
    import ablate.data.catalogue as datasets
    from ablate.errors import DatasetError

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    calls = []

    def no_network(name, **kwargs):
        calls.append(name)
        raise DatasetError(f"{name}: the keras.datasets download failed (no network)")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    grid = load_grid(write_grid(TINY_GRID.replace(
        "datasets: [{name: digits, train_size: 400, test_size: 200}]", "datasets: [mnist]")))
    with pytest.raises(ConfigError, match=r"`datasets\[0\]`: mnist: the keras.datasets download failed"):
        check_environment(grid)
    assert calls == ["mnist"]


def test_yaml_exponents_without_sign_are_numbers(write_grid):
    grid = load_grid(write_grid(TINY_GRID.replace("lr: 0.05", "lr: 1.0e9")))
    assert grid.train.lr == 1e9


def test_relative_dataset_path_is_relative_to_the_grid_file(write_grid, tmp_path):
    grid = load_grid(write_grid(TINY_GRID.replace(
        "datasets: [{name: digits, train_size: 400, test_size: 200}]",
        "datasets: [{name: fashion-mnist, path: data/fm}]")))
    assert grid.datasets[0].path == str((tmp_path / "data" / "fm").resolve())

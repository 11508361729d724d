"""Issue 20, round 3 of hardening: inputs (items 1, 2, 4, 5, 12, 13, 14, 16, 17).

Each test reproduces the case the issue describes and fails on the old behaviour.
"""

from __future__ import annotations

import shlex

import pytest

from tests.helpers import grid_text


# ----------------------------------------------------------------- item 16: the next: line
@pytest.mark.parametrize("study", ["-rf", "--help", "-", "two words", "plain", "a'b"])
@pytest.mark.parametrize("results", ["results", "-out", "my results"])
def test_next_line_parses_back_to_the_same_study(study, results):
    from ablate.cli import _parser, next_hint

    line = next_hint(results, study)
    assert line.startswith("next: python -m ablate report ")
    argv = shlex.split(line[len("next: python -m ablate "):])
    args = _parser().parse_args(argv)
    assert (args.command, args.study, args.results) == ("report", study, results)


# ------------------------------------------------------------ item 14: the arm-name rule
def _grid(**over):
    base = {"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
            "arms": {"none": {}, "loss": {}}, "smoothing": [0.1], "seeds": [0], "train": {"epochs": 1}}
    base.update(over)
    return base


@pytest.mark.parametrize("name, shown", [("a/b", "'/'"), ("a\\b", "'\\\\'"), ("a\nb", "newline"),
                                         ("a\0b", "NUL"), ("  ", "blank")])
def test_a_bad_arm_name_is_refused_naming_the_rule_and_the_character(name, shown):
    from ablate.api import load_grid
    from ablate.errors import ConfigError
    from ablate.grid_parser import NAME_RULE

    with pytest.raises(ConfigError) as err:
        load_grid(_grid(arms={"none": {}, name: {"method": "loss"}}))
    text = str(err.value)
    assert "`arms`" in text and NAME_RULE in text and shown in text and "\n" not in text


def test_free_text_arm_names_are_accepted_and_the_readme_states_the_same_rule():
    from pathlib import Path

    from ablate.api import load_grid
    from ablate.grid_parser import NAME_RULE

    grid = load_grid(_grid(arms={"none": {}, "$x^$ | <b> 'q'": {"method": "loss"}}))
    assert "$x^$ | <b> 'q'" in grid.arm_names
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert "free text: any characters except '/', '\\', newline and NUL, and not blank" in readme
    assert NAME_RULE == "free text: any characters except '/', '\\', newline and NUL, and not blank"


# ----------------------------------------------------- item 17: the ETA per backend and model
def test_the_eta_is_estimated_per_backend_and_model():
    import io

    from ablate.execution.progress import Progress

    groups = {"t1": "torch mlp", "t2": "torch mlp"} | {f"k{i}": "keras/tensorflow mlp" for i in range(8)}
    out = io.StringIO()
    progress = Progress(total=10, workers=1, stream=out, live=False, groups=groups)
    progress.run_done("t1", "torch run 1", "completed", 5.0)
    progress.run_done("t2", "torch run 2", "completed", 5.0)
    # 8 slow Keras runs left and none timed: no number is promised for them
    assert progress.eta() is None
    assert "ETA >=0s (not yet timed: 8 keras/tensorflow mlp)" in out.getvalue()
    progress.run_done("k0", "keras run 0", "completed", 60.0)
    # 7 Keras runs at 60 s each, not at the torch runs' 5 s (the old ETA: mean 23 s x 7)
    assert progress.eta() == pytest.approx(7 * 60.0)
    assert "ETA 7m00s" in out.getvalue()


def test_the_sweep_hands_the_progress_its_backend_and_model_groups(tmp_path):
    from ablate.api import load_grid
    from ablate.execution.progress import eta_groups

    grid = load_grid(_grid(backends=["torch", "keras"], models=["mlp", "small-cnn"]))
    groups = eta_groups(grid.runs())
    assert set(groups.values()) == {"torch mlp", "torch small-cnn", "keras/tensorflow mlp",
                                    "keras/tensorflow small-cnn"}


# ---------------------------------------------- item 4: a sequential design is bound once runs exist
def _sequential_grid(**analysis):
    from ablate.api import load_grid

    design = {"sequential": {"looks": [5, 10, 20]}, "margins": {"accuracy": 0.01}}
    design.update(analysis)
    design = {k: v for k, v in design.items() if v is not None}
    return load_grid(_grid(arms=["explicit", "loss"], seeds=20, analysis=design))


def _store_with_a_run(tmp_path, grid):
    from ablate.execution.store import RECORD, RunStore
    from ablate.settings import bind_settings

    store = RunStore(tmp_path, grid.study)
    bind_settings(store, grid)
    folder = store.run_dir("0" * 16)
    folder.mkdir(parents=True)
    (folder / RECORD).write_text("{}")  # any record: a wave has run
    return store


@pytest.mark.parametrize("change, key, bound, given", [
    ({"sequential": {"looks": [5, 10]}}, "analysis.sequential.looks", "[5, 10, 20]", "[5, 10]"),
    ({"sequential": {"looks": [5, 10, 20], "spending": "pocock"}}, "analysis.sequential.spending",
     "obrien-fleming", "pocock"),
    ({"margins": {"accuracy": 0.02}}, "analysis.margins", "accuracy: 0.01", "accuracy: 0.02"),
    ({"alpha": 0.1}, "analysis.alpha", "0.05", "0.1"),
    ({"sequential": None}, "analysis.sequential", "{looks: [5, 10, 20], spending: obrien-fleming}", "none"),
])
def test_a_changed_sequential_design_is_refused_once_waves_ran(tmp_path, change, key, bound, given):
    from ablate.errors import ConfigError
    from ablate.settings import STUDY_FILE, bind_settings

    first = _sequential_grid()
    store = _store_with_a_run(tmp_path, first)
    before = (store.study_dir / STUDY_FILE).read_bytes()
    with pytest.raises(ConfigError) as err:
        bind_settings(store, _sequential_grid(**change))
    text = str(err.value)
    assert f"`{key}`:" in text and bound in text and given in text and "\n" not in text
    assert text.index(bound) < text.index(given)
    assert (store.study_dir / STUDY_FILE).read_bytes() == before  # study.json is not rewritten


def test_the_design_may_change_before_any_run_and_a_fixed_study_may_become_sequential(tmp_path):
    from ablate.api import load_grid
    from ablate.execution.store import RunStore
    from ablate.settings import bind_settings

    store = RunStore(tmp_path, "s")
    bind_settings(store, _sequential_grid())
    bind_settings(store, _sequential_grid(sequential={"looks": [5, 10]}))  # nothing ran yet
    fixed = load_grid(_grid(arms=["explicit", "loss"], seeds=20))
    other = _store_with_a_run(tmp_path / "b", fixed)
    bind_settings(other, _sequential_grid())  # a fixed design made sequential afterwards
    bind_settings(other, _sequential_grid())  # and the same design again


# --------------------------------------------------- item 13: --dry-run makes every check of run
def _dry_grid(epochs=1, **keys):
    return grid_text("dry", data=(200, 100), train={"epochs": epochs, "batch_size": 32}, **keys)


def _cli(capsys, *argv):
    from ablate.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_refuses_a_bad_pack_like_run(write_grid, tmp_path, capsys):
    grid = write_grid(_dry_grid())
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run", "--pack", "abc")
    assert code == 2 and "--pack" in err and "'abc'" in err and "run(s)" not in out
    assert not (tmp_path / "r").exists()


def test_dry_run_refuses_a_changed_setting_of_a_bound_study_and_writes_nothing(write_grid, tmp_path, capsys):
    from ablate.execution.store import RunStore
    from ablate.api import load_grid
    from ablate.settings import STUDY_FILE, bind_settings

    store = RunStore(tmp_path / "r", "dry")
    bind_settings(store, load_grid(write_grid(_dry_grid(), "first.yaml")))
    before = (store.study_dir / STUDY_FILE).read_bytes()
    grid = write_grid(_dry_grid(3))
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2 and "epochs 1 -> 3" in err and "already holds runs with other settings" in err
    assert (store.study_dir / STUDY_FILE).read_bytes() == before


def test_dry_run_refuses_a_missing_dataset_that_run_would_refuse(write_grid, tmp_path, capsys):
    grid = write_grid(_dry_grid(datasets=[{"name": "imagenette", "path": str(tmp_path / "none")}],
                                models=["fastai-cnn"]))
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2 and "imagenette" in err and "datasets[0]" in err


def test_dry_run_notes_a_download_instead_of_fetching(write_grid, tmp_path, capsys, monkeypatch):
    from ablate.data import catalogue

    def no_download(*args, **kwargs):
        raise AssertionError("a dry run downloaded a dataset")

    monkeypatch.setattr(catalogue, "load_dataset", no_download)
    monkeypatch.setattr(catalogue, "_locate", lambda name, path: (None, []))
    grid = write_grid(_dry_grid(datasets=[{"name": "cifar10"}]))
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 0, err
    assert "note: `datasets[0]` (cifar10) is not here; `run` downloads it first" in out
    assert out.strip().splitlines()[-1].startswith("4 run(s)")


# ------------------------------------------------------- item 1: labels that skip classes
LOADER_GRID = """\
study: labels
datasets: [{name: mine, loader: "LOADER:load", val_fraction: 0.2}]
models: [mlp]
backends: [torch]
arms: [none, loss]
smoothing: [0.1]
seeds: 1
train: {epochs: 1, batch_size: 8}
"""


def _loader(tmp_path, module: str, train: list[int], test: list[int], class_names=None) -> None:
    names = "" if class_names is None else f", 'class_names': {class_names!r}"
    (tmp_path / f"{module}.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        f"    ytr = np.array({train} * 10)\n"
        f"    yte = np.array({test} * 4)\n"
        "    rng = np.random.default_rng(0)\n"
        "    return {'x_train': rng.normal(size=(len(ytr), 4)), 'y_train': ytr,\n"
        f"            'x_test': rng.normal(size=(len(yte), 4)), 'y_test': yte{names}}}\n")


@pytest.mark.parametrize("train, test, class_names, missing", [
    ([3, 7], [3, 7], None, "0, 1, 2, 4, 5, 6"),  # labels that skip classes
    ([0, 1], [0, 1, 2], None, "2"),  # a class present only in the test set
    ([0, 1], [0, 1], ["a", "b", "c"], "2"),  # a named class with no example at all
])
def test_labels_that_skip_classes_are_refused_before_any_run(write_grid, tmp_path, capsys, train, test,
                                                             class_names, missing):
    module = f"skip{len(train)}{len(test)}{len(class_names or [])}"
    _loader(tmp_path, module, train, test, class_names)
    grid = write_grid(LOADER_GRID.replace("LOADER", module))
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r")
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "`datasets[0]`" in line
    assert "labels must be 0..K-1 with every class in the training split" in line
    assert f"class(es) {missing} " in line
    assert not (tmp_path / "r").exists()


def test_a_train_size_that_drops_a_loaders_class_is_refused(tmp_path):
    from ablate.data.catalogue import load_dataset
    from ablate.errors import DatasetError

    def load():
        import numpy as np

        y = np.array([0] * 40 + [1] * 40 + [2])  # one example of class 2
        return np.zeros((len(y), 3)), y, np.zeros((6, 3)), np.array([0, 1, 2] * 2)

    with pytest.raises(DatasetError, match=r"after `train_size` and `val_fraction` has no example of class\(es\) 2 "):
        load_dataset("rare", loader=load, train_size=20, val_fraction=0.1)


def test_labels_covering_every_class_still_load(tmp_path):
    from ablate.data.catalogue import load_dataset

    def load():
        import numpy as np

        y = np.array([0, 1, 2] * 10)
        return np.zeros((30, 3)), y, np.zeros((6, 3)), np.array([0, 1, 2] * 2)

    assert load_dataset("fine", loader=load, val_fraction=0.1).num_classes == 3


# ---------------------------------------------------------- item 5: the probe pairs what it can
PROBE_GRID = {"study": "p", "datasets": [{"name": "digits", "train_size": 100, "test_size": 50}], "models": ["mlp"],
              "backends": ["torch"], "smoothing": [0.1], "seeds": 1,
              "arms": {"none": {}, "explicit": {}, "loss": {},
                       "calm": {"method": "explicit", "train": {"momentum": 0.5}}},
              "train": {"epochs": 1, "batch_size": 50, "lr": 0.05, "momentum": 0.9, "monitor_size": 0}}


def test_the_probe_pairs_only_arms_that_differ_in_nothing_but_the_method():
    from ablate.catalog import parse_grid
    from ablate.execution import probe

    specs = parse_grid(PROBE_GRID).runs()
    pairs = probe.plan_pairs(specs)
    named = {(k, specs[i].arm, specs[j].arm) for k, i, j in pairs if j < len(specs)}
    assert named == {("explicit vs loss", "explicit", "loss"), ("none vs explicit", "none", "explicit")}
    assert not any("calm" in (specs[i].arm, specs[j].arm) for _, i, j in pairs if j < len(specs))


def test_the_probe_labels_pairs_by_arm_name_and_says_at_once_that_steps_are_capped():
    import io

    pytest.importorskip("torch")
    from ablate.catalog import parse_grid
    from ablate.execution import probe

    grid = dict(PROBE_GRID, arms={"base": {"method": "none"}, "mine": {"method": "explicit"},
                                  "theirs": {"method": "loss"}})
    log = io.StringIO()
    result = probe.probe(parse_grid(grid), steps=50, every=1, log=log)
    # 90 training examples in batches of 50, one epoch: 2 steps, not 50
    assert result.steps == 2
    note = log.getvalue().strip()
    assert note == ("note: --steps 50 is more than the 2 optimiser steps the grid trains on digits with mlp "
                    "(1 epoch(s) x 2 batches); the probe stops at step 2")
    text = probe.summary_text(result)
    assert "Capped: --steps 50 is more than the 2 optimiser steps" in text
    assert "- **explicit vs loss** (arms mine vs theirs):" in text
    assert "- **none vs explicit** (arms base vs mine):" in text
    assert {r["arms"] for r in result.rows} == {"mine vs theirs", "base vs mine", "base (twice)"}


# ------------------------------- items 2 and 12: plug-in models called once on a real batch
USER_MODELS = '''\
import math


def _torch(input_shape, num_classes, *, width=None, softmax=False, hidden=16):
    from torch import nn

    layers = [nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
              nn.Linear(hidden, width or num_classes)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


def _keras(input_shape, num_classes, *, activation=None, hidden=16):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(hidden, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation=activation)(x))


def torch_mlp(input_shape, num_classes):
    return _torch(input_shape, num_classes)


def torch_softmax(input_shape, num_classes):
    return _torch(input_shape, num_classes, softmax=True)


def torch_wide(input_shape, num_classes):
    return _torch(input_shape, num_classes, width=num_classes + 3)


def torch_pair(input_shape, num_classes):  # returns (logits, features), as some hubs' models do
    from torch import nn

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _torch(input_shape, num_classes)

        def forward(self, x):
            return self.net(x), x

    return Pair()


def torch_exit(input_shape, num_classes):  # a factory that kills its process
    import os

    os._exit(3)


def keras_mlp(input_shape, num_classes):
    return _keras(input_shape, num_classes)


def keras_softmax(input_shape, num_classes):  # keras.applications' default head
    return _keras(input_shape, num_classes, activation="softmax")


def keras_wider(input_shape, num_classes):
    return _keras(input_shape, num_classes, hidden=24)
'''

MODEL_GRID = """\
study: plug
datasets: [{name: digits, train_size: 100, test_size: 50}]
models: [{name: mine, torch: "usermodels:TORCH", keras: "usermodels:KERAS"}]
backends: BACKENDS
arms: [none]
seeds: 1
pairing: PAIRING
train: {epochs: 1, batch_size: 32, monitor_size: 0}
"""


def _model_grid(write_grid, tmp_path, torch="torch_mlp", keras="keras_mlp", backends="[torch]",
                pairing="within-backend"):
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    return write_grid(MODEL_GRID.replace("TORCH", torch).replace("KERAS", keras).replace("BACKENDS", backends)
                      .replace("PAIRING", pairing))


def test_a_torch_model_ending_in_softmax_is_refused_saying_return_logits(write_grid, tmp_path, capsys):
    pytest.importorskip("torch")
    grid = _model_grid(write_grid, tmp_path, torch="torch_softmax")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r")
    line = err.strip()
    assert code == 2 and "\n" not in line, err
    assert line.startswith(f"ablate: error: {grid}: `models[0]`: 'mine' (torch): outputs probabilities")
    assert "return logits" in line and "classifier_activation=None" in line
    assert not (tmp_path / "r").exists()


def test_a_model_of_the_wrong_width_is_refused_naming_both_widths(write_grid, tmp_path, capsys):
    pytest.importorskip("torch")
    grid = _model_grid(write_grid, tmp_path, torch="torch_wide")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2, err
    assert "`models[0]`: 'mine' (torch): outputs 13 values per example, but `datasets[0]` (digits) has 10 " \
           "classes" in err


def test_a_model_that_returns_no_tensor_is_one_line(write_grid, tmp_path, capsys):
    pytest.importorskip("torch")
    grid = _model_grid(write_grid, tmp_path, torch="torch_pair")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2 and "\n" not in err.strip(), err
    assert "'mine' (torch), called once on a batch of `datasets[0]` (digits): returned tuple, not a tensor " \
           "of logits (batch, K)" in err


def test_a_factory_that_kills_its_process_is_one_line(write_grid, tmp_path, capsys):
    pytest.importorskip("torch")
    grid = _model_grid(write_grid, tmp_path, torch="torch_exit")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2 and "\n" not in err.strip(), err
    assert "`models`: calling the plug-in models once with torch failed (exit code 3)" in err


def test_a_keras_model_with_a_softmax_head_is_refused(write_grid, tmp_path, capsys):
    pytest.importorskip("keras")
    grid = _model_grid(write_grid, tmp_path, keras="keras_softmax", backends="[keras]")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    assert code == 2, err
    assert "'mine' (keras/tensorflow): outputs probabilities" in err and "classifier_activation=None" in err


def test_cross_backend_pairing_of_a_user_model_with_different_layouts_names_the_first_differing_layer(
        write_grid, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    grid = _model_grid(write_grid, tmp_path, keras="keras_wider", backends="[torch, keras]",
                       pairing="cross-backend")
    code, out, err = _cli(capsys, "run", grid, "--results", tmp_path / "r", "--dry-run")
    line = err.strip()
    assert code == 2 and "\n" not in line, err
    assert "`models[0]`: pairing: cross-backend: model 'mine' builds different layers in torch and " \
           "keras/tensorflow, first layer dense0 (dense0.kernel: (64, 16) vs (64, 24))" in line


def test_cross_backend_pairing_of_a_matching_user_mlp_runs_from_the_same_weights(write_grid, tmp_path, capsys):
    """The README's promise: `run` takes a user model written in both frameworks under
    cross-backend pairing, and both backends start from the same drawn weights."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    import numpy as np

    from ablate import backends
    from ablate.api import load_grid
    from ablate.data.catalogue import load_dataset
    from ablate.execution.runner import trainer_options
    from ablate.execution.store import RunStore

    grid_path = _model_grid(write_grid, tmp_path, backends="[torch, keras]", pairing="cross-backend")
    code, out, err = _cli(capsys, "run", grid_path, "--results", tmp_path / "r", "--workers", "2")
    assert code == 0, err
    statuses = RunStore(tmp_path / "r", "plug").statuses()
    assert sorted(statuses.values()) == ["completed", "completed"]
    grid = load_grid(grid_path)
    ds = grid.datasets[0]
    data = load_dataset(ds.name, train_size=ds.train_size, test_size=ds.test_size, val_fraction=ds.val_fraction)
    start = {}
    for spec in grid.runs():
        backend = backends.load(spec.backend)
        start[spec.backend] = dict(backend.create_trainer(**trainer_options(spec, data)).shared_weights())
    torch_w, keras_w = start["torch"], start["keras/tensorflow"]
    assert sorted(torch_w) == sorted(keras_w) == ["dense0.bias", "dense0.kernel", "dense1.bias", "dense1.kernel"]
    for name in torch_w:
        np.testing.assert_array_equal(torch_w[name], keras_w[name])

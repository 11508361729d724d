"""The run id is pinned: golden values for fixed specs and for a committed study.

WHY THIS TEST EXISTS. A run id is the sha256 of ``RunSpec.identity()``. The store keys every run
by it, and ``run`` skips a cell whose id is already stored. If these values change (a new
``TrainConfig`` or ``RunSpec`` field that is not dropped from ``identity()`` while at its default,
a renamed key, a different JSON encoding), every stored study silently stops resuming: each of
its runs looks new and is trained again, and the old records no longer pair with the new ones.

Do NOT update the golden values to make this test pass. Instead either
  * keep the old ids: drop the new field from ``identity()`` when it has its default value (as
    ``pairing``, ``method``, ``params`` and ``trick`` already are), or
  * if the change must alter what a run computes, migrate: add a migration in
    ``ablate.execution.store`` that rewrites stored records to the new ids, or put a version
    field into the id so old and new ids are told apart, and say so in the README.
"""

from __future__ import annotations

import csv

from ablate.catalog import load_grid
from ablate.config import AugmentSpec, DatasetSpec, ParamSpec, RunSpec, TrainConfig, TrickSpec
from tests.conftest import REPO

PLAIN = RunSpec(backend="torch", dataset=DatasetSpec("digits", train_size=400, test_size=200), model="mlp",
                arm="loss", smoothing=0.1, seed=3, repeat=0, train=TrainConfig(epochs=2, batch_size=32))
PLAIN_ID = "2391b0fecededcb0"

EVERY_OPTION = RunSpec(
    backend="keras/tensorflow",
    dataset=DatasetSpec("cifar10", path="/data/cifar", val_fraction=0.2, preprocess="mean_subtract"),
    model="small-cnn", arm="soft", smoothing=0.0, seed=11, repeat=1,
    train=TrainConfig(epochs=30, optimizer="adam", lr=0.001, augment=AugmentSpec(), timeout=60.0),
    method="mixup", pairing="cross-backend", origin="/somewhere", params={"alpha": 0.4})
EVERY_OPTION_ID = "76c1c2b2659e98c9"

GRID_TRICK = RunSpec(
    backend="torch", dataset=DatasetSpec("user", loader="mydata:load"), model="mine", arm="noisy",
    smoothing=0.0, seed=0, repeat=0, train=TrainConfig(), method="noisy", model_factory="mymodels:net",
    params={"p": 0.25},
    trick=TrickSpec("noisy", targets="mytricks:targets", params={"p": ParamSpec(0.1, 0.0, 1.0)},
                    description="flips some labels"))
GRID_TRICK_ID = "9aa2ff7c60165dc4"


def test_golden_run_ids_of_fixed_specs():
    # See the module docstring before changing any value here.
    assert PLAIN.run_id == PLAIN_ID
    assert EVERY_OPTION.run_id == EVERY_OPTION_ID


def test_where_files_live_and_time_limits_do_not_change_the_id():
    import dataclasses

    moved = dataclasses.replace(EVERY_OPTION, origin="/elsewhere",
                                dataset=dataclasses.replace(EVERY_OPTION.dataset, path="/mnt/other"),
                                train=dataclasses.replace(EVERY_OPTION.train, timeout=None))
    assert moved.run_id == EVERY_OPTION_ID


def test_a_grid_declared_trick_id_is_pinned_and_ignores_its_description_and_ranges():
    import dataclasses

    assert GRID_TRICK.run_id == GRID_TRICK_ID
    other = dataclasses.replace(GRID_TRICK, trick=dataclasses.replace(
        GRID_TRICK.trick, description="other words", params={"p": ParamSpec(0.5, 0.0, 0.9)}))
    assert other.run_id == GRID_TRICK_ID


def test_the_committed_study_keeps_its_run_ids():
    """Every run of results/notebook-confound (stored long ago) has the id its grid gives today."""
    grid = load_grid(REPO / "examples" / "notebook_confound.yaml")
    with open(REPO / "results" / "notebook-confound" / "runs.csv", newline="") as fh:
        stored = {row["run_id"] for row in csv.DictReader(fh)}
    assert len(stored) == 40
    assert {spec.run_id for spec in grid.runs()} == stored

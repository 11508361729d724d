"""The tests' own grid builder: the YAML it writes is the one the tests wrote by hand, and it reads
back to exactly the values asked for (run ids depend on them)."""

from __future__ import annotations

import pytest
import yaml

from ablate.catalog import load_grid
from tests.helpers import grid_text, grid_values

HAND_WRITTEN = """\
study: dry
datasets: [{name: digits, train_size: 200, test_size: 100}]
models: [mlp]
backends: [torch]
arms: [none, loss]
smoothing: [0.1]
seeds: 2
train: {epochs: 1, batch_size: 32}
"""


def test_grid_text_is_the_hand_written_grid():
    assert grid_text("dry", data=(200, 100), train={"epochs": 1, "batch_size": 32}) == HAND_WRITTEN


def test_grid_text_reads_back_to_its_values_and_the_same_runs(write_grid, tmp_path):
    values = grid_values("fact", seeds={"init": 2, "order": [0, 5]},
                         overrides={"loss": {"train": {"lr": 1.0e+9, "momentum": 0.5}}})
    assert yaml.safe_load(grid_text(**values)) == values
    assert "smoothing" not in grid_values(smoothing=None)  # None leaves a key out
    by_hand = tmp_path / "by_hand.yaml"
    by_hand.write_text(yaml.safe_dump(values))
    built = write_grid(**values)
    assert [s.run_id for s in load_grid(built).runs()] == [s.run_id for s in load_grid(by_hand).runs()]


def test_grid_text_refuses_a_value_yaml_would_read_otherwise():
    with pytest.raises(AssertionError):
        grid_text("yes")  # a bare `yes` reads back as true

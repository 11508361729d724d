"""The runs-table layer (ablate.analysis.table): one validation and one pair rule for every comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import sequential as sq
from ablate.analysis import table
from ablate.analysis.compare import compare_runs, cross_rows
from ablate.errors import InputError


def _runs(n_seeds: int = 6) -> pd.DataFrame:
    """Arms first seen as loss, explicit, none (not the pair rule's order); none is unsmoothed."""
    rng = np.random.default_rng(2)
    rows = []
    for seed in range(n_seeds):
        base = 0.9 + rng.normal(0, 0.01)
        for eps in (0.1, 0.2):
            for arm in ("loss", "explicit"):
                rows.append({"arm": arm, "smoothing": eps, "seed": seed, "accuracy": base + rng.normal(0, 0.002)})
        rows.append({"arm": "none", "smoothing": 0.0, "seed": seed, "accuracy": base - 0.02})
    return pd.DataFrame(rows)


def test_fixed_and_sequential_comparisons_get_the_same_default_pairs_in_the_same_order():
    runs = _runs()
    fixed = compare_runs(runs, margins={"accuracy": 0.01}, n_boot=200).table
    fixed = fixed[~cross_rows(fixed)]
    seq = sq.sequential_comparisons(runs, looks=(3, 6), margins={"accuracy": 0.01}).table
    keys = ["metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b"]
    assert fixed[keys].values.tolist() == seq[keys].values.tolist()
    # The reference arm first, then the others sorted; the flat arm paired at each smoothing value.
    assert list(zip(seq["smoothing"], seq["arm_a"], seq["arm_b"])) == [
        (0.1, "none", "explicit"), (0.1, "none", "loss"), (0.1, "explicit", "loss"),
        (0.2, "none", "explicit"), (0.2, "none", "loss"), (0.2, "explicit", "loss")]
    # The plan of runs a sequential study makes (no metrics yet) pairs the same way.
    sides = sq.comparison_sides(runs.drop(columns="accuracy"))
    assert [key[3:] for key, _, _ in sides] == list(zip(seq["smoothing"], seq["arm_a"], seq["arm_b"]))
    assert sides[0][1] == ("-", "-", "-", "none", 0.0) and sides[0][2] == ("-", "-", "-", "explicit", 0.1)


def test_arm_roles_is_one_frozen_value():
    roles = table.arm_roles(table.normalise_runs(_runs(), "runs"))
    assert roles == table.ArmRoles(arms=("none", "explicit", "loss"), references=("none",), flat=("none",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        roles.arms = ()
    assert table.check_pairs(None, roles.arms, roles.arms) == [
        ("none", "explicit"), ("none", "loss"), ("explicit", "loss")]
    with pytest.raises(InputError, match=r"no arm 'mixup' in the runs table; arms: none, explicit, loss"):
        table.check_pairs([("none", "mixup")], roles.arms, roles.arms)


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop(columns="seed"), r"runs: missing column\(s\) seed"),
    (lambda df: df.assign(smoothing=1.5), r"runs: column `smoothing` must be in \[0, 1\); got 1.5"),
    (lambda df: df.assign(pairing="sideways"), r"runs: column `pairing` has unknown value\(s\) 'sideways'"),
    (lambda df: df.assign(seed="x"), r"runs: column `seed` must hold integers; got 'x'"),
    (lambda df: df.assign(accuracy="high"), r"runs: metric column `accuracy` must be numeric; got 'high'"),
])
def test_a_bad_table_is_refused_with_the_column_named(change, message):
    with pytest.raises(InputError, match=message):
        table.normalise_runs(change(_runs()), "runs")
    # The sequential comparisons read the table through the same layer, so refuse it the same way.
    with pytest.raises(InputError, match=message.replace("runs:", "runs table:")):
        sq.sequential_comparisons(change(_runs()), looks=(3, 6), margins={"accuracy": 0.01})


def test_normalise_fills_the_optional_columns_with_their_defaults():
    df = table.normalise_runs(pd.DataFrame({"arm": [" a ", "b"], "seed": [0, 1], "accuracy": [0.5, 0.6]}), "runs")
    for column, default in table.OPTIONAL_DEFAULTS.items():
        assert df[column].tolist() == [default, default], column
    assert df["arm"].tolist() == ["a", "b"]
    assert df["smoothing"].dtype == np.float64 and df["repeat"].dtype == np.int64
    assert table.metric_columns(df) == ["accuracy"]
    # A plan without metrics is a table only where the caller says so.
    with pytest.raises(InputError, match="no numeric metric column"):
        table.normalise_runs(pd.DataFrame({"arm": ["a"], "seed": [0]}), "runs")
    assert len(table.normalise_runs(pd.DataFrame({"arm": ["a"], "seed": [0]}), "runs", metrics=False)) == 1

"""`--only` and `--seeds`: parsing, one-line errors, and the subset they pick."""

from __future__ import annotations

import pytest

from ablate.catalog import parse_grid
from ablate.errors import ConfigError
from ablate.execution.selection import parse_only, parse_seeds, select


def _runs(seeds=10, backends=("torch", "keras")):
    return parse_grid({"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": list(backends),
                       "arms": ["none", "explicit", "loss"], "smoothing": [0.1, 0.2], "seeds": seeds}).runs()


@pytest.mark.parametrize("text, expected", [
    ("0-9", set(range(10))), ("0,2,5", {0, 2, 5}), ("0-3,7", {0, 1, 2, 3, 7}), (" 4 ", {4}), ("3-3", {3}),
])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-", "-", "0..9", ","])
def test_parse_seeds_refuses_with_one_line(text):
    with pytest.raises(ConfigError, match=r"^seeds: expected"):
        parse_seeds(text)


def test_parse_only_canonicalises_and_ors_values_of_one_key():
    assert parse_only("backend=keras,arm=loss,arm=explicit") == {
        "backend": {"keras/tensorflow"}, "arm": {"loss", "explicit"}}
    assert parse_only("smoothing=.1") == {"smoothing": {"0.1"}}


@pytest.mark.parametrize("text, message", [
    ("arm", "expected KEY=VALUE items"), ("arm=", "expected KEY=VALUE items"),
    ("colour=red", "expected keys among"), ("smoothing=big", "smoothing must be a number"),
])
def test_parse_only_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_only(text)


def test_select_picks_the_subset_in_grid_order():
    runs = _runs()
    picked = select(runs, only="backend=torch,arm=loss", seeds="0-4")
    assert len(picked) == 5 * 2  # 5 seeds x 2 eps
    assert {(s.backend, s.arm) for s in picked} == {("torch", "loss")}
    assert {s.seed for s in picked} == set(range(5))
    assert picked == [s for s in runs if s in picked]
    assert len(select(runs, only="smoothing=0.2,arm=explicit,arm=loss")) == 10 * 2 * 2
    assert select(runs) == runs


def test_select_names_values_missing_from_the_grid():
    with pytest.raises(ConfigError, match=r"backend \['keras/jax'\] is not in the grid; the grid has"):
        select(_runs(), only="backend=keras/jax")


def test_seeds_outside_the_grid_are_refused_with_a_word():
    with pytest.raises(ConfigError, match=r"^seeds: '5-9' selects none of the grid's seeds \(0-2\)"):
        select(_runs(seeds=3), seeds="5-9")


def test_a_huge_seed_range_costs_nothing():
    # Intersected with the grid's seeds as it is read: no 10^8-element set is built.
    assert {s.seed for s in select(_runs(seeds=3), seeds="0-100000000")} == {0, 1, 2}
    assert parse_seeds("1-100000000", grid_seeds=[0, 5]) == {5}


def test_adding_seeds_keeps_every_earlier_run_id():
    # Run ids hash a run's own configuration, not the seed list, so a grid grown from 10 to
    # 20 seeds contains the first sweep's runs unchanged and only the new ones are pending.
    small = {s.run_id for s in _runs(seeds=10)}
    large = _runs(seeds=20)
    assert small <= {s.run_id for s in large}
    assert {s.seed for s in large if s.run_id not in small} == set(range(10, 20))

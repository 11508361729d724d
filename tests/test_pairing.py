"""`pairing: cross-backend`: the grid key, the run spec, and paired Keras-vs-PyTorch rows."""

from __future__ import annotations


import pandas as pd
import pytest
from statsmodels.stats.weightstats import ttost_paired

from ablate.analysis import stats
from ablate.analysis.compare import compare_runs
from ablate.analysis.prose import markdown
from ablate.catalog import parse_grid
from ablate.config import RunSpec
from ablate.errors import ConfigError, InputError
from tests.helpers import run_cli
from tests.test_compare import make_runs

BASE = {"study": "s", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch", "keras"],
        "arms": ["none", "loss"], "smoothing": [0.1], "seeds": 2}


def test_grid_key_defaults_and_validation():
    assert parse_grid(BASE).pairing == "within-backend"
    grid = parse_grid({**BASE, "pairing": "cross-backend"})
    assert {r.pairing for r in grid.runs()} == {"cross-backend"}
    with pytest.raises(ConfigError, match=r"^<grid>: `pairing`: expected one of \('within-backend', "
                                          r"'cross-backend'\), but got 'shared'$"):
        parse_grid({**BASE, "pairing": "shared"})


def test_run_ids_keep_their_value_within_backend_and_change_across():
    within = parse_grid(BASE).runs()[0]
    assert "pairing" not in within.identity()  # ids of existing studies are unchanged
    cross = parse_grid({**BASE, "pairing": "cross-backend"}).runs()[0]
    assert cross.run_id != within.run_id
    assert RunSpec.from_dict(cross.to_dict()) == cross and RunSpec.from_dict(within.to_dict()) == within


def test_preflight_leaves_a_user_models_layout_to_the_model_check():
    """Every built-in model has a planned layout; a user model's is read off the built models and
    compared when preflight calls them (tests/test_hardening_round3_inputs.py), not refused here."""
    import dataclasses

    from ablate.execution.preflight import check_pairing

    grid = parse_grid({**BASE, "pairing": "cross-backend", "models": ["mlp", "fastai-cnn"]})
    check_pairing(grid)
    from ablate.config import ModelSpec

    user = ModelSpec("resnet", torch="mine:resnet", keras="mine:resnet_k")
    check_pairing(dataclasses.replace(grid, models=(user,)))


def _cross(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.assign(pairing="cross-backend")


def test_cross_backend_rows_are_paired_by_seed():
    runs = _cross(make_runs(seed=5))
    comp = compare_runs(runs, n_boot=200)
    across = comp.table[comp.table.backend == "keras vs torch"]
    assert len(across) and not (across.test == "welch_t").any()
    row = across[(across.metric == "accuracy") & (across.arm_a == "loss")].iloc[0]
    k = runs[(runs.backend == "keras") & (runs.arm == "loss")].set_index("seed").accuracy.sort_index()
    t = runs[(runs.backend == "torch") & (runs.arm == "loss")].set_index("seed").accuracy.sort_index()
    assert row.n == 10 and row.arm_b == "loss"
    assert row.mean_diff == pytest.approx((k - t).mean())
    assert row.p_equivalence == pytest.approx(ttost_paired(k.to_numpy(), t.to_numpy(), -0.005, 0.005)[0],
                                              abs=1e-9)
    assert row.effect_dz == pytest.approx(stats.cohens_dz(k.to_numpy(), t.to_numpy()))
    assert "shared initial weights" in row.note
    # The within-backend rows and the assay sensitivity are as before.
    assert len(comp.sensitivity) == len(compare_runs(make_runs(seed=5), n_boot=200).sensitivity)
    text = markdown(comp)
    assert "### Across backends (paired: shared initial weights)" in text
    assert "Across backends (unpaired, Welch)" not in text


def test_mixed_pairing_stays_welch_and_bad_values_are_refused():
    runs = make_runs(seed=5)
    runs["pairing"] = ["cross-backend" if b == "torch" else "within-backend" for b in runs.backend]
    assert (compare_runs(runs, n_boot=200).table.query("backend == 'keras vs torch'").test == "welch_t").all()
    with pytest.raises(InputError, match="column `pairing` has unknown value"):
        compare_runs(runs.assign(pairing="sometimes"), n_boot=200)


@pytest.mark.slow
def test_digits_grid_gives_paired_keras_vs_torch_rows(write_grid, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    grid = write_grid("""\
        study: xb
        pairing: cross-backend
        datasets: [{name: digits, train_size: 200, test_size: 100}]
        models: [mlp]
        backends: [torch, keras]
        arms: [loss]
        smoothing: [0.1]
        seeds: 2
        train: {epochs: 1, batch_size: 32, monitor_size: 32}
        """)
    results = tmp_path / "results"
    for cmd in (["run", grid, "--results", results, "--workers", "1"], ["report", "--results", results]):
        run_cli(*cmd, check=0)
    table = pd.read_csv(results / "xb" / "comparisons.csv")
    across = table[table.backend == "keras/tensorflow vs torch"]
    assert len(across) == 3 and set(across.test) <= {"paired_t", "wilcoxon", "sign_flip"}
    assert across.note.str.contains("shared initial weights").all()
    runs = pd.read_csv(results / "xb" / "runs.csv")
    assert set(runs.pairing) == {"cross-backend"} and set(runs.status) == {"completed"}

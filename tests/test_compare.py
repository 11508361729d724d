"""ablate.analysis.compare: the comparisons table, its verdicts, report text and runs-table input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from ablate.analysis import stats
from ablate.analysis.compare import COLUMNS, compare_runs
from ablate.analysis.prose import markdown
from ablate.analysis.table import load_runs_table, metric_columns
from ablate.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def make_runs(
    *,
    backends=("keras", "torch"),
    seeds=10,
    gain=0.02,
    loss_offset=0.0,
    loss_noise=0.001,
    repeats=0,
    seed=0,
) -> pd.DataFrame:
    """Synthetic runs.csv: smoothing gains ``gain`` accuracy; loss = explicit + offset + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for backend in backends:
        for s in range(seeds):
            base = 0.90 + rng.normal(0, 0.004)  # shared seed effect makes pairing matter
            explicit = base + gain + rng.normal(0, 0.001)
            values = {
                "none": (0.0, base, 0.040 + rng.normal(0, 0.002)),
                "explicit": (0.1, explicit, 0.020 + rng.normal(0, 0.002)),
                "loss": (0.1, explicit + loss_offset + rng.normal(0, loss_noise), 0.020 + rng.normal(0, 0.002)),
            }
            for arm, (eps, acc, ece) in values.items():
                for rep in range(1 + (repeats if s < 3 else 0)):
                    jitter = 0.0 if rep == 0 else rng.normal(0, 0.0005)
                    rows.append(dict(run_id=f"{backend}-{arm}-{s}-{rep}", status="completed",
                                     backend=backend, dataset="digits", model="mlp", arm=arm,
                                     smoothing=eps, seed=s, repeat=rep, accuracy=acc + jitter,
                                     ece=ece, nll=0.3 + rng.normal(0, 0.01), brier=0.1,
                                     started_at="2025-01-01T00:00:00", seconds=1.0))
    return pd.DataFrame(rows)


def rows_of(table, metric="accuracy", backend="torch", arm_a="explicit", arm_b="loss"):
    sel = table[(table.metric == metric) & (table.backend == backend) & (table.arm_a == arm_a)
                & (table.arm_b == arm_b)]
    return sel


def one(table, **kw):
    sel = rows_of(table, **kw)
    assert len(sel) == 1, sel
    return sel.iloc[0]


@pytest.fixture(scope="module")
def comp():
    return compare_runs(make_runs(repeats=1), rng=np.random.default_rng(0), n_boot=300)


# --------------------------------------------------------------------------- structure


def test_columns_are_the_contract(comp):
    assert tuple(comp.table.columns) == COLUMNS
    assert list(comp.details.columns[:7]) == ["metric", "backend", "dataset", "model", "smoothing",
                                              "arm_a", "arm_b"]
    assert len(comp.details) == len(comp.table)


def test_rows_per_metric_and_group(comp):
    t = comp.table
    # brier has no default margin, so only accuracy, ece and nll.
    assert list(dict.fromkeys(t.metric)) == ["accuracy", "ece", "nll"]
    acc = t[t.metric == "accuracy"]
    # 2 backends x 3 paired comparisons + 3 cross-backend rows (none, explicit, loss).
    assert len(acc) == 9
    paired = acc[acc.test != "welch_t"]
    assert set(zip(paired.arm_a, paired.arm_b)) == {("explicit", "loss"), ("none", "explicit"), ("none", "loss")}
    assert (paired.smoothing == 0.1).all()  # none rows carry the smoothing arm's eps
    assert any("brier" in n and "margin" in n for n in comp.notes)


def test_pairing_by_seed_matches_statsmodels():
    runs = make_runs(seed=3)
    runs = runs.sample(frac=1.0, random_state=1)  # order must not matter
    comp = compare_runs(runs, n_boot=200)
    row = one(comp.table, backend="keras")
    sub = runs[(runs.backend == "keras") & (runs.repeat == 0)]
    a = sub[sub.arm == "explicit"].set_index("seed").accuracy.sort_index()
    b = sub[sub.arm == "loss"].set_index("seed").accuracy.sort_index()
    assert row.n == 10
    assert row.mean_diff == pytest.approx((a - b).mean())
    assert row.p_equivalence == pytest.approx(ttost_paired(a.to_numpy(), b.to_numpy(), -0.005, 0.005)[0],
                                              abs=1e-9)
    assert row.p_difference == pytest.approx(stats.paired_difference(a.to_numpy(), b.to_numpy()).p_value)
    assert row.effect_dz == pytest.approx(stats.cohens_dz(a.to_numpy(), b.to_numpy()))


def test_welch_rows_convention():
    runs = make_runs()
    comp = compare_runs(runs, n_boot=200)
    welch = comp.table[comp.table.test == "welch_t"]
    assert set(welch.backend) == {"keras vs torch"}
    assert (welch.arm_a == welch.arm_b).all()
    row = welch[(welch.metric == "accuracy") & (welch.arm_a == "loss")].iloc[0]
    sub = runs[runs.arm == "loss"]
    k, t = sub[sub.backend == "keras"].accuracy.to_numpy(), sub[sub.backend == "torch"].accuracy.to_numpy()
    assert row.mean_diff == pytest.approx(k.mean() - t.mean())
    assert row.p_equivalence == pytest.approx(ttost_ind(k, t, -0.005, 0.005, usevar="unequal")[0], abs=1e-9)
    assert row.effect_dz == pytest.approx(stats.hedges_g(k, t))
    assert "Hedges' g" in row.note and "10 keras and 10 torch" in row.note
    none_row = welch[(welch.metric == "accuracy") & (welch.arm_a == "none")].iloc[0]
    assert none_row.smoothing == 0.0


def test_single_backend_has_no_welch_rows():
    comp = compare_runs(make_runs(backends=("torch",)), n_boot=200)
    assert not (comp.table.test == "welch_t").any()
    assert len(comp.table) == 9


# --------------------------------------------------------------------------- verdicts


def test_verdicts_equivalent_and_different(comp):
    t = comp.table
    for backend in ("keras", "torch"):
        assert one(t, backend=backend).verdict == "equivalent"
        for arm in ("explicit", "loss"):
            row = one(t, backend=backend, arm_a="none", arm_b=arm)
            assert row.verdict == "different"
            assert row.mean_diff < -0.005
    sens = comp.sensitivity[comp.sensitivity.metric == "accuracy"]
    assert sens.detected.all() and (sens.gain > 0.01).all()


def test_adjusted_p_values_cover_the_whole_table(comp):
    t = comp.table
    for col in ("p_equivalence", "p_difference"):
        assert np.allclose(t[f"{col}_adj"], multipletests(t[col], method="holm")[1], rtol=1e-12)
    bh = compare_runs(make_runs(), correction="bh", n_boot=200).table
    assert np.allclose(bh.p_difference_adj, multipletests(bh.p_difference, method="fdr_bh")[1], rtol=1e-12)


def test_identical_arms_give_identical_verdict():
    runs = make_runs(loss_noise=0.0)
    comp = compare_runs(runs, n_boot=200)
    row = one(comp.table)
    assert row.verdict == "identical" and row.mean_diff == 0.0
    assert "exactly zero" in row.note


def test_fewer_than_five_pairs_is_inconclusive():
    comp = compare_runs(make_runs(seeds=4), n_boot=200)
    paired = comp.table[comp.table.test != "welch_t"]
    assert (paired.verdict == "inconclusive").all()
    assert paired.note.str.contains("only 4 pairs").all()
    welch = comp.table[comp.table.test == "welch_t"]
    assert (welch.verdict == "inconclusive").all()
    assert welch.note.str.contains("only 4 runs on the smaller side").all()
    two = compare_runs(make_runs(seeds=2), n_boot=200)
    row = one(two.table)
    assert row.n == 2 and row.verdict == "inconclusive" and np.isfinite(row.p_equivalence)


def test_huge_margin_makes_everything_equivalent():
    comp = compare_runs(make_runs(), margins={"accuracy": 10.0}, n_boot=200)
    acc = comp.table[comp.table.metric == "accuracy"]
    assert (acc.verdict == "equivalent").all()
    assert (acc.margin == 10.0).all()


def test_different_but_practically_equivalent_flag():
    # A consistent 0.1 pp difference with tiny noise: significant yet well inside ±0.5 pp.
    comp = compare_runs(make_runs(seeds=12, loss_offset=-0.001, loss_noise=0.0001), n_boot=200)
    row = one(comp.table)
    assert row.p_difference_adj < 0.05 and row.p_equivalence_adj < 0.05
    assert row.verdict == "equivalent"
    assert "different but practically equivalent" in row.note


def test_clear_difference_between_explicit_and_loss():
    comp = compare_runs(make_runs(loss_offset=-0.02), n_boot=200)
    assert one(comp.table).verdict == "different"


def test_wilcoxon_is_used_when_differences_are_not_normal():
    runs = make_runs(seeds=12, backends=("torch",))
    loss = (runs.arm == "loss") & (runs.seed < 2)
    runs.loc[loss, "accuracy"] -= 0.05  # two outlying seeds: Shapiro-Wilk rejects
    comp = compare_runs(runs, n_boot=200)
    assert one(comp.table).test == "wilcoxon"


# --------------------------------------------------------------------------- notes, filters, floor


def test_missing_seed_is_dropped_with_a_note():
    runs = make_runs()
    runs = runs[~((runs.backend == "torch") & (runs.arm == "loss") & (runs.seed == 7))]
    comp = compare_runs(runs, n_boot=200)
    row = one(comp.table)
    assert row.n == 9 and "seed(s) 7 dropped (no loss run)" in row.note
    assert one(comp.table, backend="keras").n == 10
    assert one(comp.table, arm_a="none", arm_b="explicit").n == 10
    assert any("torch / digits / mlp, ε = 0.1, explicit vs loss: seed(s) 7 dropped" in n for n in comp.notes)


def test_only_completed_runs_are_used():
    runs = make_runs()
    failed = (runs.backend == "torch") & (runs.arm == "explicit") & (runs.seed == 0)
    runs.loc[failed, "status"] = "failed"
    runs.loc[failed, "accuracy"] = 0.0  # would wreck the statistics if used
    comp = compare_runs(runs, n_boot=200)
    assert one(comp.table).n == 9
    assert any("left out" in n and "failed: 1" in n for n in comp.notes)


def test_nondeterminism_floor(comp):
    floor = comp.floor
    acc = floor[floor.metric == "accuracy"]
    assert set(acc.arm) == {"none", "explicit", "loss"} and (acc.n_pairs == 3).all()
    assert (acc.mean_abs_diff > 0).all() and (acc.max_abs_diff >= acc.mean_abs_diff).all()
    assert compare_runs(make_runs(), n_boot=200).floor.empty


def test_same_generator_gives_same_details():
    runs = make_runs(seeds=20, backends=("torch",))
    one_ = compare_runs(runs, rng=np.random.default_rng(4), n_boot=200).details
    two = compare_runs(runs, rng=np.random.default_rng(4), n_boot=200).details
    pd.testing.assert_frame_equal(one_, two)
    assert (one_.sign_flip_method.str.startswith("monte carlo")).all()  # n = 20 > 16


@pytest.mark.parametrize("kwargs,match", [
    (dict(correction="bonferroni"), r"`correction` to be one of \('holm', 'bh'\), but got 'bonferroni'"),
    (dict(alpha=0.7), "alpha"),
    (dict(margins={"f1": 0.01}), "f1"),
    (dict(margins={"accuracy": -1}), "accuracy"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        compare_runs(make_runs(seeds=3), n_boot=200, **kwargs)


def test_duplicate_runs_are_refused():
    runs = make_runs(seeds=3)
    with pytest.raises(InputError, match="share backend/dataset/model/arm/smoothing/seed/repeat"):
        compare_runs(pd.concat([runs, runs.iloc[:1]]), n_boot=200)


# --------------------------------------------------------------------------- markdown


def test_markdown_sentences(comp):
    text = markdown(comp, alpha=0.05, correction="holm")
    assert "### torch / digits / mlp, ε = 0.1" in text
    assert "On torch / digits / mlp, explicit and loss smoothing are equivalent within ±0.50 pp accuracy" in text
    assert "90% CI [" in text and "(Holm), n = 10)" in text
    assert "both beat no smoothing by ≥ " in text
    assert "Assay sensitivity: both smoothing arms differ from no smoothing" in text
    assert "seeds give 80% power" in text
    assert "Nondeterminism floor" in text
    assert "Across backends (unpaired, Welch)" in text and "keras vs torch (loss arm)" in text
    assert "brier" in text  # the note about the metric without a margin
    with pytest.raises(InputError, match="alpha"):
        markdown(comp, alpha=0.1)


def test_markdown_weak_assay_sensitivity():
    comp = compare_runs(make_runs(gain=0.0, backends=("torch",)), n_boot=200)
    text = markdown(comp)
    assert "Assay sensitivity is weak" in text


def test_markdown_numbers_are_percentage_points_for_accuracy():
    comp = compare_runs(make_runs(loss_offset=-0.02, backends=("torch",)), n_boot=200)
    row = one(comp.table)
    text = markdown(comp)
    assert f"{row.mean_diff * 100:+.2f} pp" in text
    assert "differ in accuracy by more than the margin" in text


# --------------------------------------------------------------------------- load_runs_table


def write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_minimal_user_table_and_report_it(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["arm,seed,accuracy,f1"]
    for s in range(8):
        base = 0.8 + rng.normal(0, 0.01)
        for arm, gain in (("none", 0.0), ("explicit", 0.03), ("loss", 0.03)):
            lines.append(f"{arm},{s},{base + gain + rng.normal(0, 0.001):.5f},{base:.4f}")
    df = load_runs_table(write(tmp_path, "\n".join(lines)))
    assert (df.backend == "-").all() and (df.smoothing == 0.0).all() and (df.repeat == 0).all()
    comp = compare_runs(df, margins={"f1": 0.01}, n_boot=200)
    assert set(comp.table.metric) == {"accuracy", "f1"}
    assert one(comp.table, backend="-").verdict == "equivalent"
    text = markdown(comp)
    assert "On all runs, explicit and loss smoothing are equivalent" in text


def test_load_accepts_ablate_runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    make_runs(seeds=5).to_csv(path, index=False)
    df = load_runs_table(path)
    assert {"accuracy", "ece", "nll", "brier"} <= set(metric_columns(df))
    assert "seconds" not in metric_columns(df)


@pytest.mark.parametrize("text,match", [
    ("seed,accuracy\n0,0.9\n", r"missing column\(s\) arm; required: arm, seed .*; got seed, accuracy"),
    ("arm,accuracy\nnone,0.9\n", r"missing column\(s\) seed"),
    ("arm,seed,accuracy\nnone,0,0.9\n,1,0.9\n", r"column `arm` must name an arm on every row; data row 2"),
    ("arm,seed,accuracy\nnone,zero,0.9\n", r"column `seed` must hold integers; got 'zero'"),
    ("arm,seed,accuracy\nnone,1.5,0.9\n", r"column `seed` must hold integers"),
    ("arm,seed,smoothing,accuracy\nloss,0,1.5,0.9\n", r"column `smoothing` must be in \[0, 1\); got 1.5"),
    ("arm,seed,accuracy\nnone,0,high\n", r"metric column `accuracy` must be numeric; got 'high'"),
    ("arm,seed,comment\nnone,0,ok\n", r"no numeric metric column"),
    ("", r"not a readable CSV table"),
    ("arm,seed,accuracy\n", r"no rows"),
])
def test_load_errors_are_one_line_and_name_the_columns(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=match) as info:
        load_runs_table(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_runs_table(tmp_path / "absent.csv")


# --------------------------------------------------------------------------- hygiene


def test_importing_stats_and_compare_imports_no_framework_or_plotting():
    code = ("import sys, ablate.analysis.stats, ablate.analysis.compare; "
            "bad = [m for m in ('torch', 'tensorflow', 'keras', 'matplotlib', 'seaborn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

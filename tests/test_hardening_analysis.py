"""Issue 11 (hardening), analysis side: words follow verdicts, float noise, seeds_needed
assumptions, report options, odd --runs tables, and arms with any names (issue 10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from ablate.analysis import stats
from ablate.analysis.compare import compare_runs
from ablate.analysis.prose import markdown
from ablate.cli import main
from ablate.errors import InputError


def table(arms_gain, *, seeds=8, noise=0.001, seed=0, smoothing=None):
    """One row per arm and seed: accuracy = shared seed effect + the arm's gain + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        base = 0.85 + rng.normal(0, 0.004)
        for arm, gain in arms_gain.items():
            row = {"arm": arm, "seed": s, "accuracy": base + gain + rng.normal(0, noise)}
            if smoothing is not None:
                row["smoothing"] = smoothing.get(arm, 0.0)
            rows.append(row)
    return pd.DataFrame(rows)


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_csv(tmp_path, df, name="runs.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ item 4: words follow verdicts


def test_too_few_pairs_make_no_significance_claim():
    # 3 seeds, smoothing clearly better than none: the test is "significant" but there is no verdict.
    runs = table({"none": 0.0, "explicit": 0.015, "loss": 0.015}, seeds=3, noise=0.0005,
                  smoothing={"explicit": 0.1, "loss": 0.1})
    comp = compare_runs(runs, n_boot=200)
    assert (comp.table["verdict"] == "inconclusive").all()
    assert (comp.table[comp.table.arm_a == "none"]["p_difference_adj"] < 0.05).all()  # would-be claim
    text = markdown(comp)
    assert "beat" not in text and "detects effects of this size" not in text
    assert "p < 0.001" not in text
    assert "no verdict" in text and "Assay sensitivity cannot be judged here: only 3 pair(s)" in text
    assert not comp.sensitivity["detected"].any()


def _noisy_pair(offset):
    """b = a + offset, then nudged by one or two ULPs: differences equal up to rounding."""
    a = np.array([0.9012, 0.8867, 0.9143, 0.8991, 0.9078, 0.8925, 0.9102, 0.8954])
    b = a + offset
    b[::2] = np.nextafter(b[::2], 2.0)
    b[::3] = np.nextafter(b[::3], 2.0)
    d = a - b
    assert np.std(d, ddof=1) > 0  # float noise, not exact: the case the fix is about
    return a, b


def test_float_noise_differences_are_identical_not_significant():
    a, b = _noisy_pair(0.0)  # a - b is -1 or -2 ULPs: 'the same tiny non-zero number'
    # Exact arithmetic calls rounding "significant" (what the report showed before).
    assert stats.paired_t(a, b).p_value < 0.05
    res = stats.compare_paired(a, b, margin=0.005, rng=np.random.default_rng(0), n_boot=200)
    assert res.identical and res.mean_diff == 0.0 and res.sd_diff == 0.0
    assert res.difference.p_value == 1.0 and res.effect_dz == 0.0
    runs = pd.DataFrame({"arm": ["x"] * 8 + ["y"] * 8, "seed": list(range(8)) * 2,
                         "accuracy": np.concatenate([a, b])})
    row = compare_runs(runs, n_boot=200).table.iloc[0]
    assert row.verdict == "identical" and row.p_difference == 1.0 and row.effect_dz == 0.0


def test_constant_nonzero_differences_have_no_test_and_a_verdict_from_the_value():
    a, b = _noisy_pair(-0.01)  # every difference is 0.01 up to rounding
    res = stats.compare_paired(a, b, margin=0.005, rng=np.random.default_rng(0), n_boot=200)
    assert res.constant and not res.identical and res.sd_diff == 0.0
    assert res.mean_diff == pytest.approx(0.01)
    assert math.isnan(res.difference.p_value) and math.isnan(res.tost.p_equivalence)
    assert math.isnan(res.effect_dz) and math.isnan(res.hedges_g)
    assert res.tost.ci_low == res.tost.ci_high == res.mean_diff
    runs = pd.DataFrame({"arm": ["x"] * 8 + ["y"] * 8, "seed": list(range(8)) * 2,
                         "accuracy": np.concatenate([a, b])})
    for margin, verdict in ((0.005, "different"), (0.02, "equivalent")):
        comp = compare_runs(runs, margins={"accuracy": margin}, n_boot=200)
        row = comp.table.iloc[0]
        assert row.verdict == verdict and math.isnan(row.p_difference) and math.isnan(row.effect_dz)
        assert "zero variance" in row.note
        text = markdown(comp)
        assert "every seed gives the same difference, +1.00 pp" in text and "p < 0.001" not in text


def test_constant_samples_across_backends_have_no_welch_test():
    a = np.full(6, 0.9) + np.array([0, 1, -1, 2, 0, 1]) * 1e-16
    b = np.full(6, 0.88)
    res = stats.compare_unpaired(a, b, margin=0.005)
    assert res.constant and math.isnan(res.difference.p_value) and math.isnan(res.hedges_g)
    assert res.mean_diff == pytest.approx(0.02)


# ------------------------------------------------------------------ item 5: seeds_needed assumptions


def test_seeds_needed_observed_plans_with_the_observed_difference():
    sd, margin = 0.004, 0.005
    for diff in (0.0, 0.001, 0.003):
        k = stats.seeds_needed(sd, margin, true_diff=diff)
        assert stats.tost_power(k, sd, margin, true_diff=diff) >= 0.8
        assert stats.tost_power(k - 1, sd, margin, true_diff=diff) < 0.8 or k == 2
    assert stats.seeds_needed(sd, margin, true_diff=0.003) > stats.seeds_needed(sd, margin)
    # At or beyond the margin, TOST power stays below 1/2 for any n: not reachable.
    assert stats.seeds_needed(sd, margin, true_diff=margin) is None
    assert stats.seeds_needed(sd, margin, true_diff=-0.02) is None
    assert stats.tost_power(5000, sd, margin, true_diff=margin) < 0.5


def test_comparisons_carry_both_plans_and_say_their_assumptions():
    # loss is 0.6 pp below explicit: "different" at ±0.5 pp, so equal-arms planning is a what-if.
    runs = table({"explicit": 0.0, "loss": -0.006}, seeds=10, noise=0.001)
    comp = compare_runs(runs, n_boot=200)
    row = comp.table.iloc[0]
    sd = float(comp.details["sd_diff"].iloc[0])
    assert row.seeds_needed == stats.seeds_needed(sd, 0.005)
    assert pd.isna(row.seeds_needed_observed)  # |observed| >= margin
    text = markdown(comp)
    assert "if the arms were truly equal, " in text
    assert "equivalence is not reachable with any number of seeds" in text

    close = compare_runs(table({"explicit": 0.0, "loss": -0.002}, seeds=10, noise=0.001), n_boot=200)
    row = close.table.iloc[0]
    sd = float(close.details["sd_diff"].iloc[0])
    assert row.seeds_needed_observed == stats.seeds_needed(sd, 0.005, true_diff=row.mean_diff)
    assert row.seeds_needed_observed >= row.seeds_needed
    assert f"{int(row.seeds_needed_observed)} seeds would be needed" in markdown(close)


# ------------------------------------------------------------------ item 7: options out of range


@pytest.mark.parametrize("argv,needle", [
    (["--alpha", "0"], "--alpha: expected a number in (0, 0.5), but got 0.0"),
    (["--alpha", "0.5"], "--alpha"),
    (["--alpha", "nan"], "--alpha"),
    (["--ece-bins", "0"], "--ece-bins: expected an integer >= 1, but got 0"),
    (["--margin", "accuracy=inf"], "--margin: expected METRIC=VALUE with a finite VALUE > 0"),
    (["--margin", "accuracy=0"], "--margin"),
    (["--compare", "none"], "--compare: expected ARM_A:ARM_B"),
])
def test_report_options_out_of_range_are_refused(tmp_path, capsys, argv, needle):
    path = write_csv(tmp_path, table({"none": 0.0, "loss": 0.01}, seeds=5))
    for where in (["--runs", str(path)], ["--results", str(tmp_path / "nothing")]):
        code, _, err = cli(capsys, "report", *where, "--out", str(tmp_path / "o"), "--no-figures", *argv)
        assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_runs_table_alpha_is_used_not_replaced(tmp_path, capsys):
    path = write_csv(tmp_path, table({"none": 0.0, "loss": 0.01}, seeds=6))
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "o"), "--no-figures",
                       "--alpha", "0.01")
    assert code == 0, err
    assert "α = 0.01" in (tmp_path / "o" / "report.md").read_text()


# ------------------------------------------------------------------ item 11: failed rows without run_id


def test_runs_table_with_failed_rows_and_no_run_id(tmp_path, capsys):
    df = table({"none": 0.0, "loss": 0.01}, seeds=6)
    df["status"] = "completed"
    df.loc[3, ["status", "accuracy"]] = ["failed", np.nan]
    path = write_csv(tmp_path, df)
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "o"), "--no-figures")
    assert code == 0, err
    text = (tmp_path / "o" / "report.md").read_text()
    assert "## Failed and diverged runs" in text
    assert f"- failed: {df.loc[3, 'arm']} eps=0 seed={df.loc[3, 'seed']}" in text
    assert "1 run(s) that did not complete were left out (failed: 1)" in text


# ------------------------------------------------------------------ item 16: tables that say too little


@pytest.mark.parametrize("column", ["accuracy", "brier"])  # brier has no margin but is summarised
def test_inf_in_runs_table_names_column_and_row(tmp_path, capsys, column):
    df = table({"none": 0.0, "loss": 0.01}, seeds=6)
    df["brier"] = 0.1
    df.loc[4, column] = -np.inf
    path = write_csv(tmp_path, df)
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "o"), "--no-figures")
    assert code == 2 and err.count("\n") == 1
    assert f"column `{column}` holds -inf in data row 5" in err and f"seed {df.loc[4, 'seed']}" in err
    assert not (tmp_path / "o").exists()


def test_non_numeric_custom_metric_is_named(tmp_path, capsys):
    df = table({"none": 0.0, "loss": 0.01}, seeds=6)
    df["f1"] = (df["accuracy"] - 0.05).round(4).astype(object)
    df.loc[7, "f1"] = "n/a?"
    path = write_csv(tmp_path, df)
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "o"), "--no-figures",
                       "--margin", "f1=0.01")
    assert code == 2 and err.count("\n") == 1
    assert "column `f1` is not numeric (e.g. 'n/a?' in data row 8" in err
    # Without a margin for it, the report says it left the column out instead of dropping it silently.
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "o"), "--no-figures")
    assert code == 0, err
    assert "column(s) holding text, not compared: `f1` (e.g. 'n/a?'" in (tmp_path / "o" / "report.md").read_text()


def test_margin_for_a_metric_the_runs_lack_is_refused(tmp_path, capsys):
    from tests.test_report import fill_store

    fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False, failed=False)
    code, _, err = cli(capsys, "report", "--results", str(tmp_path), "--study", "synth", "--no-figures",
                       "--margin", "foo=0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1
    assert "--margin: no metric 'foo' in these runs; metrics: " in err and "accuracy" in err and "ece_ts" in err
    path = write_csv(tmp_path, table({"none": 0.0, "loss": 0.01}, seeds=5))
    code, _, err = cli(capsys, "report", "--runs", str(path), "--no-figures", "--margin", "foo=0.1",
                       "--out", str(tmp_path / "o"))
    assert code == 2 and "--margin: no metric 'foo' in these runs; metrics: accuracy" in err


# ------------------------------------------------------------------ issue 10: arms with any names


def test_report_runs_with_custom_arm_names(tmp_path, capsys):
    df = table({"baseline": 0.0, "mixup": 0.012}, seeds=8)
    df["ece"] = 0.03 + np.random.default_rng(1).normal(0, 0.002, len(df))
    path = write_csv(tmp_path, df)
    out = tmp_path / "o"
    code, stdout, err = cli(capsys, "report", "--runs", str(path), "--out", str(out))
    assert code == 0, err
    comparisons = pd.read_csv(out / "comparisons.csv")
    acc = comparisons[comparisons.metric == "accuracy"].iloc[0]
    assert (acc.arm_a, acc.arm_b, acc.n, acc.verdict) == ("baseline", "mixup", 8, "different")
    base, mix = df[df.arm == "baseline"].accuracy.to_numpy(), df[df.arm == "mixup"].accuracy.to_numpy()
    assert acc.mean_diff == pytest.approx((base - mix).mean())
    assert acc.p_difference == pytest.approx(st.ttest_rel(base, mix).pvalue)
    text = (out / "report.md").read_text()
    assert "On all runs, baseline and mixup differ in accuracy by more than the margin" in text
    assert "`none` =" not in text  # no description of arms that are not there
    assert (out / "figures" / "accuracy_by_arm.png").stat().st_size > 0
    assert (out / "figures" / "power.png").exists()


def test_three_custom_arms_with_compare(tmp_path, capsys):
    df = table({"base": 0.0, "ls": 0.01, "mix": 0.02}, seeds=6)
    path = write_csv(tmp_path, df)
    out = tmp_path / "o"
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(out), "--no-figures",
                       "--compare", "mix:base", "--compare", "ls:base")
    assert code == 0, err
    t = pd.read_csv(out / "comparisons.csv")
    assert list(zip(t.arm_a, t.arm_b)) == [("mix", "base"), ("ls", "base")]
    mix, base = df[df.arm == "mix"].accuracy.to_numpy(), df[df.arm == "base"].accuracy.to_numpy()
    assert t.mean_diff.iloc[0] == pytest.approx((mix - base).mean())
    text = (out / "report.md").read_text()
    assert "**accuracy**, mix vs base" in text and "**accuracy**, ls vs base" in text
    code, _, err = cli(capsys, "report", "--runs", str(path), "--out", str(tmp_path / "p"), "--no-figures",
                       "--compare", "mix:nope")
    assert code == 2 and "no arm 'nope' in the runs table; arms: base, ls, mix" in err
    assert not (tmp_path / "p").exists()


def test_an_unsmoothed_arm_is_paired_across_smoothing_values():
    rng = np.random.default_rng(0)
    rows = []
    for s in range(6):
        base = 0.85 + rng.normal(0, 0.004)
        rows.append({"arm": "ref", "smoothing": 0.0, "seed": s, "accuracy": base})
        for eps in (0.1, 0.2):
            for arm in ("a", "b"):
                rows.append({"arm": arm, "smoothing": eps, "seed": s, "accuracy": base + eps / 10})
    comp = compare_runs(pd.DataFrame(rows), n_boot=200)
    pairs = set(zip(comp.table.arm_a, comp.table.arm_b, comp.table.smoothing))
    assert pairs == {(x, y, e) for e in (0.1, 0.2) for x, y in (("ref", "a"), ("ref", "b"), ("a", "b"))}
    assert comp.references == ("ref",) and comp.pairs[0][0] == "ref"
    assert set(comp.sensitivity["reference"]) == {"ref"}


def test_palette_handles_any_arm_names():
    from ablate import tricks
    from ablate.analysis.figures._style import arm_order, arm_palette

    arms = ["mixup", "none", "cutout", "loss", "mixup"]
    assert arm_order(arms) == ["none", "loss", "mixup", "cutout"]  # tricks in registry order, then the rest
    colours = arm_palette(arms)
    assert all(colours[a] == tricks.get(a).colour for a in ("none", "loss", "mixup"))
    assert len(set(colours.values())) == 4
    many = arm_palette([f"arm{i}" for i in range(20)])
    assert len(many) == 20


def test_refused_pairs_in_the_api():
    runs = table({"base": 0.0, "mix": 0.01}, seeds=5)
    with pytest.raises(InputError, match="expected two different arms"):
        compare_runs(runs, pairs=[("mix", "mix")], n_boot=200)


def test_different_says_more_than_the_margin_only_when_the_whole_ci_is_beyond_it():
    comp = compare_runs(table({"explicit": 0.0, "loss": -0.006}, seeds=10, noise=0.003), n_boot=200)
    row = comp.table.iloc[0]
    assert row.verdict == "different" and row.ci_low < 0.005 < row.ci_high  # CI straddles the margin
    text = markdown(comp)
    assert "by more than the margin" not in text
    assert "the CI reaches inside ±0.50 pp accuracy, so the difference may be smaller than the margin" in text


def test_compare_reaches_a_study_report(tmp_path, capsys):
    from tests.test_report import fill_store

    fill_store(tmp_path, seeds=2, backends_=("torch",), corrupt=False, failed=False)
    code, _, err = cli(capsys, "report", "--results", str(tmp_path), "--study", "synth", "--no-figures",
                       "--compare", "loss:none", "--out", str(tmp_path / "o"))
    assert code == 0, err
    t = pd.read_csv(tmp_path / "o" / "comparisons.csv")
    assert set(zip(t.arm_a, t.arm_b)) == {("loss", "none")} and (t.smoothing == 0.1).all()
    text = (tmp_path / "o" / "report.md").read_text()
    assert "loss vs no smoothing: only 2 pair(s), no verdict" in text
    assert "there is no arm without smoothing" not in text


def test_reference_arm_as_arm_b_keeps_the_gain_sign():
    runs = table({"none": 0.0, "loss": 0.02}, seeds=6, smoothing={"loss": 0.1})
    comp = compare_runs(runs, pairs=[("loss", "none")], n_boot=200)
    sens = comp.sensitivity.iloc[0]
    assert (sens.reference, sens.arm, sens.detected) == ("none", "loss", True)
    assert sens.gain == pytest.approx(comp.table.iloc[0].mean_diff) and sens.gain > 0.015
    assert "loss differs from no smoothing" in markdown(comp) and "loss beats no smoothing" in markdown(comp)

"""Group-sequential equivalence and difference tests: boundaries against published values,
error rates and expected seeds by seeded simulation, the runs-table analysis, the CLI.

Reference boundaries (one-sided alpha = 0.025, equally spaced looks, Lan-DeMets spending):

* O'Brien-Fleming-type (gsDesign ``sfLDOF``, rpact ``asOF``): 3 looks 3.7103, 2.5114,
  1.9930 and 4 looks 4.3326, 2.9631, 2.3590, 2.0141 (gsDesign ``gsDesign(k, test.type = 1,
  sfu = sfLDOF)``, as quoted in issue 13); 2 looks 2.9626, 1.9686.
* Pocock-type (``sfLDPocock``, ``asP``): 2 looks 2.1570, 2.2009 (as quoted in issue 13);
  3 looks 2.2794, 2.2949, 2.2959; 4 looks 2.3683, 2.3675, 2.3582, 2.3500.

Issue 13's brief also quoted 2.7965, 1.9774 for sfLDOF with 2 looks and 2.3746, 2.3891,
2.3974 for sfLDPocock with 3 looks. Those cannot be Lan-DeMets values: a first look's
boundary is closed-form, z_1 = Phi^-1(1 - alpha(t_1)) (2.9626 and 2.2794 here), and
2.7965 / 1.9774 = sqrt(2) is the classical (Wang-Tsiatis) O'Brien-Fleming boundary. The
values used instead were checked independently (verification script run on 2026-11-23,
reported with the branch): the cumulative crossing probabilities of the boundaries,
integrated with scipy's Genz multivariate-normal CDF, equal the spending targets to 1e-6,
and 10^7 Monte Carlo paths cross at the targeted rates within 1 standard error (4.9e-5).
``test_boundaries_spend_exactly_the_target`` repeats the Genz check here.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from ablate.analysis import sequential as sq
from ablate.analysis.stats import tost_power
from ablate.errors import InputError
from tests.helpers import run_cli

PUBLISHED = {
    ("obrien-fleming", 2): (2.9626, 1.9686),
    ("obrien-fleming", 3): (3.7103, 2.5114, 1.9930),
    ("obrien-fleming", 4): (4.3326, 2.9631, 2.3590, 2.0141),
    ("pocock", 2): (2.1570, 2.2009),
    ("pocock", 3): (2.2794, 2.2949, 2.2959),
    ("pocock", 4): (2.3683, 2.3675, 2.3582, 2.3500),
}
LOOKS = (5, 10, 15, 20)


# ------------------------------------------------------------------------------ boundaries
@pytest.mark.parametrize("spending,k", sorted(PUBLISHED))
def test_boundaries_match_published_values(spending, k):
    z = sq.sequential_boundaries(np.arange(1, k + 1) / k, 0.025, spending)
    assert z.shape == (k,)
    np.testing.assert_allclose(z, PUBLISHED[(spending, k)], atol=1e-4)


@pytest.mark.parametrize("spending", sq.SPENDINGS)
def test_boundaries_spend_exactly_the_target(spending):
    t = np.array([0.2, 0.45, 0.7, 1.0])  # unequal spacing too
    z = sq.sequential_boundaries(t, 0.05, spending)
    target = sq.spent_alpha(t, 0.05, spending)
    assert z[0] == pytest.approx(st.norm.isf(target[0]), abs=1e-9)
    for k in range(2, len(t) + 1):
        cov = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        mvn = st.multivariate_normal(np.zeros(k), cov, abseps=1e-9, releps=1e-9, maxpts=500_000, seed=0)
        assert 1 - mvn.cdf(z[:k]) == pytest.approx(target[k - 1], abs=2e-6)


def test_one_look_is_the_fixed_design():
    assert sq.sequential_boundaries([1.0], 0.05, "pocock")[0] == pytest.approx(st.norm.isf(0.05), abs=1e-12)


@pytest.mark.parametrize("bad,field", [([0.5, 0.4, 1.0], "information"), ([0.5, 0.9], "information"),
                                       ([], "information"), ([0, 1], "information")])
def test_bad_information_is_one_line(bad, field):
    with pytest.raises(InputError, match=field) as err:
        sq.sequential_boundaries(bad, 0.025, "pocock")
    assert "\n" not in str(err.value)


def test_bad_spending_and_alpha_are_one_line():
    with pytest.raises(InputError, match="obrien-fleming, pocock.*'haybittle'"):
        sq.sequential_boundaries([0.5, 1], 0.025, "haybittle")
    with pytest.raises(InputError, match="alpha"):
        sq.sequential_boundaries([0.5, 1], 0.7, "pocock")


# ------------------------------------------------------------------------------ one comparison
def test_identical_arms_are_equivalent_at_the_first_look():
    res = sq.sequential_tost(np.zeros(20), LOOKS, margin=0.005, alpha=0.05 / 9)
    assert (res.decision, res.look, res.n) == ("equivalent", 0, 5)
    assert len(res.results) == 4 and all(r.eq_low == r.eq_high == 0 for r in res.results)


def test_a_large_difference_is_different_early_and_critical_values_fall():
    rng = np.random.default_rng(0)
    res = sq.sequential_tost(1.0 + 0.1 * rng.standard_normal(20), LOOKS, margin=0.2, spending="pocock")
    assert (res.decision, res.n) == ("different", 5)
    # Pocock's z are nearly flat; the t correction makes early looks stricter.
    critical = [r.c_equivalence for r in res.results]
    assert all(b < a for a, b in zip(critical, critical[1:]))


def test_critical_values_are_calibrated_t_boundaries():
    d = np.random.default_rng(1).standard_normal(20)
    res = sq.sequential_tost(d, LOOKS, margin=0.1, alpha=0.05, spending="obrien-fleming")
    z = sq.sequential_boundaries(np.array(LOOKS) / 20, 0.05, "obrien-fleming")
    c = sq.t_boundaries(LOOKS, 0.05, "obrien-fleming")
    spent = sq.spent_alpha(np.array(LOOKS) / 20, 0.05, "obrien-fleming")
    # The first look is the t test at the alpha spent there, exactly.
    assert c[0] == pytest.approx(st.t.isf(spent[0], LOOKS[0] - 1), rel=1e-12)
    for k, look in enumerate(res.results):
        assert look.z_equivalence == pytest.approx(z[k])
        assert look.c_equivalence == c[k]
        # Stricter than the t quantile at the normal boundary's nominal level, which undercorrects.
        assert look.c_equivalence >= st.t.isf(st.norm.sf(z[k]), look.n - 1) - 1e-9
        x = d[:look.n]
        assert look.estimate == pytest.approx(x.mean())
        assert look.eq_high == pytest.approx(x.mean() + look.c_equivalence * x.std(ddof=1) / np.sqrt(look.n))
    np.testing.assert_array_equal(c, sq.t_boundaries(list(LOOKS), 0.05, "obrien-fleming"))  # deterministic


def _null_t(paths: int, seed: int, looks=LOOKS) -> np.ndarray:
    """(paths, K) look t statistics of independent N(0, 1) seeds, drawn seed by seed."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, paths, 100_000):
        x = rng.standard_normal((min(100_000, paths - start), looks[-1]))
        out.append(np.stack([x[:, :n].mean(1) / (x[:, :n].std(1, ddof=1) / np.sqrt(n)) for n in looks], 1))
    return np.concatenate(out)


@pytest.mark.parametrize("spending", sq.SPENDINGS)
def test_t_boundaries_spend_alpha_exactly_on_independent_paths(spending):
    """400k fresh null paths, raw data (not the calibration's sufficient statistics): the
    two-sided difference test's error is alpha within Monte Carlo error (SE 3.4e-4), where
    t quantiles at the boundaries' nominal levels gave 0.052-0.054; each look spends its share."""
    alpha, paths = 0.05, 400_000
    t = _null_t(paths, seed=21)
    c = sq.t_boundaries(LOOKS, alpha / 2, spending)
    crossed = np.zeros(paths, bool)
    cumulative = []
    for k in range(len(LOOKS)):
        crossed |= np.abs(t[:, k]) >= c[k]
        cumulative.append(crossed.mean())
    se = np.sqrt(alpha * (1 - alpha) / paths)
    assert abs(cumulative[-1] - alpha) <= 3 * se
    target = 2 * sq.spent_alpha(np.array(LOOKS) / LOOKS[-1], alpha / 2, spending)
    np.testing.assert_allclose(cumulative, target, atol=3 * se)
    nominal = [st.t.isf(st.norm.sf(z), n - 1) for z, n in
               zip(sq.sequential_boundaries(np.array(LOOKS) / 20, alpha / 2, spending), LOOKS)]
    assert (np.abs(t) >= np.array(nominal)).any(axis=1).mean() > alpha + 3 * se  # the old correction fails


def test_fewer_seeds_than_the_next_look_continue_and_all_looks_inconclusive():
    d = np.random.default_rng(2).standard_normal(12)
    res = sq.sequential_tost(d, LOOKS, margin=0.05)
    assert res.decision == "continue" and res.look is None and len(res.results) == 2
    res = sq.sequential_tost(np.random.default_rng(2).standard_normal(20), LOOKS, margin=0.05)
    assert res.decision == "inconclusive" and len(res.results) == 4


@pytest.mark.parametrize("looks", [(1, 5), (5, 5), (10, 5), (2.5, 5), ()])
def test_bad_looks_are_one_line(looks):
    with pytest.raises(InputError, match="looks"):
        sq.sequential_tost(np.zeros(10), looks, margin=0.1)


# ------------------------------------------------------------------------------ simulation
R = 4000  # replicates per scenario: Monte Carlo SE of a 0.05 rate is 0.0034


def _rates(mu, margin, spending, seed):
    d = np.random.default_rng(seed).standard_normal((R, LOOKS[-1])) + mu
    results = [sq.sequential_tost(x, LOOKS, margin, 0.05, spending) for x in d]
    decisions = np.array([r.decision for r in results])
    seeds = np.array([r.n if r.n is not None else LOOKS[-1] for r in results])
    return {k: float(np.mean(decisions == k)) for k in sq.DECISIONS}, float(seeds.mean())


def _bound(alpha=0.05):
    return alpha + 3 * np.sqrt(alpha * (1 - alpha) / R)


@pytest.mark.parametrize("spending", sq.SPENDINGS)
@pytest.mark.parametrize("margin", [0.5, 1.5])
def test_equivalence_at_the_margin_is_declared_at_most_alpha(spending, margin):
    rates, _ = _rates(margin, margin, spending, seed=11)
    assert rates["equivalent"] <= _bound()


@pytest.mark.parametrize("spending", sq.SPENDINGS)
def test_no_difference_is_declared_different_at_most_alpha(spending):
    # A small margin: equivalence rarely stops the comparison first, the worst case.
    rates, _ = _rates(0.0, 0.25, spending, seed=12)
    assert rates["different"] <= _bound()


def test_the_error_simulation_detects_uncorrected_repeated_looks():
    """The same simulation flags the design a naive user would run: a two-sided
    t-test at 0.05 at every look (no spending), whose error is far above alpha."""
    d = np.random.default_rng(13).standard_normal((R, LOOKS[-1]))
    hit = np.zeros(R, bool)
    for n in LOOKS:
        hit |= st.ttest_1samp(d[:, :n], 0.0, axis=1).pvalue < 0.05
    assert hit.mean() > _bound()


@pytest.mark.parametrize("spending", sq.SPENDINGS)
def test_expected_seeds_below_the_fixed_design_of_equal_power(spending):
    margin = 1.0  # in SDs of the paired differences; the arms are truly equal
    rates, mean_seeds = _rates(0.0, margin, spending, seed=14)
    power = rates["equivalent"]
    fixed = next(n for n in range(2, 200) if tost_power(n, 1.0, margin, alpha=0.05) >= power)
    assert power > 0.9 and mean_seeds < fixed - 2


# ------------------------------------------------------------------------------ a runs table
def _table(rng, n_seeds=20, gap=0.03):
    """baseline vs mixup differ by `gap` in accuracy; mixup vs cutmix are identical."""
    rows = []
    for seed in range(n_seeds):
        base = 0.90 + rng.normal(0, 0.004)
        for arm, shift in (("baseline", 0.0), ("mixup", gap), ("cutmix", gap)):
            rows.append({"arm": arm, "seed": seed, "accuracy": base + shift + (rng.normal(0, 0.002)
                                                                               if arm == "baseline" else 0.0)})
    return pd.DataFrame(rows)


def test_sequential_comparisons_decide_and_count_the_runs_saved():
    runs = _table(np.random.default_rng(5))
    seq = sq.sequential_comparisons(runs, looks=LOOKS, margins={"accuracy": 0.005}, alpha=0.05,
                                    spending="pocock")
    t = seq.table.set_index(["arm_a", "arm_b"])
    # The default pairs of the runs-table layer, as the fixed comparisons make them: no arm is a
    # reference here (none is smoothed, none is named after a reference trick), so sorted order.
    assert list(t.index) == [("baseline", "cutmix"), ("baseline", "mixup"), ("cutmix", "mixup")]
    assert t["alpha_comparison"].tolist() == pytest.approx([0.05 / 3] * 3)  # Bonferroni over the 3 rows
    assert t.loc[("cutmix", "mixup"), "decision"] == "equivalent" and t.loc[("cutmix", "mixup"), "decided_at"] == 5
    assert t.loc[("baseline", "mixup"), "decision"] == "different"
    assert t.loc[("cutmix", "mixup"), "runs_saved"] == 2 * 15
    # Every arm is in a comparison decided at `stops_at`; the totals add up.
    arms = seq.arms.set_index("arm")
    assert seq.runs_fixed == 3 * 20 and seq.runs_used == arms["stops_at"].sum()
    assert arms.loc["cutmix", "stops_at"] == max(t.loc[("baseline", "cutmix"), "decided_at"], 5)
    # Looks past the decision are still analysed (for the figure).
    assert len(seq.looks) == 3 * 4


def test_sequential_comparisons_pairs_and_reference_arms():
    rows = []
    for seed in range(6):
        rows.append({"arm": "none", "smoothing": 0.0, "seed": seed, "ece": 0.05})
        for eps in (0.1, 0.2):
            for arm in ("explicit", "loss"):
                rows.append({"arm": arm, "smoothing": eps, "seed": seed, "ece": 0.02 + eps / 100})
    seq = sq.sequential_comparisons(pd.DataFrame(rows), looks=(3, 6), margins={"ece": 0.01},
                                    pairs=[("explicit", "loss"), ("none", "loss")])
    got = set(zip(seq.table["smoothing"], seq.table["arm_a"], seq.table["arm_b"]))
    assert got == {(0.1, "explicit", "loss"), (0.2, "explicit", "loss"), (0.1, "none", "loss"),
                   (0.2, "none", "loss")}
    assert set(seq.table["decision"]) == {"equivalent", "different"}


def test_sequential_comparisons_bad_input_is_one_line():
    runs = _table(np.random.default_rng(6), n_seeds=6)
    with pytest.raises(InputError, match="nll"):
        sq.sequential_comparisons(runs, looks=(3, 6), margins={"nll": 0.02})
    with pytest.raises(InputError, match="missing column"):
        sq.sequential_comparisons(runs.drop(columns="seed"), looks=(3, 6), margins={"accuracy": 0.01})


def test_figure_draws_one_panel_per_comparison():
    from ablate.analysis.figures import sequential as seq_figs

    seq = sq.sequential_comparisons(_table(np.random.default_rng(7)), looks=LOOKS, margins={"accuracy": 0.005})
    fig = seq_figs.sequential_paths(seq)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------ CLI
class _Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _report(capsys, *args):
    """``python -m ablate report ARGS`` in this process (its entry point, minus a fresh interpreter)."""
    from ablate.cli import main

    code = main(["report", *args])
    captured = capsys.readouterr()
    return _Proc(code, captured.out, captured.err)


def test_cli_report_sequential_in_a_fresh_interpreter(tmp_path):
    path = tmp_path / "mine.csv"
    _table(np.random.default_rng(11), n_seeds=10).to_csv(path, index=False)
    proc = run_cli("report", "--runs", path, "--out", tmp_path / "o", "--sequential", "5,10", "--no-figures",
                   timeout=None)
    assert proc.returncode == 0, proc.stderr
    assert "decided_at" in (tmp_path / "o" / "comparisons.csv").read_text().splitlines()[0]


def test_cli_report_runs_sequential(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    _table(np.random.default_rng(8)).to_csv(path, index=False)
    out = tmp_path / "out"
    proc = _report(capsys, "--runs", str(path), "--out", str(out), "--margin", "accuracy=0.005",
                   "--sequential", "5,10,15,20", "--spending", "pocock", "--no-figures")
    assert proc.returncode == 0, proc.stderr
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert {"decision", "decided_at"} <= set(comparisons.columns)
    # Default pairs: every pair of arms, in sorted order when none is a reference arm.
    row = comparisons[(comparisons["arm_a"] == "cutmix") & (comparisons["arm_b"] == "mixup")].iloc[0]
    assert row["decision"] == "equivalent" and row["decided_at"] == 5
    text = (out / "report.md").read_text()
    assert "## Sequential design" in text and "Pocock-type" in text
    assert "cutmix vs mixup: equivalent at look 1 (5 seeds); stopping there saves 30 of 40 runs" in text
    assert "this design would have run" in text
    assert len(pd.read_csv(out / "sequential.csv")) == 3 * 4


def test_cli_report_sequential_with_smoothing_arms_and_figure(tmp_path, capsys):
    rng = np.random.default_rng(9)
    rows = []
    for seed in range(10):
        base = 0.9 + rng.normal(0, 0.004)
        for arm, shift in (("none", -0.02), ("explicit", 0.0), ("loss", 0.0)):
            rows.append({"arm": arm, "seed": seed, "smoothing": 0.0 if arm == "none" else 0.1,
                         "accuracy": base + shift + rng.normal(0, 0.001)})
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    proc = _report(capsys, "--runs", str(path), "--out", str(tmp_path / "o"), "--sequential", "5,10")
    assert proc.returncode == 0, proc.stderr
    comparisons = pd.read_csv(tmp_path / "o" / "comparisons.csv")
    # The fixed table's rows (with their verdicts) carry the sequential decision too.
    assert comparisons["verdict"].notna().all() and comparisons["decision"].notna().all()
    assert len(comparisons) == 3
    assert (tmp_path / "o" / "figures" / "sequential.png").stat().st_size > 1000


@pytest.mark.parametrize("args,match", [
    (["--sequential", "10,5"], "--sequential: expected increasing integers >= 2"),
    (["--sequential", "five"], "--sequential: expected increasing integers"),
    (["--sequential", "1,5"], "--sequential"),
    (["--sequential", "5,10", "--spending", "haybittle"], "--spending: expected one of obrien-fleming, pocock"),
    (["--spending", "pocock"], "--spending: only applies with --sequential"),
])
def test_cli_sequential_options_are_one_line_errors(tmp_path, capsys, args, match):
    path = tmp_path / "mine.csv"
    _table(np.random.default_rng(10), n_seeds=4).to_csv(path, index=False)
    proc = _report(capsys, "--runs", str(path), "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and match in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()

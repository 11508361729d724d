"""The report's prose: the comparisons section of report.md, and the sequential design's section.

:func:`markdown` turns a :class:`~ablate.analysis.compare.Comparisons` into sentences, and
:func:`sequential_markdown` a :class:`~ablate.analysis.sequential.SequentialComparisons`. They
compute no statistic: every number and verdict comes from the tables, and the words follow the
verdicts (no claim without one). Accuracy is written in percentage points, other metrics in
their own units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ablate import tricks
from ablate.analysis.compare import (
    CHANCE,
    CORRECTION_NAMES,
    HIGHER_IS_BETTER,
    MIN_PAIRS,
    TARGET_POWER,
    Comparisons,
    Correction,
    cross_rows,
)
from ablate.analysis.sequential import SequentialComparisons
from ablate.analysis.table import cell_label
from ablate.errors import InputError

_METRIC_NAMES = {"accuracy": "accuracy", "ece": "ECE", "nll": "NLL", "brier": "Brier score"}


def _arm_name(arm: str) -> str:
    """An arm named after a reference trick is called by the trick's phrase ("no smoothing");
    any other arm by its name."""
    return tricks.get(arm).phrase if arm in tricks.reference_names() else arm


def _smoothing_arms() -> frozenset[str]:
    """Arm names that pair as "A and B smoothing": smoothing tricks whose phrase is "<name> smoothing"."""
    return frozenset(n for n in tricks.smoothing_names() if tricks.get(n).phrase == f"{n} smoothing")


def _scale(metric: str) -> float:
    return 100.0 if metric == "accuracy" else 1.0


def _decimals(metric: str, margin: float) -> int:
    if metric == "accuracy":
        return 2
    return max(2, int(math.ceil(-math.log10(margin))) + 2)


def _num(x: float, metric: str, margin: float, *, signed: bool = True) -> str:
    if not np.isfinite(x):
        return "n/a"
    text = f"{x * _scale(metric):{'+' if signed else ''}.{_decimals(metric, margin)}f}"
    return text.replace("-", "−")


def _amount(x: float, metric: str, margin: float, *, signed: bool = True) -> str:
    unit = " pp" if metric == "accuracy" else ""
    return _num(x, metric, margin, signed=signed) + ("" if not np.isfinite(x) else unit)


def _margin_text(metric: str, margin: float) -> str:
    return f"±{_amount(margin, metric, margin, signed=False)} {_METRIC_NAMES.get(metric, metric)}"


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pair_phrase(a: str, b: str) -> str:
    smoothing = _smoothing_arms()
    if a in smoothing and b in smoothing:
        return f"{a} and {b} smoothing"
    if a in tricks.reference_names() and b in smoothing:
        return f"{_arm_name(a)} and {b} smoothing"
    return f"{_arm_name(a)} and {_arm_name(b)}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(row: Mapping, conf: int, corr: str) -> str:
    """One comparison in words; the words follow the verdict (no claim without one)."""
    metric, margin = row["metric"], row["margin"]
    pair = _pair_phrase(row["arm_a"], row["arm_b"])
    name = _METRIC_NAMES.get(metric, metric)
    ci = (f"{conf}% CI [{_num(row['ci_low'], metric, margin)}, "
          f"{_num(row['ci_high'], metric, margin)}]")
    core = f"mean difference {_amount(row['mean_diff'], metric, margin)}, {ci}"
    test = row["test"].replace("_", " ")
    verdict = row["verdict"]
    vacuous = _vacuous(row)
    if verdict == "identical":
        return (f"{pair} gave identical {name} on all {row['n']} seeds (every paired difference is zero)"
                + vacuous)
    if row["n"] < MIN_PAIRS:
        return (f"with only {row['n']} pair(s) (fewer than {MIN_PAIRS}) there is no verdict on {pair} "
                f"({core}; no test is interpreted, n = {row['n']})")
    if row.get("constant"):
        where = "inside" if verdict == "equivalent" else "outside"
        state = "are equivalent" if verdict == "equivalent" else f"differ in {name} by more than the margin"
        return (f"{pair} {state}: every seed gives the same difference, "
                f"{_amount(row['mean_diff'], metric, margin)} ({where} {_margin_text(metric, margin)}; zero "
                f"variance, so no test and no effect size, n = {row['n']})"
                + (vacuous if verdict == "equivalent" else ""))
    if verdict == "equivalent":
        text = (f"{pair} are equivalent within {_margin_text(metric, margin)} ({core}, "
                f"TOST {_p(row['p_equivalence_adj'])} ({corr}), n = {row['n']})")
        if "different but practically equivalent" in row["note"]:
            text += (f"; the difference is statistically significant ({test} "
                     f"{_p(row['p_difference_adj'])}, {corr}) but practically negligible")
        return text + vacuous
    if verdict == "different":
        tested = f"{test} {_p(row['p_difference_adj'])} ({corr}), n = {row['n']}"
        if _beyond(row):
            return (f"{pair} differ in {name} by more than the margin ({core}, outside "
                    f"{_margin_text(metric, margin)}; {tested})")
        return (f"{pair} differ in {name} ({core}; {tested}); the CI reaches inside "
                f"{_margin_text(metric, margin)}, so the difference may be smaller than the margin")
    reason = f"; {row['note']}" if row["note"] else ""
    return (f"it is not settled whether {pair} are equivalent within {_margin_text(metric, margin)} "
            f"({core}, TOST {_p(row['p_equivalence_adj'])}, {test} {_p(row['p_difference_adj'])} "
            f"({corr}), n = {row['n']}{reason})")


def _vacuous(row: Mapping) -> str:
    """The clause that follows an equivalent or identical verdict of two arms at chance accuracy."""
    if f"at {CHANCE} accuracy" not in str(row.get("note", "")):
        return ""
    return (f", but both arms sit at {CHANCE} accuracy (see the note), so the models did not learn and "
            f"this agreement says nothing about the arms")
def _band(row: Mapping) -> str:
    m = row["sd_margin"]
    return f"[{1 / m:.2f}, {m:g}]"


def _ratio_text(x: float) -> str:
    return "n/a" if not np.isfinite(x) else ("∞" if math.isinf(x) else f"{x:.2f}")


def _spread_state(row: Mapping, corr: str) -> str:
    """The spread verdict of one row in words (no claim without a verdict)."""
    verdict, band = row["sd_verdict"], _band(row)
    test = "Pitman–Morgan" if row["sd_test"] == "pitman_morgan" else "F test"
    if row["n"] < MIN_PAIRS:
        return f"no verdict with fewer than {MIN_PAIRS} pairs"
    if verdict == "identical":
        if row["sd_a"] == 0 and row["sd_b"] == 0 or not np.isfinite(row["sd_ratio"]):
            return "identical: neither arm varies across seeds"
        return "identical: the paired values are equal"
    if verdict == "equivalent":
        return f"equal within {band} (TOST {_p(row['p_sd_equivalence_adj'])}, {corr})"
    if verdict == "different":
        if row["sd_ratio_low"] >= row["sd_margin"] or row["sd_ratio_high"] <= 1 / row["sd_margin"]:
            return f"different: the whole interval lies outside {band} ({test} {_p(row['p_sd_difference_adj'])}, {corr})"
        return (f"different ({test} {_p(row['p_sd_difference_adj'])}, {corr}), though the interval reaches "
                f"inside {band}")
    return (f"not settled within {band} (TOST {_p(row['p_sd_equivalence_adj'])}, {test} "
            f"{_p(row['p_sd_difference_adj'])}, {corr})")


def _spread_numbers(row: Mapping, conf: int, a: str, b: str) -> str:
    metric, margin = row["metric"], row["margin"]
    how = "Pitman–Morgan, paired" if row["sd_test"] == "pitman_morgan" else "F, unpaired"
    return (f"seed-to-seed SD {_amount(row['sd_a'], metric, margin, signed=False)} ({a}) vs "
            f"{_amount(row['sd_b'], metric, margin, signed=False)} ({b}), ratio {_ratio_text(row['sd_ratio'])} "
            f"({conf}% CI [{_ratio_text(row['sd_ratio_low'])}, {_ratio_text(row['sd_ratio_high'])}], {how})")


def _spread_sentence(row: Mapping, conf: int, corr: str) -> str:
    """The spread of a main pair, then what mean and spread say together."""
    text = (f"Spread: {_spread_numbers(row, conf, row['arm_a'], row['arm_b'])}: "
            f"{_spread_state(row, corr)}.")
    mean_ok = row["verdict"] in ("equivalent", "identical")
    spread_ok = row["sd_verdict"] in ("equivalent", "identical")
    pair = _pair_phrase(row["arm_a"], row["arm_b"])
    if row["n"] < MIN_PAIRS:
        return text
    if mean_ok and spread_ok:
        return text + f" So {pair} have equal means and equal spread within the margins."
    if mean_ok:
        state = "differs" if row["sd_verdict"] == "different" else "is not shown to be equal"
        return text + (f" The means are equivalent but the spread {state}, so equal means alone do not "
                       f"make {pair} interchangeable.")
    return text


def _beyond(row: Mapping) -> bool:
    """The whole CI lies beyond the margin: only then is 'more than the margin' a claim."""
    return bool(row["ci_low"] >= row["margin"] or row["ci_high"] <= -row["margin"])


def _detected(row: Mapping, alpha: float) -> bool:
    """A difference from the reference counts only with a verdict behind it (>= MIN_PAIRS)."""
    if row["n"] < MIN_PAIRS or row["verdict"] == "identical":
        return False
    if row.get("constant"):
        return row["mean_diff"] != 0
    return bool(row["p_difference_adj"] < alpha)


def _sensitivity_clause(rows: dict, references, metric: str, margin: float, alpha: float,
                        corr: str, smoothed: bool = True) -> tuple[str, str]:
    """(clause appended to the main sentence, assay-sensitivity sentence).

    rows: {(arm_a, arm_b): row} of one group and metric; the links are the rows with
    exactly one reference arm (either side). smoothed: whether any arm is smoothed
    (without one, the missing reference is not worth a sentence).
    """
    links = [k for k in rows if (k[0] in references) != (k[1] in references)]
    # (reference, other arm, gain = other minus reference) per link
    role = {k: (k[0], k[1], -rows[k]["mean_diff"]) if k[0] in references
            else (k[1], k[0], rows[k]["mean_diff"]) for k in links}
    if not links:
        if not smoothed:
            return "", ""
        return "", ("Assay sensitivity cannot be judged here: there is no arm without smoothing "
                    "to compare with.")
    refs = list(dict.fromkeys(role[k][0] for k in links))
    ref_text = _arm_name(refs[0]) if len(refs) == 1 else "the reference arms"
    higher = HIGHER_IS_BETTER.get(metric)

    def direction(g):
        if higher is None:
            return "differs from"
        return "beats" if (g > 0) == higher else "is worse than"

    found = {k: (role[k][2], _detected(rows[k], alpha), rows[k]) for k in links}
    detected = [k for k in links if found[k][1]]
    few = [k for k in links if rows[k]["n"] < MIN_PAIRS]
    dirs = {direction(found[k][0]) for k in links}
    if len(links) >= 2 and len(refs) == 1 and len(detected) == len(links) and len(dirs) == 1:
        d = dirs.pop()
        verb = {"beats": "beat", "is worse than": "are worse than", "differs from": "differ from"}[d]
        least = min(abs(found[k][0]) for k in links)
        which = "both" if len(links) == 2 else f"all {len(links)}"
        clause = f"{which} {verb} {ref_text} by ≥ {_amount(least, metric, margin, signed=False)}"
    else:
        parts = []
        for k in links:
            gain, hit, row = found[k]
            ref, arm = _arm_name(role[k][0]), role[k][1]
            if row["n"] < MIN_PAIRS:
                parts.append(f"{arm} vs {ref}: only {row['n']} pair(s), no verdict")
            elif row["verdict"] == "identical":
                parts.append(f"{arm} gives the same {_METRIC_NAMES.get(metric, metric)} as {ref}")
            elif hit and row.get("constant"):
                parts.append(f"{arm} {direction(gain)} {ref} by "
                             f"{_amount(abs(gain), metric, margin, signed=False)} on every seed")
            elif hit:
                parts.append(f"{arm} {direction(gain)} {ref} by "
                             f"{_amount(abs(gain), metric, margin, signed=False)} "
                             f"({_p(row['p_difference_adj'])}, {corr})")
            elif row["verdict"] == "equivalent":
                parts.append(f"{arm} is equivalent to {ref} within {_margin_text(metric, margin)} "
                             f"(TOST {_p(row['p_equivalence_adj'])}, {corr})")
            else:
                parts.append(f"{arm} does not differ detectably from {ref} "
                             f"({_p(row['p_difference_adj'])}, {corr})")
        clause = "; ".join(parts)
    compared = [role[k][1] for k in links]
    noun = "smoothing arms" if all(a in _smoothing_arms() for a in compared) else "compared arms"
    at_chance = [k for k in rows if f"at {CHANCE} accuracy" in str(rows[k].get("note", ""))]
    if at_chance:
        arms = list(dict.fromkeys(a for k in at_chance for a in k))
        assay = (f"Assay sensitivity fails here: {', '.join(arms)} sit at {CHANCE} accuracy (within the "
                 f"accuracy margin of 1/K), so the models did not learn and no equivalence or identity "
                 f"verdict of this group says anything about the arms.")
    elif few:
        n_few = min(rows[k]["n"] for k in few)
        assay = (f"Assay sensitivity cannot be judged here: only {n_few} pair(s) against {ref_text} "
                 f"(fewer than {MIN_PAIRS}).")
    elif len(detected) == len(links):
        which = (compared[0] + " differs" if len(links) == 1
                 else ("both " if len(links) == 2 else f"all {len(links)} ") + noun + " differ")
        assay = f"Assay sensitivity: {which} from {ref_text}, so this design detects effects of this size."
    elif detected:
        assay = (f"Assay sensitivity: only {', '.join(role[k][1] for k in detected)} differs detectably from "
                 f"{ref_text}; read an equivalence verdict here with that in mind.")
    else:
        assay = (f"Assay sensitivity is weak: no compared arm differs detectably from {ref_text}, "
                 f"so an equivalence verdict here says little.")
    return clause, assay


def _power_sentence(row: Mapping, sd: float, alpha: float) -> str:
    """seeds_needed and seeds_needed_observed in words, each with its assumption."""
    metric, margin = row["metric"], row["margin"]
    if not np.isfinite(sd):
        return "Power: too few pairs to estimate the SD of the differences."
    goal = f"{TARGET_POWER:.0%} power to show equivalence within {_margin_text(metric, margin)} at α = {alpha:g}"
    needed, observed = row["seeds_needed"], row.get("seeds_needed_observed")
    if pd.isna(needed):
        equal = f"if the arms were truly equal, more than 100000 seeds would be needed for {goal}"
    else:
        equal = f"if the arms were truly equal, {int(needed)} seeds give {goal}"
    diff = row["mean_diff"]
    shown = _amount(diff, metric, margin)
    if np.isfinite(diff) and abs(diff) >= margin:
        real = (f"if the true difference is the observed {shown}, equivalence is not reachable with "
                f"any number of seeds, since that is at or beyond the margin")
    elif observed is None or pd.isna(observed):
        real = f"if the true difference is the observed {shown}, more than 100000 seeds would be needed"
    else:
        real = f"if the true difference is the observed {shown}, {int(observed)} seeds would be needed"
    which = ("the SD of the paired differences that the factorial implies for a seed drawing every source "
             "anew" if "factorial implies" in str(row.get("note", "")) else "the observed SD of the paired differences")
    return (f"Power (planning, with {which}, "
            f"{_amount(sd, metric, margin, signed=False)}): {equal}; {real} ({row['n']} were used).")


def _floor_sentence(floor: pd.DataFrame, key, eps, metric, margin, mean_abs, pair, flat) -> str:
    if floor.empty:
        return ""
    f = floor[(floor["backend"] == key[0]) & (floor["dataset"] == key[1]) & (floor["model"] == key[2])
              & (floor["metric"] == metric)
              & (floor["arm"].isin(list(flat)) | (floor["smoothing"] == eps))]
    if f.empty:
        return ""
    pairs = int(f["n_pairs"].sum())
    mean = float((f["mean_abs_diff"] * f["n_pairs"]).sum() / pairs)
    text = (f"Nondeterminism floor: re-running a seed with the same arm changed "
            f"{_METRIC_NAMES.get(metric, metric)} by {_amount(mean, metric, margin, signed=False)} "
            f"on average (max {_amount(float(f['max_abs_diff'].max()), metric, margin, signed=False)}, "
            f"{pairs} re-runs)")
    if np.isfinite(mean_abs):
        text += f"; {pair[0]} and {pair[1]} differ by {_amount(mean_abs, metric, margin, signed=False)} on average"
    return text + "."


def markdown(
    comparisons: Comparisons,
    *,
    alpha: float | None = None,
    correction: Correction | None = None,
) -> str:
    """The comparisons section of report.md, as Markdown text.

    One heading per backend / dataset / model / smoothing group and, per metric, one
    bullet per *main* pair (not a reference arm against a non-reference one; e.g.
    explicit vs loss): its verdict as a sentence with its numbers, how each arm compares
    with the reference arm (assay sensitivity), ``seeds_needed`` and
    ``seeds_needed_observed`` with their assumptions, and the nondeterminism floor when
    seeds were repeated. Without a main pair the bullet lists the reference rows. Then
    the cross-backend (Welch) rows and the notes. Accuracy is shown in percentage points,
    other metrics in their units. ``alpha`` and ``correction`` default to the ones the
    table was built with; passing different ones is an error, because the verdicts
    depend on them.
    """
    for name, given, built in (("alpha", alpha, comparisons.alpha),
                               ("correction", correction, comparisons.correction)):
        if given is not None and given != built:
            raise InputError(f"`{name}` = {given!r} differs from the {built!r} the comparisons "
                             f"were built with; call compare_runs again with it")
    alpha, corr = comparisons.alpha, CORRECTION_NAMES[comparisons.correction]
    conf = int(round(100 * (1 - 2 * alpha)))
    t, d = comparisons.table, comparisons.details
    refs, flat = comparisons.references, comparisons.flat
    smoothed = len(flat) < len(comparisons.arms)
    margins = ", ".join(_margin_text(m, v) for m, v in comparisons.margins.items())
    lines = ["## Comparisons", "",
             f"Equivalence margins: {margins}. α = {alpha:g}; p-values are adjusted by {corr} over "
             f"all {len(t)} rows of comparisons.csv, separately for equivalence (TOST) and "
             f"difference tests. Intervals are {conf}% t-intervals of the paired difference "
             f"(first arm minus second); equivalence holds when the interval lies inside the margin. "
             f"With fewer than {MIN_PAIRS} pairs no verdict is drawn. Seed counts for "
             f"{TARGET_POWER:.0%} power are planning figures, not promises: `seeds_needed` assumes the "
             f"arms are truly equal, `seeds_needed_observed` that the true difference is the observed one. "
             f"Spread is the ratio of the two arms' seed-to-seed SDs (first over second), with its exact "
             f"{conf}% interval (Pitman–Morgan for paired arms, F for unpaired ones); it counts as equal when "
             f"that interval lies inside [{1 / comparisons.sd_margin:.2f}, {comparisons.sd_margin:g}] "
             f"(TOST on the ratio, adjusted the same way).",
             ""]
    if t.empty:
        lines += ["No comparison could be made from these runs.", ""]
    constant = d["constant"].to_numpy(dtype=bool) if "constant" in d and len(d) == len(t) \
        else np.zeros(len(t), dtype=bool)
    paired = t[~cross_rows(t)]
    groups = paired[["backend", "dataset", "model", "smoothing"]].drop_duplicates()
    for key_row in groups.itertuples(index=False):
        key, eps = (key_row.backend, key_row.dataset, key_row.model), key_row.smoothing
        lines += [f"### {cell_label(*key, eps)}", ""]
        in_group = paired[(paired["backend"] == key[0]) & (paired["dataset"] == key[1])
                          & (paired["model"] == key[2]) & (paired["smoothing"] == eps)]
        for metric in dict.fromkeys(in_group["metric"]):
            sub = in_group[in_group["metric"] == metric]
            rows, idx = {}, {}
            for i, r in zip(sub.index, sub.to_dict("records")):
                rows[(r["arm_a"], r["arm_b"])] = {**r, "constant": bool(constant[i])}
                idx[(r["arm_a"], r["arm_b"])] = i
            margin = float(sub["margin"].iloc[0])
            clause, assay = _sensitivity_clause(rows, refs, metric, margin, alpha, corr, smoothed)
            name = _METRIC_NAMES.get(metric, metric)
            mains = [k for k in rows if (k[0] in refs) == (k[1] in refs)]
            for j, pair in enumerate(mains):
                main, i = rows[pair], idx[pair]
                text = f"On {cell_label(*key)}, " + _sentence(main, conf, corr)
                text += f"; {clause}." if clause and j == 0 else "."
                extra = [assay if j == 0 else "", _spread_sentence(main, conf, corr),
                         _power_sentence(main, float(d["sd_diff"].iloc[i]), alpha),
                         _floor_sentence(comparisons.floor, key, eps, metric, margin,
                                         float(d["mean_abs_diff"].iloc[i]), pair, flat)]
                head = f"**{name}**" if len(mains) == 1 else f"**{name}**, {pair[0]} vs {pair[1]}"
                lines.append(f"- {head}: " + text + " " + " ".join(e for e in extra if e))
            if not mains:
                text = f"On {cell_label(*key)}" + (f", {clause}." if clause else ":")
                extra = [assay] + [_capital(_sentence(r, conf, corr)) + "." for r in rows.values()]
                lines.append(f"- **{name}**: " + text + " " + " ".join(e for e in extra if e))
            links = [r for k, r in rows.items() if (k[0] in refs) != (k[1] in refs)]
            if links:
                lines.append(f"- **{name}, spread against the reference**: " + "; ".join(
                    f"{r['arm_a']} vs {r['arm_b']}: {_spread_numbers(r, conf, r['arm_a'], r['arm_b'])}, "
                    f"{_spread_state(r, corr)}" for r in links) + ".")
        lines.append("")
    for heading, rows_here in (("Across backends (paired: shared initial weights)",
                                t[cross_rows(t) & (t["test"] != "welch_t")]),
                               ("Across backends (unpaired, Welch)", t[t["test"] == "welch_t"])):
        lines += _across_lines(heading, rows_here, conf, corr, set(comparisons.flat))
    if comparisons.notes:
        lines += ["### Notes", ""] + [f"- {n}" for n in comparisons.notes] + [""]
    return "\n".join(lines)


def _across_lines(heading: str, rows: pd.DataFrame, conf: int, corr: str, flat: set[str]) -> list[str]:
    """One bullet per backend-vs-backend row, paired (shared weights) or Welch."""
    lines: list[str] = []
    if not rows.empty:
        lines += [f"### {heading}", ""]
        for r in rows.to_dict("records"):
            backends = r["backend"].split(" vs ")
            metric, margin = r["metric"], r["margin"]
            where = cell_label("-", r["dataset"], r["model"], r["smoothing"] if r["arm_a"] not in flat else None)
            subject = f"{backends[0]} vs {backends[1]} ({r['arm_a']} arm)"
            ci = (f"{conf}% CI [{_num(r['ci_low'], metric, margin)}, {_num(r['ci_high'], metric, margin)}]")
            welch = r["test"] == "welch_t"
            test = "Welch" if welch else r["test"].replace("_", " ")
            nums = (f"mean difference {backends[0]} − {backends[1]} {_amount(r['mean_diff'], metric, margin)}, "
                    f"{ci}, TOST {_p(r['p_equivalence_adj'])}, {test} {_p(r['p_difference_adj'])} ({corr})")
            state = {"identical": "identical on every seed",
                     "equivalent": f"equivalent within {_margin_text(metric, margin)}",
                     "different": (f"different by more than {_margin_text(metric, margin)}" if _beyond(r)
                                   else f"different, though the CI reaches inside {_margin_text(metric, margin)}"),
                     }.get(r["verdict"], f"inconclusive at {_margin_text(metric, margin)}")
            if r["verdict"] == "inconclusive" and r["n"] < MIN_PAIRS:
                state = f"no verdict (fewer than {MIN_PAIRS} runs on a side)"
            counts = (r["note"].split(";")[0].removeprefix("unpaired (Welch): ") if welch
                      else f"{r['n']} seed pairs from shared initial weights")
            spread = (f"Spread: {_spread_numbers(r, conf, backends[0], backends[1])}: "
                      f"{_spread_state(r, corr)}.")
            lines.append(f"- **{_METRIC_NAMES.get(metric, metric)}**, {where}: {subject}: {state} "
                         f"({nums}; {counts}). {spread}")
        lines.append("")
    return lines


# --------------------------------------------------------------------------- sequential design


def _spending_name(spending: str) -> str:
    return {"obrien-fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type"}[spending]


def sequential_markdown(seq: SequentialComparisons) -> str:
    """The report.md section: the design, then per comparison when it was decided and
    what stopping there saves, then the runs the whole design would have needed."""
    n_max = seq.looks_planned[-1]
    m = len(seq.table)
    level = seq.table["alpha_comparison"].iloc[0] if m else seq.alpha
    family = (f"Bonferroni over the {m} comparisons: each runs at α = {level:.3g}"
              if seq.correction == "bonferroni" and m > 1 else f"α = {level:.3g} per comparison")
    lines = ["## Sequential design", "",
             f"Analysed as if looked at after {', '.join(map(str, seq.looks_planned))} seeds "
             f"({_spending_name(seq.spending)} Lan-DeMets alpha spending; {family}, family-wise error ≤ "
             f"{seq.alpha:g}). At each look the repeated interval of the paired difference decides "
             f"`equivalent` (the (1 − 2α) interval inside ±margin) or `different` (the (1 − α) interval "
             f"excludes 0); critical values are those of the group-sequential t test at the actual seed "
             f"counts. The fixed design "
             f"runs {n_max} seeds per arm.", ""]
    if not m:
        lines += ["No pair of arms could be compared.", ""]
    for r in seq.table.to_dict("records"):
        where = " / ".join(p for p in (r["backend"], r["dataset"], r["model"]) if p != "-") or "all runs"
        if r["smoothing"]:
            where += f", ε = {r['smoothing']:g}"
        head = f"- **{r['metric']}**, {where}, {r['arm_a']} vs {r['arm_b']}: "
        if r["decision"] in ("equivalent", "different"):
            text = (f"{r['decision']} at look {int(r['look'])} ({int(r['decided_at'])} seeds); stopping there "
                    f"saves {int(r['runs_saved'])} of {int(r['runs_fixed'])} runs against the fixed design")
        elif r["decision"] == "inconclusive":
            text = f"inconclusive after all {len(seq.looks_planned)} looks (no runs saved)"
        else:
            text = f"undecided with {int(r['n_available'])} paired seeds; the next look needs more"
        if r["note"]:
            text += f" ({r['note']})"
        lines.append(head + text + ".")
    if m:
        lines += ["", f"An arm stops receiving seeds once every comparison that involves it, on every metric, "
                      f"is decided: this design would have run {seq.runs_used} of {seq.runs_fixed} runs "
                      f"({seq.runs_saved} saved). Per-look estimates and intervals: `sequential.csv`."]
    lines += [f"- {n}" for n in seq.notes]
    return "\n".join(lines) + "\n"

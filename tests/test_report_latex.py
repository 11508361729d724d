"""`report --latex`: comparisons.tex and summary.tex are well-formed booktabs tables (no TeX needed)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ablate.analysis import compare, latex
from ablate.analysis.report import summary_table
from tests.helpers import run_cli


def _runs(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for backend in ("torch", "my_backend"):  # an underscore must come out escaped
        for s in range(8):
            base = 0.9 + rng.normal(0, 0.004)
            for arm, shift in (("none", -0.02), ("explicit", 0.0), ("loss", 0.0003)):
                rows.append({"backend": backend, "dataset": "digits", "model": "mlp", "arm": arm,
                             "smoothing": 0.0 if arm == "none" else 0.1, "seed": s, "status": "completed",
                             "accuracy": base + shift + rng.normal(0, 0.001),
                             "ece": 0.05 - (0.03 if arm != "none" else 0) + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def _check_structure(tex: str) -> list[list[str]]:
    """Balanced environments, booktabs rules in order, and every row as wide as the column spec."""
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert begins == ["table", "tabular"] and ends == ["tabular", "table"]
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"\hline" not in tex  # booktabs rules only
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    body = tex[tex.index(r"\toprule") + len(r"\toprule"):tex.index(r"\bottomrule")].replace(r"\midrule", "")
    rows = [r.strip() for r in body.split(r"\\") if r.strip()]
    cells = [re.split(r"(?<!\\)&", r) for r in rows]
    assert cells and all(len(c) == len(spec) for c in cells), [len(c) for c in cells]
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")
    assert tex.count("$") % 2 == 0  # (no escaped dollars in these tables)
    return cells


def test_comparisons_tex_structure_and_content():
    comparisons = compare.compare_runs(_runs(), margins={"accuracy": 0.005, "ece": 0.01}, alpha=0.05,
                                       correction="bh", rng=np.random.default_rng(0))
    tex = latex.comparisons_tex(comparisons)
    cells = _check_structure(tex)
    assert len(cells) == len(comparisons.table) + 1  # header + one row per comparison
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert r"$\pm 0.50$ pp Accuracy" in caption and r"$\pm 0.0100$ ECE" in caption
    assert r"$\alpha = 0.05$" in caption and "Benjamini--Hochberg" in caption and "90\\%" in caption
    assert r"my\_backend" in tex and "my_backend" not in tex.replace(r"my\_backend", "")
    marks = [c[-1].strip() for c in cells[1:]]
    assert marks == [latex.MARKS[v] for v in comparisons.table["verdict"]]
    first = comparisons.table.iloc[0]
    assert f"${first['mean_diff'] * 100:+.2f}$ [${first['ci_low'] * 100:+.2f}$, ${first['ci_high'] * 100:+.2f}$]" \
        in cells[1][4]


def test_summary_tex_structure_and_content():
    summary = summary_table(_runs(), ["accuracy", "ece"])
    tex = latex.summary_tex(summary)
    cells = _check_structure(tex)
    assert len(cells) == 1 + 2 * 3  # header + backend x arm
    row = summary[(summary["backend"] == "torch") & (summary["arm"] == "none") & (summary["metric"] == "accuracy")]
    expected = f"${row['mean'].item() * 100:.2f} \\pm {row['std'].item() * 100:.2f}$"
    assert any(c[4].strip() == expected for c in cells[1:])


def test_latex_escape():
    assert latex.escape("a_b & 50% {x} $y #1 ~ ^") == r"a\_b \& 50\% \{x\} \$y \#1 \textasciitilde{} \textasciicircum{}"


def test_cli_report_latex(tmp_path):
    path = tmp_path / "mine.csv"
    _runs().to_csv(path, index=False)
    out = tmp_path / "out"
    proc = run_cli("report", "--runs", path, "--out", out, "--latex", "--no-figures", timeout=None)
    assert proc.returncode == 0, proc.stderr
    for name in ("comparisons.tex", "summary.tex", "report.html"):
        assert (out / name).exists()
    _check_structure((out / "comparisons.tex").read_text())
    plain = tmp_path / "plain"
    run_cli("report", "--runs", path, "--out", plain, "--no-figures", timeout=None, check=0)
    assert (plain / "report.html").exists() and not (plain / "comparisons.tex").exists()


def test_summary_tex_names_each_arms_trick_and_params():
    from ablate.analysis.report import arm_tricks

    runs = _runs()
    runs["method"] = runs["arm"].map({"none": "none", "explicit": "explicit", "loss": "mixup"})
    runs["params"] = runs["arm"].map({"none": "", "explicit": "", "loss": "alpha = 0.4, prob = 1"})
    arms = arm_tricks(runs)
    assert arms == {"none": "trick none", "explicit": "trick explicit", "loss": "trick mixup, alpha = 0.4, prob = 1"}
    tex = latex.summary_tex(summary_table(runs, ["accuracy"]), arms=arms)
    _check_structure(tex)
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert "Arms: none: trick none; explicit: trick explicit; loss: trick mixup, alpha = 0.4, prob = 1." in caption

"""``report.html``: the report as one self-contained page, to open in a browser or mail.

Renders what :mod:`ablate.analysis.report` already computed (the comparisons, the summary and
runs tables, the figure files, the settings) with a Jinja2 template shipped in the package
(``templates/report.html.j2``). It computes no statistics: verdict sentences come from
:func:`ablate.analysis.prose.markdown`, numbers from the tables. Figures are embedded as
base64 PNG and the CSS is inline; a Content-Security-Policy forbids any fetch, so the page
reads the same offline.
"""

from __future__ import annotations

import base64
import html as _html
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ablate import tricks
from ablate.statuses import COMPLETED

VERDICTS = ("equivalent", "different", "inconclusive", "identical")


def only_trick_params(keys) -> bool:
    """Whether an arm's own settings are all its trick's params (``params.X``): part of what the arm
    tests, not a possible confound (report.md and report.html word them so)."""
    return all(str(k).startswith("params.") for k in keys)
METRIC_NAMES = {"accuracy": "accuracy", "ece": "ECE", "nll": "NLL", "brier": "Brier score",
                "ece_ts": "ECE after TS", "nll_ts": "NLL after TS"}
TEST_NAMES = {"paired_t": "the paired t-test", "wilcoxon": "the Wilcoxon signed-rank test",
              "sign_flip": "a sign-flip permutation test", "welch_t": "Welch's t-test (across backends)"}
TRAIN_NAMES = {"epochs": "epochs", "batch_size": "batch size", "optimizer": "optimizer", "lr": "learning rate",
               "momentum": "momentum", "weight_decay": "weight decay", "schedule": "schedule",
               "power": "decay power", "augment": "augmentation", "monitor_size": "monitor size"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# The interval plot: width in px, and how far beyond the margin its axis may reach.
PLOT_W, PLOT_H, MAX_RANGE = 170, 26, 4.0


# ------------------------------------------------------------------------------ formatting
def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _scale(metric: str) -> float:
    return 100.0 if metric == "accuracy" else 1.0


def _decimals(metric: str, margin: float) -> int:
    if metric == "accuracy":
        return 2
    return max(2, int(math.ceil(-math.log10(margin))) + 2) if _finite(margin) and margin > 0 else 4


def amount(x: Any, metric: str, margin: float, *, signed: bool = True, unit: bool = True) -> str:
    """A difference in the metric's display units (accuracy in percentage points)."""
    if not _finite(x):
        return "n/a"
    text = f"{float(x) * _scale(metric):{'+' if signed else ''}.{_decimals(metric, margin)}f}".replace("-", "−")
    return text + (" pp" if unit and metric == "accuracy" else "")


def value(x: Any, metric: str, digits: int = 4) -> str:
    """A level (a mean): accuracy as a percentage."""
    if not _finite(x):
        return "–"
    return f"{float(x) * 100:.2f}%" if metric in ("accuracy", "accuracy_ts") else f"{float(x):.{digits}f}"


def _p(p: Any) -> str:
    if not _finite(p):
        return "n/a"
    return "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def _inline_md(text: str) -> str:
    out = _html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def markdown_blocks(text: str) -> list[dict[str, Any]]:
    """The Markdown subset :func:`prose.markdown` writes -> blocks for the template.

    Returns ``[{"kind": "h2"|"h3"|"p"|"ul"|"table", "html": str, "items": [str]}]`` (a table's
    items are its rows, each a list of cells, the first the header); inline HTML is escaped
    first, then ``**bold**`` and ```code``` are marked up.
    """
    blocks: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line:
            continue
        if line.startswith("### "):
            blocks.append({"kind": "h3", "html": _inline_md(line[4:]), "items": []})
        elif line.startswith("## "):
            blocks.append({"kind": "h2", "html": _inline_md(line[3:]), "items": []})
        elif line.startswith("|"):
            cells = [_inline_md(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-: "):
                continue  # the header rule
            if not blocks or blocks[-1]["kind"] != "table":
                blocks.append({"kind": "table", "html": "", "items": []})
            blocks[-1]["items"].append(cells)
        elif line.startswith("- "):
            if not blocks or blocks[-1]["kind"] != "ul":
                blocks.append({"kind": "ul", "html": "", "items": []})
            blocks[-1]["items"].append(_inline_md(line[2:]))
        else:
            blocks.append({"kind": "p", "html": _inline_md(line), "items": []})
    return blocks


# ------------------------------------------------------------------------------ the interval plot
def interval_svg(est: float, low: float, high: float, margin: float, verdict: str) -> str:
    """An inline SVG: the ±margin band, zero, and the interval [low, high] with the estimate.

    The axis is symmetric around zero and reaches at most MAX_RANGE margins, so the band
    never shrinks to nothing; an interval cut at the edge ends in an arrow.
    """
    w, h, pad = PLOT_W, PLOT_H, 8
    if not all(_finite(v) for v in (est, low, high, margin)) or margin <= 0:
        return (f'<svg class="ci" width="{w}" height="{h}" role="img" aria-label="no interval">'
                f'<text x="{w / 2}" y="{h / 2 + 4}" text-anchor="middle" class="na">no interval</text></svg>')
    reach = min(max(abs(low), abs(high), abs(est), 1.25 * margin) * 1.1, MAX_RANGE * margin)

    def x(v: float) -> float:
        return w / 2 + max(-1.0, min(1.0, v / reach)) * (w / 2 - pad)

    mid = h / 2
    parts = [f'<svg class="ci {verdict}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="interval {low:.4g} to {high:.4g}, margin ±{margin:.4g}">',
             f'<rect class="band" x="{x(-margin):.1f}" y="2" width="{x(margin) - x(-margin):.1f}" '
             f'height="{h - 4}" rx="2"/>',
             f'<line class="zero" x1="{w / 2}" y1="1" x2="{w / 2}" y2="{h - 1}"/>',
             f'<line class="iv" x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}"/>']
    if low > reach or high < -reach:  # wholly off the scale: a dashed stub pointing where it lies
        edge = x(reach if low > reach else -reach)
        stub = edge - 22 if low > reach else edge + 22
        parts.append(f'<line class="iv off" x1="{stub:.1f}" y1="{mid}" x2="{edge:.1f}" y2="{mid}"/>')
    for end, inside in ((low, abs(low) <= reach), (high, abs(high) <= reach)):
        if inside:
            parts.append(f'<line class="iv" x1="{x(end):.1f}" y1="{mid - 6}" x2="{x(end):.1f}" y2="{mid + 6}"/>')
        else:  # cut at the edge: an arrow head pointing outwards
            tip, back = (x(end), x(end) - 8) if end > 0 else (x(end), x(end) + 8)
            parts.append(f'<polygon class="arrow" points="{tip:.1f},{mid} {back:.1f},{mid - 6} {back:.1f},{mid + 6}"/>')
    if abs(est) <= reach:
        parts.append(f'<circle class="est" cx="{x(est):.1f}" cy="{mid}" r="4"/>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------ context
def _where(row: Mapping[str, Any]) -> str:
    parts = [str(row[c]) for c in ("backend", "dataset", "model") if str(row.get(c, "-")) != "-"]
    return " · ".join(parts) or "all runs"


def _verdict_rows(table) -> list[dict[str, Any]]:
    rows = []
    for r in table.to_dict("records"):
        metric, margin = r["metric"], float(r["margin"])
        welch = r["test"] == "welch_t"
        verdict = r["verdict"] if r["verdict"] in VERDICTS else "inconclusive"
        rows.append({
            "metric": METRIC_NAMES.get(metric, metric), "where": _where({**r, "backend": "-"}) if welch else _where(r),
            "smoothing": f"{float(r['smoothing']):g}" if _finite(r["smoothing"]) else "–",
            "pair": f"{r['arm_a']}: {r['backend'].replace(' vs ', ' − ')}" if welch
                    else f"{r['arm_a']} − {r['arm_b']}",
            "verdict": verdict,
            "estimate": amount(r["mean_diff"], metric, margin),
            "interval": f"[{amount(r['ci_low'], metric, margin, unit=False)}, "
                        f"{amount(r['ci_high'], metric, margin, unit=False)}]",
            "margin": "±" + amount(margin, metric, margin, signed=False),
            "svg": interval_svg(float(r["mean_diff"]), float(r["ci_low"]), float(r["ci_high"]), margin, verdict),
            "n": int(r["n"]) if _finite(r["n"]) else "–",
            "seeds_needed": int(r["seeds_needed"]) if _finite(r["seeds_needed"]) else "> 100000"
                            if _finite(r["n"]) and int(r["n"]) >= 2 else "–",
            "p_eq": _p(r["p_equivalence_adj"]), "p_diff": _p(r["p_difference_adj"]),
            "test": r["test"].replace("_", " "), "note": r["note"] if isinstance(r["note"], str) else ""})
    return rows


def _summary_rows(summary, metrics: Sequence[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Wide summary: one row per cell, one column per metric (mean ± std and the 95% interval)."""
    cell = ["backend", "dataset", "model", "arm", "smoothing"]
    shown = [m for m in metrics if m in set(summary["metric"])]
    rows = []
    for key, group in summary.groupby(cell, sort=False, dropna=False):
        by_metric = {r["metric"]: r for r in group.to_dict("records")}
        row = {"cell": dict(zip(cell, key)), "n": max(int(r["n"]) for r in by_metric.values()), "values": []}
        row["cell"]["smoothing"] = f"{float(row['cell']['smoothing']):g}"
        for m in shown:
            r = by_metric.get(m)
            if r is None:
                row["values"].append({"mean": "–", "std": "", "ci": ""})
                continue
            std = f"± {value(r['std'], m)}" if _finite(r["std"]) else ""
            row["values"].append({"mean": value(r["mean"], m), "std": std,
                                  "ci": f"[{value(r['ci_low'], m)}, {value(r['ci_high'], m)}]"
                                        if _finite(r["ci_low"]) else ""})
        rows.append(row)
    return [METRIC_NAMES.get(m, m) for m in shown], rows


def _ts_rows(summary) -> list[dict[str, Any]]:
    ts = summary[summary["metric"].isin(["ece", "ece_ts", "nll", "nll_ts"])]
    if "ece_ts" not in set(ts["metric"]):
        return []
    wide = ts.pivot_table(index=["backend", "dataset", "model", "arm", "smoothing"], columns="metric",
                          values="mean", sort=False).reset_index()
    out = []
    for r in wide.to_dict("records"):
        out.append({"where": _where(r), "arm": r["arm"], "smoothing": f"{float(r['smoothing']):g}",
                    **{m: value(r.get(m), m) for m in ("ece", "ece_ts", "nll", "nll_ts")}})
    return out


def _problem_runs(runs, corrupt) -> list[dict[str, str]]:
    out = []
    if "status" in runs:
        bad = runs[runs["status"] != COMPLETED]
        for r in bad.to_dict("records"):
            eps = f" ε={float(r['smoothing']):g}" if _finite(r.get("smoothing")) else ""
            out.append({"id": str(r.get("run_id", "")), "status": str(r["status"]),
                        "what": f"{_where(r)} · {r['arm']}{eps} · seed {r['seed']}",
                        "why": str(r.get("error") or "")})
    for c in corrupt:
        out.append({"id": str(Path(c.path).name), "status": "skipped", "what": str(c.path), "why": c.reason})
    return out


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = sorted(set(int(s) for s in seeds))
    if not seeds:
        return "no seeds"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]})"
    return f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})"


def _train_text(train: Mapping[str, Any]) -> str:
    parts = []
    order = list(TRAIN_NAMES)
    for key, val in sorted(train.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
        if val is None or (key == "momentum" and train.get("optimizer") not in (None, "sgd")):
            continue
        if key == "power" and train.get("schedule") != "polynomial":
            continue
        if isinstance(val, Mapping):
            val = ", ".join(f"{k} {v}" for k, v in val.items() if v not in (None, False, 0))
        parts.append(f"{TRAIN_NAMES.get(key, key.replace('_', ' '))} {val:g}" if isinstance(val, float)
                     else f"{TRAIN_NAMES.get(key, key.replace('_', ' '))} {val}")
    return ", ".join(parts)


def methods_paragraph(*, runs, comparisons, binning, context: Mapping[str, Any] | None,
                      overrides: Mapping[str, Mapping[str, Any]], target_power: float) -> str:
    """A paragraph for a paper's methods section, from the settings this report actually used."""
    done = runs[runs["status"] == COMPLETED] if "status" in runs else runs
    arms = list(dict.fromkeys(done["arm"])) if "arm" in done else []
    ctx_arms = (context or {}).get("arms", {})
    sentences = []
    what = []
    for key, label in (("dataset", "dataset"), ("model", "model"), ("backend", "backend")):
        values = [v for v in dict.fromkeys(done[key]) if v != "-"] if key in done else []
        if values:
            what.append(f"{label}{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}")
    arm_bits = []
    for arm in arms:
        info = ctx_arms.get(arm, {})
        method = info.get("method") or (arm if arm in tricks.TRICKS else None)
        eps = sorted(set(float(e) for e in done.loc[done["arm"] == arm, "smoothing"])) if "smoothing" in done else []
        eps_text = ", ".join(f"{e:g}" for e in eps)
        # What the arm's trick does, from its registry entry; a grid's own trick by its parts.
        desc = tricks.get(method).short if method in tricks.TRICKS else (f"trick {method}" if method else "")
        own = done.loc[done["arm"] == arm]
        for column in ("trick", "params"):
            found = [str(v) for v in own[column].dropna() if str(v)] if column in own else []
            if found:
                desc = f"{desc}; {found[0]}" if desc else found[0]
        arm_bits.append(f"{arm} ({desc + '; ' if desc else ''}ε = {eps_text})" if eps_text else f"{arm}")
    seeds = done["seed"].tolist() if "seed" in done else []
    sentences.append(f"We compared {len(arms)} arm{'s' if len(arms) != 1 else ''}, "
                     f"{'; '.join(arm_bits)}" + (f", on {'; '.join(what)}" if what else "") +
                     f", each trained with {_seed_text(seeds)}; runs of different arms with the same seed "
                     f"were paired.")
    trains = {arm: info.get("train", []) for arm, info in ctx_arms.items() if info.get("train")}
    every = [t for ts in trains.values() for t in ts]
    if every:
        # Settings shared by every run once; then what each arm did differently.
        common = {k: v for k, v in every[0].items() if all(t.get(k) == v for t in every)}
        sentences.append(f"Every run used {_train_text(common)}." if common else "")
        for arm, ts in trains.items():
            own = [{k: v for k, v in t.items() if k not in common} for t in ts]
            if any(own):
                sentences.append(f"Arm {arm} used " + " or ".join(_train_text(o) for o in own) + ".")
    for arm, keys in ((a, k) for a, k in (overrides or {}).items() if k):
        own = only_trick_params(keys)
        sentences.append(f"Arm {arm} {'sets' if own else 'overrides'} " +
                         ", ".join(f"{k} = {v}" for k, v in keys.items()) +
                         (" (its trick's params)." if own else " (a possible confound)."))
    if binning:
        scheme = "equal-width" if binning[1] == "uniform" else "equal-mass"
        sentences.append(f"Test-set accuracy, expected calibration error (ECE), negative log-likelihood (NLL) "
                         f"and Brier score were computed from the stored predicted probabilities; ECE uses "
                         f"{binning[0]} {scheme} bins of top-label confidence (L1).")
    if "ece_ts" in runs and runs["ece_ts"].notna().any():
        sentences.append("For temperature scaling, one temperature per run was fitted on that run's "
                         "validation split (held out from the training data) by minimising NLL, and the "
                         "test metrics were recomputed with it.")
    t = comparisons.table
    if len(t):
        margins = ", ".join(f"±{amount(v, m, v, signed=False)} {METRIC_NAMES.get(m, m)}"
                            for m, v in comparisons.margins.items())
        tests = [TEST_NAMES.get(x, x) for x in dict.fromkeys(t["test"])]
        corr = {"holm": "Holm", "bh": "Benjamini–Hochberg"}.get(comparisons.correction, comparisons.correction)
        conf = round(100 * (1 - 2 * comparisons.alpha))
        sentences.append(
            f"Equivalence was tested with two one-sided tests (TOST) against margins of {margins}, and "
            f"differences with {' and '.join(tests)}; p-values were adjusted by {corr} over all {len(t)} "
            f"comparisons, separately for equivalence and difference tests, at α = {comparisons.alpha:g}. "
            f"Intervals are {conf}% t-intervals of the mean difference. A comparison is called equivalent when "
            f"the adjusted TOST p < α, different when the adjusted difference p < α and the interval leaves the "
            f"margin, and inconclusive otherwise. Seeds needed is the number of seeds that gives "
            f"{target_power:.0%} TOST power at the margin with the observed standard deviation.")
    return " ".join(x for x in sentences if x)


def _provenance(runs, context: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    ctx = context or {}
    rows: list[tuple[str, str]] = []
    if ctx.get("source"):
        rows.append(("source", str(ctx["source"])))
    if ctx.get("ablate_version"):
        rows.append(("ablate", f"{ctx['ablate_version']}, commit {ctx.get('report_commit') or 'unknown'} "
                               f"(this report)"))
    if ctx.get("run_commits"):
        rows.append(("runs made by ablate commit", ", ".join(ctx["run_commits"])))
    for i, env in enumerate(ctx.get("environments", [])):
        label = "environment" if len(ctx["environments"]) == 1 else f"environment {i + 1}"
        rows.append((label, ", ".join(f"{k} {v}" for k, v in env.items() if v not in (None, ""))))
    if ctx.get("hosts"):
        rows.append(("machines", str(ctx["hosts"])))
    if ctx.get("functions"):
        rows.append(("functions from Python (name@source hash)", ", ".join(ctx["functions"])))
    for col, label in (("started_at", "first run started"), ("finished_at", "last run finished")):
        if col in runs and runs[col].notna().any():
            stamps = sorted(str(s) for s in runs[col].dropna())
            rows.append((label, stamps[0] if col == "started_at" else stamps[-1]))
    rows.append(("report written", datetime.now(timezone.utc).isoformat(timespec="seconds")))
    return rows


def _figure(name: str, path: Path) -> dict[str, Any]:
    """A figure for the template: embedded as a data: URI, with its pixel size (from the PNG header)."""
    data = Path(path).read_bytes()
    width = height = 0
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return {"name": name, "caption": name.replace("_", " "), "width": width, "height": height,
            # Wide figures (several panels) take the whole row of the figure grid.
            "wide": height > 0 and width / height > 2.0,
            "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}


# ------------------------------------------------------------------------------ entry point
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("ablate.analysis", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _verdict_context(*, title: str, runs, comparisons) -> dict[str, Any]:
    """What the header and the verdicts section show: the same in report.html and in a notebook."""
    counts = runs["status"].value_counts().to_dict() if "status" in runs else {COMPLETED: len(runs)}
    verdicts = _verdict_rows(comparisons.table)
    return dict(
        title=title.replace("`", ""), title_html=_inline_md(title), counts=counts, n_runs=len(runs),
        verdicts=verdicts, tally={v: sum(r["verdict"] == v for r in verdicts) for v in VERDICTS},
        margins=", ".join(f"±{amount(v, m, v, signed=False)} {METRIC_NAMES.get(m, m)}"
                          for m, v in comparisons.margins.items()),
        alpha=comparisons.alpha, correction={"holm": "Holm", "bh": "Benjamini–Hochberg"}.get(
            comparisons.correction, comparisons.correction),
        conf=round(100 * (1 - 2 * comparisons.alpha)))


def scope_css(css: str, scope: str) -> str:
    """``css`` with every rule limited to elements inside ``scope`` (a selector); ``:root``,
    ``body`` and ``*`` rules apply to the scope itself, so a page around it keeps its own styles."""
    out = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        scoped = []
        for sel in (x.strip() for x in selectors.split(",")):
            if sel in (":root", "body"):
                scoped.append(scope)
            elif sel == "*":
                scoped.append(f"{scope}, {scope} *")
            else:
                scoped.append(f"{scope} {sel}")
        out.append(f"{', '.join(scoped)} {{{body}}}")
    return "\n".join(out)


def render_verdicts(*, title: str, runs, comparisons) -> str:
    """report.html's verdict table as an HTML fragment for a notebook cell: its header line and
    verdicts section, with the report's styles limited to the fragment. Self-contained (inline
    CSS and SVG, nothing fetched, no script) and escaped like the page."""
    env = _environment()
    css = env.loader.get_source(env, "report.css.j2")[0]
    return env.get_template("notebook.html.j2").render(
        css=scope_css(css, ".ablate-study"), **_verdict_context(title=title, runs=runs, comparisons=comparisons))


def render(*, title: str, runs, summary, comparisons, figures: Mapping[str, Path], corrupt=(),
           overrides: Mapping[str, Mapping[str, Any]] | None = None, binning=None,
           context: Mapping[str, Any] | None = None, ts_note: str = "", variance_md: str = "") -> str:
    """The page as a string. ``comparisons`` is :class:`compare.Comparisons`; ``figures`` maps a
    figure name to its PNG file; ``context`` is :func:`ablate.provenance.collect`'s summary (or
    None for a table made elsewhere)."""
    from ablate.analysis import compare, prose

    metrics_shown = ("accuracy", "ece", "nll", "brier")
    summary_head, summary_rows = _summary_rows(summary, metrics_shown)
    page = _environment().get_template("report.html.j2").render(
        csp=CSP, **_verdict_context(title=title, runs=runs, comparisons=comparisons),
        sections=markdown_blocks(prose.markdown(comparisons) + ("\n" + variance_md if variance_md else "")),
        overrides={arm: ", ".join(f"{k} = {v}" for k, v in keys.items())
                   for arm, keys in (overrides or {}).items() if keys},
        figures=[_figure(name, path) for name, path in figures.items()],
        summary_head=summary_head, summary_rows=summary_rows, ts_rows=_ts_rows(summary),
        ts_note=_inline_md(ts_note) if ts_note else "", ts_warn=bool(ts_note) and not ts_note.startswith("0 of"),
        problems=_problem_runs(runs, corrupt),
        methods=methods_paragraph(runs=runs, comparisons=comparisons, binning=binning, context=context,
                                  overrides=overrides or {}, target_power=compare.TARGET_POWER),
        provenance=_provenance(runs, context))
    return page


def write_html(path: str | Path, **kwargs) -> Path:
    """Render and write ``report.html``; returns its path."""
    from ablate import files

    return files.write_text(Path(path), render(**kwargs))

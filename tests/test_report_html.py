"""report.html: rendered from a real (tiny) study and opened in headless Chromium.

The page must be self-contained: every image decodes, nothing is fetched from anywhere
(the Content-Security-Policy forbids it, and Chromium reports no resource request and
no policy violation), and the verdicts show at the top. A screenshot is saved beside
the report (set ABLATE_SCREENSHOT_DIR to keep a copy). Skips where Chromium is absent (`make install` installs Debian's chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import html
from ablate.study import report_study
from tests.helpers import grid_text, run_cli

GRID = grid_text(data=(300, 200), seeds=5, epochs=2)
# Injected into a copy of the page: after load, write what the browser saw into the DOM.
PROBE = """<script>
const seen = {violations: []};
document.addEventListener('securitypolicyviolation', e => seen.violations.push(e.blockedURI + ' ' + e.violatedDirective));
window.addEventListener('load', () => setTimeout(() => {
  seen.images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}));
  seen.requests = performance.getEntriesByType('resource').map(r => r.name);
  seen.badges = [...document.querySelectorAll('#verdicts tbody .badge')].map(b => b.textContent.trim());
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(seen);
  document.body.appendChild(pre);
}, 100));
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def _browser(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium not found (`make install` installs Debian's chromium; or apt-get install chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _probe(tmp_path, page: str, name: str) -> dict:
    """Open ``page`` (HTML text) with the probe injected; return what the browser saw."""
    # The probe needs inline script; the page's own policy (no fetch of any kind) stays.
    text = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    text = text.replace("</body>", PROBE + "</body>", 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    proc = _browser(tmp_path, "--virtual-time-budget=5000", "--dump-dom", path.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"probe did not run: {proc.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("study")
    grid = root / "grid.yaml"
    grid.write_text(GRID)
    run_cli("run", grid, "--workers", "1", "--results", root / "results", check=0)
    report_study(root / "results", study="tiny")
    return root / "results" / "tiny"


def test_report_html_is_self_contained(study):
    page = (study / "report.html").read_text()
    assert '<meta http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    # Nothing outside the page: no http(s) or protocol-relative address, no src/href but data: and anchors.
    assert not re.search(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", page, re.I)
    for attr, target in re.findall(r"""\b(src|href)\s*=\s*["']([^"']*)""", page, re.I):
        assert target.startswith(("data:image/png;base64,", "#")), (attr, target[:60])
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    images = re.findall(r"<img\b", page)
    assert len(images) == len(list((study / "figures").glob("*.png"))) > 0
    # The verdict table comes first and has one row per comparison.
    comparisons = pd.read_csv(study / "comparisons.csv")
    verdict_table = page[page.index('id="verdicts"'):page.index('id="comparisons"')]
    assert verdict_table.count("<svg") == len(comparisons)
    assert page.index('id="verdicts"') < page.index('id="figures"') < page.index('id="provenance"')


def test_report_html_in_chromium(study, tmp_path):
    page = (study / "report.html").read_text()
    seen = _probe(tmp_path, page, "probe.html")
    assert seen["images"] and all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    assert len(seen["images"]) == len(list((study / "figures").glob("*.png")))
    assert seen["requests"] == [] and seen["violations"] == [], seen
    comparisons = pd.read_csv(study / "comparisons.csv")
    assert seen["badges"] == list(comparisons["verdict"])

    shot = study / "report.png"
    proc = _browser(tmp_path, "--window-size=1400,1400", f"--screenshot={shot}", (study / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 1400)
        # The top (title and verdict table) is not a blank page.
        top = im.convert("L").crop((0, 0, 1400, 700))
        assert len(np.unique(np.asarray(top))) > 20
    # To look at it: ABLATE_SCREENSHOT_DIR=/some/folder pytest tests/test_report_html.py
    if keep := os.environ.get("ABLATE_SCREENSHOT_DIR"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        for path in (shot, study / "report.html"):
            shutil.copy(path, Path(keep) / path.name)


def test_probe_catches_a_broken_image_and_an_outside_request(study, tmp_path):
    """The browser checks can fail: a corrupt image and an outside address are both caught."""
    page = (study / "report.html").read_text()
    broken = re.sub(r'src="data:image/png;base64,[^"]{40}', 'src="data:image/png;base64,AAAAAAAAAAAAAAAAAAAA',
                    page, count=1)
    seen = _probe(tmp_path, broken, "broken.html")
    assert sum(i["width"] == 0 for i in seen["images"]) == 1
    outside = page.replace("</body>", '<img src="http://127.0.0.1:9/x.png" alt="outside"></body>', 1)
    seen = _probe(tmp_path, outside, "outside.html")
    assert any("127.0.0.1" in v for v in seen["violations"]), seen


def test_interval_svg_draws_band_interval_and_off_scale_arrow():
    inside = html.interval_svg(0.001, -0.002, 0.004, 0.01, "equivalent")
    assert 'class="band"' in inside and 'class="est"' in inside and "arrow" not in inside
    far = html.interval_svg(-0.11, -0.125, -0.10, 0.01, "different")
    assert 'class="arrow"' in far and 'class="est"' not in far and "iv off" in far
    assert "no interval" in html.interval_svg(float("nan"), float("nan"), float("nan"), 0.01, "inconclusive")


def test_methods_and_provenance_come_from_the_settings_used(study):
    import html as std_html

    import torch

    page = std_html.unescape((study / "report.html").read_text())
    methods = re.search(r'<p class="methods">(.*?)</p>', page, re.S).group(1)
    for text in ("5 seeds (0–4)", "epochs 2", "batch size 32", "monitor size 64", "ε = 0.1",
                 "15 equal-width bins", "±0.50 pp accuracy", "Holm", "α = 0.05", "90% t-intervals",
                 "temperature scaling"):
        assert text in methods, text
    provenance = page[page.index('id="provenance"'):]
    assert f"torch {torch.__version__}" in provenance and "device cpu" in provenance
    assert re.search(r"ablate</dt><dd>\d+\.\d+\.\d+, commit", provenance)


def test_failed_diverged_and_skipped_runs_are_listed(tmp_path):
    from tests.test_report import fill_store

    fill_store(tmp_path)  # two backends, a diverged run and a corrupt record
    report_study(tmp_path, study="synth", figures=False)
    page = (tmp_path / "synth" / "report.html").read_text()
    problems = page[page.index('id="problems"'):page.index('id="provenance"')]
    runs = pd.read_csv(tmp_path / "synth" / "runs.csv")
    diverged = runs.loc[runs["status"] == "diverged", "run_id"].item()
    assert diverged in problems and "non-finite training loss" in problems
    assert "deadbeefdeadbeef" in problems and "status-skipped" in problems
    assert 'id="calibration"' in page and 'id="figures"' not in page
    comparisons = pd.read_csv(tmp_path / "synth" / "comparisons.csv")
    badges = re.findall(r'<span class="badge (\w+)">\1</span>', page)
    assert badges == list(comparisons["verdict"])
    # Cross-backend rows name the two backends once, in the comparison column.
    assert "keras/tensorflow − torch" in page

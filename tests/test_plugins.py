"""A user's own models, data and arms, from a folder outside the package and from an installed
plug-in, through the command line and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ablate
from ablate.catalog import load_grid
from ablate.errors import ConfigError
from ablate.execution.preflight import check_environment
from tests.helpers import run_cli
from tests.plugins import user_env, write_user_package

REPO = Path(__file__).resolve().parents[1]

GRID = """\
study: plug
datasets: [{name: cancer, loader: "mydata:load", val_fraction: 0.2}]
models: [{name: tiny, torch: "mymodels:tiny_torch", keras: "mymodels:tiny_keras"}]
backends: [torch, keras]
arms:
  none: {}
  explicit: {method: explicit}
  loss: {method: loss}
  calm: {method: explicit, train: {momentum: 0.5}}
smoothing: [0.1]
seeds: 3
train: {epochs: 3, batch_size: 32, lr: 0.05, monitor_size: 64}
analysis: {compare: [[explicit, loss], [none, calm]], margins: {accuracy: 0.05, ece: 0.05, nll: 0.1}}
"""


def _ablate(*args, cwd=REPO, env=None):
    return run_cli(*args, cwd=cwd, env=env or user_env(), timeout=600)


@pytest.fixture(scope="module")
def user_study(tmp_path_factory):
    """The user's folder holds the grid and its modules; ablate runs from elsewhere (the repo)."""
    folder = write_user_package(tmp_path_factory.mktemp("myproject"))
    (folder / "grid.yaml").write_text(GRID)
    results = tmp_path_factory.mktemp("results")
    run = _ablate("run", folder / "grid.yaml", "--results", results, "--workers", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    report = _ablate("report", "--results", results, "--study", "plug", "--no-figures")
    assert report.returncode == 0, report.stderr[-3000:]
    return folder, results


def test_user_models_data_and_arms_run_in_both_backends(user_study):
    _, results = user_study
    runs = pd.read_csv(results / "plug" / "runs.csv")
    assert len(runs) == 2 * 4 * 3 and set(runs["status"]) == {"completed"}
    assert set(runs["backend"]) == {"torch", "keras/tensorflow"}
    assert set(runs["arm"]) == {"none", "explicit", "loss", "calm"}
    assert set(runs["model"]) == {"tiny"} and set(runs["dataset"]) == {"cancer"}
    assert dict(zip(runs["arm"], runs["method"]))["calm"] == "explicit"
    # 2 classes of tabular data: a 3-epoch tiny net does far better than chance.
    assert runs["accuracy"].mean() > 0.8


def test_explicit_and_loss_stay_identical_per_seed_on_user_models(user_study):
    _, results = user_study
    study = ablate.load_study(results / "plug")
    runs = study.runs
    for backend in ("torch", "keras/tensorflow"):
        for seed in range(3):
            pick = runs[(runs["backend"] == backend) & (runs["seed"] == seed)].set_index("arm")
            assert pick.loc["explicit", "accuracy"] == pick.loc["loss", "accuracy"]
            assert pick.loc["explicit", "ece"] == pytest.approx(pick.loc["loss", "ece"], abs=1e-5)


def test_report_compares_the_custom_arm_and_names_its_setting(user_study):
    _, results = user_study
    table = pd.read_csv(results / "plug" / "comparisons.csv")
    pairs = set(zip(table["arm_a"], table["arm_b"]))
    assert ("none", "calm") in pairs and ("explicit", "loss") in pairs
    assert ("none", "explicit") not in pairs  # analysis.compare picks the pairs
    report = (results / "plug" / "report.md").read_text()
    assert "`calm` trains with momentum = 0.5" in report
    assert "`calm` = trick `explicit`" in report


def test_python_api_from_a_plain_session(user_study):
    _, results = user_study
    code = textwrap.dedent(f"""
        import sys, ablate
        study = ablate.load_study({str(results / 'plug')!r})
        table = ablate.compare(study.runs, margins={{"accuracy": 0.05}}, pairs=[("explicit", "loss")])
        paired = table[(table["metric"] == "accuracy") & (table["arm_a"] == "explicit") & (table["arm_b"] == "loss")]
        print("ROWS", len(paired), sorted(set(table["arm_a"]) - {{"explicit"}}), set(paired["margin"]))
        heavy = [m for m in ("torch", "tensorflow", "keras", "matplotlib", "seaborn") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=user_env(), cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = next(line for line in out.stdout.splitlines() if line.startswith("ROWS"))
    # One paired row per backend, at the margin given; no pair but the one asked for.
    assert rows.startswith("ROWS 2") and "{0.05}" in rows
    assert "HEAVY []" in out.stdout


def test_api_load_grid_from_a_dict_and_plan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = ablate.load_grid({"study": "d", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
                             "arms": {"base": {"method": "none"}, "smooth": {"method": "both"}},
                             "smoothing": [0.1], "seeds": 2})
    runs = ablate.plan(grid, seeds="1")
    assert [(r.arm, r.method, r.smoothing, r.seed) for r in runs] == [("base", "none", 0.0, 1), ("smooth", "both", 0.1, 1)]
    assert grid.pairs() == (("base", "smooth"),)


def test_user_data_problems_are_one_line_before_any_run(tmp_path):
    folder = write_user_package(tmp_path / "proj")
    base = GRID.replace("backends: [torch, keras]", "backends: [torch]")
    cases = {
        "mydata:bad_labels": "y_train must hold integer class labels",
        "mydata:one_class": "expected at least 2 classes",
        "mydata:missing": "has no attribute 'missing'",
        "nowhere:load": "no module named 'nowhere'",
    }
    for loader, expected in cases.items():
        (folder / "grid.yaml").write_text(base.replace('"mydata:load"', f'"{loader}"'))
        with pytest.raises(ConfigError) as info:
            check_environment(load_grid(folder / "grid.yaml"))
        assert expected in str(info.value) and "`datasets[0]`" in str(info.value) and "\n" not in str(info.value)
    # Image-only options refuse feature vectors before any run starts.
    (folder / "grid.yaml").write_text(base.replace("models: [{name: tiny, torch: \"mymodels:tiny_torch\", "
                                                   "keras: \"mymodels:tiny_keras\"}]", "models: [small-cnn]"))
    with pytest.raises(ConfigError, match=r"`models\[0\]`: model 'small-cnn' takes images"):
        check_environment(load_grid(folder / "grid.yaml"))
    (folder / "grid.yaml").write_text(base.replace("monitor_size: 64}", "monitor_size: 64, augment: true}"))
    with pytest.raises(ConfigError, match=r"`train.augment`: shifts and flips need images"):
        check_environment(load_grid(folder / "grid.yaml"))
    (folder / "grid.yaml").write_text(base.replace("mymodels:tiny_torch", "nomodels:tiny_torch"))
    with pytest.raises(ConfigError, match=r"`models\[0\].torch`: 'nomodels:tiny_torch': no module named"):
        check_environment(load_grid(folder / "grid.yaml"))


def test_a_factory_that_returns_no_model_is_refused_before_any_run(tmp_path):
    """Preflight calls each plug-in model once on a real batch (ablate.execution.model_check), so a
    factory that returns no model is one line before any run, not a failed run per cell."""
    folder = write_user_package(tmp_path / "proj")
    grid = GRID.replace("backends: [torch, keras]", "backends: [torch]").replace("seeds: 3", "seeds: 1")
    grid = grid.replace("mymodels:tiny_torch", "mymodels:not_a_model")
    grid = grid.replace("analysis: {compare: [[explicit, loss], [none, calm]], ", "analysis: {")
    (folder / "grid.yaml").write_text(grid)
    out = _ablate("run", folder / "grid.yaml", "--results", tmp_path / "r", "--workers", "1")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "`models[0]`: 'tiny' (torch), called once on a batch of `datasets[0]` (cancer): model 'tiny': " \
        in out.stderr and "the torch factory returned str, not an nn.Module" in out.stderr
    assert not (tmp_path / "r" / "plug").exists() or not any((tmp_path / "r").rglob("record.json"))


def _install_plugpkg(tmp_path: Path) -> dict[str, str]:
    """An installed package (on PYTHONPATH, with dist-info) whose entry points register the model
    `plugnet` and the dataset `wine`; returns the environment that sees it."""
    site = tmp_path / "site"
    pkg = site / "plugpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        """Wine: scikit-learn's 3-class table."""
        import numpy as np

        MODEL = {"torch": "plugpkg:net", "description": "a plug-in linear model"}

        def net(input_shape, num_classes):
            import math
            from torch import nn
            return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

        def load_wine():
            """scikit-learn's wine table (13 features, 3 classes)."""
            from sklearn.datasets import load_wine as load
            b = load()
            order = np.random.default_rng(0).permutation(len(b.target))
            x, y = b.data[order], b.target[order]
            return x[:130], y[:130], x[130:], y[130:]
    '''))
    dist = site / "plugpkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugpkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ablate.models]\nplugnet = plugpkg:MODEL\n\n"
                                           "[ablate.datasets]\nwine = plugpkg:load_wine\n")
    return dict(user_env(), PYTHONPATH=str(site))


def test_installed_plugin_dataset_is_listed_by_datasets(tmp_path):
    """`python -m ablate datasets` lists an entry-point dataset instead of crashing on its unknown shape."""
    proc = _ablate("datasets", env=_install_plugpkg(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert "digits" in rows and "mnist" in rows
    assert rows["wine"][1:6] == ["yes", "-", "-", "-", "-"]
    assert "plugpkg:load_wine" in proc.stdout and "scikit-learn's wine table" in proc.stdout


def test_importing_the_catalogue_loads_no_entry_points(tmp_path):
    """Entry points are loaded when a registry is asked, not when ablate.data.catalogue is imported."""
    code = ("import ablate.data.catalogue as c; assert 'wine' not in c.DATASETS._entries, 'loaded at import'; "
            "assert 'wine' not in c.BUILTIN_DATASETS; assert 'wine' in c.DATASETS.names()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_install_plugpkg(tmp_path), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_installed_plugin_registers_through_entry_points(tmp_path):
    """A package on sys.path with entry points in ablate.models / ablate.datasets, used by name."""
    env = _install_plugpkg(tmp_path)
    listing = _ablate("plugins", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "plugnet" in listing.stdout and "wine" in listing.stdout
    (tmp_path / "grid.yaml").write_text(textwrap.dedent("""\
        study: wine
        datasets: [wine]
        models: [plugnet]
        backends: [torch]
        arms: [none, loss]
        smoothing: [0.1]
        seeds: 2
        train: {epochs: 2, batch_size: 16, lr: 0.01, monitor_size: 32}
    """))
    run = _ablate("run", tmp_path / "grid.yaml", "--results", tmp_path / "r", "--workers", "1", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "wine" / "runs").glob("*/record.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"completed"}
    assert {r["config"]["model"] for r in records} == {"plugnet"}
    probs = np.load(next((tmp_path / "r" / "wine" / "runs").glob("*/arrays.npz")))["test_probs"]
    assert probs.shape[1] == 3

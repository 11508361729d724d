"""The divergence probe: pairs planned from arm methods, explicit vs loss never parting on the
CPU, none vs explicit parting at step 1, and its figure."""

from __future__ import annotations

import pandas as pd
import pytest

from ablate.catalog import parse_grid
from ablate.errors import ConfigError
from ablate.execution import probe

GRID = {"study": "p", "datasets": [{"name": "digits", "train_size": 200, "test_size": 50}], "models": ["mlp"],
        "backends": ["torch", "keras"], "arms": ["none", "explicit", "loss"], "smoothing": [0.1], "seeds": 1,
        "train": {"epochs": 40, "batch_size": 32, "lr": 0.05, "momentum": 0.9, "schedule": "polynomial",
                  "monitor_size": 0}}


def test_pairs_come_from_methods_and_backends():
    specs = [s for s in parse_grid(GRID).runs()]
    pairs = probe.plan_pairs(specs)
    kinds = pd.Series([k for k, _, _ in pairs]).value_counts().to_dict()
    assert kinds == {"explicit vs loss": 2, "none vs explicit": 2, "across backends": 3, "same run twice": 2}
    for kind, i, j in pairs:
        if kind == "explicit vs loss":
            assert (specs[i].arm, specs[j].arm) == ("explicit", "loss") and specs[i].backend == specs[j].backend
        if kind == "across backends":
            assert specs[i].arm == specs[j].arm and specs[i].backend != specs[j].backend
        if kind == "same run twice":
            assert j >= len(specs)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^--steps: expected an integer >= 1, but got 0$"):
        probe.probe(parse_grid(GRID), steps=0)
    with pytest.raises(ConfigError, match=r"^--seed: expected one of the grid's seeds \[0\], but got 5$"):
        probe.probe(parse_grid(GRID), seed=5)


# Training 8 runs for 200 steps takes ~40 s of CPU (most of it Keras' per-step overhead).
@pytest.fixture(scope="module")
def result():
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    return probe.probe(parse_grid(GRID), steps=200, every=100)


@pytest.mark.slow
def test_explicit_and_loss_never_part_on_the_cpu(result):
    rows = pd.DataFrame(result.rows)
    assert result.steps == 200 and sorted(set(rows.step)) == [0, 1, 100, 200]
    same = rows[rows.kind == "explicit vs loss"]
    assert len(same.run_a.unique()) == 2  # one pair per backend
    assert all(p.parted_at is None for p in result.pairs if p.kind in ("explicit vs loss", "same run twice"))
    assert (rows[rows.kind == "same run twice"].relative_distance == 0).all()
    keras = same[same.run_a.str.startswith("keras")]
    torch = same[same.run_a.str.startswith("torch")]
    # Keras applies y*(1-eps)+eps/K inside its loss exactly as the core does: bit for bit.
    assert (keras.relative_distance == 0).all()
    # torch's label_smoothing computes (1-eps)*NLL + eps*mean(-log p) with other roundings
    # than soft-target cross-entropy: the runs drift apart at float32 rounding level only
    # (measured: ~1e-7 by step 100, ~1e-6 by step 200), and their losses never part.
    assert (torch.relative_distance < 1e-5).all()
    assert (torch[torch.step == 1].relative_distance == 0).all()


@pytest.mark.slow
def test_the_positive_control_parts_at_step_one(result):
    rows = pd.DataFrame(result.rows)
    control = rows[rows.kind == "none vs explicit"]
    assert (control[control.step == 0].relative_distance == 0).all()  # shared start
    assert (control[control.step >= 1].relative_distance > 0).all()
    assert [p.parted_at for p in result.pairs if p.kind == "none vs explicit"] == [1, 1]
    text = probe.summary_text(result)
    lines = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("- **")}
    assert ": first parted at step 1" in lines["none vs explicit"]
    assert ": never parted in 200 steps" in lines["explicit vs loss"]


@pytest.mark.slow
def test_figure_draws_one_line_per_kind(result, tmp_path):
    pytest.importorskip("matplotlib")
    from ablate.analysis.figures.probe import distance_by_step

    fig = distance_by_step(pd.DataFrame(result.rows))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert sorted(line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")) == \
        sorted(probe.KINDS)


def test_cli_writes_csv_summary_and_figure(write_grid, tmp_path, run_cli):
    pytest.importorskip("torch")
    grid = write_grid(study="p", data=(100, 50), arms=["none", "explicit", "loss"], seeds=1,
                      train={"epochs": 1, "batch_size": 32})
    out = tmp_path / "probe"
    proc = run_cli("probe", grid, "--steps", "3", "--every", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_csv(out / "probe.csv")
    assert list(rows.columns) == list(probe.COLUMNS) and sorted(set(rows.step)) == [0, 1, 2, 3]
    assert set(rows.kind) == {"explicit vs loss", "none vs explicit", "same run twice"}
    assert (out / "probe.png").stat().st_size > 0
    assert "- **none vs explicit** (arms none vs explicit): first parted at step 1" in (out / "probe.md").read_text()
    bad = run_cli("probe", grid, "--every", "0")
    assert bad.returncode == 2 and bad.stderr.strip() == "ablate: error: --every: expected an integer >= 1, but got 0"


def test_probe_feeds_the_batches_the_runner_feeds():
    """The probe's per-step losses average to the runner's first-epoch objective, to rounding."""
    import dataclasses

    from ablate import backends
    from ablate.data.catalogue import load_dataset
    from ablate.execution.runner import execute

    pytest.importorskip("torch")
    grid = parse_grid({**GRID, "backends": ["torch"], "arms": ["explicit"],
                       "datasets": [{"name": "digits", "train_size": 100, "test_size": 50}],
                       "train": {**GRID["train"], "epochs": 1, "augment": True}})
    result = probe.probe(grid, steps=100, every=1)
    steps = sorted(r["step"] for r in result.rows if r["kind"] == "same run twice" and r["step"] > 0)
    losses = [r["loss_a"] for r in sorted(result.rows, key=lambda r: r["step"])
              if r["kind"] == "same run twice" and r["step"] > 0]
    data = load_dataset("digits", train_size=100, test_size=50)
    sizes = [min(32, len(data.x_train) - 32 * i) for i in range(len(steps))]
    backend = backends.load("torch")
    backend.configure(device="cpu", threads=1, deterministic=True)
    spec = dataclasses.replace(grid.runs()[0], pairing="cross-backend")
    outcome = execute(spec, backend, data)
    assert outcome.status == "completed", outcome.error
    assert steps == [1, 2, 3] and result.steps == 3
    expected = outcome.history["train_objective"][0]
    assert sum(loss * n for loss, n in zip(losses, sizes)) / sum(sizes) == pytest.approx(expected, rel=1e-12)

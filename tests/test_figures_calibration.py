"""Tests for ablate.analysis.figures.calibration: the figures render and leave matplotlib's state alone."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")
pytest.importorskip("seaborn")

from ablate.analysis import calibration as cal  # noqa: E402
from ablate.errors import InputError  # noqa: E402
from ablate.analysis.figures.calibration import reliability_diagrams, temperature_effect  # noqa: E402

_BACKEND_KEYS = {"backend", "backend_fallback"}  # set by _style's matplotlib.use("Agg")


def _rc_snapshot() -> dict:
    return {k: str(v) for k, v in matplotlib.rcParams.items() if k not in _BACKEND_KEYS}


def _arm_probs(seed: int, t0: float, n: int = 600, k: int = 5):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random((n, 1)) > np.cumsum(true, axis=1)).sum(axis=1), k - 1)
    scaled = np.exp(t0 * z)
    return scaled / scaled.sum(axis=1, keepdims=True), labels


@pytest.fixture
def close_figures():
    import matplotlib.pyplot as plt

    figures = []
    yield figures
    for fig in figures:
        plt.close(fig)


def test_reliability_diagrams_render_png(tmp_path, close_figures):
    # given in reverse order: the panels still come out as none, explicit, loss
    data = {
        arm: cal.reliability_bins(*_arm_probs(i, t0), n_bins=10)
        for i, (arm, t0) in enumerate([("loss", 0.8), ("explicit", 1.0), ("none", 2.0)])
    }
    before = _rc_snapshot()
    fig = reliability_diagrams(data, title="reliability")
    close_figures.append(fig)
    assert _rc_snapshot() == before

    path = tmp_path / "reliability.png"
    fig.savefig(path, dpi=60)
    assert path.exists() and path.stat().st_size > 10_000
    assert len(fig.axes) == 6  # a diagram and a count histogram per arm
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split()[0] for t in titles] == ["none", "explicit", "loss"]


def test_reliability_diagrams_single_arm_with_empty_bins(tmp_path, close_figures):
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.6, 0.4]])
    data = {"none": cal.reliability_bins(probs, np.array([0, 1, 0]), n_bins=15)}
    fig = reliability_diagrams(data)
    close_figures.append(fig)
    fig.savefig(tmp_path / "one.png", dpi=50)
    assert (tmp_path / "one.png").stat().st_size > 5_000


def test_temperature_effect_render_png(tmp_path, close_figures):
    rows = []
    for arm, t0 in [("none", 2.0), ("explicit", 1.1), ("loss", 0.8)]:
        for backend in ("torch", "keras/jax"):
            for seed in range(3):
                probs, labels = _arm_probs(seed, t0, n=300)
                t = cal.fit_temperature(probs, labels)
                rows.append(
                    {"arm": arm, "backend": backend, "ece": cal.ece(probs, labels),
                     "ece_ts": cal.ece(cal.apply_temperature(probs, t), labels)}
                )
    before = _rc_snapshot()
    fig = temperature_effect(pd.DataFrame(rows))
    close_figures.append(fig)
    assert _rc_snapshot() == before
    path = tmp_path / "temperature.png"
    fig.savefig(path, dpi=60)
    assert path.exists() and path.stat().st_size > 10_000


def test_temperature_effect_draws_on_given_axes(close_figures):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    close_figures.append(fig)
    table = pd.DataFrame(
        {"arm": ["none", "loss"], "backend": ["torch", "torch"], "ece": [0.1, 0.05], "ece_ts": [0.03, 0.04]}
    )
    assert temperature_effect(table, ax=ax) is fig
    assert ax.get_ylabel() == "test ECE"


def test_figure_inputs_are_checked():
    with pytest.raises(InputError, match="`data_by_arm`"):
        reliability_diagrams({})
    with pytest.raises(InputError, match=r"`data_by_arm\['none'\]` to be a ReliabilityData"):
        reliability_diagrams({"none": {"count": [1]}})
    with pytest.raises(InputError, match="column 'ece_ts' is missing"):
        temperature_effect(pd.DataFrame({"arm": ["none"], "backend": ["torch"], "ece": [0.1]}))

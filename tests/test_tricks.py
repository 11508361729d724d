"""The trick contract: any training trick as an arm, paired over seeds, on every execution path.

Pairing holds (a trick's own generator shifts nothing else), the device and pack paths apply
mixup and cutmix bit for bit as the host does, the built-ins conform (prob 0 is `none`, focal
at γ = 0 is cross-entropy, torch and Keras agree from shared weights), a user's NaN loss is a
diverged run, and each broken part is refused in one line before any run.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ablate import tricks
from ablate.config import AugmentSpec, DatasetSpec, RunSpec, TrainConfig
from ablate.data.catalogue import load_dataset
from ablate.errors import ConfigError
from ablate.execution.runner import execute, one_hot, run_trick
from tests.conftest import REPO
from tests.helpers import run_cli
from tests.plugins import user_env, write_trick_package


# torch_backend and keras_backend: conftest.py.


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=200, test_size=60, val_fraction=0.2)


def _spec(arm, *, method=None, params=None, model="small-cnn", backend="torch", epochs=2, augment=None, seed=4,
          trick=None, origin=None):
    method = method or arm
    defaults = {k: p.default for k, p in tricks.get(method).params.items()} if trick is None else {}
    return RunSpec(backend=backend, dataset=DatasetSpec("digits"), model=model, arm=arm, smoothing=0.0, seed=seed,
                   repeat=0, train=TrainConfig(epochs=epochs, batch_size=32, lr=0.05, augment=augment,
                                               monitor_size=50),
                   method=method, params={**defaults, **(params or {})}, trick=trick, origin=origin)


def _same_outcome(a, b):
    assert a.status == b.status == "completed", (a.error, b.error)
    for key in ("train_objective", "val_nll", "val_accuracy", "train_nll"):
        assert a.history[key] == b.history[key], key
    for key, arr in a.arrays.items():
        np.testing.assert_array_equal(b.arrays[key], arr, err_msg=key)


# ------------------------------------------------------------------ the draws, host and device

def test_the_tricks_generator_is_its_own():
    a = tricks.trick_rng(3, "mixup").random(4)
    np.testing.assert_array_equal(a, tricks.trick_rng(3, "mixup").random(4))
    assert not np.array_equal(a, tricks.trick_rng(3, "cutmix").random(4))
    assert not np.array_equal(a, tricks.trick_rng(4, "mixup").random(4))
    # Never the run's own stream (default_rng(seed) draws batch order and augmentation).
    assert not np.array_equal(a, np.random.default_rng(3).random(4))


@pytest.mark.parametrize("name,shape", [("mixup", (6, 8, 8, 3)), ("mixup", (6, 5)), ("cutmix", (6, 8, 10, 1)),
                                        ("cutmix", (5, 32, 32, 3))])
@pytest.mark.parametrize("prob", [1.0, 0.0])
def test_device_mixing_equals_numpy_bit_for_bit(name, shape, prob):
    import torch

    from ablate.backends.torch_device import apply_mix

    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    t = one_hot(rng.integers(0, 4, shape[0]), 4)
    trick = tricks.get(name)
    hw = shape[1:3] if len(shape) == 4 else None
    draw = trick.draw(np.random.default_rng(5), shape[0], hw, **{**{k: p.default for k, p in trick.params.items()},
                                                                 "prob": prob})
    xh, th = tricks.apply_mix(x, t, draw)
    xt = torch.from_numpy(x)
    xt = xt.permute(0, 3, 1, 2).contiguous() if xt.ndim == 4 else xt
    xd, td = apply_mix(xt, torch.from_numpy(t), draw)
    xd = xd.permute(0, 2, 3, 1) if xd.ndim == 4 else xd
    np.testing.assert_array_equal(xd.numpy(), xh)
    np.testing.assert_array_equal(td.numpy(), th)
    assert xh.dtype == th.dtype == np.float32
    if prob == 0.0:
        np.testing.assert_array_equal(xh, x)
    else:
        assert not np.array_equal(xh, x)
        np.testing.assert_allclose(th.sum(1), 1.0, atol=1e-6)
    # The host batch part is the same draw, then the same application.
    params = {**{k: p.default for k, p in trick.params.items()}, "prob": prob}
    xb, tb = tricks.mixup_batch(x, t, np.random.default_rng(5), **params) if name == "mixup" else \
        tricks.cutmix_batch(x, t, np.random.default_rng(5), **params)
    np.testing.assert_array_equal(xb, xh)
    np.testing.assert_array_equal(tb, th)


def test_cutmix_weights_targets_by_the_pasted_area():
    x = np.zeros((2, 10, 10, 1), np.float32)
    x[1] = 1.0
    t = one_hot(np.array([0, 1]), 2)
    draw = tricks.MixDraw(perm=np.array([1, 0]), lam=np.float32(1 - 12 / 100), box=(2, 5, 3, 7), apply=True)
    xm, tm = tricks.apply_mix(x, t, draw)
    assert xm[0].sum() == 12 and xm[1].sum() == 100 - 12
    np.testing.assert_allclose(tm[0], [0.88, 0.12], atol=1e-6)
    d = tricks.draw_cutmix(np.random.default_rng(0), 4, (10, 10), alpha=1.0)
    y0, y1, x0, x1 = d.box
    assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 10
    assert d.lam == np.float32(1 - (y1 - y0) * (x1 - x0) / 100)


@pytest.mark.parametrize("arm,augment", [("mixup", AugmentSpec()), ("cutmix", AugmentSpec()), ("focal", None),
                                         ("mixup", None)])
def test_device_run_is_bitwise_the_host_run(torch_backend, digits, monkeypatch, arm, augment):
    from ablate.backends import torch as torch_module

    spec = _spec(arm, augment=augment)
    on_device = execute(spec, torch_backend, digits)
    # Without the device-data capability declared, the runner trains on host batches.
    monkeypatch.setattr(torch_module.TorchTrainer, "capabilities", frozenset())
    on_host = execute(spec, torch_backend, digits)
    _same_outcome(on_device, on_host)


@pytest.mark.parametrize("arm", ["mixup", "cutmix", "focal"])
def test_a_pack_member_trains_as_its_unpacked_run(torch_backend, digits, arm):
    from ablate.execution.pack_runner import execute_pack

    specs = [_spec(arm, seed=s, epochs=2) for s in (0, 1, 2)]
    packed = execute_pack(specs, torch_backend, digits)
    for spec, member in zip(specs, packed):
        alone = execute(spec, torch_backend, digits)
        assert member.status == alone.status == "completed"
        # vmap sums in another order than the unpacked step: float rounding, not a different run.
        np.testing.assert_allclose(member.history["train_objective"], alone.history["train_objective"], rtol=1e-4)
        np.testing.assert_allclose(member.arrays["test_probs"], alone.arrays["test_probs"], atol=2e-3)


def test_packs_group_a_trick_with_its_own_params_only():
    from ablate.execution.packs import pack_key, packable, plan_packs

    specs = [_spec("none", model="mlp", seed=0), _spec("mix", method="mixup", model="mlp", seed=0),
             _spec("mix2", method="mixup", params={"alpha": 0.4}, model="mlp", seed=0),
             _spec("explicit", model="mlp", seed=0)]
    assert pack_key(specs[0]) == pack_key(specs[3]) != pack_key(specs[1]) != pack_key(specs[2])
    assert all(packable(s) for s in specs)
    user = _spec("mine", trick=_user_trick(batch="mytricks:mixup"), model="mlp", method="mine")
    assert not packable(user)
    assert [len(p) for p in plan_packs(specs + [user], 8)] == [2, 1, 1, 1]


# ------------------------------------------------------------------------ pairing and conformance

def test_prob_zero_is_bitwise_none(torch_backend, digits):
    none = execute(_spec("none", augment=AugmentSpec()), torch_backend, digits)
    for arm in ("mixup", "cutmix"):
        # The trick's generator is still drawn from, but that touches no other stream.
        _same_outcome(none, execute(_spec(arm, params={"prob": 0.0}, augment=AugmentSpec()), torch_backend, digits))


def test_prob_zero_is_bitwise_none_in_keras(keras_backend, digits):
    none = execute(_spec("none", model="mlp", backend=keras_backend.name, epochs=1), keras_backend, digits)
    mix = execute(_spec("mixup", params={"prob": 0.0}, model="mlp", backend=keras_backend.name, epochs=1),
                  keras_backend, digits)
    _same_outcome(none, mix)


@pytest.mark.parametrize("which", ["torch", "keras"])
def test_focal_at_gamma_zero_is_cross_entropy(torch_backend, keras_backend, digits, which):
    from ablate.execution.runner import trainer_options

    backend = torch_backend if which == "torch" else keras_backend
    x, hard = digits.x_train[:64], one_hot(digits.y_train[:64], 10)
    soft = 0.7 * hard + 0.03  # soft targets too: the focal weight multiplies every class's term
    for targets in (hard, soft.astype(np.float32)):
        focal = _spec("focal", params={"gamma": 0.0}, model="mlp", backend=backend.name)
        plain = _spec("none", model="mlp", backend=backend.name)
        g_focal = backend.create_trainer(**trainer_options(focal, digits)).gradients(x, targets)
        g_plain = backend.create_trainer(**trainer_options(plain, digits)).gradients(x, targets)
        for a, b in zip(g_focal, g_plain):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # and at gamma = 2 it is another loss, so the check above can fail
    g2 = backend.create_trainer(**trainer_options(_spec("focal", model="mlp", backend=backend.name), digits))
    assert max(np.abs(a - b).max() for a, b in zip(g2.gradients(x, hard), g_plain)) > 1e-4


@pytest.mark.parametrize("arm", sorted(tricks.TRICKS.names()))
def test_first_step_gradients_agree_across_backends(torch_backend, keras_backend, digits, arm):
    """Under pairing: cross-backend, every built-in trick's first step is the same in torch and Keras."""
    from ablate.backends import weights
    from ablate.execution.runner import batch_step, run_targets, trainer_options

    shape = (8, 8, 1)
    images = digits.x_train.reshape(-1, *shape)[:32] if digits.x_train.ndim == 2 else digits.x_train[:32]
    eps = 0.1 if tricks.get(arm).uses_smoothing else 0.0
    grads = {}
    for backend in (torch_backend, keras_backend):
        spec = RunSpec(backend=backend.name, dataset=DatasetSpec("digits"), model="mlp", arm=arm, smoothing=eps,
                       seed=2, repeat=0, train=TrainConfig(epochs=1, batch_size=32, lr=0.01), method=arm,
                       params={k: p.default for k, p in tricks.get(arm).params.items()}, pairing="cross-backend")
        options = dict(trainer_options(spec, digits), initial_weights=weights.draw("mlp", shape, 10, 2))
        trainer = backend.create_trainer(**options)
        rng = tricks.trick_rng(spec.seed, arm)
        targets = run_targets(spec, digits.y_train[:32], 10, rng)
        x = images
        step = batch_step(spec, run_trick(spec))
        if step is not None:
            x, targets = step(x, targets, rng)
        grads[backend.name] = dict(trainer.shared_gradients(x, targets))
    gt, gk = grads.values()
    assert set(gt) == set(gk) and gt
    for name in gt:
        scale = max(1.0, float(np.abs(gk[name]).max()))
        np.testing.assert_allclose(gt[name], gk[name], rtol=0, atol=1e-4 * scale, err_msg=name)


# ----------------------------------------------------------------------- through the sweep

def _user_trick(**parts):
    from ablate.config import TrickSpec

    return TrickSpec(name="mine", **parts)


def _grid(folder: Path, arms: str, *, backends_="[torch]", tricks_="", study="t", extra="") -> Path:
    text = textwrap.dedent(f"""\
        study: {study}
        datasets: [{{name: digits, train_size: 300, test_size: 100}}]
        models: [mlp]
        backends: {backends_}
        seeds: 2
        train: {{epochs: 2, batch_size: 32, lr: 0.05, monitor_size: 64}}
        """) + tricks_ + arms + extra
    path = folder / "grid.yaml"
    path.write_text(text)
    return path


def _records(results: Path, study: str) -> dict[tuple[str, int], dict]:
    out = {}
    for path in (results / study / "runs").glob("*/record.json"):
        rec = json.loads(path.read_text())
        arrays = path.parent / "arrays.npz"
        out[(rec["config"]["arm"], rec["config"]["seed"])] = {
            "record": rec, "arrays": dict(np.load(arrays)) if arrays.exists() else {}}
    return out


def test_the_none_arm_is_bitwise_the_same_with_or_without_a_mixup_arm(tmp_path):
    import ablate

    alone = _grid(tmp_path, "arms: {none: {}}\n", study="alone")
    ablate.run(alone, results=tmp_path / "r1", workers=1, log=open(os.devnull, "w"))
    with_mix = _grid(tmp_path, "arms: {none: {}, mix: {method: mixup, params: {alpha: 0.4}}}\n", study="alone")
    ablate.run(with_mix, results=tmp_path / "r2", workers=1, log=open(os.devnull, "w"))
    a, b = _records(tmp_path / "r1", "alone"), _records(tmp_path / "r2", "alone")
    assert set(a) == {("none", 0), ("none", 1)} and set(b) == set(a) | {("mix", 0), ("mix", 1)}
    for key in a:
        assert a[key]["record"]["run_id"] == b[key]["record"]["run_id"]
        for name in ("train_objective", "val_nll", "val_accuracy", "train_nll"):
            assert a[key]["record"]["history"][name] == b[key]["record"]["history"][name], name
        np.testing.assert_array_equal(a[key]["arrays"]["test_probs"], b[key]["arrays"]["test_probs"])
    # and mixup does change the run, so the check above can fail
    assert b[("mix", 0)]["record"]["history"]["train_objective"] != b[("none", 0)]["record"]["history"]["train_objective"]


def test_a_user_loss_that_returns_nan_is_a_diverged_run_and_the_sweep_goes_on(tmp_path):
    import ablate

    write_trick_package(tmp_path)
    grid = _grid(tmp_path, "arms: {none: {}, bad: {method: nanny}}\n",
                 tricks_="tricks: {nanny: {torch_loss: 'mytricks:nan_torch'}}\n", study="nan")
    ablate.run(grid, results=tmp_path / "r", workers=1, log=open(os.devnull, "w"))
    records = _records(tmp_path / "r", "nan")
    assert {k: v["record"]["status"] for k, v in records.items()} == {
        ("none", 0): "completed", ("none", 1): "completed", ("bad", 0): "diverged", ("bad", 1): "diverged"}
    assert "non-finite" in records[("bad", 0)]["record"]["error"]


def test_a_user_batch_part_runs_on_the_host_path_and_says_so(tmp_path):
    import ablate

    write_trick_package(tmp_path)
    grid = _grid(tmp_path, "arms: {mix: {method: mymix}}\n",
                 tricks_="tricks: {mymix: {batch: 'mytricks:mixup', params: {alpha: 0.4}}}\n", study="host")
    ablate.run(grid, results=tmp_path / "r", workers=1, log=open(os.devnull, "w"))
    records = _records(tmp_path / "r", "host")
    assert {v["record"]["status"] for v in records.values()} == {"completed"}
    rec = records[("mix", 0)]["record"]
    assert rec["config"]["params"] == {"alpha": 0.4}
    assert rec["config"]["trick"]["batch"] == "mytricks:mixup"
    from ablate.execution.store import RunStore

    log = RunStore(tmp_path / "r", "host").log_path(rec["run_id"]).read_text()
    assert "numpy batch part" in log and "host path" in log


# ------------------------------------------------------------------------------- preflight

BAD = [
    ("tricks: {t: {batch: 'nosuchmodule:mix'}}\n", "arms: {a: {method: t}}\n",
     "`arms.a`: trick 't', part `batch` (numpy): 'nosuchmodule:mix': no module named 'nosuchmodule'"),
    ("tricks: {t: {batch: 'mytricks:drops_a_row'}}\n", "arms: {a: {method: t}}\n",
     "`arms.a`: trick 't', part `batch` (numpy): changed the batch size: 8 rows in"),
    ("tricks: {t: {targets: 'mytricks:float64_targets'}}\n", "arms: {a: {method: t}}\n",
     "`arms.a`: trick 't', part `targets` (numpy): expected targets float32 (8, 10), but got float64 (8, 10)"),
    ("tricks: {t: {torch_loss: 'mytricks:per_example_torch'}}\n", "arms: {a: {method: t}}\n",
     "`arms.a`: trick 't', part `torch_loss` (torch): expected a scalar (the batch mean), but got shape (8,)"),
    ("tricks: {t: {torch_loss: 'mytricks:focal_torch'}}\n", "arms: {a: {method: t}}\n",
     "`arms.a`: trick 't' has no `keras_loss` part (only torch_loss), but backend 'keras/tensorflow' is in the grid"),
    ("", "arms: {a: {method: mixup, params: {alpha: -1}}}\n",
     "`arms.a.params.alpha`: trick 'mixup' expects alpha > 0, but got -1"),
    ("", "arms: {a: {method: mixup, params: {beta: 1}}}\n",
     "`arms.a.params.beta`: unknown param of trick 'mixup'; its params: alpha, prob"),
    ("", "arms: {a: {method: explicit, params: {eps: 0.1}}}\n",
     "`arms.a.params.eps`: unknown param of trick 'explicit'; its params: none"),
    ("tricks: {t: {batch: 'mytricks:mixup', params: {alpha: {default: 0.4, low: 0, high: 1}}}}\n",
     "arms: {a: {method: t, params: {alpha: 2}}}\n", "`arms.a.params.alpha`: trick 't' expects alpha in [0, 1]"),
    ("tricks: {mixup: {batch: 'mytricks:mixup'}}\n", "arms: {a: {method: mixup}}\n",
     "`tricks.mixup`: 'mixup' is a built-in trick"),
    ("tricks: {t: {params: {a: 1}}}\n", "arms: {a: {method: t}}\n", "`tricks.t`: expected at least one part"),
]


@pytest.mark.parametrize("tricks_,arms,expected", BAD)
def test_broken_tricks_are_refused_in_one_line_before_any_run(tmp_path, tricks_, arms, expected):
    import ablate

    write_trick_package(tmp_path)
    keras = "keras_loss" in expected
    grid = _grid(tmp_path, arms, tricks_=tricks_, backends_="[torch, keras]" if keras else "[torch]", study="bad")
    with pytest.raises(ConfigError) as info:
        ablate.run(grid, results=tmp_path / "r", workers=1, log=open(os.devnull, "w"))
    message = str(info.value)
    assert "\n" not in message
    assert expected in message, message
    assert not (tmp_path / "r").exists()  # nothing written


def test_cutmix_on_feature_vectors_is_refused(tmp_path):
    import ablate

    grid = tmp_path / "grid.yaml"
    grid.write_text(textwrap.dedent("""\
        study: cm
        datasets: [{name: breast, loader: 'mydata:load'}]
        models: [mlp]
        backends: [torch]
        arms: {a: {method: cutmix}}
        seeds: 2
    """))
    (tmp_path / "mydata.py").write_text(textwrap.dedent("""\
        import numpy as np
        def load():
            rng = np.random.default_rng(0)
            x = rng.normal(size=(120, 5)).astype(np.float32)
            y = np.arange(120) % 2
            return x[:100], y[:100], x[100:], y[100:]
    """))
    with pytest.raises(ConfigError, match=r"`arms.a`: trick 'cutmix' needs images, but `datasets\[0\]`"):
        ablate.run(grid, results=tmp_path / "r", workers=1, log=open(os.devnull, "w"))


# ------------------------------------------------------------------ a user's package, both backends

def _ablate(*args, env=None):
    return run_cli(*args, env=env or user_env(), timeout=900)


USER_GRID = """\
study: mytricks
datasets: [{name: digits, train_size: 400, test_size: 200}]
models: [mlp]
backends: [torch, keras]
tricks:
  mymix: {batch: "mytricks:mixup", params: {alpha: 0.4}}
  myfocal: {torch_loss: "mytricks:focal_torch", keras_loss: "mytricks:focal_keras", params: {gamma: 2.0}}
arms:
  none: {}
  mix: {method: mymix}
  focal: {method: myfocal, params: {gamma: 1.0}}
  builtin-mixup: {method: mixup, params: {alpha: 0.2}}
seeds: 2
train: {epochs: 2, batch_size: 32, lr: 0.05, monitor_size: 64}
analysis: {margins: {accuracy: 0.05, ece: 0.05, nll: 0.1}}
"""


@pytest.mark.slow
def test_a_user_trick_package_runs_in_both_backends_and_report_compares_its_arms(tmp_path):
    folder = write_trick_package(tmp_path / "project")
    (folder / "grid.yaml").write_text(USER_GRID)
    results = tmp_path / "results"
    run = _ablate("run", folder / "grid.yaml", "--results", results, "--workers", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    statuses = [json.loads(p.read_text())["status"] for p in (results / "mytricks" / "runs").glob("*/record.json")]
    assert len(statuses) == 16 and set(statuses) == {"completed"}
    report = _ablate("report", "--results", results, "--study", "mytricks", "--no-figures")
    assert report.returncode == 0, report.stderr[-3000:]
    import pandas as pd

    comparisons = pd.read_csv(results / "mytricks" / "comparisons.csv")
    pairs = {frozenset(p) for p in comparisons[["arm_a", "arm_b"]].drop_duplicates().itertuples(index=False)}
    assert {frozenset(p) for p in (("none", "mix"), ("none", "focal"), ("mix", "builtin-mixup"))} <= pairs
    assert set(comparisons["backend"].astype(str)) >= {"torch", "keras/tensorflow"}
    runs = pd.read_csv(results / "mytricks" / "runs.csv")
    assert set(runs.loc[runs.arm == "focal", "params"]) == {"gamma = 1"}
    assert set(runs.loc[runs.arm == "mix", "trick"]) == {"batch mytricks:mixup"}
    text = (results / "mytricks" / "report.md").read_text()
    assert "user trick `mymix` (batch mytricks:mixup); alpha = 0.4" in text
    assert "`builtin-mixup` = trick `mixup`: mixup" in text
    assert "`focal` trains with params.gamma = 1" in text  # the per-arm settings list the trick's params
    assert "These are its trick's params" in text


def test_an_installed_package_registers_a_trick_through_entry_points(tmp_path):
    site = tmp_path / "site"
    (site / "tplug").mkdir(parents=True)
    (site / "tplug" / "__init__.py").write_text(textwrap.dedent('''
        import numpy as np

        def flip_targets(targets, rng, share=0.1):
            out = targets.copy()
            flip = rng.random(len(out)) < share
            out[flip] = out[flip][:, ::-1]
            return out

        TRICK = {"targets": "tplug:flip_targets", "params": {"share": {"default": 0.1, "low": 0, "high": 1}},
                 "description": "label noise: a share of targets reversed"}
    '''))
    dist = site / "tplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ablate.tricks]\nnoisy = tplug:TRICK\n")
    env = dict(user_env(), PYTHONPATH=str(site))
    listing = _ablate("plugins", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "noisy" in listing.stdout and "label noise" in listing.stdout
    grid = _grid(tmp_path, "arms: {none: {}, noisy: {params: {share: 0.3}}}\n", study="ep")
    run = _ablate("run", grid, "--results", tmp_path / "r", "--workers", "1", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    records = _records(tmp_path / "r", "ep")
    assert {v["record"]["status"] for v in records.values()} == {"completed"} and len(records) == 4
    assert records[("noisy", 0)]["record"]["config"]["params"] == {"share": 0.3}
    bad = _grid(tmp_path, "arms: {noisy: {params: {share: 3}}}\n", study="ep2")
    refused = _ablate("run", bad, "--results", tmp_path / "r2", env=env)
    assert refused.returncode == 2 and "expects share in [0, 1], but got 3" in refused.stderr


def test_grids_of_smoothing_arms_keep_their_run_ids():
    """Fields added with tricks stay out of the identity of a run that does not use them."""
    spec = RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm="explicit", smoothing=0.1,
                   seed=0, repeat=0, train=TrainConfig())
    assert "params" not in spec.identity() and "trick" not in spec.identity()
    mixed = _spec("mix", method="mixup", model="mlp")
    assert mixed.identity()["params"] == {"alpha": 0.2, "prob": 1.0}
    assert mixed.run_id != _spec("mix", method="mixup", params={"alpha": 0.3}, model="mlp").run_id
    assert RunSpec.from_dict(mixed.to_dict()) == mixed
    user = _spec("mine", method="mine", trick=_user_trick(batch="m:f"), model="mlp")
    assert RunSpec.from_dict(user.to_dict()).run_id == user.run_id


def _readme_blocks(section: str) -> dict[str, str]:
    """The fenced code blocks of one README section, by language (the first of each)."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"### {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks: dict[str, str] = {}
    for chunk in body.split("```")[1::2]:
        lang, _, code = chunk.partition("\n")
        blocks.setdefault(lang.strip(), code)
    return blocks


def test_the_readme_trick_example_runs_as_written(tmp_path):
    """README "Bring your own trick": its mytricks.py and its grid, unedited, pass preflight and train."""
    import yaml

    import ablate

    blocks = _readme_blocks("Bring your own trick")
    (tmp_path / "mytricks.py").write_text(blocks["python"])
    grid = yaml.safe_load(blocks["yaml"])
    assert set(grid["arms"]) == {"none", "mix", "strong-mix", "focal"}
    grid["train"] = {"epochs": 1}  # the only change: one epoch, to keep the test short
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    summary = ablate.run(str(path), results=tmp_path / "r", workers=1, seeds="0", only="backend=torch",
                         log=open(os.devnull, "w")).sweep
    assert summary.completed == 4 and not summary.failed
    records = _records(tmp_path / "r", "mine")
    assert records[("strong-mix", 0)]["record"]["config"]["params"] == {"alpha": 1.0}
    assert records[("focal", 0)]["record"]["config"]["params"] == {"gamma": 2.0}


def test_the_reference_arm_is_plain_cross_entropy_not_every_unsmoothed_trick():
    """mixup and focal leave the labels unsmoothed, yet only the `none` trick is the reference arm."""
    import pandas as pd

    from ablate.analysis import compare, prose

    rng = np.random.default_rng(3)
    rows = []
    for seed in range(8):
        base = 0.80 + rng.normal(0, 0.002)
        for arm, eps, gain in (("none", 0.0, 0.0), ("mixup", 0.0, 0.03), ("focal", 0.0, 0.02), ("explicit", 0.1, 0.0)):
            rows.append(dict(backend="torch", dataset="d", model="m", arm=arm, method=arm, smoothing=eps, seed=seed,
                             accuracy=base + gain + rng.normal(0, 0.001)))
    table = compare.compare_runs(pd.DataFrame(rows), margins={"accuracy": 0.005})
    text = prose.markdown(table)
    assert "no arm without smoothing" not in text
    assert "both beat no smoothing by" in text  # mixup and focal, each against the reference
    # without a method column (a table made elsewhere) every unsmoothed arm is a reference, as before
    plain = prose.markdown(compare.compare_runs(pd.DataFrame(rows).drop(columns="method"),
                                                margins={"accuracy": 0.005}))
    assert "both beat no smoothing by" not in plain

"""Packs: K runs trained as one vectorised model behave, member by member, as the runs alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Packs are a PyTorch feature: without torch the whole file is skipped, not an error at collection.
torch = pytest.importorskip("torch", reason="packs train with PyTorch, which is not installed")

from ablate import backends  # noqa: E402
from ablate.analysis.stats import tost_paired  # noqa: E402
from ablate.backends.torch_pack import create_pack  # noqa: E402
from ablate.config import DEFAULT_MARGINS, AugmentSpec, DatasetSpec, RunSpec, TrainConfig  # noqa: E402
from ablate.data.augment import apply_augmentation, draw_augmentation  # noqa: E402
from ablate.data.catalogue import Dataset, load_dataset  # noqa: E402
from ablate.errors import ConfigError  # noqa: E402
from ablate.execution import packs  # noqa: E402
from ablate.execution.pack_runner import execute_pack, member_targets  # noqa: E402
from ablate.execution.packs import auto_pack_size, parse_pack, plan_packs  # noqa: E402
from ablate.execution.runner import bound_loss, execute, loss_smoothing, run_targets, run_trick, trainer_options  # noqa: E402
from ablate.tricks import trick_rng  # noqa: E402
from tests.conftest import REPO  # noqa: E402

ARMS = (("none", 0.0), ("explicit", 0.1), ("loss", 0.1))


@pytest.fixture(scope="module")
def torch_backend():
    b = backends.load("torch")
    b.configure(device="cpu", threads=1, deterministic=True)
    return b


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=240, test_size=120, val_fraction=0.2)


@pytest.fixture(scope="module")
def images():
    """Well-conditioned 16x16x3 noise images: batch norm deep in a small-input net amplifies rounding
    on digits' near-constant pixels, which would hide what these tests look at."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=160)
    return Dataset(name="noise", x_train=x[:128], y_train=y[:128], x_val=x[128:], y_val=y[128:], x_test=x[128:],
                   y_test=y[128:], num_classes=10, class_names=tuple("abcdefghij"))


def _train(**kw):
    base = dict(epochs=2, batch_size=32, lr=0.05, monitor_size=60)
    base.update(kw)
    return TrainConfig(**base)


def _spec(arm, eps, seed, model="mlp", backend="torch", **kw):
    return RunSpec(backend=backend, dataset=DatasetSpec("digits"), model=model, arm=arm, smoothing=eps, seed=seed,
                   repeat=0, train=_train(**kw))


def _pack(backend, data, specs):
    rngs = [trick_rng(s.seed, run_trick(s).name) for s in specs]
    return create_pack(backend, member_options=[trainer_options(s, data) for s in specs],
                       seeds=[s.seed for s in specs], x_train=data.x_train,
                       targets=member_targets(specs, data, rngs), loss_fn=bound_loss(specs[0]))


# -- planning ---------------------------------------------------------------------------------
def test_plan_keeps_the_arms_of_a_seed_together():
    specs = [_spec(a, e, s) for s in range(5) for a, e in ARMS]
    planned = plan_packs(specs, 7)
    assert [len(p) for p in planned] == [6, 6, 3]
    for p in planned:
        for seed in {s.seed for s in p}:
            assert sum(s.seed == seed for s in p) == 3
    assert [s for p in planned for s in p] == specs


def test_plan_splits_by_key_and_leaves_keras_alone():
    specs = [_spec("none", 0.0, 0), _spec("none", 0.0, 0, model="small-cnn"), _spec("none", 0.0, 1),
             _spec("none", 0.0, 0, backend="keras"), _spec("none", 0.0, 1, backend="keras")]
    planned = plan_packs(specs, 4)
    assert sorted(len(p) for p in planned) == [1, 1, 1, 2]
    assert all(len(p) == 1 for p in planned if p[0].backend == "keras")
    assert plan_packs(specs, 1) == [[s] for s in specs]


def test_an_oversized_seed_unit_is_split():
    specs = [_spec("loss", e, 0) for e in (0.05, 0.1, 0.2, 0.3, 0.4)]
    assert [len(p) for p in plan_packs(specs, 2)] == [2, 2, 1]


def test_parse_pack_and_auto_size():
    assert parse_pack(None) == 1 and parse_pack("3") == 3 and parse_pack("AUTO") == "auto"
    for bad in ("0", "-2", "many"):
        with pytest.raises(ConfigError, match="^pack: expected a positive integer"):
            parse_pack(bad)


def test_auto_size_is_what_the_free_memory_holds():
    mib = 2**20
    assert auto_pack_size(free_bytes=None, member_bytes=mib) == 1  # no device figure: unpacked
    # 60% of 1000 MiB, less 100 MiB of images, is 500 MiB: five members of 100 MiB
    assert auto_pack_size(free_bytes=1000 * mib, member_bytes=100 * mib, shared_bytes=100 * mib) == 5
    assert auto_pack_size(free_bytes=1000 * mib, member_bytes=2000 * mib) == 1  # never less than one
    assert auto_pack_size(free_bytes=80 * 2**30, member_bytes=mib) == packs.AUTO_MAX


@pytest.mark.parametrize("model", ["fastai-cnn", "minigooglenet"])
def test_member_bytes_measures_without_touching_the_model(torch_backend, model):
    from ablate.backends.torch_pack import member_bytes

    train = _train(batch_size=8)
    trainer = torch_backend.create_trainer(model=model, input_shape=(32, 32, 3), num_classes=10, train=train,
                                           loss_smoothing=0.0, seed=0)
    before = [b.clone() for b in trainer.model.buffers()]
    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype(np.float32)
    small, large = (member_bytes(trainer, x[:b], num_train=100, num_classes=10) for b in (8, 16))
    weights = sum(p.numel() * 4 for p in trainer.model.parameters())
    assert small > 4 * weights and large > small  # activations grow with the batch
    assert large - small == pytest.approx(small - 4 * weights - 4 * 100 * 10, rel=0.05)  # ... in proportion
    assert all(p.grad is None for p in trainer.model.parameters())
    for a, b in zip(before, trainer.model.buffers()):  # batch-norm statistics put back
        assert torch.equal(a, b)


PEAK_SCRIPT = """
import sys, numpy as np
from ablate import backends
from ablate.backends.torch_pack import create_pack, member_bytes  # noqa: E402
from ablate.config import TrainConfig  # noqa: E402
model, batch, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 256
backend = backends.load("torch"); backend.configure(device="cpu", threads=1)
rng = np.random.default_rng(0)
x = rng.normal(size=(n, 32, 32, 3)).astype(np.float32)
options = dict(model=model, input_shape=(32, 32, 3), num_classes=10, loss_smoothing=0.0,
               train=TrainConfig(epochs=1, batch_size=batch, lr=0.01))
need = member_bytes(backend.create_trainer(seed=0, **options), x[:batch], num_train=n, num_classes=10)
targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=(k, n))]
pack = create_pack(backend, member_options=[dict(options, seed=s) for s in range(k)], seeds=list(range(k)),
                   x_train=x, targets=targets)
def status(key):  # this process's own memory, in bytes (ru_maxrss would carry the parent's peak over fork+exec)
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1]) * 1024
try:
    open("/proc/self/clear_refs", "w").write("5")  # peak := current
except OSError:
    pass
before = status("VmRSS")
assert status("VmHWM") - before < 32 * 2**20, "an earlier peak would hide the step's"
pack.step(np.stack([rng.permutation(n)[:batch] for _ in range(k)]), None, 0.01)
print(k * need, status("VmHWM") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory from /proc")
@pytest.mark.parametrize("model,batch,k", [("minigooglenet", 8, 8), ("fastai-cnn", 64, 4)])
def test_member_bytes_bound_a_real_packs_peak_memory(model, batch, k):
    """On the CPU the allocator hands big blocks straight back to the OS, so the process's peak resident
    memory during a pack's first step is what the step really needed: K x member_bytes must cover it
    (that is what `--pack auto` budgets) without overstating it more than 3x (or packs come out small)."""
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, model, str(batch), str(k)], capture_output=True,
                         text=True, cwd=REPO, check=True)
    estimate, used = map(int, out.stdout.split())
    assert used <= estimate <= 3 * used, (estimate, used)


# -- one step ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model,data", [("mlp", "digits"), ("small-cnn", "digits"), ("fastai-cnn", "images")])
def test_first_step_loss_and_gradients_match_unpacked(torch_backend, request, model, data):
    digits = request.getfixturevalue(data)
    h, w = digits.x_train.shape[1:3]
    specs = [_spec(a, e, s, model=model) for s in (0, 1) for a, e in ARMS]
    pack = _pack(torch_backend, digits, specs)
    idx = np.stack([np.random.default_rng(s.seed).permutation(len(digits.x_train))[:32] for s in specs])
    draws = [draw_augmentation(32, h, w, np.random.default_rng(100 + i)) for i in range(len(specs))]
    losses, grads = pack.losses_and_gradients(idx, draws)
    for m, spec in enumerate(specs):
        alone = torch_backend.create_trainer(model=model, input_shape=digits.input_shape, num_classes=10,
                                             train=spec.train, loss_smoothing=loss_smoothing(spec), seed=spec.seed)
        np.testing.assert_array_equal(pack.weights(m)[0], alone.weights()[0])  # its seed's initial weights
        xb = apply_augmentation(digits.x_train[idx[m]], draws[m])
        tb = run_targets(spec, digits.y_train, 10)[idx[m]]
        want = alone.gradients(xb, tb)
        assert losses[m] == pytest.approx(float(alone._objective(xb, tb).detach()), abs=1e-5)
        for g_pack, g_alone in zip(grads, want):
            np.testing.assert_allclose(g_pack[m], g_alone, rtol=0, atol=1e-5)


def test_batch_norm_statistics_stay_per_member(torch_backend, images):
    digits = images
    specs = [_spec("none", 0.0, s, model="fastai-cnn") for s in (0, 1, 2)]
    pack = _pack(torch_backend, digits, specs)
    alone = [torch_backend.create_trainer(model="fastai-cnn", input_shape=digits.input_shape, num_classes=10,
                                          train=s.train, loss_smoothing=0.0, seed=s.seed) for s in specs]
    rng = np.random.default_rng(5)
    targets = run_targets(specs[0], digits.y_train, 10)
    for _ in range(3):
        idx = np.stack([rng.permutation(len(digits.x_train))[:32] for _ in specs])
        pack.step(idx, None, 0.05)
        for m, tr in enumerate(alone):
            tr.train_step(digits.x_train[idx[m]], targets[idx[m]], 0.05)
    for m, tr in enumerate(alone):
        mine = dict(zip(pack.buffers, pack.buffers_of(m)))
        for name, buf in tr.model.named_buffers():
            np.testing.assert_allclose(mine[name], buf.numpy(), rtol=0, atol=1e-5, err_msg=name)
        for w_pack, w_alone in zip(pack.weights(m), tr.weights()):
            np.testing.assert_allclose(w_pack, w_alone, rtol=0, atol=1e-5)
    probs = pack.predict(digits.x_val)
    for m, tr in enumerate(alone):
        np.testing.assert_allclose(probs[m], tr.predict(digits.x_val), atol=1e-4)


# -- whole runs -------------------------------------------------------------------------------
def _strip(outcome):
    return outcome.status, outcome.history | {"seconds": None}, outcome.metrics


def test_same_pack_twice_is_bitwise_identical(torch_backend, digits):
    specs = [_spec(a, e, 3, model="small-cnn", augment=AugmentSpec()) for a, e in ARMS]
    first = execute_pack(specs, torch_backend, digits)
    second = execute_pack(specs, torch_backend, digits)
    assert [o.status for o in first] == ["completed"] * 3
    for a, b in zip(first, second):
        assert _strip(a) == _strip(b)
        for key in a.arrays:
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])


def test_explicit_and_loss_members_of_a_seed_stay_identical(torch_backend, digits):
    specs = [_spec("explicit", 0.1, 2), _spec("loss", 0.1, 2)]
    explicit, loss = execute_pack(specs, torch_backend, digits)
    np.testing.assert_allclose(explicit.arrays["test_probs"], loss.arrays["test_probs"], atol=1e-5)
    np.testing.assert_allclose(explicit.history["val_nll"], loss.history["val_nll"], atol=1e-5)


def test_a_diverged_member_is_masked_and_the_others_go_on(torch_backend, digits, monkeypatch):
    specs = [_spec(a, e, 1) for a, e in ARMS]
    clean = execute_pack(specs, torch_backend, digits)

    def poisoned(*args, **kw):
        pack = create_pack(*args, **kw)
        for p in pack.params.values():
            p.data[1] = float("nan")
        return pack

    monkeypatch.setattr("ablate.backends.torch_pack.create_pack", poisoned)
    hurt = execute_pack(specs, torch_backend, digits)
    assert hurt[1].status == "diverged" and "in epoch 1" in hurt[1].error and not hurt[1].arrays
    for m in (0, 2):
        assert _strip(hurt[m]) == _strip(clean[m])
        np.testing.assert_array_equal(hurt[m].arrays["test_probs"], clean[m].arrays["test_probs"])


def test_a_crashing_pack_fails_every_member(torch_backend, digits):
    outcomes = execute_pack([_spec("none", 0.0, 0), _spec("none", 0.0, 0, model="small-cnn")], torch_backend,
                            digits)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "share backend, dataset, model" in outcomes[0].error


def test_packed_and_unpacked_grids_are_equivalent_per_arm(torch_backend, digits):
    seeds = range(6)
    specs = [_spec(a, e, s, epochs=3) for s in seeds for a, e in ARMS]
    unpacked = [execute(s, torch_backend, digits) for s in specs]
    packed = [o for p in plan_packs(specs, 6) for o in execute_pack(p, torch_backend, digits)]
    for arm, _ in ARMS:
        rows = [i for i, s in enumerate(specs) if s.arm == arm]
        for metric in ("accuracy", "ece"):
            a = np.array([packed[i].metrics[metric] for i in rows])
            b = np.array([unpacked[i].metrics[metric] for i in rows])
            # Packs differ from single runs by float rounding only, far inside the study's margins.
            assert np.max(np.abs(a - b)) < DEFAULT_MARGINS[metric]
            if np.any(a != b):
                assert tost_paired(a, b, DEFAULT_MARGINS[metric]).equivalent, (arm, metric)


@pytest.mark.gpu
def test_pack_auto_size_fits_the_gpu():
    """On a GPU: a pack of the size `--pack auto` picks for the notebook's setting takes a step and
    stays inside the free memory it was sized to."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    from ablate.execution.pack_runner import fit_pack_size

    backend = backends.load("torch")
    backend.configure(device="cuda", threads=None, deterministic=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=4096)
    data = Dataset(name="noise", x_train=x, y_train=y, x_val=x[:256], y_val=y[:256], x_test=x[:256],
                   y_test=y[:256], num_classes=10, class_names=tuple("abcdefghij"))
    specs = [_spec("loss", 0.1, s, model="minigooglenet", batch_size=8) for s in range(packs.AUTO_MAX)]
    free = backend.free_device_memory()
    size = fit_pack_size(specs, backend, data)
    assert 1 <= size <= packs.AUTO_MAX
    torch.cuda.reset_peak_memory_stats()
    pack = _pack(backend, data, specs[:size])
    pack.step(np.stack([rng.permutation(len(x))[:8] for _ in range(size)]), None, 0.01)
    assert np.all(np.isfinite(pack.take_totals()))
    assert torch.cuda.max_memory_allocated() < free

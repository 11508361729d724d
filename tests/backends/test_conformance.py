"""One conformance suite, run over every installed backend: interface, arm semantics, pairing,
determinism. A backend that is not installed is skipped with the reason."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from ablate import backends
from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.data.catalogue import load_dataset
from ablate.execution.runner import execute, one_hot, smooth_labels, smoothed_cross_entropy
from ablate.backends.base import Backend, Trainer

# Keras' engine is fixed per process, so one pytest process covers one Keras engine;
# test_keras_engines.py runs this same file again for the other engines.
BACKENDS = os.environ.get("ABLATE_TEST_BACKENDS", "torch,keras/tensorflow").split(",")


def _installed(name):
    try:
        backends.check_installed(name)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    name = request.param
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    b = backends.load(name)
    b.configure(device="cpu", threads=1, deterministic=True)
    return b


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300, test_size=120, val_fraction=0.2)


def _train(lr=0.05, epochs=2, **kw):
    return TrainConfig(epochs=epochs, batch_size=32, lr=lr, momentum=0.9, schedule="polynomial",
                       monitor_size=100, **kw)


def _trainer(backend, digits, *, seed=0, loss_smoothing=0.0, model="mlp"):
    return backend.create_trainer(model=model, input_shape=digits.input_shape, num_classes=digits.num_classes,
                                  train=_train(), loss_smoothing=loss_smoothing, seed=seed)


def test_interface(backend, digits):
    assert isinstance(backend, Backend)
    trainer = _trainer(backend, digits)
    assert isinstance(trainer, Trainer)
    probs = trainer.predict(digits.x_test)
    assert probs.shape == (len(digits.x_test), 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    loss = trainer.train_step(digits.x_train[:32], one_hot(digits.y_train[:32], 10), 0.05)
    assert isinstance(loss, float) and np.isfinite(loss)
    env = backend.environment()
    assert env["device"] == "cpu" and env["framework"] in ("torch", "keras")
    assert backend.count_parameters(model="mlp", input_shape=(8, 8, 1), num_classes=10) == \
        sum(w.size for w in trainer.weights())


def test_same_seed_same_initial_weights(backend, digits):
    a, b, c = (_trainer(backend, digits, seed=s, loss_smoothing=e) for s, e in ((3, 0.0), (3, 0.1), (4, 0.0)))
    for wa, wb in zip(a.weights(), b.weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.weights(), c.weights()))


def test_explicit_and_loss_first_step_gradients_agree(backend, digits):
    """y*(1-eps)+eps/K as targets with plain CE == hard labels with the framework's smoothed CE."""
    x, hard = digits.x_train[:64], one_hot(digits.y_train[:64], 10)
    eps = 0.1
    explicit = _trainer(backend, digits, seed=1).gradients(x, smooth_labels(hard, eps))
    loss = _trainer(backend, digits, seed=1, loss_smoothing=eps).gradients(x, hard)
    none = _trainer(backend, digits, seed=1).gradients(x, hard)
    assert len(explicit) == len(loss) > 0
    for g_explicit, g_loss in zip(explicit, loss):
        np.testing.assert_allclose(g_explicit, g_loss, rtol=0, atol=1e-6)
    # and smoothing does change the gradient, so the check above can fail
    assert max(np.abs(a - b).max() for a, b in zip(explicit, none)) > 1e-4


def test_loss_objective_is_the_smoothed_cross_entropy(backend, digits):
    """The `loss` arm's objective equals (1-eps)*NLL + eps*mean(-log p) computed from probabilities."""
    x, y = digits.x_train[:32], digits.y_train[:32]
    trainer = _trainer(backend, digits, seed=2, loss_smoothing=0.2)
    expected = smoothed_cross_entropy(trainer.predict(x), y, 0.2)
    # mlp has no dropout or batch norm, so training-mode and inference-mode outputs agree
    assert trainer.train_step(x, one_hot(y, 10), 0.0) == pytest.approx(expected, rel=1e-5)


def _spec(backend, arm="loss", eps=0.1, seed=0):
    return RunSpec(backend=backend.name, dataset=DatasetSpec("digits"), model="mlp", arm=arm, smoothing=eps,
                   seed=seed, repeat=0, train=_train())


def test_same_seed_and_arm_give_identical_histories(backend, digits):
    first = execute(_spec(backend), backend, digits)
    second = execute(_spec(backend), backend, digits)
    assert first.status == second.status == "completed", (first.error, second.error)
    for key, values in first.history.items():
        if key != "seconds":
            assert values == second.history[key], key
    np.testing.assert_array_equal(first.arrays["test_probs"], second.arrays["test_probs"])


def test_run_outputs_and_learning(backend, digits):
    outcome = execute(_spec(backend, "explicit", 0.1), backend, digits)
    assert outcome.status == "completed", outcome.error
    assert outcome.arrays["test_probs"].shape == (len(digits.y_test), 10)
    assert outcome.arrays["val_probs"].shape == (len(digits.y_val), 10)
    # two epochs on digits are enough to beat chance by far
    assert outcome.metrics["accuracy"] > 0.5
    assert outcome.history["val_nll"][-1] < np.log(10)


def test_huge_learning_rate_diverges(backend, digits):
    spec = RunSpec(backend=backend.name, dataset=DatasetSpec("digits"), model="mlp", arm="none", smoothing=0.0,
                   seed=0, repeat=0, train=_train(lr=1e9, epochs=3))
    outcome = execute(spec, backend, digits)
    assert outcome.status == "diverged", (outcome.status, outcome.error)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_uses_the_gpu_when_present():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    b = backends.load("torch")
    b.configure(device="cuda", threads=None, deterministic=True)
    assert b.environment()["device"] == "cuda:0"

"""One conformance suite, run over every registered backend and every registered model (and a
user's model from a folder): interface, arm semantics, pairing, determinism. A backend that is
not installed, or a Keras engine other than this process's, is skipped with the reason."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import numpy as np
import pytest

from ablate import backends
from ablate.backends.models import MODELS
from ablate.config import DatasetSpec, RunSpec, TrainConfig
from ablate.data.catalogue import Dataset, load_dataset
from ablate.execution.runner import execute, one_hot, smooth_labels, smoothed_cross_entropy
from ablate.backends.base import CAPABILITIES, DEVICE_DATA, PACKS, SHARED_WEIGHTS, Backend, Trainer
from tests.plugins import write_user_package

# Every registered backend. Keras' engine is fixed per process, so one pytest process covers one
# Keras engine; test_keras_engines.py runs this same file again for each other engine, naming it
# in ABLATE_TEST_BACKENDS.
_CHOSEN = os.environ.get("ABLATE_TEST_BACKENDS")
BACKENDS = _CHOSEN.split(",") if _CHOSEN else list(backends.BACKENDS.names())
# Every registered model, built-ins first, plus a user's model from a folder outside the package:
# both go through the same registry path, so both must pass the same suite.
MODEL_NAMES = list(MODELS.names())


def _installed(name):
    try:
        backends.check_installed(name)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    name = request.param
    engine = backends.engine(name)
    if engine is not None and not _CHOSEN and engine != os.environ.get("KERAS_BACKEND"):
        pytest.skip(f"{name}: Keras' engine is {os.environ.get('KERAS_BACKEND')} in this process; "
                    "test_keras_engines.py runs this suite on it in its own process")
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    b = backends.load(name)
    b.configure(device="cpu", threads=1, deterministic=True)
    return b


@pytest.fixture(scope="module")
def _digits():
    return load_dataset("digits", train_size=300, test_size=120, val_fraction=0.2)


def _needs_large_images(name: str) -> bool:
    return (MODELS.get(name).min_pixels or 0) > 8


# A model that needs images larger than digits' 8x8 trains on them repeated up to its size; in Keras
# that is minutes of tracing, so those models are marked slow.
@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.slow) if _needs_large_images(n) else n
                                        for n in MODEL_NAMES] + ["user:tiny"])
def model(request, tmp_path_factory):
    if request.param != "user:tiny":
        return {"model": request.param, "min_pixels": MODELS.get(request.param).min_pixels,
                "frameworks": tuple(MODELS.get(request.param).factories)}
    folder = write_user_package(tmp_path_factory.mktemp("userpkg"))
    return {"model": "tiny", "factory": None, "search_paths": (str(folder),), "_user": True,
            "frameworks": ("torch", "keras")}


@pytest.fixture(scope="module")
def digits(_digits, model):
    """Digits at the smallest size the model takes: 8x8, or each pixel repeated up to its minimum
    (then fewer examples, so that the runs a test trains stay cheap)."""
    times = math.ceil((model.get("min_pixels") or 0) / 8) or 1
    if times == 1:
        return _digits
    keep_train, keep_test = slice(0, 96), slice(0, 48)

    def grow(x):
        return np.ascontiguousarray(np.repeat(np.repeat(x, times, axis=1), times, axis=2))

    d = _digits
    return Dataset(d.name, grow(d.x_train[keep_train]), d.y_train[keep_train], grow(d.x_val[keep_test]),
                   d.y_val[keep_test], grow(d.x_test[keep_test]), d.y_test[keep_test], d.num_classes, d.class_names)


@pytest.fixture(autouse=True)
def _framework_of(request):
    """A model without a factory for this backend's framework is skipped, with the reason."""
    if "backend" in request.fixturenames and "model" in request.fixturenames:
        b, m = request.getfixturevalue("backend"), request.getfixturevalue("model")
        framework = "keras" if b.name.startswith("keras") else "torch"
        if framework not in m["frameworks"]:
            pytest.skip(f"model {m['model']!r} has no {framework} factory")


def _factory(model, backend):
    if not model.get("_user"):
        return {"model": model["model"]}
    framework = "keras" if backend.name.startswith("keras") else "torch"
    return {"model": "tiny", "factory": f"mymodels:tiny_{framework}", "search_paths": model["search_paths"]}


def _train(lr=0.05, epochs=2, **kw):
    return TrainConfig(epochs=epochs, batch_size=32, lr=lr, momentum=0.9, schedule="polynomial",
                       monitor_size=100, **kw)


def _trainer(backend, digits, model, *, seed=0, loss_smoothing=0.0, soft_targets=False):
    return backend.create_trainer(**_factory(model, backend), input_shape=digits.input_shape,
                                  num_classes=digits.num_classes, train=_train(), loss_smoothing=loss_smoothing,
                                  seed=seed, soft_targets=soft_targets)


# The optional parts of the contract and the methods each one obliges a class to implement.
_CAPABILITY_METHODS = {DEVICE_DATA: ("bind_data",), SHARED_WEIGHTS: ("shared_weights", "shared_gradients"),
                       PACKS: ("create_pack", "pack_member_bytes")}


def test_interface(backend, digits, model):
    assert isinstance(backend, Backend)
    trainer = _trainer(backend, digits, model)
    assert isinstance(trainer, Trainer)
    assert set(_CAPABILITY_METHODS) == set(CAPABILITIES)
    # A declared capability is implemented (overridden), and one not declared is not claimed.
    for obj, base in ((trainer, Trainer), (backend, Backend)):
        assert obj.capabilities <= set(CAPABILITIES)
        for capability in obj.capabilities:
            assert obj.supports(capability)
            for method in _CAPABILITY_METHODS[capability]:
                assert getattr(type(obj), method) is not getattr(base, method, None), (capability, method)
    # The registry entry says the same, so the driver plans packs without importing the framework.
    from ablate.backends import BACKENDS

    assert BACKENDS.get(backend.name).packs == backend.supports(PACKS)
    probs = trainer.predict(digits.x_test)
    assert probs.shape == (len(digits.x_test), 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    loss = trainer.train_step(digits.x_train[:32], one_hot(digits.y_train[:32], 10), 0.05)
    assert isinstance(loss, float) and np.isfinite(loss)
    env = backend.environment()
    assert env["device"] == "cpu" and env["framework"] in ("torch", "keras")
    assert backend.count_parameters(**_factory(model, backend), input_shape=digits.input_shape,
                                    num_classes=10) == sum(w.size for w in trainer.weights())


def test_same_seed_same_initial_weights(backend, digits, model):
    a, b, c = (_trainer(backend, digits, model, seed=s, loss_smoothing=e) for s, e in ((3, 0.0), (3, 0.1), (4, 0.0)))
    for wa, wb in zip(a.weights(), b.weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.weights(), c.weights()))


def _atol(gradients) -> float:
    """float32 rounding, which grows with depth: 1e-6 for up to 6 weight tensors (mlp's three
    layers), in proportion beyond (about 1.6e-5 for MiniGoogLeNet's ~100)."""
    return 1e-6 * max(1.0, len(gradients) / 6)


def test_explicit_and_loss_first_step_gradients_agree(backend, digits, model):
    """y*(1-eps)+eps/K as targets with plain CE == hard labels with the framework's smoothed CE."""
    x, hard = digits.x_train[:64], one_hot(digits.y_train[:64], 10)
    eps = 0.1
    explicit = _trainer(backend, digits, model, seed=1).gradients(x, smooth_labels(hard, eps))
    loss = _trainer(backend, digits, model, seed=1, loss_smoothing=eps).gradients(x, hard)
    none = _trainer(backend, digits, model, seed=1).gradients(x, hard)
    assert len(explicit) == len(loss) > 0
    for g_explicit, g_loss in zip(explicit, loss):
        np.testing.assert_allclose(g_explicit, g_loss, rtol=0, atol=_atol(loss))
    # and smoothing does change the gradient, so the check above can fail
    assert max(np.abs(a - b).max() for a, b in zip(explicit, none)) > 1e-4


def test_both_is_explicit_at_the_compounded_eps(backend, digits, model):
    """Smoothed targets through the smoothed loss (the notebook's loss section as run) train like
    explicit smoothing at 1-(1-eps)^2: 0.19 for eps = 0.1."""
    x, hard = digits.x_train[:64], one_hot(digits.y_train[:64], 10)
    eps = 0.1
    both = _trainer(backend, digits, model, seed=1, loss_smoothing=eps, soft_targets=True).gradients(
        x, smooth_labels(hard, eps))
    compounded = _trainer(backend, digits, model, seed=1).gradients(x, smooth_labels(hard, 1 - (1 - eps) ** 2))
    single = _trainer(backend, digits, model, seed=1).gradients(x, smooth_labels(hard, eps))
    for g_both, g_compounded in zip(both, compounded):
        np.testing.assert_allclose(g_both, g_compounded, rtol=0, atol=_atol(compounded))
    assert max(np.abs(a - b).max() for a, b in zip(both, single)) > 1e-5


def test_loss_objective_is_the_smoothed_cross_entropy(backend, digits, model):
    """The `loss` arm's objective equals (1-eps)*NLL + eps*mean(-log p) computed from probabilities."""
    x, y = digits.x_train[:32], digits.y_train[:32]
    plain = _trainer(backend, digits, model, seed=2)
    if plain.train_step(x, one_hot(y, 10), 0.0) != pytest.approx(smoothed_cross_entropy(plain.predict(x), y, 0.0),
                                                                  rel=1e-5):
        # Checked on the model itself: with batch norm or dropout, training-mode outputs are not predict()'s.
        pytest.skip(f"{model['model']}: training-mode outputs differ from predict() (batch norm or dropout)")
    trainer = _trainer(backend, digits, model, seed=2, loss_smoothing=0.2)
    expected = smoothed_cross_entropy(trainer.predict(x), y, 0.2)
    assert trainer.train_step(x, one_hot(y, 10), 0.0) == pytest.approx(expected, rel=1e-5)


def _spec(backend, model, arm="loss", eps=0.1, seed=0, method="", lr=0.05, epochs=2):
    built = _factory(model, backend)
    origin = built["search_paths"][0] if built.get("search_paths") else None
    return RunSpec(backend=backend.name, dataset=DatasetSpec("digits"), model=built["model"], arm=arm,
                   smoothing=eps, seed=seed, repeat=0, train=_train(lr=lr, epochs=epochs), method=method,
                   model_factory=built.get("factory"), origin=origin)


def test_same_seed_and_arm_give_identical_histories(backend, digits, model):
    first = execute(_spec(backend, model), backend, digits)
    second = execute(_spec(backend, model), backend, digits)
    assert first.status == second.status == "completed", (first.error, second.error)
    for key, values in first.history.items():
        if key != "seconds":
            assert values == second.history[key], key
    np.testing.assert_array_equal(first.arrays["test_probs"], second.arrays["test_probs"])


def test_explicit_and_loss_runs_are_identical(backend, digits, model):
    # lr 0.01: training that converges keeps the two arms' rounding gap small. At 0.05 fastai-cnn on
    # Keras' torch engine does not learn (objective 2.037 -> 2.036) and the 3e-5 gap after one epoch
    # grows to 0.5 in the probabilities after two; at 0.01 they agree within 4e-7.
    # A model on repeated-up digits trains one epoch here: MiniGoogLeNet's two epochs on Keras'
    # torch engine end 2e-4 apart (rounding through 78 weight tensors, batch norm and dropout).
    epochs = 1 if not model.get("_user") and _needs_large_images(model["model"]) else 2
    explicit = execute(_spec(backend, model, "explicit", 0.1, lr=0.01, epochs=epochs), backend, digits)
    loss = execute(_spec(backend, model, "loss", 0.1, lr=0.01, epochs=epochs), backend, digits)
    assert explicit.status == loss.status == "completed", (explicit.error, loss.error)
    atol = 1e-5 * max(1.0, len(_trainer(backend, digits, model).weights()) / 6)  # 1e-5, more for deep models
    np.testing.assert_allclose(explicit.arrays["test_probs"], loss.arrays["test_probs"], rtol=0, atol=atol)


def test_run_outputs_and_learning(backend, digits, model):
    outcome = execute(_spec(backend, model, "explicit", 0.1), backend, digits)
    assert outcome.status == "completed", outcome.error
    assert outcome.arrays["test_probs"].shape == (len(digits.y_test), 10)
    assert outcome.arrays["val_probs"].shape == (len(digits.y_val), 10)
    assert len(outcome.history["val_nll"]) == 2 and np.all(np.isfinite(outcome.history["val_nll"]))
    if not model.get("_user") and _needs_large_images(model["model"]):
        return  # 96 repeated-up digits for two epochs: too little to learn on; test_notebooks trains it for real
    # two epochs on digits are enough to beat chance (0.1) by far
    assert outcome.metrics["accuracy"] > 0.3
    assert outcome.history["val_nll"][-1] < np.log(10)


def test_huge_learning_rate_diverges(backend, digits, model):
    if model.get("_user"):
        # Whether lr 1e9 overflows depends on the architecture (dead ReLUs can keep a small net
        # finite); the runner's check is the same for every model and is shown on mlp.
        pytest.skip("divergence at lr 1e9 is architecture-dependent; checked on the built-in mlp")
    spec = dataclasses.replace(_spec(backend, model, "none", 0.0), train=_train(lr=1e9, epochs=3))
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

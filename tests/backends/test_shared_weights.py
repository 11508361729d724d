"""Shared initial weights (pairing: cross-backend): one numpy draw loaded into both frameworks.

With the same weights, PyTorch and Keras must compute the same first forward pass (to 1e-5)
and the same first-step gradients (to 1e-4), for every built-in model. Keras runs on the
engine conftest fixed for this process (TensorFlow unless ABLATE_TEST_BACKENDS says otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.backends import weights
from ablate.config import TrainConfig
from ablate.errors import BackendError
from ablate.execution.runner import one_hot

# Small inputs keep the four models fast on the CPU; minigooglenet needs at least 31x31.
CASES = [("mlp", (8, 8, 1)), ("small-cnn", (8, 8, 3)), ("minigooglenet", (32, 32, 3)),
         ("fastai-cnn", (16, 16, 3))]
K = 3
TRAIN = TrainConfig(epochs=1, batch_size=4, lr=0.01, momentum=0.9, schedule="constant")


# torch_backend and keras_backend: conftest.py.


def _batch(shape, n=4):
    rng = np.random.default_rng(7)
    return rng.standard_normal((n, *shape)).astype(np.float32), one_hot(rng.integers(0, K, n), K)


# ------------------------------------------------------------------- the numpy draw


def test_draw_is_deterministic_and_follows_the_initialisers():
    a = weights.draw("small-cnn", (28, 28, 1), 10, seed=3)
    b = weights.draw("small-cnn", (28, 28, 1), 10, seed=3)
    c = weights.draw("small-cnn", (28, 28, 1), 10, seed=4)
    assert [n for n, _ in a] == ["conv0.kernel", "conv0.bias", "conv1.kernel", "conv1.bias",
                                 "dense0.kernel", "dense0.bias", "dense1.kernel", "dense1.bias"]
    assert all(np.array_equal(x, y) and x.dtype == np.float32 for (_, x), (_, y) in zip(a, b))
    assert not np.array_equal(a[0][1], c[0][1])
    w = dict(a)
    assert w["conv1.kernel"].shape == (3, 3, 32, 64) and w["dense0.kernel"].shape == (64 * 7 * 7, 128)
    # glorot_uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), so variance l^2 / 3
    limit = math.sqrt(6 / (9 * 32 + 9 * 64))
    assert np.abs(w["conv1.kernel"]).max() <= limit
    assert w["conv1.kernel"].var() == pytest.approx(limit**2 / 3, rel=0.03)
    assert not w["conv1.bias"].any()


def test_fastai_draw_follows_torch():
    w = dict(weights.draw("fastai-cnn", (32, 32, 3), 10, seed=0))
    kernel = w["conv7.kernel"]  # 256 -> 512, fan_in 256 * 9
    assert kernel.shape == (3, 3, 256, 512) and "conv7.bias" not in w
    assert kernel.std() == pytest.approx(math.sqrt(2 / 1.01 / (256 * 9)), rel=0.01)
    assert np.array_equal(w["bn7.gamma"], np.ones(512)) and np.array_equal(w["bn7.var"], np.ones(512))
    bound = 1 / math.sqrt(512)
    assert np.abs(w["dense0.kernel"]).max() <= bound and np.abs(w["dense0.bias"]).max() <= bound
    assert w["dense0.bias"].any()  # torch's Linear draws its bias too


def test_unknown_model_and_relative_distance():
    with pytest.raises(BackendError, match="shared weight layout.*but got 'resnet'"):
        weights.draw("resnet", (8, 8, 1), 10, seed=0)
    a = weights.draw("mlp", (8, 8, 1), 10, seed=0)
    assert weights.relative_distance(a, list(reversed(a))) == 0.0
    b = [(n, w * 1.5) for n, w in a]
    assert weights.relative_distance(a, b) == pytest.approx(0.5, rel=1e-6)


# ------------------------------------------------------------- both frameworks agree


def _trainers(torch_backend, keras_backend, model, shape, seed=0):
    arrays = weights.draw(model, shape, K, seed)
    kw = dict(model=model, input_shape=shape, num_classes=K, train=TRAIN, loss_smoothing=0.0, seed=seed,
              initial_weights=arrays)
    return arrays, torch_backend.create_trainer(**kw), keras_backend.create_trainer(**kw)


@pytest.mark.parametrize("model,shape", CASES)
def test_same_first_forward_pass_and_gradients(torch_backend, keras_backend, model, shape):
    arrays, t, k = _trainers(torch_backend, keras_backend, model, shape)
    # Both hold exactly the drawn weights, batch-norm statistics included.
    for trainer in (t, k):
        held = dict(trainer.shared_weights())
        assert set(held) == {n for n, _ in arrays}
        for name, value in arrays:
            np.testing.assert_array_equal(held[name], value, err_msg=name)
    # 16 examples: fastai-cnn's last batch norms see 1x1 maps, and over fewer examples a
    # channel's batch variance can vanish, magnifying float rounding by 1/sqrt(eps).
    x, y = _batch(shape, n=4 if model == "minigooglenet" else 16)
    pt, pk = t.predict(x), k.predict(x)
    np.testing.assert_allclose(pt, pk, rtol=0, atol=1e-5)
    # Training-mode gradients, with batch statistics. Dropout (minigooglenet's) is the one
    # random layer and the frameworks draw different masks, so it is switched off here.
    _no_dropout(t.model, k.model)
    if model == "minigooglenet":
        # In float32 its early gradients are ill-conditioned (a conv followed by batch norm
        # sums terms that nearly cancel): measured against a float64 reference, the first
        # conv's gradient is off by 8e-4 of its scale in torch, 3e-6 in Keras/TensorFlow and
        # 7e-3 in Keras/torch. In float64 both frameworks agree to ~1e-7, so that is where
        # the layout is checked.
        gt, gk = _float64_gradients(keras_backend, arrays, shape, x, y)
    else:
        gt, gk = dict(t.shared_gradients(x, y)), dict(k.shared_gradients(x, y))
    assert set(gt) == set(gk) and gt
    for name in gt:
        scale = max(1.0, float(np.abs(gk[name]).max()))
        np.testing.assert_allclose(gt[name], gk[name], rtol=0, atol=1e-4 * scale, err_msg=name)


def _float64_gradients(keras_backend, arrays, shape, x, y):
    """Shared-layout gradients of minigooglenet in float64, from both frameworks."""
    import keras
    import torch

    from ablate.backends import keras as kb
    from ablate.backends import keras_models, torch_models
    from ablate.backends import torch as tb

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the float64 gradient check is wired for Keras on TensorFlow")
    x = x.astype(np.float64)  # Keras' trainer hands float32 inputs to the float64 model
    tm = torch_models.build_model("minigooglenet", shape, K)
    tb.load_shared_weights(tm, arrays)
    tm = tm.double().train()
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        km = keras_models.build_model("minigooglenet", shape, K)
    finally:
        keras.config.set_dtype_policy(policy)
    kb.load_shared_weights(km, arrays)
    _no_dropout(tm, km)
    logits = tm(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.astype(np.float64))).backward()
    gt = {n: tb._from_torch(kind, p.grad.numpy()) for n, p, kind in tb._shared_slots(tm) if p.grad is not None}
    gk = dict(kb.KerasTrainer(km, TRAIN, 0.0).shared_gradients(x, y))
    assert gk["conv0.kernel"].dtype == np.float64
    return gt, gk


def _no_dropout(torch_model, keras_model):
    import keras
    from torch import nn

    for m in torch_model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0


def test_different_weights_would_fail(torch_backend, keras_backend):
    """The agreement above is not vacuous: different seeds give different outputs."""
    _, t, _ = _trainers(torch_backend, keras_backend, "mlp", (8, 8, 1), seed=0)
    _, _, k = _trainers(torch_backend, keras_backend, "mlp", (8, 8, 1), seed=1)
    x, _ = _batch((8, 8, 1))
    assert np.abs(t.predict(x) - k.predict(x)).max() > 1e-3


@pytest.mark.parametrize("which", ["torch", "keras"])
def test_mismatched_layout_is_refused_in_one_line(torch_backend, keras_backend, which):
    backend = torch_backend if which == "torch" else keras_backend
    wrong_shape = weights.draw("mlp", (8, 8, 3), K, 0)  # built for 3 channels, model has 1
    with pytest.raises(BackendError, match=r"^shared weights: dense0.kernel has shape \(192, 256\)") as err:
        backend.create_trainer(model="mlp", input_shape=(8, 8, 1), num_classes=K, train=TRAIN,
                               loss_smoothing=0.0, seed=0, initial_weights=wrong_shape)
    assert "\n" not in str(err.value)
    wrong_model = weights.draw("small-cnn", (8, 8, 1), K, 0)
    with pytest.raises(BackendError, match="do not match the shared layout"):
        backend.create_trainer(model="mlp", input_shape=(8, 8, 1), num_classes=K, train=TRAIN,
                               loss_smoothing=0.0, seed=0, initial_weights=wrong_model)


# ------------------------------------------------------------- a user's model pair


def _user_models(hidden_keras=16):
    """A user's model written twice, conv -> BN -> ReLU -> pool -> dense, with hand-made names."""
    import keras
    from torch import nn

    from ablate.backends.torch_models import _FlattenHWC

    t = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-3), nn.ReLU(), nn.MaxPool2d(2),
                      _FlattenHWC(), nn.Linear(4 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, K))
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.MaxPooling2D(2)(keras.layers.Activation("relu")(x))
    x = keras.layers.Dense(hidden_keras, activation="relu", name="hidden")(keras.layers.Flatten()(x))
    return t, keras.Model(inputs, keras.layers.Dense(K, name="head")(x))


def test_a_user_model_pair_shares_weights_through_its_layout(torch_backend, keras_backend):
    import torch

    from ablate.backends import keras as kb
    from ablate.backends import torch as tb

    t, k = _user_models()
    layout = tb.shared_layout(t)
    weights.check_same_layout(layout, kb.shared_layout(k), model="mine")
    arrays = weights.draw_layout(layout, seed=0)
    assert [n for n, _ in arrays] == [n for n, _ in layout]
    tb.load_shared_weights(t, arrays)
    kb.load_shared_weights(k, arrays)
    x, _ = _batch((8, 8, 1))
    t.eval()
    with torch.no_grad():
        out_t = t(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    import keras

    out_k = keras.ops.convert_to_numpy(k(x, training=False))
    np.testing.assert_allclose(out_t, out_k, rtol=0, atol=1e-5)


def test_a_user_model_pair_that_differs_is_refused(torch_backend, keras_backend):
    from ablate.backends import keras as kb
    from ablate.backends import torch as tb

    t, k = _user_models(hidden_keras=32)
    with pytest.raises(BackendError, match=r"^pairing: cross-backend: model 'mine' builds different layers in "
                                           r"torch and keras, first layer dense0 \(dense0.kernel: \(64, 16\) vs \(64, 32\)\)"):
        weights.check_same_layout(tb.shared_layout(t), kb.shared_layout(k), model="mine")

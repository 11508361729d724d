"""The model zoo: the same architectures, parameter counts and seeding in torch and Keras.

Besides comparing counts, `test_same_function_after_weight_transfer` copies a Keras model's
weights into the torch model and checks both compute the same logits, which catches any
padding, pooling, flatten-order or batch-norm difference that counts cannot see.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ablate.errors import BackendError

NAMES = ("mlp", "small-cnn", "minigooglenet", "fastai-cnn")
CASES = [
    *[(name, shape) for name in ("mlp", "small-cnn") for shape in ((8, 8, 1), (28, 28, 1), (32, 32, 3))],
    ("minigooglenet", (32, 32, 3)),
    *[("fastai-cnn", shape) for shape in ((28, 28, 1), (32, 32, 3), (64, 64, 3))],
]
NUM_CLASSES = 10
UNKNOWN = "unknown model 'x'; known: mlp, small-cnn, minigooglenet, fastai-cnn"


@pytest.fixture(scope="module")
def torch_models():
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from ablate.backends import torch_models

    return torch_models


@pytest.fixture(scope="module")
def keras_models():
    pytest.importorskip("keras", reason="Keras 3 (with an engine) is not installed")
    from ablate.backends import keras_models

    return keras_models


def _batch(shape: tuple[int, int, int], n: int = 3) -> np.ndarray:
    """A channels-last (n, H, W, C) float32 batch."""
    return np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)


def _torch_logits(model, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


def _keras_logits(model, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("name,shape", CASES)
def test_trainable_counts_match(torch_models, keras_models, name, shape):
    import torch

    n_torch = torch_models.count_trainable(name, shape, NUM_CLASSES)
    n_keras = keras_models.count_trainable(name, shape, NUM_CLASSES)
    print(f"{name} {shape}: torch {n_torch:,}  keras {n_keras:,}")
    assert n_torch == n_keras
    # count_trainable (on the meta device) agrees with a model actually built.
    torch.manual_seed(0)
    built = torch_models.build_model(name, shape, NUM_CLASSES)
    assert n_torch == sum(p.numel() for p in built.parameters() if p.requires_grad)


@pytest.mark.parametrize("name,shape", CASES)
def test_torch_returns_logits(torch_models, name, shape):
    import torch

    torch.manual_seed(0)
    out = _torch_logits(torch_models.build_model(name, shape, NUM_CLASSES), _batch(shape))
    assert out.shape == (3, NUM_CLASSES) and out.dtype == np.float32
    assert np.isfinite(out).all() and (out < 0).any()  # unnormalised: no softmax applied


@pytest.mark.parametrize("name,shape", CASES)
def test_keras_returns_logits(keras_models, name, shape):
    import keras

    keras.utils.set_random_seed(0)
    out = _keras_logits(keras_models.build_model(name, shape, NUM_CLASSES), _batch(shape))
    assert out.shape == (3, NUM_CLASSES)
    assert np.isfinite(out).all() and (out < 0).any()


def _creation_order(layers):
    """Keras layers sorted by creation: auto names count up per class (conv2d, conv2d_1, ...).

    A functional model lists layers by graph depth, which interleaves inception branches.
    """
    def index(layer):
        m = re.search(r"_(\d+)$", layer.name)
        return int(m.group(1)) if m else 0

    return sorted(layers, key=index)


def _copy_keras_into_torch(kmodel, tmodel) -> None:
    """Copy every Keras weight into the matching torch tensor, pairing layers by kind and order."""
    import keras
    import torch
    from torch import nn

    pairs = [(keras.layers.Conv2D, nn.Conv2d), (keras.layers.BatchNormalization, nn.BatchNorm2d),
             (keras.layers.Dense, nn.Linear)]
    for kcls, tcls in pairs:
        klayers = _creation_order([layer for layer in kmodel.layers if isinstance(layer, kcls)])
        tlayers = [m for m in tmodel.modules() if isinstance(m, tcls)]
        assert len(klayers) == len(tlayers)
        for kl, tl in zip(klayers, tlayers):
            w = kl.get_weights()
            if tcls is nn.BatchNorm2d:
                targets = [tl.weight, tl.bias, tl.running_mean, tl.running_var]
            else:
                # (kh, kw, in, out) -> (out, in, kh, kw); Dense (in, out) -> (out, in).
                w[0] = w[0].transpose(3, 2, 0, 1) if tcls is nn.Conv2d else w[0].T
                targets = [tl.weight] + ([tl.bias] if tl.bias is not None else [])
            assert len(w) == len(targets)
            with torch.no_grad():
                for t, v in zip(targets, w):
                    assert tuple(t.shape) == v.shape
                    t.copy_(torch.from_numpy(np.ascontiguousarray(v)))


@pytest.mark.parametrize("name,shape", CASES)
def test_same_function_after_weight_transfer(torch_models, keras_models, name, shape):
    import keras
    import torch

    keras.utils.set_random_seed(1)
    kmodel = keras_models.build_model(name, shape, NUM_CLASSES)
    # Batch-norm statistics far from (0, 1), with small variances, so that a differing
    # epsilon or a misplaced normalisation changes the logits visibly.
    rng = np.random.default_rng(1)
    for layer in kmodel.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c),
                               rng.normal(0, 0.2, c), rng.uniform(0.02, 0.2, c)])
    torch.manual_seed(1)
    tmodel = torch_models.build_model(name, shape, NUM_CLASSES)
    _copy_keras_into_torch(kmodel, tmodel)

    x = _batch(shape)
    k, t = _keras_logits(kmodel, x), _torch_logits(tmodel, x)
    np.testing.assert_allclose(t, k, rtol=1e-4, atol=1e-4 * np.abs(k).max())


def _original_minigooglenet(width, height, depth, classes):
    """pyimagesearch's MiniGoogLeNet.build, in its original functional Keras style."""
    from keras.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense,
                              Dropout, Flatten, Input, MaxPooling2D, concatenate)
    from keras.models import Model

    def conv_module(x, K, kX, kY, stride, chanDim, padding="same"):
        # CONV => BN => RELU
        x = Conv2D(K, (kX, kY), strides=stride, padding=padding)(x)
        x = BatchNormalization(axis=chanDim)(x)
        x = Activation("relu")(x)
        return x

    def inception_module(x, numK1x1, numK3x3, chanDim):
        conv_1x1 = conv_module(x, numK1x1, 1, 1, (1, 1), chanDim)
        conv_3x3 = conv_module(x, numK3x3, 3, 3, (1, 1), chanDim)
        x = concatenate([conv_1x1, conv_3x3], axis=chanDim)
        return x

    def downsample_module(x, K, chanDim):
        conv_3x3 = conv_module(x, K, 3, 3, (2, 2), chanDim, padding="valid")
        pool = MaxPooling2D((3, 3), strides=(2, 2))(x)
        x = concatenate([conv_3x3, pool], axis=chanDim)
        return x

    inputShape = (height, width, depth)
    chanDim = -1
    inputs = Input(shape=inputShape)
    x = conv_module(inputs, 96, 3, 3, (1, 1), chanDim)
    x = inception_module(x, 32, 32, chanDim)
    x = inception_module(x, 32, 48, chanDim)
    x = downsample_module(x, 80, chanDim)
    x = inception_module(x, 112, 48, chanDim)
    x = inception_module(x, 96, 64, chanDim)
    x = inception_module(x, 80, 80, chanDim)
    x = inception_module(x, 48, 96, chanDim)
    x = downsample_module(x, 96, chanDim)
    x = inception_module(x, 176, 160, chanDim)
    x = inception_module(x, 176, 160, chanDim)
    x = AveragePooling2D((7, 7))(x)
    x = Dropout(0.5)(x)
    x = Flatten()(x)
    x = Dense(classes)(x)
    x = Activation("softmax")(x)
    return Model(inputs, x, name="googlenet")


def test_minigooglenet_matches_the_original(torch_models, keras_models):
    import keras

    original = _original_minigooglenet(32, 32, 3, 10)
    n_original = sum(int(np.prod(w.shape)) for w in original.trainable_weights)
    n_keras = keras_models.count_trainable("minigooglenet", (32, 32, 3), 10)
    n_torch = torch_models.count_trainable("minigooglenet", (32, 32, 3), 10)
    print(f"MiniGoogLeNet 32x32x3, 10 classes: original {n_original:,}, keras {n_keras:,}, torch {n_torch:,}")
    assert n_keras == n_torch == n_original
    mine = keras_models.build_model("minigooglenet", (32, 32, 3), 10)
    assert len(mine.weights) == len(original.weights)  # the BN moving statistics too
    # Same computation: with the original's weights, ours gives the logits under its softmax.
    mine.set_weights(original.get_weights())
    x = _batch((32, 32, 3))
    probs = keras.ops.convert_to_numpy(original(x, training=False))
    np.testing.assert_allclose(_softmax(_keras_logits(mine, x)), probs, rtol=1e-5, atol=1e-6)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", NAMES)
def test_torch_seed_fixes_initial_weights(torch_models, name):
    import torch

    def weights(seed, count_first=False):
        torch.manual_seed(seed)
        if count_first:  # counting must not consume the seeded generator
            torch_models.count_trainable(name, (32, 32, 3), NUM_CLASSES)
        model = torch_models.build_model(name, (32, 32, 3), NUM_CLASSES)
        return [v.clone() for v in model.state_dict().values()]

    a, b, c = weights(0), weights(0, count_first=True), weights(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("name", NAMES)
def test_keras_seed_fixes_initial_weights(keras_models, name):
    import keras

    def weights(seed, count_first=False):
        keras.utils.set_random_seed(seed)
        if count_first:
            keras_models.count_trainable(name, (32, 32, 3), NUM_CLASSES)
        return keras_models.build_model(name, (32, 32, 3), NUM_CLASSES).get_weights()

    a, b, c = weights(0), weights(0, count_first=True), weights(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_fastai_stem_follows_input_channels(torch_models):
    from torch import nn

    # prev_pow_2(9 * c_in): 16 for RGB, 8 for greyscale, as in the course's get_cnn_layers.
    for c, width in ((3, 16), (1, 8)):
        convs = [m for m in torch_models.build_model("fastai-cnn", (32, 32, c), 10).modules()
                 if isinstance(m, nn.Conv2d)]
        assert [m.out_channels for m in convs] == [width, 2 * width, 4 * width, 32, 64, 128, 256, 512]
        assert all(m.bias is None for m in convs)


@pytest.mark.parametrize("module", ["torch_models", "keras_models"])
def test_bad_requests_raise_backend_error(request, module):
    models = request.getfixturevalue(module)
    from ablate.backends.models import MODELS

    assert MODELS.names()[:4] == NAMES
    with pytest.raises(BackendError) as err:
        models.build_model("x", (32, 32, 3), 10)
    assert str(err.value) == UNKNOWN
    with pytest.raises(BackendError, match=re.escape(UNKNOWN)):
        models.count_trainable("x", (32, 32, 3), 10)
    # Two valid 3x3/2 downsamples leave 28x28 at 6x6, below the 7x7 average pool.
    with pytest.raises(BackendError, match="at least 31x31 pixels, but got 28x28"):  # noqa: SIM117
        models.build_model("minigooglenet", (28, 28, 1), 10)


def cuda_nondeterministic_ops(model, x) -> list[str]:
    """The autograd nodes of one training step of ``model`` on ``x`` (the CPU will do) that
    ``torch.use_deterministic_algorithms(True)`` refuses on CUDA, e.g. ``AdaptiveAvgPool2DBackward0``.

    The list is read from torch's own documentation of that function, so it follows the installed
    torch: every ``torch.nn`` class it says "will throw" matches the backward nodes named after it.
    The graph shows what really runs (``AdaptiveAvgPool2d(1)`` is computed as a mean, which is fine;
    a larger output size is not).
    """
    import torch

    doc = torch.use_deterministic_algorithms.__doc__ or ""
    throws = doc[doc.find("operations will throw a"):]
    refused = {n.lower() for n in re.findall(r"torch\.nn\.(\w+)` when attempting to differentiate a CUDA", throws)}
    assert "adaptiveavgpool2d" in refused  # the docs still read as this expects
    model.train()
    found, seen, todo = set(), set(), [model(x).grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if any(type(node).__name__.lower().startswith(r) for r in refused):
            found.add(type(node).__name__)
        todo.extend(fn for fn, _ in node.next_functions)
    return sorted(found)


@pytest.mark.parametrize("name,shape", [("mlp", (8, 8, 1)), ("small-cnn", (28, 28, 1)), ("minigooglenet", (32, 32, 3)),
                                        ("fastai-cnn", (32, 32, 3))])
def test_no_built_in_torch_model_needs_a_kernel_deterministic_mode_refuses_on_cuda(torch_models, name, shape):
    """Training on a GPU runs under use_deterministic_algorithms(True), where some backward passes
    (AdaptiveAvgPool2d's with an output larger than 1, for one) raise on every step. This walks each
    model's autograd graph on the CPU against the list in torch's own docs."""
    import torch

    model = torch_models.build_model(name, shape, NUM_CLASSES)
    x = torch.from_numpy(_batch(shape).transpose(0, 3, 1, 2).copy())
    assert cuda_nondeterministic_ops(model, x) == []


def test_the_cuda_determinism_check_finds_adaptive_pooling(torch_models):
    import torch
    from torch import nn

    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2))
    assert cuda_nondeterministic_ops(pooled, torch.zeros(2, 3, 8, 8)) == ["AdaptiveAvgPool2DBackward0"]
    # output size 1 is computed as a mean: nothing refused
    mean = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert cuda_nondeterministic_ops(mean, torch.zeros(2, 3, 8, 8)) == []

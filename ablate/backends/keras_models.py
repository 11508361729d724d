"""The model zoo in Keras 3: the same architectures as :mod:`backends.torch_models`.

Every model takes channels-last ``x: (B, H, W, C)`` float32 and returns logits
``(B, num_classes)`` from a final Dense without activation; the softmax belongs to the loss.
Only ``keras.layers`` are used, so the models run on any Keras engine. Weights are drawn
from Keras' seeded global state, so ``keras.utils.set_random_seed`` before
:func:`build_model` fixes them.

Both modules keep each layer's initialiser and batch-norm settings from the framework the
model was first written in (Keras for ``mlp``, ``small-cnn`` and ``minigooglenet``, PyTorch
for ``fastai-cnn``), so the two backends start from the same distributions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import keras
from keras import layers

from ablate.backends import models
from ablate.errors import BackendError


# torch's BatchNorm2d defaults in Keras terms (Keras' momentum is 1 - torch's), as the
# fast.ai course's conv_layer sets them. Keras' moving variance uses the biased batch
# variance where torch uses the unbiased one; no layer option changes that.
_FASTAI_BN = {"epsilon": 1e-5, "momentum": 0.9}
# torch.nn.init.kaiming_normal_(w, a=0.1): an untruncated normal with variance
# 2 / (1 + a^2) / fan_in. Keras' HeNormal is truncated, hence VarianceScaling.
_FASTAI_KAIMING_A = 0.1
_FASTAI_NFS = (32, 64, 128, 256, 512)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, factory: str | None = None,
                search_paths: Sequence[str] = ()) -> keras.Model:
    """Build model ``name`` for one example's ``input_shape`` (``(H, W, C)`` or ``(F,)``) and ``num_classes``.

    ``factory``: a user model's ``module:function`` (looked up in ``search_paths`` first); None
    builds the registered model. Raises BackendError for an unknown name, an input the model
    cannot take, or a factory that returns no keras model.
    """
    net = models.build(name, "keras", input_shape, num_classes, factory, search_paths)
    if not isinstance(net, keras.Model):
        raise BackendError(f"model {name!r}: the keras factory returned {type(net).__name__}, not a keras.Model")
    return net


def count_trainable(name: str, input_shape: tuple[int, ...], num_classes: int, factory: str | None = None,
                    search_paths: Sequence[str] = ()) -> int:
    """Number of trainable parameters of ``build_model(name, input_shape, num_classes, factory, search_paths)``."""
    # Unseeded Keras initialisers draw their seeds from Python's `random`; restoring its
    # state keeps counting from shifting the caller's seeded weights.
    state = random.getstate()
    try:
        model = build_model(name, input_shape, num_classes, factory, search_paths)
    finally:
        random.setstate(state)
    return sum(math.prod(w.shape) for w in model.trainable_weights)




def mlp(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="mlp")


def small_cnn(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="small_cnn")


# MiniGoogLeNet (pyimagesearch), as in the Keras notebook.

def _conv_module(x, filters: int, k: int, stride: int = 1, padding: str = "same"):
    x = layers.Conv2D(filters, k, strides=stride, padding=padding)(x)
    x = layers.BatchNormalization(axis=-1)(x)
    return layers.Activation("relu")(x)


def _inception(x, n1x1: int, n3x3: int):
    return layers.Concatenate(axis=-1)([_conv_module(x, n1x1, 1), _conv_module(x, n3x3, 3)])


def _downsample(x, n3x3: int):
    conv = _conv_module(x, n3x3, 3, stride=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2)(x)
    return layers.Concatenate(axis=-1)([conv, pool])


def minigooglenet(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    # Two valid 3x3/2 downsamples, then a valid 7x7 average pool: each side must reach 7, which is
    # the registry entry's min_pixels of 31 (models.build checks it before calling this).
    inputs = keras.Input(shape=input_shape)
    x = _conv_module(inputs, 96, 3)
    x = _inception(x, 32, 32)
    x = _inception(x, 32, 48)
    x = _downsample(x, 80)
    x = _inception(x, 112, 48)
    x = _inception(x, 96, 64)
    x = _inception(x, 80, 80)
    x = _inception(x, 48, 96)
    x = _downsample(x, 96)
    x = _inception(x, 176, 160)
    x = _inception(x, 176, 160)
    x = layers.AveragePooling2D(7)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="minigooglenet")


# fastai-cnn: the course's get_cnn_layers(data, nfs, conv_layer) and init_cnn.

def _fastai_conv_layer(x, filters: int, stride: int):
    """The course's conv_layer: conv without bias, then ReLU, then BatchNorm."""
    # torch pads 1 on every side; Keras' stride-2 "same" pads only bottom/right for even
    # sides, which would shift every window. Explicit padding + "valid" matches torch.
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="valid", use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=2.0 / (1.0 + _FASTAI_KAIMING_A**2), mode="fan_in", distribution="untruncated_normal"),
    )(x)
    x = layers.Activation("relu")(x)
    return layers.BatchNormalization(axis=-1, **_FASTAI_BN)(x)


def fastai_cnn(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    c = input_shape[2]
    l2 = 2 ** math.floor(math.log2(9 * c))  # the course's prev_pow_2(c_in * 3 * 3)
    inputs = keras.Input(shape=input_shape)
    x = _fastai_conv_layer(inputs, l2, 1)
    x = _fastai_conv_layer(x, 2 * l2, 2)
    x = _fastai_conv_layer(x, 4 * l2, 2)
    for filters in _FASTAI_NFS:
        x = _fastai_conv_layer(x, filters, 2)
    x = layers.GlobalAveragePooling2D()(x)
    # torch.nn.Linear's default init: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    # Two instances: an unseeded Keras initialiser fixes its seed when created, so sharing
    # one would give the bias the kernel's first draws.
    bound = 1.0 / math.sqrt(_FASTAI_NFS[-1])
    outputs = layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
    )(x)
    return keras.Model(inputs, outputs, name="fastai_cnn")



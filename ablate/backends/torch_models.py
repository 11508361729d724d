"""The model zoo in PyTorch: the same architectures as :mod:`backends.keras_models`.

Every model takes ``x: (B, C, H, W)`` float32 and returns logits ``(B, num_classes)``; the
softmax belongs to the loss. ``input_shape`` is channels-last ``(H, W, C)``, as everywhere
else in ablate. Weights are drawn from torch's global generator, so seeding it with
``torch.manual_seed`` before :func:`build_model` fixes them.

Both modules keep each layer's initialiser and batch-norm settings from the framework the
model was first written in (Keras for ``mlp``, ``small-cnn`` and ``minigooglenet``, PyTorch
for ``fastai-cnn``), so the two backends start from the same distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ablate.backends import models
from ablate.errors import BackendError


# Keras BatchNormalization defaults (epsilon=1e-3, momentum=0.99). torch's momentum is the
# weight of the new batch, Keras' the weight of the running value: 1 - 0.99.
_KERAS_BN = {"eps": 1e-3, "momentum": 0.01}
# The fast.ai course's conv_layer: BatchNorm2d(nf, eps=1e-5, momentum=0.1).
_FASTAI_BN = {"eps": 1e-5, "momentum": 0.1}
# The course's init_cnn calls kaiming_normal_(w, a=0.1): the leaky-ReLU gain it used before
# switching to plain ReLU.
_FASTAI_KAIMING_A = 0.1
_FASTAI_NFS = (32, 64, 128, 256, 512)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, factory: str | None = None,
                search_paths: Sequence[str] = ()) -> nn.Module:
    """Build model ``name`` for one example's ``input_shape`` (``(H, W, C)`` or ``(F,)``) and ``num_classes``.

    ``factory``: a user model's ``module:function`` (looked up in ``search_paths`` first); None
    builds the registered model. Raises BackendError for an unknown name, an input the model
    cannot take, or a factory that returns no torch model.
    """
    net = models.build(name, "torch", input_shape, num_classes, factory, search_paths)
    if not isinstance(net, nn.Module):
        raise BackendError(f"model {name!r}: the torch factory returned {type(net).__name__}, not an nn.Module")
    return net


def count_trainable(name: str, input_shape: tuple[int, ...], num_classes: int, factory: str | None = None,
                    search_paths: Sequence[str] = ()) -> int:
    """Number of trainable parameters of ``build_model(name, input_shape, num_classes, factory, search_paths)``."""
    # On the meta device nothing is allocated and no random numbers are drawn, so counting
    # leaves the caller's seeded generator where it was.
    with torch.device("meta"):
        model = build_model(name, input_shape, num_classes, factory, search_paths)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)




class _FlattenHWC(nn.Module):
    """Flatten in channels-last order, so a dense layer's weights line up with Keras' Flatten."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.permute(0, 2, 3, 1) if x.ndim == 4 else x).flatten(1)


def _keras_init(model: nn.Module) -> nn.Module:
    """Keras' default initialisers: glorot_uniform kernels and zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return _keras_init(nn.Sequential(
        _FlattenHWC(),
        nn.Linear(math.prod(input_shape), 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    ))


def small_cnn(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    h, w, c = input_shape
    return _keras_init(nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        _FlattenHWC(),
        nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    ))


# MiniGoogLeNet (pyimagesearch), as in the Keras notebook.

def _conv_module(c_in: int, c_out: int, k: int, stride: int = 1, padding: int | None = None) -> nn.Module:
    """Conv (with bias, as Keras Conv2D) -> BatchNorm -> ReLU; "same" padding unless given."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2 if padding is None else padding),
        nn.BatchNorm2d(c_out, **_KERAS_BN),
        nn.ReLU(),
    )


class _Inception(nn.Module):
    def __init__(self, c_in: int, n1x1: int, n3x3: int):
        super().__init__()
        self.branch1x1 = _conv_module(c_in, n1x1, 1)
        self.branch3x3 = _conv_module(c_in, n3x3, 3)
        self.out_channels = n1x1 + n3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x)], dim=1)


class _Downsample(nn.Module):
    def __init__(self, c_in: int, n3x3: int):
        super().__init__()
        self.conv = _conv_module(c_in, n3x3, 3, stride=2, padding=0)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = n3x3 + c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


def minigooglenet(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    # Two valid 3x3/2 downsamples, then a valid 7x7 average pool: each side must reach 7, which is
    # the registry entry's min_pixels of 31 (models.build checks it before calling this).
    h, w, c = input_shape
    sides = [(((s - 3) // 2 + 1) - 3) // 2 + 1 for s in (h, w)]
    blocks: list[nn.Module] = []
    channels = 96
    for kind, *args in (("i", 32, 32), ("i", 32, 48), ("d", 80),
                        ("i", 112, 48), ("i", 96, 64), ("i", 80, 80), ("i", 48, 96), ("d", 96),
                        ("i", 176, 160), ("i", 176, 160)):
        block = _Inception(channels, *args) if kind == "i" else _Downsample(channels, *args)
        blocks.append(block)
        channels = block.out_channels
    pooled = [(s - 7) // 7 + 1 for s in sides]
    return _keras_init(nn.Sequential(
        _conv_module(c, 96, 3),
        *blocks,
        nn.AvgPool2d(7),
        nn.Dropout(0.5),
        _FlattenHWC(),
        nn.Linear(channels * pooled[0] * pooled[1], num_classes),
    ))


# fastai-cnn: the course's get_cnn_layers(data, nfs, conv_layer) and init_cnn.

def _fastai_conv_layer(c_in: int, c_out: int, stride: int) -> nn.Module:
    """The course's conv_layer: conv without bias, then ReLU, then BatchNorm."""
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, a=_FASTAI_KAIMING_A)
    return nn.Sequential(conv, nn.ReLU(), nn.BatchNorm2d(c_out, **_FASTAI_BN))


def _fastai_stem_width(c_in: int) -> int:
    """prev_pow_2(9 * c_in): the largest power of two at or below a 3x3 kernel's fan-in."""
    return 2 ** math.floor(math.log2(9 * c_in))


def fastai_cnn(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    c = input_shape[2]
    l2 = _fastai_stem_width(c)
    widths = (4 * l2, *_FASTAI_NFS)
    # The final Linear keeps torch's default init: the course's init_cnn touches only convs.
    return nn.Sequential(
        _fastai_conv_layer(c, l2, 1),
        _fastai_conv_layer(l2, 2 * l2, 2),
        _fastai_conv_layer(2 * l2, 4 * l2, 2),
        *(_fastai_conv_layer(a, b, 2) for a, b in zip(widths, widths[1:])),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[-1], num_classes),
    )



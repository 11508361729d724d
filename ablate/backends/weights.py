"""Initial weights drawn once, in numpy, in a layout every backend can load.

Under ``pairing: cross-backend`` the core draws a (model, seed)'s initial weights here and
hands the same arrays to the Keras and the PyTorch model, so the two frameworks start from
the same point and their runs of one arm and seed form a pair.

The layout is framework-neutral and channels-last, as everywhere in ablate:

* ``conv<i>.kernel`` ``(kh, kw, c_in, c_out)`` (HWIO), ``conv<i>.bias`` ``(c_out,)``;
* ``dense<i>.kernel`` ``(in, out)``, ``dense<i>.bias`` ``(out,)``; a dense layer after a
  flatten reads its input in (H, W, C) order, as Keras' Flatten and torch's ``_FlattenHWC``;
* ``bn<i>.gamma``, ``bn<i>.beta``, ``bn<i>.mean``, ``bn<i>.var`` ``(c,)``.

``i`` counts the layers of one kind in the order the model definitions create them; both
model zoos create their layers in the same order, which is what lets a loader pair them.

Each draw follows the layer's initialiser in the framework the model was first written in
(Keras for ``mlp``, ``small-cnn`` and ``minigooglenet``; PyTorch for ``fastai-cnn``), so the
distributions are today's; only the generator differs (numpy's, seeded by the run seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ablate.errors import BackendError

NamedArrays = list[tuple[str, np.ndarray]]  # the neutral layout: ordered (name, float32 array)

# A separate stream from the run's batch-order generator (default_rng(seed)), so drawing
# weights never shifts the batches and vice versa.
_STREAM = 0x5EED_A11


@dataclass(frozen=True)
class _Layer:
    """One weight-carrying layer: its kind, its weight shapes and how to draw them."""

    kind: str  # "conv", "dense" or "bn"
    shape: tuple[int, ...]  # conv: (kh, kw, in, out); dense: (in, out); bn: (c,)
    bias: bool = True
    init: str = "keras"  # "keras": glorot_uniform + zero bias; "fastai": torch's kaiming/default


def has_layout(model: str) -> bool:
    """Whether ``model`` can start from shared weights (``pairing: cross-backend``)."""
    from ablate.backends.models import MODELS

    return model in MODELS and MODELS.get(model).layout is not None


def draw(model: str, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> NamedArrays:
    """The initial weights of built-in ``model`` for ``input_shape`` ``(H, W, C)`` and ``num_classes``.

    Returns the ordered named float32 arrays of the module doc. The same arguments give the
    same arrays, bit for bit. Raises BackendError for a model without a shared layout.
    """
    from ablate.backends.models import MODELS
    from ablate.registry import resolve

    if not has_layout(model):
        raise BackendError(f"pairing: cross-backend needs a shared weight layout, which exists for "
                           f"models {layout_models()}, but got {model!r}")
    layers = resolve(MODELS.get(model).layout)(tuple(input_shape), num_classes)
    if any(d <= 0 for layer in layers for d in layer.shape):
        raise BackendError(f"model {model!r} cannot be built for input shape {tuple(input_shape)}: "
                           f"a layer would have no inputs")
    return draw_layers(layers, seed)


def draw_layout(layout: Sequence[tuple[str, tuple[int, ...]]], seed: int) -> NamedArrays:
    """Initial weights for any model whose layout is known: ``layout`` lists the neutral
    (name, shape) pairs a backend reads off a built model (``shared_layout`` in
    ``backends/torch.py`` and ``backends/keras.py``).

    For a user model the original framework's initialisers are unknown, so Keras' defaults
    are used: glorot-uniform kernels, zero biases, batch norm 1 / 0 / 0 / 1. Two factories
    share weights when their layouts are equal (:func:`check_same_layout`).
    """
    layers: list[_Layer] = []
    seen: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in layout:
        prefix, _, part = name.partition(".")
        seen.setdefault(prefix, {})[part] = tuple(shape)
    for prefix, parts in seen.items():
        kind = prefix.rstrip("0123456789")
        if kind == "bn":
            layers.append(_bn(parts["gamma"][0] if "gamma" in parts else parts["mean"][0]))
        elif kind in ("conv", "dense") and "kernel" in parts:
            layers.append(_Layer(kind, parts["kernel"], "bias" in parts))
        else:
            raise BackendError(f"shared weights: layout entry {prefix!r} is not a conv, dense or bn layer")
    drawn = dict(draw_layers(layers, seed))
    names = [name for name, _ in layout]
    missing = sorted(set(names) - set(drawn))
    if missing:  # e.g. a batch norm without scale: its layout has no gamma
        raise BackendError(f"shared weights: cannot draw {missing[:3]} for this layout")
    return [(name, drawn[name]) for name in names]


def check_same_layout(a: Sequence[tuple[str, tuple[int, ...]]], b: Sequence[tuple[str, tuple[int, ...]]],
                      *, model: str, names: tuple[str, str] = ("torch", "keras")) -> None:
    """Raise a one-line BackendError unless two backends' layouts of ``model`` are equal."""
    da, db = {n: tuple(s) for n, s in a}, {n: tuple(s) for n, s in b}
    if da == db:
        return
    # The first differing layer in build order (``a``'s, then what only ``b`` builds).
    order = list(dict.fromkeys([n for n, _ in a] + [n for n, _ in b]))
    first = next(n for n in order if da.get(n) != db.get(n))
    layer = first.partition(".")[0]
    raise BackendError(f"pairing: cross-backend: model {model!r} builds different layers in {names[0]} and "
                       f"{names[1]}, first layer {layer} ({first}: {da.get(first, 'absent')} vs "
                       f"{db.get(first, 'absent')}); build the same layers in the same order, or use "
                       f"pairing: within-backend")


def draw_layers(layers: Sequence[_Layer], seed: int) -> NamedArrays:
    """Draw ``layers`` in order from one generator seeded by ``seed``."""
    rng = np.random.default_rng([int(seed), _STREAM])
    counts: dict[str, int] = {}
    out: NamedArrays = []
    for layer in layers:
        i = counts.get(layer.kind, 0)
        counts[layer.kind] = i + 1
        name = f"{layer.kind}{i}"
        for suffix, array in _draw_layer(layer, rng):
            out.append((f"{name}.{suffix}", array.astype(np.float32)))
    return out


def relative_distance(a: NamedArrays, b: NamedArrays) -> float:
    """``||a - b|| / ||a||`` over all arrays together, matched by name (0 when identical).

    Both must hold the same names with the same shapes, in any order; NaN if ``a`` is all zero.
    """
    da, db = dict(a), dict(b)
    if {n: w.shape for n, w in da.items()} != {n: w.shape for n, w in db.items()}:
        raise BackendError("relative_distance: the two weight lists differ in names or shapes")
    diff = sum(float(np.sum((w.astype(np.float64) - db[n]) ** 2)) for n, w in da.items())
    norm = sum(float(np.sum(w.astype(np.float64) ** 2)) for w in da.values())
    return math.sqrt(diff / norm) if norm > 0 else math.nan


# ------------------------------------------------------------------------- initialisers


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras and torch both compute them for HWIO / (in, out) weights."""
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _draw_layer(layer: _Layer, rng: np.random.Generator):
    if layer.kind == "bn":
        c = layer.shape[0]
        # Keras and torch alike: gamma 1, beta 0, moving mean 0, moving variance 1.
        return [("gamma", np.ones(c)), ("beta", np.zeros(c)), ("mean", np.zeros(c)), ("var", np.ones(c))]
    fan_in, fan_out = _fans(layer.shape)
    out_dim = layer.shape[-1]
    if layer.init == "keras":
        limit = math.sqrt(6.0 / (fan_in + fan_out))  # glorot_uniform (torch: xavier_uniform_)
        kernel = rng.uniform(-limit, limit, layer.shape)
        bias = np.zeros(out_dim)
    elif layer.kind == "conv":
        # The fast.ai course's kaiming_normal_(w, a=0.1): untruncated, variance 2/(1+a^2)/fan_in.
        std = math.sqrt(2.0 / (1.0 + _FASTAI_KAIMING_A**2) / fan_in)
        kernel = rng.normal(0.0, std, layer.shape)
        bias = np.zeros(out_dim)  # the course's convs have none; kept for completeness
    else:
        # torch.nn.Linear's default: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        bound = 1.0 / math.sqrt(fan_in)
        kernel = rng.uniform(-bound, bound, layer.shape)
        bias = rng.uniform(-bound, bound, out_dim)
    return [("kernel", kernel)] + ([("bias", bias)] if layer.bias else [])


# ------------------------------------------------------------------- the built-in models
# Each plan lists the layers in creation order, with the shapes both zoos build
# (backends/torch_models.py, backends/keras_models.py); a loader checks every shape.

_FASTAI_KAIMING_A = 0.1
_FASTAI_NFS = (32, 64, 128, 256, 512)


def _conv(k: int, c_in: int, c_out: int, *, bias: bool = True, init: str = "keras") -> _Layer:
    return _Layer("conv", (k, k, c_in, c_out), bias, init)


def _dense(n_in: int, n_out: int, init: str = "keras") -> _Layer:
    return _Layer("dense", (n_in, n_out), True, init)


def _bn(c: int) -> _Layer:
    return _Layer("bn", (c,), False)


def plan_mlp(shape: tuple[int, int, int], k: int) -> list[_Layer]:
    h, w, c = shape
    return [_dense(h * w * c, 256), _dense(256, 128), _dense(128, k)]


def plan_small_cnn(shape: tuple[int, int, int], k: int) -> list[_Layer]:
    h, w, c = shape
    return [_conv(3, c, 32), _conv(3, 32, 64), _dense(64 * (h // 4) * (w // 4), 128), _dense(128, k)]


def plan_minigooglenet(shape: tuple[int, int, int], k: int) -> list[_Layer]:
    h, w, c = shape
    layers = [_conv(3, c, 96), _bn(96)]
    channels = 96
    for kind, *args in (("i", 32, 32), ("i", 32, 48), ("d", 80),
                        ("i", 112, 48), ("i", 96, 64), ("i", 80, 80), ("i", 48, 96), ("d", 96),
                        ("i", 176, 160), ("i", 176, 160)):
        if kind == "i":  # inception: a 1x1 branch, then a 3x3 branch
            n1, n3 = args
            layers += [_conv(1, channels, n1), _bn(n1), _conv(3, channels, n3), _bn(n3)]
            channels = n1 + n3
        else:  # downsample: a valid 3x3/2 conv beside a max pool
            layers += [_conv(3, channels, args[0]), _bn(args[0])]
            channels += args[0]
    sides = [(((s - 3) // 2 + 1) - 3) // 2 + 1 for s in (h, w)]
    pooled = [(s - 7) // 7 + 1 for s in sides]
    return layers + [_dense(channels * pooled[0] * pooled[1], k)]


def plan_fastai_cnn(shape: tuple[int, int, int], k: int) -> list[_Layer]:
    c = shape[2]
    l2 = 2 ** math.floor(math.log2(9 * c))
    widths = [c, l2, 2 * l2, 4 * l2, *_FASTAI_NFS]
    layers: list[_Layer] = []
    for a, b in zip(widths, widths[1:]):
        layers += [_conv(3, a, b, bias=False, init="fastai"), _bn(b)]
    return layers + [_dense(_FASTAI_NFS[-1], k, init="fastai")]


def layout_models() -> tuple[str, ...]:
    """The registered models with a planned layout (their registry entry names it)."""
    from ablate.backends.models import MODELS

    return tuple(name for name, entry in MODELS.items() if entry.layout)

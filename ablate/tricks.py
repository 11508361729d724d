"""What an arm does to training: the registry of training tricks.

An *arm* is a named bundle in the grid (a trick, its params, and that arm's train settings);
a *trick* is one entry here. A trick has up to four parts, each optional; a part it does not
give is plain cross-entropy on the targets:

- ``targets(targets, rng, **params) -> targets``: numpy ``(n, K)`` float32 in and out, once
  before training, on a copy;
- ``batch(x, targets, rng, **params) -> (x, targets)``: numpy, once per step, after
  augmentation; ``x`` is channels-last ``(B, H, W, C)`` or ``(B, F)``;
- ``torch_loss(logits, targets, **params) -> scalar tensor``, torch's argument order;
- ``keras_loss(targets, logits, **params) -> scalar``, Keras' order, written with ``keras.ops``.

A part is a callable or a ``module:function`` reference, resolved in the worker (built-ins
take that path too, so the framework losses stay out of this module). ``rng`` is the trick's
own generator, derived from (seed, trick name): a trick's draws never shift the run's batch
order or augmentation, so every arm of a seed still sees the same batches.

The four label-smoothing tricks (`none`, `explicit`, `loss`, `both`) take ε from the grid's
``smoothing:`` axis and use each framework's own smoothed cross-entropy, as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate.config import ParamSpec
from ablate.registry import Registry

PARTS: tuple[str, ...] = ("targets", "batch", "torch_loss", "keras_loss")
LOSS_PART = {"torch": "torch_loss", "keras": "keras_loss"}  # framework -> its loss part


@dataclass(frozen=True)
class Trick:
    name: str
    description: str
    phrase: str  # how report prose names an arm of this trick
    targets: Callable[..., Any] | str | None = None
    batch: Callable[..., Any] | str | None = None
    torch_loss: Callable[..., Any] | str | None = None
    keras_loss: Callable[..., Any] | str | None = None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    smooth_targets: bool = False  # the core hands the backend y·(1−ε)+ε/K instead of one-hot targets
    smooth_loss: bool = False  # the framework's own smoothed cross-entropy, label_smoothing=ε
    # Built-in batch tricks only: (rng, batch_size, (H, W), **params) -> MixDraw, so the device and
    # pack paths draw in numpy and apply on the device; a trick without it runs on the host path.
    draw: Callable[..., Any] | None = None
    images_only: bool = False
    summary: str = ""  # a short form of the description, for a paper's methods paragraph
    colour: str | None = None  # its arms' colour in figures (None: the next free one); order = registry order
    reference: bool = False  # the baseline every other arm is measured against (plain cross-entropy)

    @property
    def short(self) -> str:
        return self.summary or self.description

    @property
    def uses_smoothing(self) -> bool:
        return self.smooth_targets or self.smooth_loss

    def effective_smoothing(self, eps: float) -> float:
        """The ε of one smoothing that gives the targets this trick trains on.

        Smoothing twice (targets, then loss) gives y·(1−ε)²+(ε/K)(2−ε): one smoothing by
        1−(1−ε)², which is 0.19 for ε = 0.1.
        """
        if self.smooth_targets and self.smooth_loss:
            return 1.0 - (1.0 - eps) ** 2
        return eps if self.uses_smoothing else 0.0

    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in PARTS if getattr(self, p) is not None)

    def frameworks(self) -> tuple[str, ...] | None:
        """The frameworks this trick's loss exists for; None when it uses the default loss (all)."""
        given = tuple(fw for fw, part in LOSS_PART.items() if getattr(self, part) is not None)
        return given or None

    def host_only(self) -> bool:
        """A numpy batch part without device draws runs only on the host path."""
        return self.batch is not None and self.draw is None

    def describe(self, params: Mapping[str, Any] | None = None) -> str:
        shown = {**{k: p.default for k, p in self.params.items()}, **dict(params or {})}
        text = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}"
                         for k, v in sorted(shown.items()))
        return f"{self.description} ({text})" if text else self.description


def from_entry_point(name: str, obj: Any) -> Trick:
    """An installed package's ``ablate.tricks`` entry point: a Trick, a callable returning one, or a
    mapping like a grid's ``tricks:`` entry (parts as callables or references, ``params`` as
    defaults or ``{default, low, high}``)."""
    trick = obj() if callable(obj) and not isinstance(obj, Trick) else obj
    if isinstance(trick, Mapping):
        body = dict(trick)
        unknown = sorted(set(body) - set(PARTS) - {"params", "description", "phrase", "summary", "colour"})
        if unknown:
            raise TypeError(f"unknown keys {unknown}; allowed: {', '.join(PARTS)}, params, description")
        params = {k: v if isinstance(v, ParamSpec) else ParamSpec(**v) if isinstance(v, Mapping)
                  else ParamSpec(float(v)) for k, v in (body.pop("params", None) or {}).items()}
        description = body.pop("description", None) or f"trick {name!r} from an installed package"
        trick = Trick(name=name, description=description, phrase=body.pop("phrase", name), params=params, **body)
    if not isinstance(trick, Trick):
        raise TypeError(f"expected an ablate.tricks.Trick or a mapping, but got {type(trick).__name__}")
    return trick if trick.name == name else Trick(**{**trick.__dict__, "name": name})


TRICKS: Registry[Trick] = Registry("trick", group="ablate.tricks", from_entry_point=from_entry_point)


def get(name: str) -> Trick:
    return TRICKS.get(name)


def colours() -> dict[str, str]:
    """trick name -> its figure colour, in registry order (the order arms are drawn in)."""
    return {name: t.colour for name, t in TRICKS.items() if t.colour}


def reference_names() -> tuple[str, ...]:
    """The tricks an arm is measured against (the report's reference arms): plain cross-entropy."""
    return tuple(name for name, t in TRICKS.items() if t.reference)


def smoothing_names() -> tuple[str, ...]:
    """The tricks that run once per ε of the grid's `smoothing:` axis."""
    return tuple(name for name, t in TRICKS.items() if t.uses_smoothing)


def trick_rng(seed: int, name: str) -> np.random.Generator:
    """The trick's own generator for one run: derived from (seed, trick name), never global state."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))]))


# ------------------------------------------------------------ built-in batch tricks (numpy)

@dataclass(frozen=True)
class MixDraw:
    """One step's mixing draw, made in numpy and applied on the host or the device alike.

    perm: (B,) int64, the partner of each row; lam: float32, the weight of a row's own targets;
    box: (y0, y1, x0, x1) the pasted rectangle (cutmix) or None (mixup); apply: whether this
    step mixes at all (a ``prob`` draw).
    """

    perm: np.ndarray
    lam: np.float32
    box: tuple[int, int, int, int] | None
    apply: bool


def draw_mixup(rng: np.random.Generator, batch_size: int, hw: tuple[int, int] | None = None, *,
               alpha: float = 0.2, prob: float = 1.0) -> MixDraw:
    # Every draw is made whatever `prob` says, so the generator's stream never depends on it.
    apply = bool(rng.random() < prob)
    lam = np.float32(rng.beta(alpha, alpha))
    perm = rng.permutation(batch_size).astype(np.int64)
    return MixDraw(perm=perm, lam=lam, box=None, apply=apply)


def draw_cutmix(rng: np.random.Generator, batch_size: int, hw: tuple[int, int] | None = None, *,
                alpha: float = 1.0, prob: float = 1.0) -> MixDraw:
    if hw is None:
        raise ValueError("cutmix pastes rectangles of images; feature vectors have none")
    h, w = hw
    apply = bool(rng.random() < prob)
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(batch_size).astype(np.int64)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    y0, y1 = int(np.clip(cy - ch // 2, 0, h)), int(np.clip(cy + ch // 2, 0, h))
    x0, x1 = int(np.clip(cx - cw // 2, 0, w)), int(np.clip(cx + cw // 2, 0, w))
    # The targets' weight is the share of pixels a row keeps, after clipping the box.
    kept = np.float32(1.0 - (y1 - y0) * (x1 - x0) / (h * w))
    return MixDraw(perm=perm, lam=kept, box=(y0, y1, x0, x1), apply=apply)


def apply_mix(x: np.ndarray, targets: np.ndarray, draw: MixDraw) -> tuple[np.ndarray, np.ndarray]:
    """x: (B, H, W, C) or (B, F) float32, targets: (B, K) float32 -> the mixed copies.

    The arithmetic (``lam·a + (1−lam)·b`` in float32, a box copied pixel for pixel) is what
    :func:`ablate.backends.torch_device.apply_mix` does on the device, bit for bit.
    """
    if not draw.apply:
        return x, targets
    lam = np.float32(draw.lam)
    rest = np.float32(1.0) - lam
    if draw.box is None:
        x = lam * x + rest * x[draw.perm]
    else:
        y0, y1, x0, x1 = draw.box
        source, x = x, x.copy()
        x[:, y0:y1, x0:x1] = source[draw.perm, y0:y1, x0:x1]
    return x.astype(np.float32, copy=False), (lam * targets + rest * targets[draw.perm]).astype(np.float32, copy=False)


def _spatial(x: np.ndarray) -> tuple[int, int] | None:
    return (int(x.shape[1]), int(x.shape[2])) if x.ndim == 4 else None


def mixup_batch(x: np.ndarray, targets: np.ndarray, rng: np.random.Generator, *, alpha: float = 0.2,
                prob: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al., 2018): each row blended with a partner row, λ ~ Beta(α, α)."""
    return apply_mix(x, targets, draw_mixup(rng, len(x), _spatial(x), alpha=alpha, prob=prob))


def cutmix_batch(x: np.ndarray, targets: np.ndarray, rng: np.random.Generator, *, alpha: float = 1.0,
                 prob: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """CutMix (Yun et al., 2019): a partner's rectangle pasted in, targets weighted by area."""
    return apply_mix(x, targets, draw_cutmix(rng, len(x), _spatial(x), alpha=alpha, prob=prob))


# ------------------------------------------------------------------------------ built-ins

_PROB = ParamSpec(1.0, low=0.0, high=1.0)
for _t in (
    Trick("none", "cross-entropy on one-hot labels", "no smoothing", colour="#7f7f7f", reference=True),
    Trick("explicit",
          "training targets replaced by a smoothed copy y·(1−ε)+ε/K before training (the Keras notebook's "
          "smooth_labels); plain cross-entropy", "explicit smoothing", smooth_targets=True, colour="#1f77b4",
          summary="targets replaced by y·(1−ε)+ε/K before training"),
    Trick("loss",
          "hard labels; the framework's smoothed cross-entropy (Keras CategoricalCrossentropy(label_smoothing=ε), "
          "PyTorch CrossEntropyLoss(label_smoothing=ε))", "loss smoothing", smooth_loss=True, colour="#d62728",
          summary="the framework's label-smoothed cross-entropy"),
    Trick("both",
          "smoothed targets fed to the smoothed loss, as the Keras notebook's loss section actually ran: "
          "labels smoothed twice, an effective ε of 1−(1−ε)²", "smoothing twice",
          smooth_targets=True, smooth_loss=True, colour="#ff7f0e",
          summary="smoothed targets and the framework's smoothed loss together"),
    Trick("mixup", "mixup: each training batch blended with a shuffled copy of itself, inputs and targets, "
                   "λ ~ Beta(α, α), with probability prob per step", "mixup",
          batch="ablate.tricks:mixup_batch", draw=draw_mixup, colour="#2ca02c",
          params={"alpha": ParamSpec(0.2, low=0.0, open_low=True), "prob": _PROB},
          summary="mixup of inputs and targets, λ ~ Beta(α, α)"),
    Trick("cutmix", "cutmix: a rectangle of a shuffled partner image pasted into each training image, targets "
                    "mixed by area, λ ~ Beta(α, α), with probability prob per step", "cutmix",
          batch="ablate.tricks:cutmix_batch", draw=draw_cutmix, images_only=True, colour="#8c564b",
          params={"alpha": ParamSpec(1.0, low=0.0, open_low=True), "prob": _PROB},
          summary="cutmix: a partner image's rectangle pasted in, targets mixed by area"),
    Trick("focal", "focal loss −Σ y·(1−p)^γ·log p (Lin et al., 2017); γ = 0 is cross-entropy", "focal loss",
          torch_loss="ablate.backends.torch_losses:focal", keras_loss="ablate.backends.keras_losses:focal",
          params={"gamma": ParamSpec(2.0, low=0.0, high=10.0)}, summary="focal loss −Σ y·(1−p)^γ·log p",
          colour="#9467bd"),
):
    TRICKS.register(_t.name, _t)

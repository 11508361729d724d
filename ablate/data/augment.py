"""The Keras notebook's data augmentation, in numpy, on NHWC batches.

The notebook uses ``ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
horizontal_flip=True, fill_mode="nearest")``. `augment_batch` does the same kind of
transform before a batch reaches either backend, with every random number drawn from
the run's `np.random.Generator`, so the Keras and PyTorch arms that share a seed train
on identical augmented batches.

Conventions (where this differs from Keras, it is on purpose, for exactness):
- Shifts are whole pixels, drawn uniformly from ``-m..m`` with
  ``m = round(width_shift * W)`` (and ``H`` for height); Keras draws a real-valued
  shift and interpolates. For 32x32 images ``m = 3``.
- A shift of ``+dx`` moves the content right (``+dy``: down):
  ``out[i, j] = x[clip(i - dy), clip(j - dx)]``. The uncovered border repeats the
  nearest edge pixel ("nearest" fill).
- The flip (probability 0.5) is applied after the shift, as Keras does.
- Each call consumes exactly ``3 * n`` uniform doubles from `rng` (one block of shape
  (3, n): column shift, row shift, flip), whatever the settings, so the generator's
  state after a batch does not depend on the augmentation configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.errors import ConfigError, InputError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; the defaults are the Keras notebook's."""

    enabled: bool = True  # False: batches pass through untouched and no draws are made
    width_shift: float = 0.1  # maximum horizontal shift, as a fraction of the width, in [0, 1)
    height_shift: float = 0.1  # maximum vertical shift, as a fraction of the height, in [0, 1)
    horizontal_flip: bool = True  # flip left-right with probability 0.5

    def __post_init__(self) -> None:
        _check_ranges(self.width_shift, self.height_shift)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`augment_batch` with these settings; x: (n, H, W, C). Returns x itself when disabled."""
        if not self.enabled:
            return x
        return augment_batch(
            x,
            rng,
            width_shift=self.width_shift,
            height_shift=self.height_shift,
            horizontal_flip=self.horizontal_flip,
        )


def augment_batch(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    width_shift: float = 0.1,
    height_shift: float = 0.1,
    horizontal_flip: bool = True,
) -> np.ndarray:
    """Randomly shift (nearest fill) and flip each image of a batch.

    x: (n, H, W, C) array of any dtype; it is not modified.
    rng: the run's generator; 3*n doubles are drawn from it (see the module docstring).
    Returns a new (n, H, W, C) array of x's dtype.
    """
    _check_ranges(width_shift, height_shift)
    x = np.asarray(x)
    if x.ndim != 4:
        raise InputError(f"Expected `x` to be an (n, H, W, C) batch, but got an array of shape {x.shape}.")
    n, h, w, _ = x.shape
    draws = draw_augmentation(n, h, w, rng, width_shift=width_shift, height_shift=height_shift,
                              horizontal_flip=horizontal_flip)
    return apply_augmentation(x, draws)


@dataclass(frozen=True)
class AugmentDraws:
    """One batch's random augmentation choices; apply them with `apply_augmentation`.

    dx, dy: (n,) int64 shifts (``+dx`` moves content right, ``+dy`` down); flip: (n,) bool.
    Small, so it is what crosses to a device: the images can stay there.
    """

    dx: np.ndarray
    dy: np.ndarray
    flip: np.ndarray


def draw_augmentation(n: int, h: int, w: int, rng: np.random.Generator, *, width_shift: float = 0.1,
                      height_shift: float = 0.1, horizontal_flip: bool = True) -> AugmentDraws:
    """Draw the shifts and flips of n (h, w) images: exactly 3*n doubles from `rng`, as one (3, n) block."""
    _check_ranges(width_shift, height_shift)
    u = rng.random((3, n))
    return AugmentDraws(dx=_shifts(u[0], round(width_shift * w)), dy=_shifts(u[1], round(height_shift * h)),
                        flip=(u[2] < 0.5) & horizontal_flip)


def augment_sources(h: int, w: int, draws: AugmentDraws) -> tuple[np.ndarray, np.ndarray]:
    """Source row (n, H) and column (n, W) of every output pixel; pure, and the same on any device.

    Shift with edge clipping (= nearest fill), then the flip just reverses the column lookup.
    """
    dx, dy, flip = np.asarray(draws.dx), np.asarray(draws.dy), np.asarray(draws.flip)
    rows = np.clip(np.arange(h)[None, :] - dy[:, None], 0, h - 1)
    cols = np.clip(np.arange(w)[None, :] - dx[:, None], 0, w - 1)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return rows, cols


def apply_augmentation(x: np.ndarray, draws: AugmentDraws) -> np.ndarray:
    """Apply drawn shifts/flips to x: (n, H, W, C); a pure gather, so returns a new array of x's dtype."""
    n, h, w, _ = x.shape
    rows, cols = augment_sources(h, w, draws)
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _shifts(u: np.ndarray, m: int) -> np.ndarray:
    """Map uniforms in [0, 1) to integers uniform on -m..m. u: (n,) -> (n,) int64."""
    return np.minimum(np.floor(u * (2 * m + 1)).astype(np.int64), 2 * m) - m


def _check_ranges(width_shift: float, height_shift: float) -> None:
    for field, value in (("width_shift", width_shift), ("height_shift", height_shift)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"Expected argument `{field}` to be a fraction in [0, 1), but got {value!r}.")

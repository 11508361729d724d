import numpy as np
import pytest

from ablate.data.augment import AugmentConfig, _shifts, augment_batch
from ablate.errors import ConfigError, InputError


class FixedDraws:
    """Stands in for a Generator: hands back chosen uniforms of shape (3, n)."""

    def __init__(self, u):
        self.u = np.asarray(u, dtype=np.float64)

    def random(self, shape):
        assert shape == self.u.shape
        return self.u


def batch(n=6, h=8, w=10, c=3, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c)).astype(dtype)


def test_same_seed_same_batch():
    x = batch()
    a = augment_batch(x, np.random.default_rng(42))
    b = augment_batch(x, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    c = augment_batch(x, np.random.default_rng(43))
    assert not np.array_equal(a, c)


def test_input_not_mutated_and_output_is_new():
    x = batch()
    before = x.copy()
    out = augment_batch(x, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(out, x)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_shape_and_dtype_kept(dtype):
    x = batch(n=5, h=7, w=9, c=1, dtype=dtype)
    out = augment_batch(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_empty_batch():
    out = augment_batch(np.zeros((0, 4, 4, 3), np.float32), np.random.default_rng(0))
    assert out.shape == (0, 4, 4, 3)


def hand_image():
    # One 4x5 single-channel image whose pixel (i, j) is 10*i + j.
    return (10 * np.arange(4)[:, None] + np.arange(5)[None, :]).astype(np.float32)[None, :, :, None]


def test_shift_right_by_one_with_nearest_fill():
    # width_shift 0.4 of W=5 -> m=2; floor(0.7 * 5) - 2 = +1; no vertical range; u=0.9: no flip.
    out = augment_batch(hand_image(), FixedDraws([[0.7], [0.5], [0.9]]), width_shift=0.4, height_shift=0.0)
    expected = np.array(
        [
            [0, 0, 1, 2, 3],
            [10, 10, 11, 12, 13],
            [20, 20, 21, 22, 23],
            [30, 30, 31, 32, 33],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


def test_shift_up_by_one_and_left_by_two():
    # height_shift 0.25 of H=4 -> m=1; floor(0.1 * 3) - 1 = -1 (content moves up).
    # width_shift 0.4 of W=5 -> m=2; floor(0.0 * 5) - 2 = -2 (content moves left).
    out = augment_batch(hand_image(), FixedDraws([[0.0], [0.1], [0.9]]), width_shift=0.4, height_shift=0.25)
    expected = np.array(
        [
            [12, 13, 14, 14, 14],
            [22, 23, 24, 24, 24],
            [32, 33, 34, 34, 34],
            [32, 33, 34, 34, 34],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


def test_flip_after_shift():
    out = augment_batch(hand_image(), FixedDraws([[0.7], [0.5], [0.1]]), width_shift=0.4, height_shift=0.0)
    expected_row0 = np.array([3, 2, 1, 0, 0], dtype=np.float32)  # [0, 0, 1, 2, 3] reversed
    np.testing.assert_array_equal(out[0, 0, :, 0], expected_row0)
    np.testing.assert_array_equal(out[0, :, :, 0], (10 * np.arange(4)[:, None] + expected_row0[None, :]))


def test_flip_disabled_and_no_shift_is_identity():
    x = batch()
    out = augment_batch(x, np.random.default_rng(0), width_shift=0.0, height_shift=0.0, horizontal_flip=False)
    np.testing.assert_array_equal(out, x)


def test_flip_only_flips_about_half():
    x = batch(n=400, h=2, w=3, c=1)
    out = augment_batch(x, np.random.default_rng(0), width_shift=0.0, height_shift=0.0)
    flipped = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | kept)
    assert 150 < flipped.sum() < 250


def test_matches_scipy_nearest_shift():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = batch(n=12, h=32, w=32, c=3)
    # Recover the draws from an identical generator, as the module docstring specifies.
    u = np.random.default_rng(7).random((3, 12))
    dx, dy, flip = _shifts(u[0], 3), _shifts(u[1], 3), u[2] < 0.5
    out = augment_batch(x, np.random.default_rng(7))
    for i in range(12):
        expected = ndimage.shift(x[i], (dy[i], dx[i], 0), order=0, mode="nearest")
        if flip[i]:
            expected = expected[:, ::-1]
        np.testing.assert_array_equal(out[i], expected)


def test_shift_range_is_uniform_on_minus_m_to_m():
    u = (np.arange(7000) + 0.5) / 7000
    values, counts = np.unique(_shifts(u, 3), return_counts=True)
    np.testing.assert_array_equal(values, np.arange(-3, 4))
    assert np.all(counts == 1000)
    assert _shifts(np.array([np.nextafter(1.0, 0.0)]), 3)[0] == 3


def test_draw_count_independent_of_settings():
    x = batch(n=5)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    augment_batch(x, rng_a)
    augment_batch(x, rng_b, width_shift=0.0, height_shift=0.3, horizontal_flip=False)
    assert rng_a.random() == rng_b.random()


def test_config_apply_and_disabled():
    x = batch()
    config = AugmentConfig()
    expected = augment_batch(x, np.random.default_rng(5))
    np.testing.assert_array_equal(config.apply(x, np.random.default_rng(5)), expected)
    rng = np.random.default_rng(5)
    assert AugmentConfig(enabled=False).apply(x, rng) is x
    assert rng.random() == np.random.default_rng(5).random()  # no draws when disabled


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), True])
def test_bad_ranges(bad):
    with pytest.raises(ConfigError, match="width_shift"):
        AugmentConfig(width_shift=bad)
    with pytest.raises(ConfigError, match="height_shift"):
        augment_batch(batch(), np.random.default_rng(0), height_shift=bad)


def test_rejects_non_nhwc():
    with pytest.raises(InputError, match="shape"):
        augment_batch(np.zeros((4, 4, 3)), np.random.default_rng(0))

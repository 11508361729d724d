"""Preprocessing fitted on the training split: the uint8 fast path is the float64 path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ablate.data.splits import _fit_preprocessing, _transform


@pytest.mark.parametrize("shape", [(37, 9, 11, 3), (5, 4, 4, 1), (3000, 8, 8, 3)])
def test_uint8_moments_match_the_float64_sums_exactly(shape):
    x = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
    x[..., 0][:, 0, 0] = 255  # the extremes, to reach the largest squares
    x[..., -1][:, 1, 1] = 0
    fast = _fit_preprocessing("standardize", x, 255)
    slow = _fit_preprocessing("standardize", x.astype(np.uint16), 255)  # not uint8: the float64 chunks
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(_transform(x, *fast), _transform(x.astype(np.uint16), *slow))
    # and they are the moments: numpy's own, to float32 rounding
    flat = x.reshape(-1, shape[-1]).astype(np.float64)
    np.testing.assert_allclose(fast[0], flat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(fast[1], 1 / flat.std(axis=0), rtol=1e-5)


def test_a_constant_channel_is_centred_not_divided_by_zero():
    x = np.zeros((6, 2, 2, 2), dtype=np.uint8)
    x[..., 1] = np.arange(6, dtype=np.uint8)[:, None, None] * 40
    shift, scale = _fit_preprocessing("standardize", x, 255)
    assert shift[0] == 0 and scale[0] == 1
    assert shift[1] == pytest.approx(100) and np.isfinite(scale[1])

import math

import numpy as np
import pytest

from ablate.errors import ConfigError
from ablate.execution.schedules import SCHEDULE_NAMES, learning_rate, learning_rates


def test_names():
    assert SCHEDULE_NAMES == ("constant", "polynomial", "one-cycle")


@pytest.mark.parametrize(
    "epoch, power, expected",
    [
        (0, 1.0, 5e-3),
        (16, 1.0, 2.5e-3),
        (24, 1.0, 1.25e-3),
        (31, 1.0, 5e-3 / 32),
        (16, 2.0, 1.25e-3),  # 5e-3 * 0.5 ** 2
    ],
)
def test_polynomial_worked_values(epoch, power, expected):
    lr = learning_rate("polynomial", base_lr=5e-3, epoch=epoch, epochs=32, power=power)
    assert lr == pytest.approx(expected, rel=1e-12)


def test_polynomial_is_per_epoch():
    values = learning_rates("polynomial", base_lr=0.1, epochs=4, steps_per_epoch=3)
    assert values.shape == (4, 3)
    np.testing.assert_allclose(values, np.repeat([[0.1], [0.075], [0.05], [0.025]], 3, axis=1), rtol=1e-12)


def test_constant():
    values = learning_rates("constant", base_lr=0.01, epochs=3, steps_per_epoch=5)
    assert values.shape == (3, 5)
    assert np.all(values == 0.01)


@pytest.mark.parametrize("epochs, steps_per_epoch", [(1, 1), (2, 1), (1, 3), (3, 7), (5, 10), (32, 13)])
def test_one_cycle_matches_torch(epochs, steps_per_epoch):
    torch = pytest.importorskip("torch")
    base_lr = 5e-3
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=base_lr, total_steps=epochs * steps_per_epoch)
    expected = []
    for _ in range(epochs * steps_per_epoch):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    ours = learning_rates("one-cycle", base_lr=base_lr, epochs=epochs, steps_per_epoch=steps_per_epoch).ravel()
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=0)


def test_one_cycle_shape():
    values = learning_rates("one-cycle", base_lr=1.0, epochs=10, steps_per_epoch=10).ravel()
    assert values[0] == pytest.approx(1 / 25)
    assert values.max() == pytest.approx(1.0, rel=1e-3)
    assert 25 <= int(np.argmax(values)) <= 30  # the peak at 30% of the 100 steps
    assert values[-1] == pytest.approx(1 / 25 / 1e4)
    assert np.all(np.diff(values[np.argmax(values) :]) <= 0)


def test_unknown_name_lists_allowed():
    with pytest.raises(ConfigError) as info:
        learning_rate("cosine", base_lr=0.1, epoch=0, epochs=1)
    message = str(info.value)
    assert "\n" not in message
    assert "cosine" in message
    for name in SCHEDULE_NAMES:
        assert name in message


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(base_lr=0.0), ConfigError),
        (dict(base_lr=math.nan), ConfigError),
        (dict(epochs=0), ConfigError),
        (dict(steps_per_epoch=0), ConfigError),
        (dict(epoch=4), ValueError),
        (dict(epoch=-1), ValueError),
        (dict(step_in_epoch=2), ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    settings = dict(base_lr=0.1, epoch=0, epochs=4, step_in_epoch=0, steps_per_epoch=2) | kwargs
    with pytest.raises(error):
        learning_rate("polynomial", **settings)

"""The core training loop with a recording fake backend: pairing, arm targets, failures as results."""

from __future__ import annotations

import numpy as np
import pytest

from ablate.backends.base import Trainer
from ablate.config import AugmentSpec, DatasetSpec, RunSpec, TrainConfig
from ablate.data.catalogue import Dataset
from ablate.execution.runner import execute, one_hot, smooth_labels, smoothed_cross_entropy


def _dataset(n=40, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    return Dataset(name="toy", x_train=x, y_train=y, x_val=x[:8], y_val=y[:8], x_test=x[:10], y_test=y[:10],
                   num_classes=k, class_names=tuple("abc"))


class RecordingTrainer(Trainer):
    """A trainer of the contract's required parts only (no optional capability)."""

    def __init__(self, k, loss_smoothing, nan_at=None):
        self.k, self.loss_smoothing, self.nan_at = k, loss_smoothing, nan_at
        self.batches, self.targets, self.lrs = [], [], []

    def train_step(self, x, targets, lr):
        self.batches.append(x.copy())
        self.targets.append(targets.copy())
        self.lrs.append(lr)
        if self.nan_at is not None and len(self.batches) >= self.nan_at:
            return float("nan")
        return 1.0

    def predict(self, x, batch_size=512):
        return np.full((len(x), self.k), 1.0 / self.k, np.float32)

    def gradients(self, x, targets):
        raise NotImplementedError

    def weights(self):
        return []


class RecordingBackend:
    def __init__(self, nan_at=None, crash=False):
        self.trainers, self.nan_at, self.crash = [], nan_at, crash

    def create_trainer(self, *, model, input_shape, num_classes, train, loss_smoothing, seed, **_):
        if self.crash:
            raise RuntimeError("out of memory (simulated)")
        trainer = RecordingTrainer(num_classes, loss_smoothing, self.nan_at)
        self.trainers.append(trainer)
        return trainer


def _spec(arm="none", eps=0.0, seed=0, augment=None, epochs=2):
    return RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm=arm, smoothing=eps,
                   seed=seed, repeat=0, train=TrainConfig(epochs=epochs, batch_size=16, augment=augment,
                                                          monitor_size=20))


def test_smooth_labels_returns_a_copy():
    hard = one_hot(np.array([0, 2]), 4)
    before = hard.copy()
    soft = smooth_labels(hard, 0.1)
    np.testing.assert_array_equal(hard, before)
    np.testing.assert_allclose(soft, [[0.925, 0.025, 0.025, 0.025], [0.025, 0.025, 0.925, 0.025]], atol=1e-7)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)


def test_smoothed_cross_entropy_hand_worked():
    probs = np.array([[0.5, 0.25, 0.25]])
    # (1-eps) * -log 0.5 + eps * mean(-log p) with eps = 0.3
    expected = 0.7 * np.log(2) + 0.3 * (np.log(2) + 2 * np.log(4)) / 3
    assert smoothed_cross_entropy(probs, np.array([0]), 0.3) == pytest.approx(expected)
    assert smoothed_cross_entropy(probs, np.array([0]), 0.0) == pytest.approx(np.log(2))


@pytest.mark.parametrize("augment", [None, AugmentSpec()])
def test_arms_with_one_seed_see_identical_batches(augment):
    data = _dataset()
    seen = {}
    for arm, eps in (("none", 0.0), ("explicit", 0.1), ("loss", 0.1), ("loss", 0.2)):
        backend = RecordingBackend()
        assert execute(_spec(arm, eps, augment=augment), backend, data).status == "completed"
        seen[(arm, eps)] = backend.trainers[0]
    reference = seen[("none", 0.0)].batches
    for trainer in seen.values():
        assert len(trainer.batches) == len(reference) == 2 * 3  # 40 examples, batch 16, 2 epochs
        for a, b in zip(trainer.batches, reference):
            np.testing.assert_array_equal(a, b)
    # another seed gives another order
    other = RecordingBackend()
    execute(_spec(seed=1, augment=augment), other, data)
    assert not np.array_equal(other.trainers[0].batches[0], reference[0])


def test_arm_targets_and_loss_smoothing():
    data = _dataset()
    results = {}
    for arm, eps in (("none", 0.0), ("explicit", 0.1), ("loss", 0.1)):
        backend = RecordingBackend()
        execute(_spec(arm, eps), backend, data)
        results[arm] = backend.trainers[0]
    assert results["none"].loss_smoothing == 0.0 and results["explicit"].loss_smoothing == 0.0
    assert results["loss"].loss_smoothing == 0.1
    # explicit: soft targets; loss and none: hard one-hot targets
    np.testing.assert_array_equal(np.unique(results["none"].targets[0]), [0.0, 1.0])
    np.testing.assert_array_equal(results["loss"].targets[0], results["none"].targets[0])
    np.testing.assert_allclose(results["explicit"].targets[0], smooth_labels(results["none"].targets[0], 0.1))


def test_dataset_arrays_are_not_mutated():
    data = _dataset()
    before = (data.x_train.copy(), data.y_train.copy())
    execute(_spec("explicit", 0.2), RecordingBackend(), data)
    np.testing.assert_array_equal(data.x_train, before[0])
    np.testing.assert_array_equal(data.y_train, before[1])


def test_history_and_outputs():
    outcome = execute(_spec("loss", 0.1, epochs=3), RecordingBackend(), _dataset())
    assert outcome.status == "completed" and outcome.error is None
    assert outcome.history["epoch"] == [1.0, 2.0, 3.0]
    for key in ("train_objective", "train_nll", "train_accuracy", "val_objective", "val_nll", "val_accuracy"):
        assert len(outcome.history[key]) == 3
    # uniform predictions: NLL = log K for hard labels; the smoothed objective is the same for uniform p
    assert outcome.history["val_nll"][0] == pytest.approx(np.log(3), rel=1e-6)
    assert outcome.arrays["test_probs"].dtype == np.float32 and outcome.arrays["test_probs"].shape == (10, 3)
    assert set(outcome.metrics) == {"accuracy", "ece", "nll", "brier"}


def test_polynomial_schedule_reaches_the_trainer():
    backend = RecordingBackend()
    execute(_spec(epochs=2), backend, _dataset())
    lrs = backend.trainers[0].lrs
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.025)


def test_non_finite_loss_is_diverged_and_stops_at_once():
    backend = RecordingBackend(nan_at=2)
    outcome = execute(_spec(epochs=5), backend, _dataset())
    assert outcome.status == "diverged" and "non-finite training loss" in outcome.error
    assert len(backend.trainers[0].batches) == 2


def test_crash_is_a_failed_result_with_traceback():
    outcome = execute(_spec(), RecordingBackend(crash=True), _dataset())
    assert outcome.status == "failed" and "out of memory (simulated)" in outcome.error
    assert "Traceback" in outcome.error

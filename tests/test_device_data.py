"""Training data on the torch device: the device batch is the numpy batch, bit for bit, and a run
trained from device-resident data is bitwise the run trained from host batches."""

from __future__ import annotations

import numpy as np
import pytest

# Device-resident data is a PyTorch feature: without torch the whole file is skipped.
torch = pytest.importorskip("torch", reason="device data needs PyTorch, which is not installed")

from ablate import backends  # noqa: E402
from ablate.backends import torch as torch_backend  # noqa: E402
from ablate.backends.torch_device import draws_to_device, gather_batch, upload_images  # noqa: E402
from ablate.config import AugmentSpec, DatasetSpec, RunSpec, TrainConfig  # noqa: E402
from ablate.data.augment import apply_augmentation, augment_batch, draw_augmentation  # noqa: E402
from ablate.data.catalogue import load_dataset  # noqa: E402
from ablate.execution.runner import execute  # noqa: E402


@pytest.mark.parametrize("shape", [(7, 8, 10, 3), (5, 32, 32, 3), (4, 8, 8, 1)])
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.4])
def test_device_augmentation_equals_numpy_bit_for_bit(shape, shift):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, *shape[1:])).astype(np.float32)
    idx = rng.permutation(20)[:shape[0]]
    draws = draw_augmentation(len(idx), shape[1], shape[2], np.random.default_rng(9), width_shift=shift,
                              height_shift=shift / 2, horizontal_flip=True)
    expected = apply_augmentation(x[idx], draws)  # (B, H, W, C)
    got = gather_batch(upload_images(x, torch.device("cpu")), torch.from_numpy(idx),
                       *draws_to_device(draws, torch.device("cpu")))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)
    # And the split draw/apply is the old one-call augmentation, consuming the same draws.
    np.testing.assert_array_equal(expected, augment_batch(x[idx], np.random.default_rng(9), width_shift=shift,
                                                          height_shift=shift / 2))


def test_no_augmentation_is_a_plain_gather():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    got = gather_batch(upload_images(x, torch.device("cpu")), torch.tensor([1, 0, 1]))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), x[[1, 0, 1]])


def test_upload_happens_once_per_array():
    x = np.zeros((3, 2, 2, 1), np.float32)
    assert upload_images(x, torch.device("cpu")) is upload_images(x, torch.device("cpu"))
    assert upload_images(x.copy(), torch.device("cpu")) is not upload_images(x, torch.device("cpu"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=200, test_size=60, val_fraction=0.2)


def _spec(arm, eps, augment):
    return RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="small-cnn", arm=arm, smoothing=eps,
                   seed=4, repeat=0, train=TrainConfig(epochs=2, batch_size=32, lr=0.05, augment=augment,
                                                       monitor_size=50))


@pytest.mark.parametrize("arm,eps", [("none", 0.0), ("explicit", 0.1), ("loss", 0.1)])
def test_device_run_is_bitwise_the_host_run(digits, monkeypatch, arm, eps):
    backend = backends.load("torch")
    backend.configure(device="cpu", threads=1, deterministic=True)
    spec = _spec(arm, eps, AugmentSpec())
    on_device = execute(spec, backend, digits)
    # Without the device-data capability declared, the runner trains on host batches.
    monkeypatch.setattr(torch_backend.TorchTrainer, "capabilities", frozenset())
    on_host = execute(spec, backend, digits)
    assert on_device.status == on_host.status == "completed"
    for key in ("train_objective", "val_nll", "val_accuracy", "train_nll"):
        assert on_device.history[key] == on_host.history[key], key
    for key, arr in on_host.arrays.items():
        np.testing.assert_array_equal(on_device.arrays[key], arr)


def test_divergence_on_device_names_the_epoch(digits):
    backend = backends.load("torch")
    backend.configure(device="cpu", threads=1, deterministic=True)
    spec = RunSpec(backend="torch", dataset=DatasetSpec("digits"), model="mlp", arm="none", smoothing=0.0, seed=0,
                   repeat=0, train=TrainConfig(epochs=3, batch_size=32, lr=1e6, schedule="constant",
                                               monitor_size=0))
    outcome = execute(spec, backend, digits)
    assert outcome.status == "diverged"
    assert "in epoch 1" in outcome.error


def test_deterministic_mode_keeps_algorithms_fixed_without_filling_new_memory():
    backend = backends.load("torch")
    backend.configure(device="cpu", threads=1, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_the_runner_asks_the_capability_instead_of_probing(digits, monkeypatch):
    """A trainer that has `bind_data` but does not declare DEVICE_DATA is never handed the data;
    one that declares it is."""
    from ablate.backends.base import DEVICE_DATA, SHARED_WEIGHTS

    backend = backends.load("torch")
    backend.configure(device="cpu", threads=1, deterministic=True)
    calls = []
    real = torch_backend.TorchTrainer.bind_data

    def counting(self, x, t):
        calls.append(len(x))
        return real(self, x, t)

    monkeypatch.setattr(torch_backend.TorchTrainer, "bind_data", counting)
    spec = _spec("none", 0.0, None)
    assert execute(spec, backend, digits).status == "completed" and calls == [len(digits.x_train)]
    monkeypatch.setattr(torch_backend.TorchTrainer, "capabilities", frozenset({SHARED_WEIGHTS}))
    assert execute(spec, backend, digits).status == "completed" and calls == [len(digits.x_train)]
    monkeypatch.setattr(torch_backend.TorchTrainer, "capabilities", frozenset({DEVICE_DATA, SHARED_WEIGHTS}))
    assert execute(spec, backend, digits).status == "completed" and len(calls) == 2

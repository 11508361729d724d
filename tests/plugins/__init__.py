"""Source of a user's plug-in package, written to a temporary folder by the tests that need it."""

from __future__ import annotations

import os
from pathlib import Path


def user_env() -> dict[str, str]:
    """The environment of a user's `ablate` process in these tests: TensorFlow quiet, no GPU, and no
    PYTHONPATH (a user's modules are found from the grid's folder, not from the tests' path)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    return env

MODELS_SOURCE = '''
"""A user's own models: one per framework, same layers, logits out."""


def tiny_torch(input_shape, num_classes):
    import math

    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(), nn.Linear(16, num_classes))


def tiny_keras(input_shape, num_classes):
    import keras

    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def not_a_model(input_shape, num_classes):
    return "oops"
'''

DATA_SOURCE = '''
"""A user's own dataset: scikit-learn's breast-cancer table, 30 features, 2 classes."""

import numpy as np


def load():
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(bunch.target))
    x, y = bunch.data[order], bunch.target[order]
    cut = 400
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:],
            "class_names": list(bunch.target_names)}


def bad_labels():
    x = np.zeros((10, 3))
    return x, np.full(10, 7.5), x, np.zeros(10)


def one_class():
    x = np.zeros((10, 3))
    return x, np.zeros(10, int), x, np.zeros(10, int)
'''


def write_user_package(folder: Path) -> Path:
    """mymodels.py and mydata.py in ``folder`` (created), as a user would keep beside a grid."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mymodels.py").write_text(MODELS_SOURCE)
    (folder / "mydata.py").write_text(DATA_SOURCE)
    return folder


TRICKS_SOURCE = '''
"""A user's own tricks: a numpy mixup, a focal loss per framework, and broken parts for the preflight."""

import numpy as np


def mixup(x, targets, rng, alpha=0.4):
    """Blend each row with a shuffled partner; lambda ~ Beta(alpha, alpha), drawn from the trick's rng."""
    lam = np.float32(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def focal_torch(logits, targets, gamma=2.0):
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    return -(targets * (1 - logp.exp()) ** gamma * logp).sum(-1).mean()


def focal_keras(targets, logits, gamma=2.0):
    from keras import ops

    logp = ops.log_softmax(logits, axis=-1)
    return -ops.mean(ops.sum(targets * (1 - ops.exp(logp)) ** gamma * logp, axis=-1))


def nan_torch(logits, targets):
    return (logits * float("nan")).mean()


def drops_a_row(x, targets, rng):
    return x[1:], targets[1:]


def float64_targets(targets, rng):
    return targets.astype(np.float64)


def per_example_torch(logits, targets):
    import torch

    return -(targets * torch.log_softmax(logits, dim=-1)).sum(-1)
'''


def write_trick_package(folder: Path) -> Path:
    """Write ``mytricks.py`` into ``folder`` (beside a grid); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mytricks.py").write_text(TRICKS_SOURCE)
    return folder

"""Keras 3 backend, on whichever engine ``KERAS_BACKEND`` fixed for this process.

Models live in :mod:`backends.keras_models`. Training goes through ``train_on_batch`` so
every engine shares one code path; only gradient inspection differs per engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from ablate.config import TrainConfig
from ablate.backends import keras_losses, keras_models
from ablate.backends.base import SHARED_WEIGHTS, Backend, Trainer
from ablate.errors import BackendError

# Layer kinds of the shared layout (backends/weights.py): the Keras class, its automatic
# name prefix (creation order shows in the counter Keras appends), its variables in order.
_SHARED_KINDS = (
    ("conv", keras.layers.Conv2D, "conv2d", (("kernel", "kernel"), ("bias", "bias"))),
    ("bn", keras.layers.BatchNormalization, "batch_normalization",
     (("gamma", "gamma"), ("beta", "beta"), ("mean", "moving_mean"), ("var", "moving_variance"))),
    ("dense", keras.layers.Dense, "dense", (("kernel", "kernel"), ("bias", "bias"))),
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class KerasTrainer(Trainer):
    capabilities = frozenset({SHARED_WEIGHTS})

    def __init__(self, model: keras.Model, train: TrainConfig, loss_smoothing: float, loss=None):
        self.model = model
        # The `loss` arm: Keras' own smoothing, y*(1-eps) + eps/K, applied inside the loss; a
        # trick's loss (targets, logits) -> batch mean replaces it.
        self.loss = loss if loss is not None else keras_losses.cross_entropy(loss_smoothing)
        if train.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(learning_rate=train.lr, momentum=train.momentum,
                                             weight_decay=train.weight_decay or None)
        else:
            optimizer = keras.optimizers.Adam(learning_rate=train.lr, weight_decay=train.weight_decay or None)
        # XLA would change numerics run to run on some engines and is slower for tiny models on CPU.
        model.compile(optimizer=optimizer, loss=self.loss, jit_compile=False)

    def train_step(self, x: np.ndarray, targets: np.ndarray, lr: float) -> float:
        self.model.optimizer.learning_rate = lr
        out = self.model.train_on_batch(np.asarray(x, np.float32), np.asarray(targets, np.float32))
        return float(out[0] if isinstance(out, (list, tuple)) else out)

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        out = []
        for start in range(0, len(x), batch_size):
            chunk = np.asarray(x[start:start + batch_size], np.float32)
            n = len(chunk)
            if n < batch_size and start > 0:
                # One input shape per model: a shorter last chunk would trace the function again.
                chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
            out.append(keras.ops.convert_to_numpy(self.model.predict_on_batch(chunk))[:n])
        return _softmax(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    def gradients(self, x: np.ndarray, targets: np.ndarray) -> list[np.ndarray]:
        return self._gradients(x, targets, self.model.trainable_weights)

    def shared_weights(self) -> list[tuple[str, np.ndarray]]:
        return export_shared_weights(self.model)

    def shared_gradients(self, x: np.ndarray, targets: np.ndarray) -> list[tuple[str, np.ndarray]]:
        slots = [(name, v) for name, v in _shared_slots(self.model) if v.trainable]
        grads = self._gradients(x, targets, [v for _, v in slots])
        return [(name, g) for (name, _), g in zip(slots, grads)]

    def _gradients(self, x: np.ndarray, targets: np.ndarray, weights) -> list[np.ndarray]:
        x = np.asarray(x, np.float32)
        targets = np.asarray(targets, np.float32)
        engine = keras.backend.backend()
        if engine == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = self.loss(targets, self.model(x, training=True))
            grads = tape.gradient(loss, weights)
        elif engine == "torch":
            import torch

            for w in weights:
                w.value.grad = None
            loss = self.loss(torch.as_tensor(targets), self.model(x, training=True))
            loss.backward()
            grads = [w.value.grad for w in weights]
        elif engine == "jax":
            import jax

            # stateless_call takes every trainable weight; differentiate only those asked for.
            everything = self.model.trainable_weights
            wanted = [next(i for i, w in enumerate(everything) if w is v) for v in weights]
            values = [w.value for w in everything]
            non_trainable = [w.value for w in self.model.non_trainable_weights]

            def objective(chosen):
                full = list(values)
                for i, v in zip(wanted, chosen):
                    full[i] = v
                logits, _ = self.model.stateless_call(full, non_trainable, x, training=True)
                return self.loss(targets, logits)

            grads = jax.grad(objective)([values[i] for i in wanted])
        else:
            raise NotImplementedError(f"gradients are not wired for Keras engine {engine!r}")
        return [np.array(keras.ops.convert_to_numpy(g), copy=True) for g in grads]

    def weights(self) -> list[np.ndarray]:
        return [np.array(keras.ops.convert_to_numpy(w), copy=True) for w in self.model.trainable_weights]


# ------------------------------------------------------------ shared initial weights

def _creation_ordered(layers: list, prefix: str) -> list:
    """Layers of one kind in creation order.

    A functional model lists layers by graph depth, which interleaves inception branches;
    Keras' automatic names (conv2d, conv2d_1, ...) count up in creation order. Layers named
    by hand keep the model's order.
    """
    pattern = re.compile(rf"^{prefix}(?:_(\d+))?$")
    matches = [pattern.match(layer.name) for layer in layers]
    if not all(matches):
        return list(layers)
    return [layer for _, layer in sorted(zip((int(m.group(1) or 0) for m in matches), layers),
                                         key=lambda pair: pair[0])]


def _shared_slots(model: keras.Model) -> list[tuple[str, object]]:
    """(neutral name, variable) for every variable the shared layout fills.

    Keras already stores conv kernels HWIO and dense kernels (in, out), the neutral layout.
    A weight outside Conv2D / BatchNormalization / Dense layers cannot be filled, so the
    model is refused.
    """
    slots: list[tuple[str, object]] = []
    for kind, cls, prefix, parts in _SHARED_KINDS:
        layers = [layer for layer in model.layers if type(layer) is cls]
        for i, layer in enumerate(_creation_ordered(layers, prefix)):
            slots += [(f"{kind}{i}.{suffix}", getattr(layer, attr)) for suffix, attr in parts
                      if getattr(layer, attr, None) is not None]
    covered = {id(v) for _, v in slots}
    left = [v.path for v in model.weights if id(v) not in covered]
    if left:
        raise BackendError(f"shared weights: the Keras model has weights outside Conv2D, "
                           f"BatchNormalization and Dense layers ({', '.join(left[:3])}), which the "
                           f"shared layout cannot fill; use pairing: within-backend")
    return slots


def load_shared_weights(model: keras.Model, arrays) -> None:
    """Fill ``model`` with the neutral-layout ``arrays`` (ordered (name, array) pairs).

    Raises a one-line BackendError when the names or shapes do not match the model.
    """
    slots = _shared_slots(model)
    given = dict(arrays)
    names = [name for name, _ in slots]
    if set(names) != set(given):
        missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
        raise BackendError(f"shared weights: the Keras model's layers do not match the shared layout "
                           f"(missing {missing[:3]}, unexpected {extra[:3]}); use pairing: within-backend")
    for name, variable in slots:
        value = np.asarray(given[name], np.float32)
        if tuple(variable.shape) != value.shape:
            raise BackendError(f"shared weights: {name} has shape {value.shape}, but the Keras model "
                               f"needs {tuple(variable.shape)}")
        variable.assign(value.astype(variable.dtype))  # a float64 model takes the same draw


def shared_layout(model: keras.Model) -> list[tuple[str, tuple[int, ...]]]:
    """The model's neutral (name, shape) layout, for :func:`ablate.backends.weights.draw_layout`."""
    return [(name, tuple(v.shape)) for name, v in _shared_slots(model)]


def export_shared_weights(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """The model's weights in the neutral layout, batch-norm statistics included."""
    return [(name, np.array(keras.ops.convert_to_numpy(v), copy=True)) for name, v in _shared_slots(model)]


class KerasBackend(Backend):
    def __init__(self, name: str) -> None:
        self.name = name
        self.device = "cpu"

    def configure(self, *, device: str | None = None, threads: int | None = None,
                  deterministic: bool = True) -> None:
        engine = keras.backend.backend()
        if engine == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            for gpu in gpus:
                # Several runs share one GPU: claim memory as needed, not all of it up front.
                tf.config.experimental.set_memory_growth(gpu, True)
            if device == "cpu" and gpus:
                tf.config.set_visible_devices([], "GPU")
                gpus = []
            if threads:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(threads)
                    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(threads, 2)))
                except RuntimeError:  # the runtime was already initialised in this process
                    pass
            if deterministic:
                tf.config.experimental.enable_op_determinism()
            self.device = "cuda" if gpus else "cpu"
        elif engine == "torch":
            import torch

            if threads:
                torch.set_num_threads(threads)
            if deterministic:
                torch.use_deterministic_algorithms(True)
            self.device = "cuda" if torch.cuda.is_available() and device != "cpu" else "cpu"
        elif engine == "jax":
            import jax

            self.device = "cuda" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"

    def create_trainer(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                       train: TrainConfig, loss_smoothing: float, seed: int, soft_targets: bool = False,
                       factory: str | None = None, search_paths: Sequence[str] = (),
                       initial_weights=None, loss=None) -> KerasTrainer:
        # Seeds Python, numpy and the engine: the same seed gives every arm the same weights
        # and the same dropout draws. Keras' smoothed loss smooths whatever targets it gets,
        # so soft targets need nothing special.
        keras.utils.set_random_seed(seed)
        net = keras_models.build_model(model, tuple(input_shape), num_classes, factory, search_paths)
        if initial_weights is not None:  # pairing: cross-backend
            if callable(initial_weights):  # a plug-in model: drawn for the layout it built
                initial_weights = initial_weights(shared_layout(net))
            load_shared_weights(net, initial_weights)
        return KerasTrainer(net, train, loss_smoothing, loss)

    def call_model(self, *, model: str, input_shape: tuple[int, ...], num_classes: int, x: np.ndarray,
                   factory: str | None = None, search_paths: Sequence[str] = (), layout: bool = False):
        keras.utils.set_random_seed(0)
        net = keras_models.build_model(model, tuple(input_shape), num_classes, factory, search_paths)
        out = net(np.asarray(x, np.float32), training=False)
        if isinstance(out, (tuple, list, dict)):
            raise BackendError(f"returned {type(out).__name__}, not a tensor of logits (batch, K)")
        values = np.asarray(keras.ops.convert_to_numpy(out), np.float64)
        if not layout:
            return values, None
        try:
            return values, shared_layout(net)
        except BackendError as exc:
            return values, str(exc)

    def environment(self) -> Mapping[str, str]:
        engine = keras.backend.backend()
        env = {"framework": "keras", "keras": keras.__version__, "engine": engine, "device": self.device}
        if engine == "tensorflow":
            import tensorflow as tf

            env["tensorflow"] = tf.__version__
        elif engine == "torch":
            import torch

            env["torch"] = torch.__version__
        elif engine == "jax":
            import jax

            env["jax"] = jax.__version__
        return env

    def count_parameters(self, *, model: str, input_shape: tuple[int, ...], num_classes: int,
                         factory: str | None = None, search_paths: Sequence[str] = ()) -> int:
        return keras_models.count_trainable(model, tuple(input_shape), num_classes, factory, search_paths)


def create_backend(name: str) -> KerasBackend:
    return KerasBackend(name)

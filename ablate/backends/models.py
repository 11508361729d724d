"""The models registry: each built-in model's factory per framework, and how a factory is found.

A factory is ``fn(input_shape: tuple, num_classes: int)`` returning an ``nn.Module`` (torch)
or a ``keras.Model`` that outputs logits. ``input_shape`` is the shape of one example as the
data stores it: ``(H, W, C)`` for images, ``(F,)`` for feature vectors. A torch module
receives images as ``(B, C, H, W)``, a Keras model as ``(B, H, W, C)``; feature vectors are
``(B, F)`` in both. The backend seeds its framework before calling the factory.

Built-ins are entries whose factories are references into :mod:`ablate.backends.torch_models`
and :mod:`ablate.backends.keras_models`; user models take the same path, from a grid's
``{name, torch: "module:function", keras: "module:function"}`` or from an installed
package's entry point in the group ``ablate.models`` (an object with ``torch``/``keras``
references, e.g. ``{"torch": "pkg.models:tiny_torch", "keras": "pkg.models:tiny_keras"}``).
Importing this module imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import BackendError
from ablate.registry import Registry, resolve


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    factories: Mapping[str, str] = field(default_factory=dict)  # framework -> "module:function"
    min_pixels: int | None = None  # images only, at least this many pixels a side; None: any input
    # "module:function" planning the shared initial-weight layout ``(input_shape, K) -> layers``
    # (pairing: cross-backend, drawn in numpy); None: read off the built model instead.
    layout: str | None = None


def _from_entry_point(name: str, obj: Any) -> ModelEntry:
    if isinstance(obj, ModelEntry):
        return obj
    if callable(obj) and not isinstance(obj, Mapping):
        obj = obj()
    if not isinstance(obj, Mapping) or not ({"torch", "keras"} & set(obj)):
        raise BackendError(f"entry point {name!r} in ablate.models must give a ModelEntry or a mapping "
                           f"with 'torch' and/or 'keras' references, but gave {type(obj).__name__}")
    factories = {fw: obj[fw] for fw in ("torch", "keras") if obj.get(fw)}
    return ModelEntry(name, str(obj.get("description", f"plug-in model ({', '.join(factories)})")), factories,
                      obj.get("min_pixels"), obj.get("layout"))


MODELS: Registry[ModelEntry] = Registry("model", group="ablate.models", from_entry_point=_from_entry_point)
for _entry in (
    ModelEntry("mlp", "two hidden layers (256, 128), ReLU; any input shape",
               {"torch": "ablate.backends.torch_models:mlp", "keras": "ablate.backends.keras_models:mlp"},
               layout="ablate.backends.weights:plan_mlp"),
    ModelEntry("small-cnn", "two conv blocks + dense head; images of at least 4x4",
               {"torch": "ablate.backends.torch_models:small_cnn", "keras": "ablate.backends.keras_models:small_cnn"},
               min_pixels=4, layout="ablate.backends.weights:plan_small_cnn"),
    ModelEntry("minigooglenet", "the Keras notebook's MiniGoogLeNet (1.65M parameters at 32x32x3); images of at "
               "least 31x31",
               {"torch": "ablate.backends.torch_models:minigooglenet",
                "keras": "ablate.backends.keras_models:minigooglenet"}, min_pixels=31,
               layout="ablate.backends.weights:plan_minigooglenet"),
    ModelEntry("fastai-cnn", "the fast.ai course's conv_layer CNN (the Imagenette notebook); images of at least 1x1",
               {"torch": "ablate.backends.torch_models:fastai_cnn", "keras": "ablate.backends.keras_models:fastai_cnn"},
               min_pixels=1, layout="ablate.backends.weights:plan_fastai_cnn"),
):
    MODELS.register(_entry.name, _entry)


def entry(name: str) -> ModelEntry:
    """The registered model ``name``, or a one-line BackendError listing the known ones."""
    if name not in MODELS:
        raise BackendError(MODELS.unknown(name))
    return MODELS.get(name)


def check_input(name: str, input_shape: Sequence[int]) -> None:
    """Raise a one-line BackendError if registered model ``name`` cannot take ``input_shape``."""
    found = entry(name)
    if found.min_pixels is None:
        return
    if len(input_shape) != 3:
        raise BackendError(f"model {name!r} takes images (H, W, C), but the data holds feature vectors of shape "
                           f"{tuple(input_shape)}; use mlp or a model of your own")
    h, w, _ = input_shape
    if min(h, w) < found.min_pixels:
        raise BackendError(f"model {name!r} needs inputs of at least {found.min_pixels}x{found.min_pixels} pixels, "
                           f"but got {h}x{w}")


def factory(name: str, framework: str, reference: str | None = None,
            search_paths: Sequence[str | Path] = ()) -> Callable[[tuple, int], Any]:
    """The factory that builds model ``name`` in ``framework`` (``torch`` or ``keras``).

    ``reference`` ("module:function") is a grid's user model; otherwise the registry's entry.
    """
    if reference is None:
        found = entry(name)
        reference = found.factories.get(framework)
        if reference is None:
            raise BackendError(f"model {name!r} has no {framework} factory; it is available for "
                               f"{', '.join(found.factories) or 'no framework'}")
    if callable(reference):  # a function handed to the grid in Python
        return reference
    try:
        return resolve(reference, search_paths)
    except BackendError:
        raise
    except Exception as exc:  # an AblateError from resolve: same line, as a backend error
        raise BackendError(f"model {name!r}: {exc}") from None


def build(name: str, framework: str, input_shape: Sequence[int], num_classes: int,
          reference: str | None = None, search_paths: Sequence[str | Path] = ()) -> Any:
    """Model ``name`` built by its ``framework`` factory; a registered model's input is checked first."""
    if reference is None:
        check_input(name, input_shape)
    return factory(name, framework, reference, search_paths)(tuple(input_shape), num_classes)

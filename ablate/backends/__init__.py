"""Training backends, one module per framework, behind the contract in :mod:`ablate.backends.base`.

Modules are imported lazily by name, so importing this package imports no framework.
A backend name is ``torch`` or ``keras/<engine>`` (``keras`` alone means ``keras/tensorflow``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

from ablate.config import canonical_backend
from ablate.errors import BackendError
from ablate.registry import Registry


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # imported only when a worker loads the backend
    packages: tuple[str, ...]  # top-level packages it needs
    hint: str  # how to install them
    description: str
    # Trains K runs as one vectorised model (its Backend lists PACKS in `capabilities`); known here so
    # the driver can plan packs without importing a framework.
    packs: bool = False


BACKENDS: Registry[BackendEntry] = Registry("backend")
for _entry in (
    BackendEntry("torch", "ablate.backends.torch", ("torch",), "pip install 'torch>=2.1'", "PyTorch", packs=True),
    BackendEntry("keras/tensorflow", "ablate.backends.keras", ("keras", "tensorflow"),
                 "pip install 'keras>=3' tensorflow-cpu", "Keras 3 on TensorFlow (also spelled `keras`)"),
    BackendEntry("keras/jax", "ablate.backends.keras", ("keras", "jax"), "pip install 'keras>=3' jax",
                 "Keras 3 on JAX"),
    BackendEntry("keras/torch", "ablate.backends.keras", ("keras", "torch"), "pip install 'keras>=3' torch",
                 "Keras 3 on PyTorch"),
):
    BACKENDS.register(_entry.name, _entry)
BACKEND_NAMES: tuple[str, ...] = BACKENDS.names()


def accepted_names() -> tuple[str, ...]:
    """Every spelling a grid may use: the registry's names and the `keras` alias."""
    return ("keras",) + BACKENDS.names()


def canonical(name: str) -> str:
    """Map a user-facing name to its registry key, or raise listing the known names."""
    key = canonical_backend(name)
    if key not in BACKENDS:
        raise BackendError(f"Expected backend to be one of {accepted_names()}, but got {name!r}.")
    return key


def engine(name: str) -> str | None:
    """The Keras engine a backend needs fixed in its process (None for non-Keras backends)."""
    key = canonical(name)
    return key.split("/", 1)[1] if key.startswith("keras/") else None


def check_installed(name: str) -> None:
    """Raise a one-line BackendError with the install hint if the backend's framework is absent.

    Uses import specs only, so nothing heavy is imported.
    """
    key = canonical(name)
    entry = BACKENDS.get(key)
    packages, hint = entry.packages, entry.hint
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise BackendError(f"backend {name!r} needs {', '.join(missing)}, which is not installed; "
                           f"install it with: {hint}")


def load(name: str):
    """Import and return the backend object for ``name``.

    For Keras backends the engine must be fixed before Keras is first imported in this
    process; a clash with an already-imported Keras is an error rather than a silent switch.
    """
    key = canonical(name)
    check_installed(key)
    module_name = BACKENDS.get(key).module
    eng = engine(key)
    if eng is not None:
        import sys

        current = os.environ.get("KERAS_BACKEND")
        if "keras" in sys.modules and current not in (None, eng):
            raise BackendError(f"backend {name!r} needs KERAS_BACKEND={eng}, but this process "
                               f"already imported Keras with {current!r}; run it in its own process")
        os.environ["KERAS_BACKEND"] = eng
    module = importlib.import_module(module_name)
    return module.create_backend(key)

"""Checks made once, in the driver, before any run starts: frameworks and data are here."""

from __future__ import annotations

import os

from ablate import backends
from ablate.config import Grid
from ablate.data import catalogue
from ablate.errors import BackendError, ConfigError, DatasetError


def check_environment(grid: Grid) -> None:
    """Fail early, before anything runs, when a backend's framework or a dataset is missing."""

    for i, backend in enumerate(grid.backends):
        try:
            backends.check_installed(backend)
        except BackendError as exc:
            raise ConfigError(f"{grid.source}: `backends[{i}]`: {exc}") from None
    for i, ds in enumerate(grid.datasets):
        try:
            try:
                catalogue.check_available(ds.name, ds.path, download=False)
            except DatasetError:
                catalogue.check_available(ds.name, ds.path, download=True)
                # Not here yet but downloadable: fetch it once now, so that a machine without
                # internet fails with one line before any run starts, not once per run.
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                catalogue.load_dataset(ds.name, path=ds.path)
        except DatasetError as exc:
            raise ConfigError(f"{grid.source}: `datasets[{i}]`: {exc}") from None
    check_pairing(grid)


def check_pairing(grid: Grid) -> None:
    """Under ``pairing: cross-backend`` every model needs a shared initial-weight layout."""
    from ablate.backends import weights

    if getattr(grid, "pairing", "within-backend") != "cross-backend":
        return
    for i, model in enumerate(grid.models):
        if not weights.has_layout(model):
            raise ConfigError(f"{grid.source}: `models[{i}]`: pairing: cross-backend needs a shared "
                              f"weight layout, which exists for {weights.LAYOUT_MODELS}, but got {model!r}")

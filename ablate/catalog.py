"""Every registry in one place, and the grid loader that checks names against them.

:mod:`ablate.grid_parser` parses a grid without importing any registry (a leaf, like
:mod:`ablate.config`); the names it may accept come from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablate import backends, tricks
from ablate.analysis import sequential
from ablate.backends import models
from ablate.config import Grid, Names, TrickInfo
from ablate.data import catalogue
from ablate.execution import executors
from ablate.grid_parser import parse_grid as _parse
from ablate.grid_parser import read_grid_file


def names() -> Names:
    """The names each registry knows now (built-ins, entry points, and anything registered)."""
    return Names(
        tricks={name: TrickInfo(uses_smoothing=t.uses_smoothing, params=dict(t.params), parts=t.parts(),
                                images_only=t.images_only) for name, t in tricks.TRICKS.items()},
        models=models.MODELS.names(),
        datasets=catalogue.DATASETS.names(),
        backends=backends.accepted_names(),
        resizable_datasets=tuple(n for n, d in catalogue.DATASETS.items() if d.resizable),
        spendings=sequential.SPENDINGS,
    )


def parse_grid(data: Any, source: str = "<grid>", base_dir: str | Path | None = None) -> Grid:
    """Validate a grid document (a mapping, as YAML gives it) against the registries."""
    return _parse(data, names=names(), source=source, base_dir=base_dir)


def load_grid(grid: str | Path | Mapping[str, Any] | Grid) -> Grid:
    """A grid from a YAML file, a mapping (relative paths from the working directory) or a Grid."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, Mapping):
        return parse_grid(grid, source="<grid dict>", base_dir=Path.cwd())
    path = Path(grid)
    return parse_grid(read_grid_file(path), source=str(path), base_dir=path.parent)


def describe() -> dict[str, list[tuple[str, str]]]:
    """Extension point -> [(name, description)], for `python -m ablate plugins`."""
    return {
        "tricks": [(n, t.describe()) for n, t in tricks.TRICKS.items()],
        "models": [(n, m.description) for n, m in models.MODELS.items()],
        "datasets": [(n, d.description) for n, d in catalogue.DATASETS.items()],
        "backends": [(n, b.description) for n, b in backends.BACKENDS.items()],
        "executors": [(n, e.description) for n, e in executors.EXECUTORS.items()],
    }

"""ablate: run ablation grids over training frameworks and settle them with statistics.

Importing this package imports no training framework and no plotting library.
"""

__version__ = "0.1.0"

from ablate.errors import AblateError, BackendError, ConfigError, DatasetError, Interrupted, StoreError

__all__ = ["load_grid", "run", "plan", "load_study", "compare", "__version__",
           "AblateError", "ConfigError", "DatasetError", "BackendError", "StoreError", "Interrupted"]


def __getattr__(name: str):
    # The API module is imported on first use, so `import ablate` stays light.
    if name in ("load_grid", "run", "plan", "load_study", "compare"):
        from ablate import api

        return getattr(api, name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")

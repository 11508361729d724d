"""ablate: run ablation grids over training frameworks and settle them with statistics.

Importing this package imports no training framework and no plotting library.
"""

__version__ = "0.1.0"

"""Figures. This package is the only place that imports matplotlib or seaborn.

Every plotting function takes ``ax=None`` (or draws a whole figure) and returns the
figure; styling goes through :func:`ablate.analysis.figures._style.style` so it never leaks into
the caller's matplotlib state. No statistics are computed here.
"""

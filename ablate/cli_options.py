"""The command line's option values, parsed: ``--margin``, ``--compare``, ``--sequential`` and ``--spending``.

Each turns what was typed into the value the analysis takes (a margins mapping, arm pairs, looks,
a spending function's name) or refuses it with one line naming the flag. The analysis itself only
takes parsed values, so a Python caller never meets a flag's name in an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ablate.config import SD_RATIO_KEY
from ablate.errors import ConfigError, InputError


def parse_margins(items: Sequence[str]) -> dict[str, float]:
    """``["accuracy=0.005", ...]`` -> {metric: margin}; VALUE must be finite and > 0."""
    out: dict[str, float] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            margin = float(value)
            if not sep or not metric.strip() or not (math.isfinite(margin) and margin > 0):
                raise ValueError
        except ValueError:
            raise ConfigError(f"--margin: expected METRIC=VALUE with a finite VALUE > 0, e.g. accuracy=0.005, "
                              f"but got {item!r}") from None
        if metric.strip() == SD_RATIO_KEY and margin <= 1:
            raise ConfigError(f"--margin: {SD_RATIO_KEY} is the SD ratio's band [1/m, m] and needs m > 1, "
                              f"e.g. {SD_RATIO_KEY}=1.5, but got {item!r}")
        out[metric.strip()] = margin
    return out


def parse_pairs(items: Sequence[str]) -> list[tuple[str, str]] | None:
    """``["baseline:mixup", ...]`` -> [(arm_a, arm_b), ...]; no items -> None (every pair)."""
    out = []
    for item in items:
        a, sep, b = item.partition(":")
        if not sep or not a.strip() or not b.strip() or ":" in b:
            raise ConfigError(f"--compare: expected ARM_A:ARM_B, e.g. none:loss, but got {item!r}")
        out.append((a.strip(), b.strip()))
    return out or None


def parse_looks(text: str, option: str = "--sequential") -> tuple[int, ...]:
    """``"5,10,15,20"`` -> (5, 10, 15, 20); anything else is a one-line error naming ``option``."""
    try:
        values = tuple(int(v.strip()) for v in str(text).split(","))
    except ValueError:
        values = ()
    if not values or values[0] < 2 or any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(f"{option}: expected increasing integers >= 2 separated by commas (seeds at each look), "
                         f"e.g. 5,10,15,20, but got {text!r}")
    return values


def check_spending_option(spending: str | None, option: str = "--spending") -> str:
    """None -> the first of :data:`ablate.analysis.sequential.SPENDINGS` (``obrien-fleming``); an
    unknown name is a one-line error naming ``option``."""
    from ablate.analysis.sequential import SPENDINGS  # the CLI sits above the analysis

    if spending is None:
        return SPENDINGS[0]
    if spending not in SPENDINGS:
        raise InputError(f"{option}: expected one of {', '.join(SPENDINGS)}, but got {spending!r}")
    return spending

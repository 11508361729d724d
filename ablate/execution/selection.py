"""``--only`` and ``--seeds``: pick a subset of a grid's runs.

Both select on any source of randomness as well (``--only order=2``, ``--seeds split=0-1``):
a run's seed of that source, its factorial cell's or, under ``seeds: N``, ``seed`` itself
(``split`` is then 0).
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.config import SOURCES, RunSpec, canonical_backend
from ablate.errors import ArgumentError

SELECT_KEYS = ("backend", "dataset", "model", "arm", "smoothing", *SOURCES)


def parse_seeds(text: str, grid_seeds: Sequence[int] | None = None) -> set[int]:
    """``"0-9"``, ``"0,2,5"`` or ``"0-3,7"`` -> the set of seeds, among ``grid_seeds`` when given.

    Ranges are intersected with the grid's seeds as they are read, so a huge range costs
    nothing; a selection that leaves no seed of the grid is refused.
    """
    seeds: set[int] = set()
    asked: list[str] = []
    universe = set(grid_seeds) if grid_seeds is not None else None
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            asked.append(part)
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo or lo < 0:
                    raise ValueError
                if universe is not None:
                    seeds.update(s for s in universe if lo <= s <= hi)
                elif hi - lo > 1_000_000:
                    raise ArgumentError("seeds", f"range {part!r} is too large (more than a million seeds)")
                else:
                    seeds.update(range(lo, hi + 1))
            else:
                value = int(part)
                if value < 0:
                    raise ValueError
                if universe is None or value in universe:
                    seeds.add(value)
    except ValueError:
        raise ArgumentError("seeds", f"expected a range like 0-9 or a list like 0,2,5, but got {text!r}") from None
    if not asked:
        raise ArgumentError("seeds", f"expected at least one seed, but got {text!r}")
    if not seeds:
        shown = sorted(universe or ())
        listing = f"{shown[0]}-{shown[-1]}" if shown == list(range(shown[0], shown[-1] + 1)) else shown
        raise ArgumentError("seeds", f"{text!r} selects none of the grid's seeds ({listing})")
    return seeds


def parse_only(text: str) -> dict[str, set[str]]:
    """``"backend=torch,arm=loss,arm=explicit"`` -> {key: allowed values}; values of one key are OR-ed."""
    wanted: dict[str, set[str]] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ArgumentError("only", f"expected KEY=VALUE items, but got {part!r}")
        if key not in SELECT_KEYS:
            raise ArgumentError("only", f"expected keys among {SELECT_KEYS}, but got {key!r}")
        if key == "backend":
            value = canonical_backend(value)
        if key == "smoothing":
            try:
                value = repr(float(value))
            except ValueError:
                raise ArgumentError("only", f"smoothing must be a number, but got {value!r}") from None
        if key in SOURCES:
            try:
                value = str(int(value))
            except ValueError:
                raise ArgumentError("only", f"{key} is a seed, an integer, but got {value!r}") from None
        wanted.setdefault(key, set()).add(value)
    return wanted


def _field(spec: RunSpec, key: str) -> str:
    if key in SOURCES:
        return str(spec.source_seed(key))
    return {"backend": spec.backend, "dataset": spec.dataset.name, "model": spec.model, "arm": spec.arm,
            "smoothing": repr(float(spec.smoothing))}[key]


def select(runs: Sequence[RunSpec], *, only: str | None = None, seeds: str | None = None,
           grid_seeds: Sequence[int] | None = None) -> list[RunSpec]:
    out = list(runs)
    if only:
        wanted = parse_only(only)
        for key, values in wanted.items():
            present = {_field(s, key) for s in out}
            unknown = values - present
            if unknown:
                raise ArgumentError("only", f"{key} {sorted(unknown)} is not in the grid; "
                                    f"the grid has {sorted(present)}")
        out = [s for s in out if all(_field(s, k) in v for k, v in wanted.items())]
    if seeds:
        source, sep, text = seeds.partition("=")
        if sep:  # SOURCE=RANGE: seeds of one source of randomness
            source = source.strip()
            if source not in SOURCES:
                raise ArgumentError("seeds", f"expected RANGE or SOURCE=RANGE with SOURCE among {SOURCES}, "
                                             f"but got {seeds!r}")
            chosen = parse_seeds(text, sorted({s.source_seed(source) for s in runs}))
            return [s for s in out if s.source_seed(source) in chosen]
        chosen = parse_seeds(seeds, grid_seeds if grid_seeds is not None else sorted({s.seed for s in runs}))
        out = [s for s in out if s.seed in chosen]
    return out

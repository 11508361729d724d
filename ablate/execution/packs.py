"""Packs: which runs train together as one vectorised model (see :mod:`ablate.execution.pack_runner`).

Runs can share a pack when they share backend, dataset, model and training settings; they
differ in seed, arm and smoothing. :func:`plan_packs` keeps the arms of one seed in one
pack, so the runs a paired comparison needs finish together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ablate import tricks
from ablate.config import TRICK_PARTS, RunSpec
from ablate.errors import ArgumentError

AUTO_MAX = 64  # `--pack auto` never builds larger packs
AUTO_MEMORY_FRACTION = 0.6  # of the free device memory, for `--pack auto`


def parse_pack(value: str | int | None) -> int | str:
    """``--pack``: a positive int, or "auto". None means 1 (unpacked)."""
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1:
        raise ArgumentError("pack", f"expected a positive integer or 'auto', but got {value!r}")
    return k


def auto_pack_size(*, free_bytes: int | None, member_bytes: int, shared_bytes: int = 0) -> int:
    """Members per pack for ``--pack auto``: what ``AUTO_MEMORY_FRACTION`` of the free device memory holds.

    member_bytes: one member's measured footprint (see ``torch_pack.member_bytes``); shared_bytes:
    what the pack holds once whatever its size (the training images). 1 without a device figure;
    never more than ``AUTO_MAX``. The fraction leaves room for the framework's workspaces and
    allocator slack; a pack that still runs out is split by the worker.
    """
    if not free_bytes:
        return 1
    budget = AUTO_MEMORY_FRACTION * free_bytes - shared_bytes
    return int(max(1, min(AUTO_MAX, budget // max(1, member_bytes))))


def pack_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can share a pack: one backend, dataset, model, training config and
    trick loss. The label-smoothing tricks pack together (they differ only in targets); any
    other trick packs with its own kind, params equal, since members share one loss."""
    trick = tricks.get(spec.method) if spec.trick is None else None
    split = spec.source_seed("split")  # members share one dataset, so one split
    if trick is not None and not trick.parts():
        return (spec.backend, spec.dataset, split, spec.model, spec.train)
    refs = None if spec.trick is None else tuple((p, getattr(spec.trick, p)) for p in TRICK_PARTS)
    return (spec.backend, spec.dataset, split, spec.model, spec.train, spec.method, refs,
            tuple(sorted(spec.params.items())))


def packable(spec: RunSpec) -> bool:
    """Whether ``spec`` can train in a pack: a packing backend, and no numpy batch part (host path only)."""
    from ablate.backends import BACKENDS

    if spec.backend not in BACKENDS or not BACKENDS.get(spec.backend).packs:  # Keras does not pack (README)
        return False
    if spec.trick is not None:
        return spec.trick.batch is None
    return not tricks.get(spec.method).host_only()


def plan_packs(specs: Sequence[RunSpec], size: int) -> list[list[RunSpec]]:
    """Group ``specs`` into packs of at most ``size`` runs, grid order kept.

    The runs of one seed (and repeat) with one pack key form a unit that is never split unless
    it alone is larger than ``size``. Backends that cannot pack get packs of one.
    """
    if size <= 1:
        return [[s] for s in specs]
    units: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        units.setdefault((pack_key(spec), spec.seed, spec.repeat), []).append(spec)
    packs: list[list[RunSpec]] = []
    open_pack: dict[tuple, list[RunSpec]] = {}
    for (key, _, _), unit in units.items():
        if not all(packable(s) for s in unit):
            packs.extend([s] for s in unit)
            continue
        for start in range(0, len(unit), size):
            chunk = unit[start:start + size]
            current = open_pack.get(key)
            if current is None or len(current) + len(chunk) > size:
                current = []
                packs.append(current)
                open_pack[key] = current
            current.extend(chunk)
    return packs




def resolve_pack(pack: int | str, *, runs: int, slots: int, on_gpu: bool) -> tuple[int, bool]:
    """(runs per pack the driver plans, whether workers trim packs to their device memory).

    ``auto`` on the CPU is 1 (unpacked; on the CPU packs pay only for longer runs, so they are asked for);
    on a GPU it spreads the runs over the slots, at most ``AUTO_MAX`` per pack, and each
    worker then splits a pack its device cannot hold (:func:`auto_pack_size`).
    """
    if pack != "auto":
        return int(pack), False
    if not on_gpu:
        return 1, False
    return max(1, min(AUTO_MAX, math.ceil(runs / max(1, slots)))), True

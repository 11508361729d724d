"""``python -m ablate status``: done / failed / diverged / pending per cell, read from the store.

It reads only finished records (each written atomically) and never takes the study lock,
so it is safe while a sweep is running. Pending runs that a worker is executing right now
(their claim is held) are counted as ``running`` as well. A stored record that fails the
store's validation counts as ``invalid`` (the next `run` moves it aside and runs it again).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from ablate.config import RunSpec
from ablate.execution.progress import format_table
from ablate.execution.store import RunStore
from ablate.statuses import COMPLETED, STATUSES

STATUS_COLUMNS = (*STATUSES, "invalid", "pending", "running", "total")  # stored statuses, then states of cells


def grid_status(runs: Sequence[RunSpec], store: RunStore) -> dict[tuple, collections.Counter]:
    """cell (backend, dataset, model, arm, eps) -> Counter of statuses.

    Every run counts once under its stored status, ``invalid`` or ``pending``, and once under
    ``total``; ``running`` is the part of ``pending`` and ``invalid`` being executed now.
    """
    from ablate.execution.worker import is_claimed

    valid, invalid = store.survey()
    stored = {rid: "invalid" for rid in invalid} | valid
    cells: dict[tuple, collections.Counter] = {}
    seen: set[str] = set()
    for spec in runs:
        if spec.run_id in seen:
            continue
        seen.add(spec.run_id)
        counts = cells.setdefault(spec.cell, collections.Counter())
        status = stored.get(spec.run_id, "pending")
        counts[status] += 1
        counts["total"] += 1
        if status != COMPLETED and is_claimed(store.run_dir(spec.run_id)):
            counts["running"] += 1
    return cells


def format_status(cells: dict[tuple, collections.Counter]) -> str:
    header = ("backend", "dataset", "model", "arm", "eps") + STATUS_COLUMNS
    rows = [header]
    total: collections.Counter = collections.Counter()
    for (backend, dataset, model, arm, eps), counts in cells.items():
        total.update(counts)
        rows.append((backend, dataset, model, arm, "-" if not eps else f"{eps:g}")  # 0: a trick without ε
                    + tuple(str(counts.get(c, 0)) for c in STATUS_COLUMNS))
    rows.append(("total", "", "", "", "") + tuple(str(total.get(c, 0)) for c in STATUS_COLUMNS))
    return format_table(rows)

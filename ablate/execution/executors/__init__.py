"""The executors registry: where a grid's runs execute.

``local`` is the persistent process pool of :mod:`ablate.execution.orchestrator`; ``ray``
runs the same workers as Ray actors. Each entry names its entry function by reference, so
``import ablate`` never imports a distributed engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.registry import Registry


@dataclass(frozen=True)
class ExecutorEntry:
    name: str
    run: str  # "module:function" taking (runs, store=..., results=..., **options) -> SweepSummary
    description: str
    uses_address: bool = False


EXECUTORS: Registry[ExecutorEntry] = Registry("executor")
for _entry in (
    ExecutorEntry("local", "ablate.execution.orchestrator:run_local",
                  "persistent worker processes on this machine (CPU slots or per-GPU slots)"),
    ExecutorEntry("ray", "ablate.execution.executors.ray:run_ray",
                  "Ray actors, one per slot, on a local or remote Ray cluster (--address)", uses_address=True),
):
    EXECUTORS.register(_entry.name, _entry)

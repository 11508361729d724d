"""The one vocabulary of run statuses: every stored run is completed, failed or diverged.

A leaf: it imports nothing of ablate, so the store, the runners, the orchestrator and the
analysis of a runs table all spell a status through these names.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Status = Literal["completed", "failed", "diverged"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
COMPLETED: Final[Status] = "completed"  # trained to the end; its metrics are analysed
FAILED: Final[Status] = "failed"  # an error (or a time limit) stopped it; `run` tries it again
DIVERGED: Final[Status] = "diverged"  # the loss or the probabilities became non-finite
# Outcomes never overwritten nor executed again: a diverged run would diverge again (runs are
# deterministic); a failed one may have met a passing problem, so it runs again.
FINAL_STATUSES: Final[tuple[Status, ...]] = (COMPLETED, DIVERGED)
UNSUCCESSFUL: Final[tuple[Status, ...]] = (FAILED, DIVERGED)  # listed in the report with their errors

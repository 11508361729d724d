"""The live progress display of a sweep: done / failed / remaining, running runs and an ETA.

On a terminal one status line is redrawn in place; otherwise (CI, a log file) one line is
printed per finished run, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ablate.statuses import COMPLETED, DIVERGED


def format_table(rows) -> str:
    """Rows of cells as left-aligned columns, two spaces apart (the CLI's tables)."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    def __init__(self, total: int, *, skipped: int = 0, workers: int = 1, stream: TextIO | None = None,
                 live: bool | None = None):
        self.total = total
        self.skipped = skipped
        self.workers = max(1, workers)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.done = self.failed = self.diverged = 0
        self.durations: list[float] = []
        self.running: dict[str, tuple[int, int]] = {}
        self.started = time.monotonic()
        self._last_draw = 0.0

    # -------------------------------------------------------------- events
    def start(self) -> None:
        msg = f"{self.total} run(s) to do"
        if self.skipped:
            msg += f", {self.skipped} already stored (completed or diverged) and skipped"
        self._line(msg)

    def run_started(self, run_id: str) -> None:
        self.running[run_id] = (0, 0)
        self.tick(force=True)

    def epoch(self, run_id: str, epoch: int, epochs: int) -> None:
        self.running[run_id] = (epoch, epochs)
        self.tick()

    def run_done(self, run_id: str, name: str, status: str, seconds: float, error: str = "") -> None:
        self.running.pop(run_id, None)
        if status == COMPLETED:
            self.done += 1
            self.durations.append(seconds)
        elif status == DIVERGED:
            self.diverged += 1
        else:
            self.failed += 1
        finished = self.done + self.failed + self.diverged
        detail = f" - {error}" if error and status != COMPLETED else ""
        self._line(f"[{finished}/{self.total}] {status:<9} {name} ({seconds:.1f}s){detail}  {self._counts()}")

    def retry(self, run_id: str, name: str, error: str) -> None:
        self.running.pop(run_id, None)
        self._line(f"retrying {name} after failure: {error}")

    def note(self, text: str) -> None:
        self._line(text)

    def tick(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.5:
            return
        self._last_draw = now
        epochs = " ".join(f"[{e}/{n}]" for e, n in self.running.values())
        self.stream.write("\r\033[K" + self._counts() + f" | running {len(self.running)} {epochs}")
        self.stream.flush()

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        self._line(f"finished in {_duration(elapsed)}: {self.done} completed, {self.failed} failed, "
                   f"{self.diverged} diverged, {self.skipped} skipped")

    # -------------------------------------------------------------- helpers
    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - self.diverged

    def eta(self) -> float | None:
        """Mean duration of completed runs, times the runs left, over the parallel workers."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * self.remaining / self.workers

    def _counts(self) -> str:
        eta = self.eta()
        eta_text = _duration(eta) if eta is not None else "?"
        return (f"done {self.done} | failed {self.failed} | diverged {self.diverged} | "
                f"remaining {self.remaining} | ETA {eta_text}")

    def _line(self, text: str) -> None:
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()

"""The live progress display of a sweep: done / failed / remaining, running runs and an ETA.

On a terminal one status line is redrawn in place. In a Jupyter kernel, whose output is no
terminal, a ``tqdm.auto`` progress bar takes its place (a widget where ipywidgets is installed,
text otherwise), with one line per failed run. Anywhere else (CI, a log file) one line is
printed per finished run, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from ablate.statuses import COMPLETED, DIVERGED


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython already imported, under a kernel app)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    try:
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 - an odd shell is not a kernel
        return False


def _tqdm():
    import warnings

    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto falls back to its text bar, with a warning saying so.
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


def format_table(rows) -> str:
    """Rows of cells as left-aligned columns, two spaces apart (the CLI's tables)."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def eta_groups(specs) -> dict[str, str]:
    """run id -> "backend model", the groups whose durations the ETA estimates apart."""
    return {s.run_id: f"{s.backend} {s.model}" for s in specs}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``groups``: run id -> what its duration is estimated from (``"torch mlp"``: its backend and
    model), so that fast torch runs never promise a time for slow Keras ones; None: one group."""

    def __init__(self, total: int, *, skipped: int = 0, workers: int = 1, stream: TextIO | None = None,
                 live: bool | None = None, groups: Mapping[str, str] | None = None,
                 bar: bool | None = None):
        self.total = total
        self.groups = dict(groups or {})
        self.finished_ids: set[str] = set()
        self.group_durations: dict[str, list[float]] = {}
        self.skipped = skipped
        self.workers = max(1, workers)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        # bar: a tqdm.auto bar (None: in a Jupyter kernel, when the output is no terminal).
        self.use_bar = (not self.live and in_notebook()) if bar is None else bar
        self.live = self.live and not self.use_bar
        self._bar: Any = None
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
        if self.use_bar and self._bar is None:
            self._bar = _tqdm()(total=self.total, unit="run", file=self.stream, dynamic_ncols=True,
                                mininterval=0.5, desc="runs")

    def run_started(self, run_id: str) -> None:
        self.running[run_id] = (0, 0)
        self.tick(force=True)

    def epoch(self, run_id: str, epoch: int, epochs: int) -> None:
        self.running[run_id] = (epoch, epochs)
        self.tick()

    def run_done(self, run_id: str, name: str, status: str, seconds: float, error: str = "") -> None:
        self.running.pop(run_id, None)
        self.finished_ids.add(run_id)
        if status == COMPLETED:
            self.done += 1
            self.durations.append(seconds)
            self.group_durations.setdefault(self.groups.get(run_id, ""), []).append(seconds)
        elif status == DIVERGED:
            self.diverged += 1
        else:
            self.failed += 1
        finished = self.done + self.failed + self.diverged
        detail = f" - {error}" if error and status != COMPLETED else ""
        line = f"[{finished}/{self.total}] {status:<9} {name} ({seconds:.1f}s){detail}"
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            if status != COMPLETED:
                self._line(line)
            return
        self._line(f"{line}  {self._counts()}")

    def retry(self, run_id: str, name: str, error: str) -> None:
        self.running.pop(run_id, None)
        self._line(f"retrying {name} after failure: {error}")

    def note(self, text: str) -> None:
        self._line(text)

    def tick(self, force: bool = False) -> None:
        if not self.live and self._bar is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.5:
            return
        self._last_draw = now
        if self._bar is not None:
            # Shown at the bar's next redraw (a finished run): tqdm's text form, which a kernel
            # without ipywidgets gets, would otherwise send a line of output every half second.
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            return
        epochs = " ".join(f"[{e}/{n}]" for e, n in self.running.values())
        self.stream.write("\r\033[K" + self._counts() + f" | running {len(self.running)} {epochs}")
        self.stream.flush()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elapsed = time.monotonic() - self.started
        self._line(f"finished in {_duration(elapsed)}: {self.done} completed, {self.failed} failed, "
                   f"{self.diverged} diverged, {self.skipped} skipped")

    # -------------------------------------------------------------- helpers
    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - self.diverged

    def _left_per_group(self) -> dict[str, int]:
        """group -> runs still to finish; without groups, one group ("") holding :attr:`remaining`."""
        if not self.groups:
            return {"": self.remaining}
        left: dict[str, int] = {}
        for run_id, group in self.groups.items():
            if run_id not in self.finished_ids:
                left[group] = left.get(group, 0) + 1
        return left

    def _estimate(self) -> tuple[float, dict[str, int]]:
        """(seconds for the timed groups' runs left over the workers, {untimed group: runs left})."""
        seconds, untimed = 0.0, {}
        for group, left in self._left_per_group().items():
            if not left:
                continue
            times = self.group_durations.get(group)
            if times:
                seconds += sum(times) / len(times) * left
            else:
                untimed[group] = left
        return seconds / self.workers, untimed

    def eta(self) -> float | None:
        """Per group (backend and model): the mean duration of its completed runs, times its runs
        left; summed over the groups, over the parallel workers. None while a group with runs
        left has none completed (its runs could take any time)."""
        if not self.durations:
            return None
        seconds, untimed = self._estimate()
        return None if untimed else seconds

    def _eta_text(self) -> str:
        if not self.durations:
            return "?"
        seconds, untimed = self._estimate()
        if not untimed:
            return _duration(seconds)
        what = ", ".join(f"{n} {g}" for g, n in sorted(untimed.items()))
        return f">={_duration(seconds)} (not yet timed: {what})"

    def _counts(self) -> str:
        return (f"done {self.done} | failed {self.failed} | diverged {self.diverged} | "
                f"remaining {self.remaining} | ETA {self._eta_text()}")

    def _postfix(self) -> str:
        epochs = " ".join(f"[{e}/{n}]" for e, n in self.running.values())
        return f"failed {self.failed} | diverged {self.diverged} | running {len(self.running)} {epochs}".rstrip()

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
            return
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()

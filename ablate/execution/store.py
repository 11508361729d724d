"""The run store: one folder per run under ``<root>/<study>/runs/<run_id>/``.

A folder holds ``arrays.npz`` (probabilities and labels; read with ``allow_pickle=False``),
``log.txt``, a hidden ``.claim`` file that whoever executes the run holds a lock on, and,
written last, ``record.json``. Each file is written to a temporary name
and renamed into place, so a run killed half-way leaves no ``record.json`` and simply runs
again; a reader never sees a half-written file. A ``completed`` record is never
overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ablate.errors import StoreError

Status = Literal["completed", "failed", "diverged"]
STATUSES: tuple[str, ...] = ("completed", "failed", "diverged")
SCHEMA_VERSION = 1
RECORD = "record.json"
ARRAYS = "arrays.npz"
LOG = "log.txt"
ARRAY_KEYS = ("test_probs", "test_labels", "val_probs", "val_labels")


@dataclass(frozen=True)
class StoredRun:
    """A record read back from disk; arrays load on demand."""

    path: Path
    record: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def config(self) -> Mapping[str, Any]:
        return self.record["config"]

    def arrays(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path / ARRAYS, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"{self.path / ARRAYS}: unreadable arrays ({exc})") from None


@dataclass(frozen=True)
class CorruptRecord:
    path: Path
    reason: str


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class RunStore:
    """The runs of one study."""

    def __init__(self, root: str | Path, study: str):
        self.study_dir = Path(root) / study
        self.runs_dir = self.study_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def log_path(self, run_id: str) -> Path:
        path = self.run_dir(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path / LOG

    def write(self, record: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> Path:
        """Store one run. Arrays first, the record last: the record's presence means "stored"."""
        run_id = record["run_id"]
        if record.get("status") not in STATUSES:
            raise StoreError(f"record {run_id}: status must be one of {STATUSES}, got {record.get('status')!r}")
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        existing = self.read_record(run_id)
        if isinstance(existing, StoredRun) and existing.status == "completed":
            raise StoreError(f"{folder}: run {run_id} is already completed; refusing to overwrite it")
        if arrays:
            atomic_write(folder / ARRAYS, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
        payload = json.dumps({"schema": SCHEMA_VERSION, **record}, indent=1, sort_keys=True,
                             allow_nan=True).encode()
        atomic_write(folder / RECORD, lambda fh: fh.write(payload))
        return folder

    def read_record(self, run_id: str) -> StoredRun | CorruptRecord | None:
        return self._read(self.run_dir(run_id))

    def _read(self, folder: Path) -> StoredRun | CorruptRecord | None:
        path = folder / RECORD
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return CorruptRecord(folder, f"record.json is not valid JSON ({exc})")
        if not isinstance(record, dict):
            return CorruptRecord(folder, "record.json does not hold an object")
        missing = [k for k in ("run_id", "status", "config") if k not in record]
        if missing:
            return CorruptRecord(folder, f"record.json lacks {', '.join(missing)}")
        if record["status"] not in STATUSES:
            return CorruptRecord(folder, f"status {record['status']!r} is not one of {STATUSES}")
        if record["run_id"] != folder.name:
            return CorruptRecord(folder, f"run_id {record['run_id']!r} does not match its folder")
        if record["status"] == "completed" and not (folder / ARRAYS).exists():
            return CorruptRecord(folder, "completed run without arrays.npz")
        return StoredRun(folder, record)

    def scan(self) -> Iterator[StoredRun | CorruptRecord]:
        """Every stored record, and a CorruptRecord for each unreadable one (never raises)."""
        if not self.runs_dir.is_dir():
            return
        for folder in sorted(self.runs_dir.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                item = self._read(folder)
                if item is not None:
                    yield item

    def completed_ids(self) -> set[str]:
        return {r.run_id for r in self.scan() if isinstance(r, StoredRun) and r.status == "completed"}

    def statuses(self) -> dict[str, str]:
        """run_id -> status for every readable record."""
        return {r.run_id: r.status for r in self.scan() if isinstance(r, StoredRun)}


def studies(root: str | Path) -> list[str]:
    """Study names under a results root (folders holding a ``runs/`` folder)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "runs").is_dir())

"""The run store: one folder per run under ``<root>/<study>/runs/<run_id>/``.

A folder holds ``arrays.npz`` (probabilities and labels; read with ``allow_pickle=False``),
``log.txt``, a hidden ``.claim`` file that whoever executes the run holds a lock on, and,
written last, ``record.json``. Each file is written to a temporary name
and renamed into place, so a run killed half-way leaves no ``record.json`` and simply runs
again; a reader never sees a half-written file. A final record (``completed`` or
``diverged``) is never overwritten.

Every reader (`run`, `status`, the report) goes through one validation, :meth:`RunStore.validate`:
a record whose JSON has the wrong types, whose config no longer hashes to its folder's run id,
or whose arrays are truncated, bit-flipped, hold objects, disagree in shape, or hold
probabilities that are non-finite or whose rows do not sum to 1, is a :class:`CorruptRecord`,
never a stored run. Before such a
run is executed again its files are moved aside into ``.damaged-<UTC time>/`` in its folder,
never deleted.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablate.errors import StoreError
from ablate.files import atomic_write  # noqa: F401 - the store's writes; also used by the study file
from ablate.statuses import COMPLETED, FINAL_STATUSES, STATUSES, Status  # noqa: F401 - re-exported
DAMAGED_PREFIX = ".damaged-"
SCHEMA_VERSION = 1
RECORD = "record.json"
ARRAYS = "arrays.npz"
LOG = "log.txt"
ARRAY_KEYS = ("test_probs", "test_labels", "val_probs", "val_labels")


# A full disk, or a full quota: nothing more can be stored, so a sweep stops at the first one.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(StoreError):
    """The results folder has no space left: the sweep stops; stored runs are kept."""

    def __init__(self, folder: str | Path, exc: BaseException | None = None):
        self.folder = str(folder)
        why = getattr(exc, "strerror", None) or "No space left on device"
        super().__init__(f"{folder}: {why}; the sweep stopped at the first run it could not store. Free some "
                         "space there (or choose another --results folder) and run again: stored runs are "
                         "kept and skipped")


def disk_full(exc: BaseException) -> bool:
    """Whether an exception is the disk (or the quota) being full."""
    return isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS)


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
        except Exception as exc:  # noqa: BLE001 - BadZipFile is neither OSError nor ValueError
            raise StoreError(f"{self.path / ARRAYS}: unreadable arrays ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class CorruptRecord:
    path: Path
    reason: str


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_record(record: Any) -> str | None:
    """Why a parsed ``record.json`` is unusable, or None. Types only; the folder is checked by the caller."""
    from ablate.config import RunSpec

    if not isinstance(record, dict):
        return "record.json does not hold an object"
    missing = [k for k in ("run_id", "status", "config") if k not in record]
    if missing:
        return f"record.json lacks {', '.join(missing)}"
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} is not one of {STATUSES}"
    if not isinstance(record["config"], dict):
        return f"config is {type(record['config']).__name__}, not a mapping"
    try:
        RunSpec.from_dict(record["config"])
    except Exception as exc:  # noqa: BLE001 - any way a config fails to parse makes it unusable
        return f"config does not describe a run ({type(exc).__name__}: {exc})"
    history = record.get("history")
    if history is not None:
        if not isinstance(history, dict):
            return f"history is {type(history).__name__}, not a mapping"
        for key, values in history.items():
            if not isinstance(values, list):
                return f"history[{key!r}] is {type(values).__name__}, not a list"
            for value in values:
                if not _is_number(value):
                    return f"history[{key!r}] holds {value!r}, not a number"
    if record.get("error") is not None and not isinstance(record["error"], str):
        return f"error is {type(record['error']).__name__}, not a string or null"
    if record.get("metrics") is not None and not isinstance(record["metrics"], dict):
        return f"metrics is {type(record['metrics']).__name__}, not a mapping"
    for key in ("attempt",):
        if key in record and (isinstance(record[key], bool) or not isinstance(record[key], int)):
            return f"{key} is {record[key]!r}, not an integer"
    for key in ("seconds",):
        if record.get(key) is not None and not _is_number(record[key]):
            return f"{key} is {record[key]!r}, not a number"
    return None


def check_arrays(path: Path) -> str | None:
    """Why a run's ``arrays.npz`` is unusable, or None.

    Every array is read in full, so the zip's CRC is checked; object arrays are refused
    (``allow_pickle=False``); probabilities (n, k) and labels (n,) must agree, for the test
    split and, when stored, the validation split.
    """
    if not path.exists():
        return "completed run without arrays.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - BadZipFile, bad CRC, object arrays, truncation...
        return f"unreadable arrays.npz ({type(exc).__name__}: {str(exc) or 'no detail'})"
    if not isinstance(arrays, dict) or not arrays:
        return "arrays.npz holds no arrays"
    for split in ("test", "val"):
        probs, labels = arrays.get(f"{split}_probs"), arrays.get(f"{split}_labels")
        if split == "val" and probs is None and labels is None:
            continue
        if probs is None or labels is None:
            return f"arrays.npz lacks {split}_{'probs' if probs is None else 'labels'}"
        if probs.ndim != 2 or labels.ndim != 1 or len(probs) != len(labels):
            return (f"arrays.npz: {split}_probs {probs.shape} and {split}_labels {labels.shape} "
                    "are not (n, k) and (n,)")
        if not np.issubdtype(probs.dtype, np.floating) or not np.issubdtype(labels.dtype, np.integer):
            return f"arrays.npz: {split}_probs {probs.dtype} / {split}_labels {labels.dtype} are not float / integer"
        if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
            return f"arrays.npz: {split}_labels outside 0..{probs.shape[1] - 1}"
        reason = _probs_problem(probs)
        if reason:
            return f"arrays.npz: {split}_probs {reason}"
    if "val_probs" in arrays and arrays["val_probs"].shape[1] != arrays["test_probs"].shape[1]:
        return "arrays.npz: val_probs and test_probs have different class counts"
    return None


PROB_ATOL = 1e-3  # |row sum - 1| allowed; the same tolerance as ablate.analysis.calibration.validate_probs


def _probs_problem(probs: np.ndarray) -> str | None:
    """Why an (n, k) probability array cannot be scored, or None: every entry finite and in
    [0, 1], every row summing to 1 within :data:`PROB_ATOL`."""
    p = probs.astype(np.float64, copy=False)
    finite = np.isfinite(p)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        return f"holds non-finite values (first in row {row})"
    if p.size and (p.min() < 0 or p.max() > 1 + PROB_ATOL):
        return f"holds values outside [0, 1] ({p.min():.4g}..{p.max():.4g})"
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_ATOL
    if off.any():
        row = int(np.argmax(off))
        return f"has {int(off.sum())} row(s) not summing to 1 (row {row} sums to {sums[row]:.6g})"
    return None


def config_run_id(config: Mapping[str, Any]) -> str:
    """The run id a stored config hashes to (the id its folder must carry)."""
    from ablate.config import RunSpec

    return RunSpec.from_dict(config).run_id


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
        if isinstance(existing, StoredRun) and existing.status in FINAL_STATUSES:
            raise StoreError(f"{folder}: run {run_id} is already {existing.status}; refusing to overwrite it")
        if isinstance(existing, CorruptRecord):
            self.move_aside(run_id)  # an unusable record is kept beside the new one, not replaced
        payload = json.dumps({"schema": SCHEMA_VERSION, **record}, indent=1, sort_keys=True,
                             allow_nan=True).encode()
        try:
            if arrays:
                atomic_write(folder / ARRAYS,
                             lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
            atomic_write(folder / RECORD, lambda fh: fh.write(payload))
        except OSError as exc:
            if disk_full(exc):
                raise DiskFull(self.study_dir, exc) from exc
            raise
        return folder

    def read_record(self, run_id: str) -> StoredRun | CorruptRecord | None:
        """The validated record of one run (see :meth:`validate`)."""
        return self.validate(run_id)

    def validate(self, run_id: str) -> StoredRun | CorruptRecord | None:
        """The one check of a stored run, shared by `run`, `status` and the report.

        None: nothing stored. A :class:`CorruptRecord` when ``record.json`` is not valid JSON,
        has the wrong types (history a mapping of lists of numbers, error a string or null,
        a config that parses as a :class:`~ablate.config.RunSpec`) or, for a completed run, its
        ``arrays.npz`` is missing or unusable (see :func:`check_arrays`). Never raises.
        """
        return self._read(self.run_dir(run_id))

    def _read(self, folder: Path) -> StoredRun | CorruptRecord | None:
        path = folder / RECORD
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            return CorruptRecord(folder, f"record.json is not valid JSON ({exc})")
        reason = check_record(record)
        if reason is None and record["run_id"] != folder.name:
            reason = f"run_id {record['run_id']!r} does not match its folder"
        if reason is None:
            hashed = config_run_id(record["config"])
            if hashed != folder.name:
                reason = (f"run {folder.name}: its config hashes to {hashed}, not to its folder's id "
                          "(a record written by another version, or edited)")
        if reason is None and record["status"] == COMPLETED:
            reason = check_arrays(folder / ARRAYS)
        if reason is not None:
            return CorruptRecord(folder, reason)
        return StoredRun(folder, record)

    def move_aside(self, run_id: str) -> Path | None:
        """Move an unusable run's record and arrays into ``.damaged-<UTC time>/`` in its folder.

        Nothing is deleted; the log and the claim stay. Returns the new folder, or None when
        there was nothing to move.
        """
        folder = self.run_dir(run_id)
        files = [folder / name for name in (RECORD, ARRAYS) if (folder / name).exists()]
        if not files:
            return None
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = folder / f"{DAMAGED_PREFIX}{stamp}"
        aside.mkdir()
        for path in files:
            os.replace(path, aside / path.name)
        return aside

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
        return {r.run_id for r in self.scan() if isinstance(r, StoredRun) and r.status == COMPLETED}

    def statuses(self) -> dict[str, str]:
        """run_id -> status for every valid record."""
        return self.survey()[0]

    def invalid(self) -> dict[str, str]:
        """run_id (its folder's name) -> why, for every record that fails :meth:`validate`."""
        return self.survey()[1]

    def survey(self) -> tuple[dict[str, str], dict[str, str]]:
        """Both of the above from one scan (each completed run's arrays are read in full once)."""
        valid: dict[str, str] = {}
        invalid: dict[str, str] = {}
        for item in self.scan():
            if isinstance(item, StoredRun):
                valid[item.run_id] = item.status
            else:
                invalid[item.path.name] = item.reason
        return valid, invalid


def studies(root: str | Path) -> list[str]:
    """Study names under a results root (folders holding a ``runs/`` folder)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "runs").is_dir())

"""The run store: one folder per run under ``<root>/<study>/runs/<run_id>/``.

A folder holds ``arrays.npz`` (probabilities and labels; read with ``allow_pickle=False``),
``log.txt``, a hidden ``.claim`` file that whoever executes the run holds a lock on, and,
written last, ``record.json``. Each file is written to a temporary name
and renamed into place, so a run killed half-way leaves no ``record.json`` and simply runs
again; a reader never sees a half-written file. A final record (``completed`` or
``diverged``) is never overwritten.

Every reader (`run`, `status`, the report) goes through one validation, :meth:`RunStore.validate`:
a record whose JSON has the wrong types, or whose arrays are truncated, bit-flipped, hold
objects or disagree in shape, is a :class:`CorruptRecord`, never a stored run. Before such a
run is executed again its files are moved aside into ``.damaged-<UTC time>/`` in its folder,
never deleted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablate.errors import StoreError
from ablate.statuses import COMPLETED, FINAL_STATUSES, STATUSES, Status  # noqa: F401 - re-exported
DAMAGED_PREFIX = ".damaged-"
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
        except Exception as exc:  # noqa: BLE001 - BadZipFile is neither OSError nor ValueError
            raise StoreError(f"{self.path / ARRAYS}: unreadable arrays ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class CorruptRecord:
    path: Path
    reason: str


def _umask() -> int:
    # Reading the umask means setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the mode a plain ``open`` would give (0666 less the umask), not mkstemp's
    0600: on a shared results folder (a Ray cluster) the group must be able to read records.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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
    if "val_probs" in arrays and arrays["val_probs"].shape[1] != arrays["test_probs"].shape[1]:
        return "arrays.npz: val_probs and test_probs have different class counts"
    return None


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
        if arrays:
            atomic_write(folder / ARRAYS, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
        payload = json.dumps({"schema": SCHEMA_VERSION, **record}, indent=1, sort_keys=True,
                             allow_nan=True).encode()
        atomic_write(folder / RECORD, lambda fh: fh.write(payload))
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

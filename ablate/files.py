"""Atomic file writes: a temporary file in the same folder, fsync, then a rename over the target.

Every file ablate writes (run records and arrays, study.json, the report's tables, report.md,
report.html, the LaTeX tables and the figures) goes through :func:`atomic_write`, so a reader
never sees a half-written file and a write that fails (a full disk) leaves the previous file as
it was. Imports nothing of ablate.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    # Reading the umask means setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the mode a plain ``open`` would give (0666 less the umask), not mkstemp's
    0600: on a shared results folder (a Ray cluster) the group must be able to read records.
    An OSError without a file name (a write on a full disk) is raised again naming ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            raise _named(exc, path) from None
        raise


def _named(exc: OSError, path: Path) -> OSError:
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path)) if isinstance(exc.errno, int) else exc


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    path = Path(path)
    data = text.encode(encoding)
    atomic_write(path, lambda fh: fh.write(data))
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write(path, lambda fh: fh.write(data))
    return path

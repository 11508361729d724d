"""An on-disk cache of parsed dataset arrays, shared by every worker process on a machine.

A dataset's files are decoded once (Imagenette's JPEGs decoded and resized, CIFAR's pickles
unpickled), stored with :class:`joblib.Memory`, and read back memory-mapped and read-only, so a
worker after the first loads in well under a second and the workers share the pages.

- Location: ``$ABLATE_CACHE``, else ``~/.cache/ablate``; ``ABLATE_CACHE=off`` turns it off.
  Clear it with ``rm -rf ~/.cache/ablate`` (or the folder ``$ABLATE_CACHE`` names).
- Key: the format, the folder or file it was found in, the image size, and a fingerprint of
  every source file (its path, size and modification time in nanoseconds). A file that is
  changed, truncated, added or removed changes the key, so it is parsed again, never served
  from the cache. A source that cannot be listed is parsed without the cache, so its reader
  raises its own one-line error.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CACHE_ENV = "ABLATE_CACHE"
FORMAT_VERSION = 1  # bump when a reader's output changes for the same files


def cache_dir() -> Path | None:
    """Where parsed arrays are kept: ``$ABLATE_CACHE``, else ``~/.cache/ablate``; None when off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("off", "0", "none", ""):
        return None
    return Path(value).expanduser() if value else Path("~/.cache/ablate").expanduser()


def fingerprint(files: Sequence[Path], root: Path) -> str | None:
    """sha256 of each file's path (relative to ``root``), size and mtime_ns; None if one cannot be read."""
    digest = hashlib.sha256()
    try:
        for path in files:
            st = os.stat(path)
            rel = os.path.relpath(path, root) if root.is_dir() else path.name
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return digest.hexdigest()


def _parse(reader: Callable[[], Any], kind: str, location: str, image_size: int, sources: str, version: int):
    """What joblib caches. Every argument but ``reader`` is part of the key (``reader`` is left out
    of it: its module and name are, through ``kind``)."""
    return reader()


def cached(reader: Callable[[], Any], *, kind: str, location: str, image_size: int,
           sources: Sequence[Path]) -> Any:
    """``reader()``'s result, from the cache when the sources are unchanged.

    reader: parses the dataset; returns ``(x_train, y_train, x_test, y_test, class_names)``.
    sources: every file ``reader`` reads. Arrays come back as read-only memory maps when cached.
    """
    folder = cache_dir()
    sources_key = fingerprint(sources, Path(location))
    if folder is None or sources_key is None:
        return reader()
    try:
        from joblib import Memory

        memory = Memory(folder / "datasets", mmap_mode="r", verbose=0)
        parse = memory.cache(_parse, ignore=["reader"])
    except (ImportError, OSError):  # no joblib, or a cache folder that cannot be made: parse directly
        return reader()
    return parse(reader, kind, str(Path(location).resolve()), int(image_size), sources_key, FORMAT_VERSION)

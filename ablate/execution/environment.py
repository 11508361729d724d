"""What a run record says about where it ran: Python, platform, the project's git commit."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout ablate runs from, with ``+dirty`` when it has local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def describe(extra: dict[str, str] | None = None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": platform.node(), "ablate_commit": git_commit()}
    env.update(extra or {})
    return env

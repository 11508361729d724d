"""GPU discovery without importing a framework: CUDA_VISIBLE_DEVICES, then ``nvidia-smi -L``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ablate.errors import ArgumentError


def discover_gpus() -> list[str]:
    """The GPU ids this process may use (strings, as CUDA_VISIBLE_DEVICES names them).

    A set CUDA_VISIBLE_DEVICES wins, even empty (no GPU); ids may be indices or UUIDs and are
    handed on to workers as they are. Otherwise ``nvidia-smi -L`` lists the physical GPUs;
    without it, or when it fails, there is no GPU.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = []
        for item in (d.strip() for d in visible.split(",")):
            if not item or item.startswith("-"):
                break  # CUDA ignores an invalid id and every id after it
            ids.append(item)
        return ids
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, flags=re.MULTILINE)]


def parse_gpu_list(text: str, available: list[str]) -> list[str]:
    """``--gpus 0,1`` -> ["0", "1"], checked against the GPUs that exist."""
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [g for g in wanted if g not in available]
    if unknown or not wanted:
        raise ArgumentError("gpus", f"expected ids among {available or 'none (no GPU found)'}, but got {text!r}")
    if len(set(wanted)) != len(wanted):
        raise ArgumentError("gpus", f"expected each id once (use {{per_gpu}} to pack runs), but got {text!r}",
                            mentions=("per_gpu",))
    return wanted

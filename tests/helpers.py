"""Scaffolding many test files share: `python -m ablate` in a real process (run to the end, or started
to be interrupted), and the small inline grids (`grid_values`, `grid_text`), built from their values so
that a test states only what differs from the usual tiny study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment, unbuffered (a child's lines arrive as they are written)."""
    return dict(os.environ, PYTHONUNBUFFERED="1", **extra)


def _argv(args) -> list[str]:
    return [sys.executable, "-m", "ablate", *map(str, args)]


def run_cli(*args, cwd=REPO, env=None, timeout: float | None = 300,
            check: int | None = None) -> subprocess.CompletedProcess:
    """`python -m ablate *args` to its end, output captured as text; with `check`, its exit code is asserted."""
    proc = subprocess.run(_argv(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def start_cli(*args, cwd=REPO, env=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> subprocess.Popen:
    """`python -m ablate *args` started in its own process group (so a test can signal driver and workers
    alike) and left running; `stop_cli` makes sure it is gone."""
    return subprocess.Popen(_argv(args), cwd=cwd, env=env, start_new_session=True, text=True,
                            stdout=stdout, stderr=stderr)


def stop_cli(proc: subprocess.Popen) -> None:
    """Kill the group of a started `ablate` that is still running (a test that failed half-way) and close
    its pipes."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def cpu_backend(name: str):
    """The backend `name`, loaded and set to one deterministic CPU thread; the test is skipped where its
    framework is not installed."""
    import pytest

    from ablate import backends
    from ablate.errors import BackendError

    try:
        backends.check_installed(name)
    except BackendError as exc:
        pytest.skip(str(exc))
    backend = backends.load(name)
    backend.configure(device="cpu", threads=1, deterministic=True)
    return backend


def grid_values(study: str = "tiny", *, data: tuple[int, int] | None = (300, 100), epochs: int = 1,
                **keys) -> dict:
    """A small grid's values: digits of `data` = (train_size, test_size), mlp on torch, none vs loss at
    smoothing 0.1, two seeds, `epochs` of batches of 32 monitored on 64 examples. A key given replaces
    the default whole; a key given as None is left out."""
    values = {"study": study, "datasets": [{"name": "digits", "train_size": data[0], "test_size": data[1]}]
              if data is not None else None,
              "models": ["mlp"], "backends": ["torch"], "arms": ["none", "loss"], "smoothing": [0.1], "seeds": 2,
              "train": {"epochs": epochs, "batch_size": 32, "monitor_size": 64}}
    values.update(keys)
    return {key: value for key, value in values.items() if value is not None}


def _flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def grid_text(study: str = "tiny", **keys) -> str:
    """`grid_values(...)` as the YAML a user writes: one line a key, in flow style."""
    values = grid_values(study, **keys)
    text = "".join(f"{key}: {_flow(value)}\n" for key, value in values.items())
    # Plain scalars are written bare: a value YAML would read back differently must not slip through.
    assert yaml.safe_load(text) == json.loads(json.dumps(values)), text
    return text

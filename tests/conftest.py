"""Shared fixtures. Keras' engine is fixed here, before anything imports Keras."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

_keras = [b for b in os.environ.get("ABLATE_TEST_BACKENDS", "").split(",") if b.startswith("keras/")]
os.environ.setdefault("KERAS_BACKEND", _keras[0].split("/")[1] if _keras else "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# Parsed datasets are cached on disk (ablate.data.cache): the tests use their own folder, removed at exit,
# never the user's ~/.cache/ablate. Subprocesses inherit it.
if "ABLATE_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["ABLATE_CACHE"] = tempfile.mkdtemp(prefix="ablate-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ABLATE_CACHE"], ignore_errors=True)

import pytest  # noqa: E402

from tests import helpers  # noqa: E402
from tests.helpers import REPO  # noqa: E402, F401  (tests import it from here)


@pytest.fixture(autouse=True)
def _forget_user_modules():
    """Modules a test imported from its temporary folder (a user's `mydata`, `mytricks`) are forgotten
    after it, so the next test's module of the same name is its own, not a cached one."""
    import sys
    import tempfile

    before = set(sys.modules)
    yield
    temp = os.path.realpath(tempfile.gettempdir())
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if path and os.path.realpath(path).startswith(temp + os.sep):
            del sys.modules[name]


@pytest.fixture
def write_grid(tmp_path):
    """Write a grid YAML into tmp_path and return its path: the text given, or else `helpers.grid_text`
    of the values given."""

    def _write(text: str | None = None, name: str = "grid.yaml", **values) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text) if text is not None else helpers.grid_text(**values))
        return path

    return _write


@pytest.fixture(scope="module")
def torch_backend():
    """The torch backend on one deterministic CPU thread (skipped without torch)."""
    return helpers.cpu_backend("torch")


@pytest.fixture(scope="module")
def keras_backend():
    """Keras on the engine fixed above, on one deterministic CPU thread (skipped without Keras)."""
    return helpers.cpu_backend(f"keras/{os.environ['KERAS_BACKEND']}")


@pytest.fixture
def run_cli():
    """`helpers.run_cli`: `python -m ablate ...` to its end, output captured."""
    return helpers.run_cli


@pytest.fixture
def start_cli():
    """`helpers.start_cli`, and every `ablate` it started that still runs when the test ends (one that
    failed half-way) is killed with its workers."""
    started: list = []

    def _start(*args, **kwargs):
        started.append(helpers.start_cli(*args, **kwargs))
        return started[-1]

    yield _start
    for proc in started:
        helpers.stop_cli(proc)


TINY_GRID = """\
study: tiny
datasets: [{name: digits, train_size: 400, test_size: 200}]
models: [mlp]
backends: [torch, keras]
arms: [none, explicit, loss]
smoothing: [0.1]
seeds: 2
train: {epochs: 2, batch_size: 32, lr: 0.05, momentum: 0.9, schedule: polynomial}
"""

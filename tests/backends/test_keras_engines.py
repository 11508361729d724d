"""Run the conformance suite again for each further Keras engine, each in its own process
(Keras reads KERAS_BACKEND once per process, so one pytest process can hold only one engine).
The engines come from the backends registry; this process's own engine is covered in place."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import backends

SUITE = Path(__file__).with_name("test_conformance.py")
ENGINES = [backends.engine(name) for name in backends.BACKENDS.names()
           if backends.engine(name) not in (None, os.environ.get("KERAS_BACKEND"))]


@pytest.mark.parametrize("engine", ENGINES)
def test_conformance_suite_on_keras_engine(engine, request):
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(engine) is None:
        pytest.skip(f"keras/{engine} needs keras and {engine} installed")
    if os.environ.get("ABLATE_TEST_BACKENDS"):
        pytest.skip("already inside an engine-specific run")
    env = dict(os.environ, ABLATE_TEST_BACKENDS=f"keras/{engine}", KERAS_BACKEND=engine)
    # The same selection as this run (e.g. -m "not slow"), so the inner run is no heavier.
    marks = ["-m", request.config.option.markexpr] if request.config.option.markexpr else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *marks, str(SUITE)],
                          capture_output=True, text=True, env=env, cwd=SUITE.parents[2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.strip().splitlines()[-1]

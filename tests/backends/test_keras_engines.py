"""Run the conformance suite again for each further Keras engine, each in its own process
(Keras reads KERAS_BACKEND once per process, so one pytest process can hold only one engine)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).with_name("test_conformance.py")


@pytest.mark.parametrize("engine", ["torch", "jax"])
def test_conformance_suite_on_keras_engine(engine):
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(engine) is None:
        pytest.skip(f"keras/{engine} needs keras and {engine} installed")
    if os.environ.get("ABLATE_TEST_BACKENDS"):
        pytest.skip("already inside an engine-specific run")
    env = dict(os.environ, ABLATE_TEST_BACKENDS=f"keras/{engine}", KERAS_BACKEND=engine)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)],
                          capture_output=True, text=True, env=env, cwd=SUITE.parents[2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.strip().splitlines()[-1]

"""Importing the core, or starting the CLI, pulls in no framework and no plotting library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "tensorflow", "keras", "jax", "ray", "matplotlib", "seaborn")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:' + ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.rsplit('LOADED:', 1)[1].split())


def test_import_ablate_is_light():
    assert _loaded_after("import ablate") == set()


def test_core_modules_are_light():
    modules = ("config", "store", "runner", "worker", "orchestrator", "calibration", "stats", "compare",
               "datasets", "augment", "schedules", "report", "cli", "status", "selection", "devices",
               "executors.ray")
    assert _loaded_after("\n".join(f"import ablate.{m}" for m in modules) + "\nimport backends") == set()


def test_cli_help_is_light():
    code = "from ablate.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == set()

"""Without PyTorch installed, the torch-only test files are skipped with a reason, not collection errors."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

# `import torch` fails in the child, as on a machine without it; pytest then collects the files.
_HIDE_TORCH = ("import sys; sys.modules['torch'] = None; import pytest; "
               "sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', *sys.argv[1:]]))")


def test_torch_only_files_skip_without_torch():
    files = ["tests/test_packs.py", "tests/test_device_data.py"]
    proc = subprocess.run([sys.executable, "-c", _HIDE_TORCH, *files], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-2000:]  # 5: every file skipped
    tail = proc.stdout.strip().splitlines()[-1]
    assert "2 skipped" in tail and "error" not in tail, proc.stdout[-2000:]
    assert "packs train with PyTorch" in proc.stdout and "device data needs PyTorch" in proc.stdout

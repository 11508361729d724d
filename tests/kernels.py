"""A Jupyter kernel of this very interpreter, for the tests that execute notebooks.

A kernel named `python3` would be looked up in the user's Jupyter folders first, where it may
run another Python; this spec, in a folder of its own, always runs ``sys.executable``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import functools

NAME = "ablate-test-python"


@functools.cache
def _folder() -> str:
    folder = Path(tempfile.mkdtemp(prefix="ablate-kernels-"))
    (folder / NAME).mkdir()
    (folder / NAME / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ablate tests", "language": "python"}))
    return str(folder)


def kernel_manager(*, asynchronous: bool = False):
    """A (not started) KernelManager for this interpreter's kernel."""
    from jupyter_client import AsyncKernelManager, KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    cls = AsyncKernelManager if asynchronous else KernelManager
    return cls(kernel_name=NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[_folder()]))


def execute(nb, cwd: Path, *, env: dict[str, str], timeout: int = 1200, allow_errors: bool = False):
    """Execute ``nb`` in place, top to bottom, in a fresh kernel started in ``cwd`` with ``env``."""
    import nbclient

    client = nbclient.NotebookClient(nb, km=kernel_manager(asynchronous=True), timeout=timeout,
                                     allow_errors=allow_errors, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)  # raises CellExecutionError when a cell raises (unless allow_errors)
    return nb

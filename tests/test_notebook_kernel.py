"""ablate in a real Jupyter kernel: a progress bar instead of the terminal's status line, one-line
errors instead of traceback pages, and the kernel's interrupt stopping a sweep cleanly."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import nbformat  # the test extra: nbclient, ipykernel, nbformat (`make install`)
import pytest

from ablate.execution.progress import Progress, in_notebook
from tests import kernels


REPO = Path(__file__).resolve().parents[1]


def test_progress_bar_replaces_the_status_line():
    out = io.StringIO()
    progress = Progress(total=3, stream=out, bar=True)
    assert not progress.live and not in_notebook()
    progress.start()
    for i, status in enumerate(("completed", "failed", "completed")):
        progress.run_started(f"r{i}")
        progress.epoch(f"r{i}", 1, 2)
        progress.run_done(f"r{i}", f"run {i}", status, 0.1, "boom" if status == "failed" else "")
    progress.finish()
    text = out.getvalue()
    assert "\033[K" not in text  # no terminal redraws
    assert "3/3" in text and "runs: 100%" in text
    # Only the failed run gets a line of its own; the bar counts the rest.
    assert "[2/3] failed    run 1 (0.1s) - boom" in text and "[1/3]" not in text
    assert "finished in " in text and "2 completed, 1 failed" in text


def _kernel_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _execute(cells: list[str], cwd: Path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    return kernels.execute(nb, cwd, env=_kernel_env(), allow_errors=True)


def test_in_a_kernel_bad_input_is_one_line_and_progress_is_a_bar(tmp_path):
    nb = _execute([
        "import ablate\nfrom ablate.execution.progress import Progress, in_notebook\n"
        "print(in_notebook(), Progress(total=1).use_bar)",
        "grid = {'study': 's', 'datasets': ['digits'], 'backends': ['torch'], 'arms': ['none'], 'seeds': 1,\n"
        "        'models': [{'name': 'tiny', 'torch': lambda shape, k: None}]}\nablate.run(grid)",
        "import threading\nLOCK = threading.Lock()\n"
        "def locked(input_shape, num_classes):\n    with LOCK:\n        return None\n"
        "ablate.run({**grid, 'models': [{'name': 'tiny', 'torch': locked}]})",
    ], tmp_path)
    first, lam, lock = (c.outputs for c in nb.cells)
    assert first[0]["text"].strip() == "True True"
    for outputs, expected in ((lam, "`models[0].torch`: got a lambda (__main__.<lambda>)"),
                              (lock, "cannot be sent to the workers: it uses 'LOCK' (a lock)")):
        error = next(o for o in outputs if o["output_type"] == "error")
        assert error["ename"] == "ConfigError"
        assert len(error["traceback"]) == 1 and expected in error["traceback"][0]
        assert error["traceback"][0] == f"ConfigError: {error['evalue']}"
    assert not (tmp_path / "results").exists()  # refused before anything was written


SWEEP = """
import ablate
grid = {"study": "stop", "datasets": ["digits"], "models": ["mlp"], "backends": ["torch"],
        "arms": ["none", "explicit", "loss"], "smoothing": [0.1], "seeds": 40,
        "train": {"epochs": 4, "batch_size": 32}}
try:
    study = ablate.run(grid, results="results", workers=2)
except ablate.Interrupted as exc:
    print("INTERRUPTED", exc)
    raise
"""


def _reply(client, msg_id: str, timeout: float = 600) -> tuple[dict, list[dict]]:
    """The execute reply for ``msg_id`` and the iopub messages it produced."""
    outputs = []
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        outputs.append(msg)
    reply = client.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=timeout)
    return reply, outputs


def test_interrupting_the_kernel_stops_the_sweep_and_keeps_its_runs(tmp_path):
    manager = kernels.kernel_manager()
    manager.start_kernel(cwd=str(tmp_path), env=_kernel_env())
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    try:
        msg_id = client.execute(SWEEP)
        runs = tmp_path / "results" / "stop" / "runs"
        deadline = time.monotonic() + 300
        while len(list(runs.glob("*/record.json"))) < 3:  # a few runs stored, the sweep still going
            assert time.monotonic() < deadline, "no run was stored"
            time.sleep(0.2)
        manager.interrupt_kernel()
        reply, outputs = _reply(client, msg_id)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "Interrupted"
        error = next(m["content"] for m in outputs if m["msg_type"] == "error")
        assert len(error["traceback"]) == 1 and "its workers are stopped" in error["traceback"][0]
        records = [json.loads(p.read_text()) for p in runs.glob("*/record.json")]
        assert 3 <= len(records) < 120 and {r["status"] for r in records} == {"completed"}
        # Every worker has ended: none of the pids that stored a run is alive.
        for pid in {r["environment"]["worker_pid"] for r in records}:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        # The same cell again resumes: the stored runs are skipped.
        stored = len(records)
        msg_id = client.execute(SWEEP.replace('"seeds": 40', '"seeds": 2'))
        reply, outputs = _reply(client, msg_id)
        assert reply["content"]["status"] == "ok"
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        done_before = sum(1 for r in records if r["config"]["seed"] < 2)
        assert f"{6 - done_before} run(s) to do" in text
        if done_before:
            assert f"{done_before} already stored" in text
        assert stored == len(records)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

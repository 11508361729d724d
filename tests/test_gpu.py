"""GPU discovery without a framework, and (marked `gpu`) workers pinned one GPU each, with
several runs packed on it."""

from __future__ import annotations

import io
import os
import shutil
import stat

import pytest

from ablate.catalog import parse_grid
from ablate.execution.devices import discover_gpus, parse_gpu_list
from ablate.errors import ConfigError
from ablate.execution.progress import Progress
from ablate.execution.store import RunStore

SMI = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-66666666-7777-8888-9999-000000000000)
  MIG 1g.10gb     Device  0: (UUID: MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)
"""


@pytest.mark.parametrize("visible, expected", [
    ("0,1", ["0", "1"]), ("2", ["2"]), ("", []), ("-1", []), ("1,-1,0", ["1"]),
    ("GPU-1234,GPU-5678", ["GPU-1234", "GPU-5678"]),
])
def test_cuda_visible_devices_wins(monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert discover_gpus() == expected


def test_nvidia_smi_lists_physical_gpus(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    # PATH will hold only the fake, so it names cat by its full path
    smi.write_text(f"#!/bin/sh\nexec {shutil.which('cat')} <<'END'\n{SMI}END\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert discover_gpus() == ["0", "1"]
    smi.write_text("#!/bin/sh\nexit 9\n")  # a broken driver means no GPU, not a crash
    assert discover_gpus() == []
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert discover_gpus() == []


def test_gpu_list_is_checked():
    assert parse_gpu_list("1, 0", ["0", "1"]) == ["1", "0"]
    for text, message in (("2", "expected ids among"), ("", "expected ids among"), ("0,0", "each id once")):
        with pytest.raises(ConfigError, match=message):
            parse_gpu_list(text, ["0", "1"])
    with pytest.raises(ConfigError, match="no GPU found"):
        parse_gpu_list("0", [])


def _gpu_backends():
    import importlib.util

    names = ["torch"]
    if importlib.util.find_spec("keras") is not None:
        # tensorflow is the default engine, but GPU images often carry only torch or jax
        names += [f"keras/{e}" for e in ("torch", "jax", "tensorflow") if importlib.util.find_spec(e)][:1]
    return names


@pytest.mark.gpu
@pytest.mark.parametrize("backend", _gpu_backends())
def test_workers_are_pinned_to_one_gpu_and_packed(tmp_path, backend):
    gpus = discover_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU found (CUDA_VISIBLE_DEVICES / nvidia-smi -L)")
    from ablate.execution.orchestrator import run_local

    gpu = gpus[-1]
    runs = parse_grid({"study": "gpu", "datasets": [{"name": "digits", "train_size": 300, "test_size": 100}],
                       "models": ["mlp"], "backends": [backend], "arms": ["none", "loss"], "smoothing": [0.1],
                       "seeds": 3, "train": {"epochs": 2, "batch_size": 32}}).runs()
    store = RunStore(tmp_path, "gpu")
    summary = run_local(runs, store=store, results=tmp_path, gpus=[gpu], per_gpu=2,
                        progress=Progress(total=len(runs), stream=io.StringIO(), live=False))
    assert summary.completed == len(runs), summary.failures
    envs = [store.read_record(s.run_id).record["environment"] for s in runs]
    # each worker saw exactly the one GPU it was given, and its framework ran on it
    assert {e["cuda_visible_devices"] for e in envs} == {gpu}
    assert all(e["device"] in ("cuda", "cuda:0") for e in envs), envs
    assert 1 <= len({e["worker_pid"] for e in envs}) <= 2 < len(runs)
    assert all(pid != os.getpid() for pid in {e["worker_pid"] for e in envs})

"""Functions in the grid, as a notebook defines them: identity by name and source, sent to workers
with cloudpickle, and one-line refusals for the ones that cannot be identified or sent."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import ablate
from ablate.config import RunSpec, UserFunction
from ablate.execution.preflight import check_environment

REPO = Path(__file__).resolve().parents[1]


def tiny_torch(input_shape, num_classes):
    import math

    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.ReLU(), nn.Linear(8, num_classes))


def _grid(**models):
    return {"study": "fn", "datasets": ["digits"], "models": [{"name": "tiny", **models}],
            "backends": ["torch"], "arms": ["none", "explicit"], "smoothing": [0.1], "seeds": 2}


def test_a_function_counts_as_its_name_and_source_hash():
    grid = ablate.load_grid(_grid(torch=tiny_torch))
    factory = grid.models[0].torch
    assert isinstance(factory, UserFunction)
    assert factory.token.startswith("tests.test_callables.tiny_torch@sha256:")
    again = ablate.load_grid(_grid(torch=tiny_torch))
    assert [s.run_id for s in grid.runs()] == [s.run_id for s in again.runs()]
    # A record's config holds the token, and the spec read back from it has the same run id.
    spec = grid.runs()[0]
    stored = json.loads(json.dumps(spec.to_json()))
    assert stored["model_factory"] == factory.token
    assert RunSpec.from_dict(stored).run_id == spec.run_id
    # Another body under the same name is another function: other runs.
    namespace: dict = {}
    exec(compile("def tiny_torch(input_shape, num_classes):\n    return None\n", __file__, "exec"), namespace)
    edited = namespace["tiny_torch"]
    edited.__module__, edited.__qualname__ = tiny_torch.__module__, tiny_torch.__qualname__
    other = ablate.load_grid(_grid(torch=edited))
    assert other.models[0].torch.token.split("@")[0] == factory.token.split("@")[0]
    assert other.models[0].torch.token != factory.token
    assert not {s.run_id for s in other.runs()} & {s.run_id for s in grid.runs()}


def test_functions_made_by_another_differ_by_what_they_closed_over():
    def make(width):
        def model(input_shape, num_classes):
            return width
        return model

    narrow, wide, again = (ablate.load_grid(_grid(torch=make(w))).models[0].torch.token for w in (8, 16, 8))
    assert narrow.split("@")[0] == wide.split("@")[0]
    assert narrow.split("@")[0].endswith(".make.<locals>.model")
    assert narrow != wide and narrow == again


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("bad, expected", [
    (lambda shape, k: None, "`models[0].torch`: got a lambda (tests.test_callables.<lambda>)"),
    (len, "`models[0].torch`: builtins.len has no source"),
    (functools.partial(tiny_torch), "`models[0].torch`: functools.partial has no source"),
])
def test_a_function_without_source_is_one_line_naming_it(bad, expected):
    with pytest.raises(ablate.ConfigError) as info:
        ablate.load_grid(_grid(torch=bad))
    assert expected in _one_line(info.value)
    # Jupyter renders the same line instead of a traceback page.
    assert info.value._render_traceback_() == [f"ConfigError: {info.value}"]


def test_every_reference_place_takes_a_function():
    def loader():
        import numpy as np

        rng = np.random.default_rng(0)
        return rng.normal(size=(60, 4)), np.arange(60) % 3, rng.normal(size=(30, 4)), np.arange(30) % 3

    def soften(targets, rng, amount=0.1):
        return targets * (1 - amount) + amount / targets.shape[1]

    grid = ablate.load_grid({"study": "fn", "datasets": [{"name": "mine", "loader": loader}],
                             "models": [{"name": "tiny", "torch": tiny_torch}], "backends": ["torch"],
                             "tricks": {"soft": {"targets": soften, "params": {"amount": 0.1}}},
                             "arms": {"base": {"method": "none"}, "soft": {"method": "soft"}}, "seeds": 1})
    assert [key for key, _ in grid.functions()] == ["models[0].torch", "datasets[0].loader", "tricks.soft.targets"]
    spec = grid.runs()[1]
    assert isinstance(spec.dataset.loader, UserFunction) and isinstance(spec.trick.targets, UserFunction)
    check_environment(grid)  # the loader is called, the trick part runs once, both are sendable
    stored = spec.to_json()
    assert stored["dataset"]["loader"].startswith("tests.test_callables.")
    assert "loader@sha256:" in stored["dataset"]["loader"] and "soften@sha256:" in stored["trick"]["targets"]


LOCK = threading.Lock()


def holds_a_lock(input_shape, num_classes):
    with LOCK:
        return tiny_torch(input_shape, num_classes)


def test_a_function_cloudpickle_cannot_send_is_one_line_naming_the_object(monkeypatch):
    # By value, as cloudpickle sends a function of __main__ (a notebook cell's).
    monkeypatch.setattr(holds_a_lock, "__module__", "__main__")
    grid = ablate.load_grid(_grid(torch=holds_a_lock))
    with pytest.raises(ablate.ConfigError) as info:
        check_environment(grid)
    text = _one_line(info.value)
    assert "`models[0].torch`: __main__.holds_a_lock@sha256:" in text
    assert "cannot be sent to the workers: it uses 'LOCK' (a lock)" in text


# A notebook in a plain process: each cell's code is compiled under a name that linecache knows
# (what IPython does), in __main__, with no file a spawned worker could import.
SESSION = '''
import linecache, sys, ablate

def cell(source, name):
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), globals())

cell("""
def tiny(input_shape, num_classes):
    import math
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), {width}), nn.ReLU(),
                         nn.Linear({width}, num_classes))

def half_soft(targets, rng):
    return targets * 0.95 + 0.05 / targets.shape[1]
""", "<cell-1>")

grid = {{"study": "nb", "datasets": [{{"name": "digits", "train_size": 300, "test_size": 200}}],
        "models": [{{"name": "tiny", "torch": tiny}}], "backends": ["torch"],
        "tricks": {{"half": {{"targets": half_soft}}}},
        "arms": {{"none": {{"method": "none"}}, "half": {{"method": "half"}}}}, "seeds": 2,
        "train": {{"epochs": 1, "batch_size": 64, "monitor_size": 32}}}}
try:
    study = ablate.run(grid, results=sys.argv[1], workers=2, executor=sys.argv[2], log=None)
except ablate.ConfigError as exc:
    print("REFUSED", exc)
else:
    s = study.sweep
    print("SWEEP", s.completed, s.failed, s.skipped, s.failures)
'''


def _session(tmp_path: Path, width: int, executor: str = "local") -> str:
    code = textwrap.dedent(SESSION).format(width=width)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "results"), executor], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_functions_of_main_reach_local_workers_and_a_restart_resumes(tmp_path):
    assert "SWEEP 4 0 0 ()" in _session(tmp_path, 8)
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "nb" / "runs").glob("*/record.json")]
    assert {r["status"] for r in records} == {"completed"} and len(records) == 4
    tokens = {r["config"]["model_factory"] for r in records}
    assert {t.split("@")[0] for t in tokens} == {"__main__.tiny"} and len(tokens) == 1
    # The report says which functions (and which versions of them) made the runs.
    report = subprocess.run([sys.executable, "-m", "ablate", "report", "--results", str(tmp_path / "results"),
                             "--study", "nb", "--no-figures"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    page = (tmp_path / "results" / "nb" / "report.html").read_text()
    assert "functions from Python" in page and tokens.pop() in page and "__main__.half_soft@sha256:" in page
    # A fresh process (a kernel restart) with the same cells finds every run stored.
    assert "SWEEP 0 0 4 ()" in _session(tmp_path, 8)
    # An edited body is another model: not mixed into the study's runs, and the line says which.
    refused = _session(tmp_path, 12)
    line = next(x for x in refused.splitlines() if x.startswith("REFUSED"))
    assert "model 'tiny': torch '__main__.tiny@sha256:" in line and "-> '__main__.tiny@sha256:" in line
    assert "use a new study name" in line


def test_functions_of_main_reach_ray_actors(tmp_path):
    pytest.importorskip("ray")
    out = _session(tmp_path, 8, executor="ray")
    assert "SWEEP 4 0 0 ()" in out, out

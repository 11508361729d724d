"""Each plug-in model called once on a real batch, before any run, in a child process per backend.

A model that is not one of ablate's own (a grid's ``{name, torch, keras}`` model or an
``ablate.models`` entry point: a timm ResNet, a ``keras.applications`` network) is built for
each dataset of the grid and called once, in inference mode, on the first
:data:`BATCH` training examples. What comes back is checked in the driver:

* an output that is not ``(batch, K)``, or whose width is not the dataset's K, is refused
  naming both widths (instead of a framework error in every run);
* an output whose every row is non-negative and sums to 1 is probabilities, not logits: the
  loss would apply a second softmax and calibration would be silently wrong, so it is refused
  (``keras.applications`` defaults to ``classifier_activation="softmax"``);
* under ``pairing: cross-backend`` each backend's neutral weight layout
  (``shared_layout`` in :mod:`ablate.backends.torch` and :mod:`ablate.backends.keras`) must be
  the same, and drawable by :func:`ablate.backends.weights.draw_layout`; a pair that differs is
  refused naming the first differing layer.

Each backend's child is a fresh process (Keras' engine is fixed per process, and importing a
framework in the driver would start it there), on the CPU; the backend builds and calls the
model (``Backend.call_model``), so this module imports no framework. ablate's built-in models are not
called: the conformance suite (``tests/backends``) shows that they return logits of width K and
share their layouts.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ablate.config import Grid, ModelSpec, framework_of
from ablate.errors import BackendError, ConfigError

BATCH = 8  # examples per check
TIMEOUT = 600  # seconds one backend's child may take (building a large network on a busy CPU)
SUM_TOLERANCE = 1e-4  # |row sum - 1| below which a non-negative row counts as probabilities


def is_builtin(model: ModelSpec) -> bool:
    """Whether ``model`` is one of ablate's own (its factories live in ablate.backends)."""
    from ablate.backends import models

    if model.is_user or model.name not in models.MODELS:
        return False
    refs = models.MODELS.get(model.name).factories.values()
    return all(ref.startswith("ablate.backends.") for ref in refs)


def check_models(grid: Grid, data: Mapping[int, Any], search: Sequence[str] = ()) -> None:
    """Call each plug-in model once per backend and dataset (see the module doc); raise the first
    problem as one ConfigError naming the grid keys. ``data``: dataset index -> its loaded
    :class:`~ablate.data.catalogue.Dataset` (a dataset left out is not checked)."""
    targets = [(j, m) for j, m in enumerate(grid.models) if not is_builtin(m)]
    if not targets or not data:
        return
    backends = list(dict.fromkeys(grid.backends))
    with tempfile.TemporaryDirectory(prefix="ablate-models-") as tmp:
        batches = {}
        for i, ds in sorted(data.items()):
            path = Path(tmp) / f"batch{i}.npy"
            np.save(path, np.ascontiguousarray(ds.x_train[:BATCH], np.float32))
            batches[i] = str(path)
        results = _run_children(grid, backends, targets, data, batches, list(search), Path(tmp))
    for j, model in targets:
        for i, ds in sorted(data.items()):
            for backend in backends:
                _judge(grid, j, model, i, ds, backend, results[backend][f"{j}/{i}"])
            if grid.pairing == "cross-backend":
                _check_layouts(grid, j, model, i, ds, backends, {b: results[b][f"{j}/{i}"] for b in backends})


def _run_children(grid, backends, targets, data, batches, search, tmp: Path) -> dict[str, dict[str, Any]]:
    """Start one child per backend (they run side by side), then collect their answers."""
    procs = {}
    for backend in backends:
        framework = framework_of(backend)
        job = {"backend": backend, "search": search, "layout": grid.pairing == "cross-backend",
               "checks": [{"key": f"{j}/{i}", "name": m.name, "factory": getattr(m, framework),
                           "batch": batches[i], "input_shape": list(ds.input_shape), "num_classes": ds.num_classes}
                          for j, m in targets for i, ds in sorted(data.items())]}
        # Pickled, not JSON: a factory may be a notebook's function (a UserFunction, sent by value with
        # cloudpickle as workers get it). The child is ours and reads only this file, which we wrote.
        path = tmp / f"job-{len(procs)}.pkl"
        path.write_bytes(pickle.dumps(job))
        # The driver's own copy of ablate, in the driver's folder (where its user modules resolve).
        root = str(Path(__file__).resolve().parent.parent.parent)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        procs[backend] = subprocess.Popen([sys.executable, "-m", "ablate.execution.model_check", str(path)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: dict[str, dict[str, Any]] = {}
    try:
        for backend, proc in procs.items():
            try:
                stdout, stderr = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise ConfigError(f"{grid.source}: `models`: calling the plug-in models once with {backend} took "
                                  f"more than {TIMEOUT} s; check that their factories return") from None
            answer = (stdout.strip().splitlines() or [""])[-1]
            try:
                out[backend] = json.loads(answer)
            except json.JSONDecodeError:
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                raise ConfigError(f"{grid.source}: `models`: calling the plug-in models once with {backend} "
                                  f"failed (exit code {proc.returncode}): {tail}") from None
    finally:  # a refusal, or Ctrl-C, leaves no child behind
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def _judge(grid, j: int, model: ModelSpec, i: int, ds, backend: str, got: Mapping[str, Any]) -> None:
    where = f"{grid.source}: `models[{j}]`: {model.name!r} ({backend})"
    data = f"`datasets[{i}]` ({ds.name})"
    if got.get("error"):
        raise ConfigError(f"{where}, called once on a batch of {data}: {got['error']}")
    shape = tuple(got["shape"])
    n = got["n"]
    if len(shape) != 2 or shape[0] != n:
        raise ConfigError(f"{where}: expected an output of shape ({n}, K), logits per example, for a batch of "
                          f"{n} from {data}, but got shape {shape}")
    if shape[1] != ds.num_classes:
        raise ConfigError(f"{where}: outputs {shape[1]} values per example, but {data} has {ds.num_classes} "
                          f"classes; the factory is called with num_classes={ds.num_classes}: build a head "
                          f"of that width")
    if got["finite"] and got["min"] >= 0 and got["max_sum_error"] <= SUM_TOLERANCE:
        raise ConfigError(f"{where}: outputs probabilities (on a batch of {data} every row is non-negative and "
                          f"sums to 1), but ablate applies the softmax in the loss; return logits: for "
                          f"keras.applications pass classifier_activation=None, in torch drop a final nn.Softmax")


def _check_layouts(grid, j: int, model: ModelSpec, i: int, ds, backends: Sequence[str],
                   got: Mapping[str, Mapping[str, Any]]) -> None:
    from ablate.backends import weights

    where = f"{grid.source}: `models[{j}]`"
    layouts = {}
    for backend in backends:
        if got[backend].get("layout_error"):
            raise ConfigError(f"{where}: pairing: cross-backend: {model.name!r} ({backend}): "
                              f"{got[backend]['layout_error']}")
        layouts[backend] = [(name, tuple(shape)) for name, shape in got[backend]["layout"]]
    first = backends[0]
    for other in backends[1:]:
        try:
            weights.check_same_layout(layouts[first], layouts[other], model=model.name, names=(first, other))
        except BackendError as exc:
            raise ConfigError(f"{where}: {exc} (built for `datasets[{i}]`, {ds.name})") from None
    try:
        weights.draw_layout(layouts[first], seed=0)
    except BackendError as exc:
        raise ConfigError(f"{where}: pairing: cross-backend: {model.name!r}: {exc}") from None


# ------------------------------------------------------------------------ the child process
def _child(job_path: str) -> dict[str, Any]:
    """Build and call each model of the job once; never raises for a model's own failure."""
    from ablate import backends

    job = pickle.loads(Path(job_path).read_bytes())
    backend = backends.load(job["backend"])  # fixes Keras' engine before Keras is imported, as a worker does
    return {check["key"]: _call_once(backend, check, job["search"], job["layout"]) for check in job["checks"]}


def _call_once(backend, check: Mapping[str, Any], search: Sequence[str], layout: bool) -> dict[str, Any]:
    x = np.load(check["batch"])
    answer: dict[str, Any] = {"n": len(x)}
    try:
        y, found = backend.call_model(model=check["name"], input_shape=tuple(check["input_shape"]),
                                      num_classes=int(check["num_classes"]), x=x, factory=check["factory"],
                                      search_paths=search, layout=layout)
    except BackendError as exc:  # ablate's own words about the model
        answer["error"] = " ".join(str(exc).split())
        return answer
    except Exception as exc:  # noqa: BLE001 - the user's model, named in one line by the driver
        answer["error"] = f"raised {type(exc).__name__}: {' '.join(str(exc).split())}"
        return answer
    answer["shape"] = list(y.shape)
    finite = bool(np.all(np.isfinite(y)))
    answer.update(finite=finite, min=float(np.min(y)) if y.size and finite else 0.0,
                  max_sum_error=float(np.max(np.abs(y.sum(axis=-1) - 1.0))) if y.size and finite and y.ndim == 2
                  else float("inf"))
    if isinstance(found, str):
        answer["layout_error"] = " ".join(found.split())
    elif found is not None:
        answer["layout"] = [[name, list(s)] for name, s in found]
    return answer


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))

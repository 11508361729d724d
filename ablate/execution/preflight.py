"""Checks made once, in the driver, before any run starts.

The grid's own values were checked when it was parsed; what is checked here needs the
machine or the data: frameworks are installed, datasets are here (a downloadable one is
fetched once, now), user modules can be found, and every model, dataset and option fits
the others (an image model on feature vectors, a subset larger than the data, a model too
small for the input). Plug-in models are called once on a real batch
(:mod:`ablate.execution.model_check`), and tricks' parts once on real data. Each failure is
one line naming the grid key.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from ablate import backends
from ablate.backends import models
from ablate.config import Grid, framework_of
from ablate.data import catalogue
from ablate.errors import AblateError, BackendError, ConfigError, DatasetError


def check_environment(grid: Grid, *, fetch: bool = True) -> list[str]:
    """Fail early, before anything runs, when something the grid needs is missing or cannot fit.

    ``fetch``: fetch a downloadable dataset that is not here yet (``run``). With False
    (``run --dry-run``) nothing is downloaded: such a dataset's checks that need its data are
    left for ``run``, and the returned notes say so (one line each; empty with ``fetch``).
    """
    notes: list[str] = []
    for i, backend in enumerate(grid.backends):
        try:
            backends.check_installed(backend)
        except BackendError as exc:
            raise ConfigError(f"{grid.source}: `backends[{i}]`: {exc}") from None
    search = (grid.base_dir,) if grid.base_dir else ()
    check_sendable(grid)
    for i, model in enumerate(grid.models):
        for framework in ("torch", "keras"):
            ref = getattr(model, framework)
            if isinstance(ref, str) and framework in {framework_of(b) for b in grid.backends}:
                _check_module(grid, f"models[{i}].{framework}", ref, search)
    loaded: dict[int, catalogue.Dataset] = {}  # dataset index -> its data, once loaded here
    shapes = [_dataset_shape(grid, i, ds, search, fetch, notes, loaded) for i, ds in enumerate(grid.datasets)]
    for (i, ds), shape in zip(enumerate(grid.datasets), shapes):
        is_image = len(shape) == 3
        if not is_image:
            augmented = [a.name for a in grid.arms if grid.arm_train[a.name].augment is not None]
            if augmented:
                raise ConfigError(f"{grid.source}: `train.augment`: shifts and flips need images, but "
                                  f"`datasets[{i}]` ({ds.name}) holds feature vectors of shape {shape} "
                                  f"(arms {augmented}); set augment: false")
        for j, model in enumerate(grid.models):
            if model.is_user:
                continue
            try:
                models.check_input(model.name, shape)
            except BackendError as exc:
                raise ConfigError(f"{grid.source}: `models[{j}]`: {exc} (`datasets[{i}]`, {ds.name})") from None
    check_pairing(grid)
    unfetched = {i for i in range(len(grid.datasets)) if any(n.startswith(f"`datasets[{i}]`") for n in notes)}
    from ablate.execution import model_check

    if not all(model_check.is_builtin(m) for m in grid.models):
        for i in range(len(grid.datasets)):
            if i not in unfetched:
                _load(grid, i, search, loaded)
        if unfetched:
            notes.append("the plug-in models are called once on the datasets not here when `run` has fetched them")
        model_check.check_models(grid, loaded, search)
    if 0 in unfetched:
        from ablate.execution.runner import run_trick

        if any(run_trick(spec).parts() for spec in grid.runs()):
            notes.append("the tricks' parts are called once on `datasets[0]` when `run` has fetched it")
    else:
        check_tricks(grid, search, shapes, loaded)
    return notes


def check_sendable(grid: Grid) -> None:
    """Every function handed to the grid in Python must reach the workers: pickled by value with
    cloudpickle once here, so one that cannot be sent is one line naming what it holds."""
    from ablate.execution.sending import unsendable

    for key, fn in grid.functions():
        why = unsendable(fn.fn)
        if why is not None:
            raise ConfigError(f"{grid.source}: `{key}`: {fn.token} cannot be sent to the workers: {why}")


def _load(grid: Grid, i: int, search: tuple[str, ...], loaded: dict[int, catalogue.Dataset]) -> catalogue.Dataset:
    """Dataset ``i`` of the grid as a run loads it, loaded once per check."""
    if i not in loaded:
        ds = grid.datasets[i]
        try:
            loaded[i] = catalogue.load_dataset(ds.name, path=ds.path, loader=ds.loader, search_paths=search,
                                               train_size=ds.train_size, test_size=ds.test_size,
                                               val_fraction=ds.val_fraction, preprocess=ds.preprocess,
                                               image_size=ds.image_size)
        except (DatasetError, AblateError) as exc:
            raise ConfigError(f"{grid.source}: `datasets[{i}]`: {exc}") from None
    return loaded[i]


def check_tricks(grid: Grid, search: tuple[str, ...] = (), shapes: list[tuple[int, ...]] | None = None,
                 loaded: dict | None = None) -> None:
    """Call each part of each arm's trick once, on a tiny batch of the real data, before any run.

    A reference that does not import, a part that returns the wrong shape or dtype, a batch part
    that changes the batch size, or a loss that is not a finite scalar: one line naming the arm,
    the trick, the part and the backend. (Params and a loss missing for a framework in the grid
    were refused when the grid was parsed.)
    """
    from ablate import tricks
    from ablate.execution.runner import one_hot, run_trick

    specs = {}
    for spec in grid.runs():
        specs.setdefault(spec.arm, spec)
    checked = [(arm, spec, run_trick(spec)) for arm, spec in specs.items()]
    checked = [(arm, spec, trick) for arm, spec, trick in checked if trick.parts()]
    if not checked:
        return
    shapes = shapes if shapes is not None else [None] * len(grid.datasets)
    for (i, ds), shape in zip(enumerate(grid.datasets), shapes):
        for arm, _, trick in checked:
            if trick.images_only and shape is not None and len(shape) != 3:
                raise ConfigError(f"{grid.source}: `arms.{arm}`: trick {trick.name!r} needs images, but "
                                  f"`datasets[{i}]` ({ds.name}) holds feature vectors of shape {tuple(shape)}")
    data = _load(grid, 0, search, loaded if loaded is not None else {})
    n = min(8, len(data.x_train))
    x = np.ascontiguousarray(data.x_train[:n], np.float32)
    k = data.num_classes
    hard = one_hot(data.y_train[:n], k)
    frameworks = sorted({framework_of(b) for b in grid.backends})
    for arm, spec, trick in checked:
        def fail(part: str, backend: str, why: str) -> ConfigError:
            return ConfigError(f"{grid.source}: `arms.{arm}`: trick {trick.name!r}, part `{part}` ({backend}): {why}")

        rng = tricks.trick_rng(0, trick.name)
        for part in ("targets", "batch"):
            fn = _part(trick, part, search, lambda why, p=part: fail(p, "numpy", why))
            if fn is None:
                continue
            try:
                out = fn(hard.copy(), rng, **spec.params) if part == "targets" else fn(x.copy(), hard.copy(), rng,
                                                                                      **spec.params)
            except Exception as exc:  # noqa: BLE001 - the user's code, named in one line
                raise fail(part, "numpy", f"raised {type(exc).__name__}: {' '.join(str(exc).split())}") from None
            if part == "targets":
                _expect_array(out, hard.shape, lambda why: fail(part, "numpy", why), "targets")
            else:
                if not isinstance(out, tuple) or len(out) != 2:
                    raise fail(part, "numpy", f"expected a pair (x, targets), but got {type(out).__name__}")
                xb, tb = out
                if getattr(xb, "shape", (None,))[0] != n or getattr(tb, "shape", (None,))[0] != n:
                    raise fail(part, "numpy", f"changed the batch size: {n} rows in, "
                                              f"x {getattr(xb, 'shape', None)} and targets {getattr(tb, 'shape', None)} out")
                _expect_array(xb, x.shape, lambda why: fail(part, "numpy", why), "x")
                _expect_array(tb, hard.shape, lambda why: fail(part, "numpy", why), "targets")
        for framework in frameworks:
            part = tricks.LOSS_PART[framework]
            backend = next(b for b in grid.backends if framework_of(b) == framework)
            fn = _part(trick, part, search, lambda why, p=part, b=backend: fail(p, b, why))
            if fn is None:
                continue
            logits = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
            try:
                value = _call_loss(framework, fn, logits, hard, spec.params)
            except Exception as exc:  # noqa: BLE001 - the user's code, named in one line
                raise fail(part, backend, f"raised {type(exc).__name__}: {' '.join(str(exc).split())}") from None
            if value.shape not in ((), (1,)):
                raise fail(part, backend, f"expected a scalar (the batch mean), but got shape {value.shape}")


def _part(trick, part: str, search: tuple[str, ...], fail):
    """The trick's part as a callable, or None; a reference that does not import is one line."""
    from ablate.registry import resolve

    value = getattr(trick, part)
    if value is None or callable(value):
        return value
    try:
        return resolve(value, search)
    except AblateError as exc:
        raise fail(str(exc)) from None


def _expect_array(value, shape: tuple[int, ...], fail, what: str) -> None:
    if not isinstance(value, np.ndarray):
        raise fail(f"expected {what} as a numpy array, but got {type(value).__name__}")
    if value.shape != tuple(shape) or value.dtype != np.float32:
        raise fail(f"expected {what} float32 {tuple(shape)}, but got {value.dtype} {value.shape}")


def _call_loss(framework: str, fn, logits: np.ndarray, targets: np.ndarray, params) -> np.ndarray:
    """The loss on (n, K) logits and targets in the framework's argument order, as a numpy value."""
    if framework == "torch":
        from ablate.backends import torch_losses as losses
    else:
        from ablate.backends import keras_losses as losses
    return losses.evaluate(fn, logits, targets, params)


def _check_module(grid: Grid, key: str, reference: str, search: tuple[str, ...]) -> None:
    """Find a user module without importing it (importing would start its framework here)."""
    module = reference.split(":")[0]
    for path in search:
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        where = f"{', '.join(search)} or " if search else ""
        raise ConfigError(f"{grid.source}: `{key}`: {reference!r}: no module named {module!r} in "
                          f"{where}the installed packages")


def _dataset_shape(grid: Grid, i: int, ds, search: tuple[str, ...], fetch: bool = True,
                   notes: list[str] | None = None, loaded: dict | None = None) -> tuple[int, ...]:
    """The shape of one example, after checking the dataset is here and its sizes fit.

    A downloadable dataset that is not here is fetched now, or, without ``fetch``, named in
    ``notes`` and described by its catalogue entry."""
    key = f"{grid.source}: `datasets[{i}]`"
    try:
        if ds.loader is not None or catalogue.DATASETS.get(ds.name).loader is not None:
            # A user loader is called once here: its arrays and labels are checked before any run.
            data = catalogue.load_dataset(ds.name, loader=ds.loader, search_paths=search,
                                          train_size=ds.train_size, test_size=ds.test_size,
                                          val_fraction=ds.val_fraction, preprocess=ds.preprocess)
            if loaded is not None and ds.image_size is None:
                loaded[i] = data
            return data.input_shape
        try:
            catalogue.check_available(ds.name, ds.path, download=False)
        except DatasetError:
            catalogue.check_available(ds.name, ds.path, download=True)
            if fetch:
                # Not here yet but downloadable: fetch it once now, so that a machine without
                # internet fails with one line before any run starts, not once per run.
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                catalogue.load_dataset(ds.name, path=ds.path)
            elif notes is not None:
                notes.append(f"`datasets[{i}]` ({ds.name}) is not here; `run` downloads it first "
                             "(keras.datasets, needs internet)")
        entry = catalogue.DATASETS.get(ds.name)
        shape, _, n_train, n_test = entry.known if entry.known is not None else _described(ds)
        if entry.resizable and ds.image_size is not None:
            shape = (ds.image_size, ds.image_size, shape[-1])
        counted = _local_counts(ds)
        if counted is not None:
            n_train, n_test = counted
        _check_sizes(key, ds, n_train, n_test)
        return tuple(shape)
    except (DatasetError, AblateError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{key}: {exc}") from None


def _described(ds) -> tuple[tuple[int, ...], int, int, int]:
    """What a plug-in source that declares no sizes says of its local copy (from its headers)."""
    info = catalogue.describe_dataset(ds.name, ds.path)
    if not info.available or info.input_shape is None:
        raise DatasetError(f"{ds.name}: {info.location}")
    return info.input_shape, info.num_classes, info.n_train, info.n_test


def _local_counts(ds) -> tuple[int, int] | None:
    """Training and test counts of the local copy, from headers and listings (cheap)."""
    if ds.path is None:
        return None
    try:
        info = catalogue.describe_datasets({ds.name: ds.path})
    except DatasetError:
        return None
    for row in info:
        if row.name == ds.name and row.available and row.n_train is not None:
            return row.n_train, row.n_test
    return None


def _check_sizes(key: str, ds, n_train: int | None, n_test: int | None) -> None:
    if n_train is not None and ds.train_size is not None and ds.train_size > n_train:
        raise ConfigError(f"{key}.train_size: expected at most {n_train} (the training examples of "
                          f"{ds.name}), but got {ds.train_size}")
    if n_test is not None and ds.test_size is not None and ds.test_size > n_test:
        raise ConfigError(f"{key}.test_size: expected at most {n_test} (the test examples of "
                          f"{ds.name}), but got {ds.test_size}")
    pool = ds.train_size if ds.train_size is not None else n_train
    if pool is not None:
        n_val = max(1, round(ds.val_fraction * pool))
        if n_val >= pool:
            raise ConfigError(f"{key}.val_fraction: {ds.val_fraction} of {pool} training examples leaves none "
                              "to train on; use a smaller val_fraction or a larger train_size")



def check_pairing(grid: Grid) -> None:
    """Under ``pairing: cross-backend`` every model needs a shared initial-weight layout: a
    built-in's is planned in :mod:`ablate.backends.weights`; a plug-in model's is read off the
    built models and compared across backends by :mod:`ablate.execution.model_check`."""
    from ablate.backends import weights
    from ablate.execution.model_check import is_builtin

    if grid.pairing != "cross-backend":
        return
    for i, model in enumerate(grid.models):
        if is_builtin(model) and not weights.has_layout(model.name):
            raise ConfigError(f"{grid.source}: `models[{i}]`: pairing: cross-backend needs a shared "
                              f"weight layout, which exists for {weights.layout_models()}, but got {model.name!r}")

"""The grid file: parsed once into the frozen, typed dataclasses of :mod:`ablate.config`.

Every error names the file, the key, what is allowed and what was given, on one line. The
names the registries know come in as :class:`~ablate.config.Names`, so this module, like
config, imports no registry (:mod:`ablate.catalog` supplies them).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ablate.config import (
    BINNINGS,
    CORRECTIONS,
    DEFAULT_MARGINS,
    OPTIMIZERS,
    PAIRINGS,
    PREPROCESS,
    SCHEDULES,
    SD_RATIO_KEY,
    SOURCES,
    TRICK_PARTS,
    AnalysisConfig,
    ArmSpec,
    AugmentSpec,
    DatasetSpec,
    Grid,
    ModelSpec,
    Names,
    ParamSpec,
    SequentialSpec,
    TrainConfig,
    TrickSpec,
    UserFunction,
    canonical_backend,
    describe_range,
    framework_of,
    user_function,
)
from ablate.errors import ConfigError

_TOP_KEYS = ("study", "datasets", "models", "backends", "arms", "smoothing", "seeds", "repeats",
             "train", "overrides", "analysis", "pairing", "tricks")
_REQUIRED = ("study", "datasets", "models", "backends", "arms", "seeds")
_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_STUDY_NAME_BYTES = 200  # a folder name, with room for the files inside it


class _Ctx:
    """Carries the file name so every error can name it."""

    def __init__(self, source: str, base_dir: Path | None = None):
        self.source = source
        self.base_dir = base_dir

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: `{key}`: {message}")

    def choice(self, key: str, value: Any, allowed: Sequence[str], hint: str = "") -> str:
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(key, f"expected one of {tuple(allowed)}{' ' + hint if hint else ''}, but got {value!r}")
        return value

    def keys(self, key: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for k in data:
            if k not in allowed:
                where = f"unknown key {k!r}" + (f" in `{key}`" if key else "")
                raise ConfigError(f"{self.source}: {where}; allowed keys: {', '.join(allowed)}")

    def mapping(self, key: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, but got {type(value).__name__} {value!r}")
        return value

    def as_list(self, key: str, value: Any) -> list[Any]:
        if isinstance(value, (str, int, float, Mapping)):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list, but got {value!r}")
        return value

    def integer(self, key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, but got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, but got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"expected an integer <= {maximum}, but got {value!r}")
        return value

    def number(self, key: str, value: Any, *, low: float | None = None, high: float | None = None,
               open_low: bool = False, open_high: bool = False) -> float:
        if isinstance(value, str):
            # YAML 1.1 reads exponents without a sign (1e9, 1.0e9) as strings.
            try:
                value = float(value)
            except ValueError:
                raise self.fail(key, f"expected a number, but got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, but got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            # NaN compares false with every bound, so it would pass the range check below.
            raise self.fail(key, f"expected a finite number, but got {value!r}")
        bad_low = low is not None and (v <= low if open_low else v < low)
        bad_high = high is not None and (v >= high if open_high else v > high)
        if bad_low or bad_high:
            raise self.fail(key, f"expected a value {describe_range(low, high, open_low, open_high)}, "
                                 f"but got {value!r}")
        return v

    def reference(self, key: str, value: Any) -> str | UserFunction:
        if callable(value):  # the Python API: a function where a file names one
            try:
                return user_function(key, value)
            except ConfigError as exc:
                raise ConfigError(f"{self.source}: {exc}") from None
        if not isinstance(value, str) or not _REFERENCE.match(value):
            raise self.fail(key, f"expected a reference 'module:function' (e.g. 'mymodels:tiny') or, "
                                 f"from Python, a function, but got {value!r}")
        return value


def _parse_dataset(ctx: _Ctx, names: Names, value: Any, index: int) -> DatasetSpec:
    key = f"datasets[{index}]"
    if isinstance(value, str):
        value = {"name": value}
    data = ctx.mapping(key, value)
    allowed = [f.name for f in dataclasses.fields(DatasetSpec)]
    ctx.keys(key, data, allowed)
    if "name" not in data:
        raise ctx.fail(key, f"missing `name`; expected one of {tuple(names.datasets)}, or a name with a `loader`")
    loader = data.get("loader")
    if loader is not None:
        loader = ctx.reference(f"{key}.loader", loader)
        name = data["name"]
        if not isinstance(name, str) or not name.strip() or name in names.datasets:
            raise ctx.fail(f"{key}.name", f"expected a new dataset name for a `loader` (not one of the built-in "
                                          f"{tuple(names.datasets)}), but got {name!r}")
        for option in ("path", "image_size"):
            if data.get(option) is not None:
                raise ctx.fail(f"{key}.{option}", "does not apply to a `loader` dataset; the loader reads its own data")
    else:
        name = ctx.choice(f"{key}.name", data["name"], names.datasets, "(or a mapping with a `loader: module:function`)")
    path = data.get("path")
    if path is not None and not isinstance(path, str):
        raise ctx.fail(f"{key}.path", f"expected a folder path string, but got {path!r}")
    if path is not None and ctx.base_dir is not None:
        # Relative to the grid file, so a grid runs the same from any working directory.
        path = str((ctx.base_dir / Path(path).expanduser()).resolve())
    train_size = data.get("train_size")
    if train_size is not None:
        train_size = ctx.integer(f"{key}.train_size", train_size, minimum=2)
    test_size = data.get("test_size")
    if test_size is not None:
        test_size = ctx.integer(f"{key}.test_size", test_size, minimum=2)
    val_fraction = ctx.number(f"{key}.val_fraction", data.get("val_fraction", 0.1),
                              low=0.0, high=1.0, open_low=True, open_high=True)
    preprocess = ctx.choice(f"{key}.preprocess", data.get("preprocess", "standardize"), PREPROCESS)
    image_size = data.get("image_size")
    if image_size is not None:
        image_size = ctx.integer(f"{key}.image_size", image_size, minimum=8, maximum=1024)
        if name not in names.resizable_datasets:
            raise ctx.fail(f"{key}.image_size", f"only applies to {', '.join(names.resizable_datasets) or 'no dataset'}, "
                                                f"but dataset is {name!r}")
    bootstrap = data.get("bootstrap", False)
    if not isinstance(bootstrap, bool):
        raise ctx.fail(f"{key}.bootstrap", f"expected true or false, but got {bootstrap!r}")
    return DatasetSpec(name=name, path=path, loader=loader, train_size=train_size, test_size=test_size,
                       val_fraction=val_fraction, preprocess=preprocess, image_size=image_size,
                       bootstrap=bootstrap)


def _parse_model(ctx: _Ctx, names: Names, value: Any, index: int) -> ModelSpec:
    key = f"models[{index}]"
    if isinstance(value, str):
        return ModelSpec(ctx.choice(key, value, names.models, "(or a mapping `{name, torch: module:function, keras: module:function}`)"))
    data = ctx.mapping(key, value)
    ctx.keys(key, data, ("name", "torch", "keras"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ctx.fail(f"{key}.name", f"expected a model name, but got {name!r}")
    if not ("torch" in data or "keras" in data):
        if name in names.models:
            return ModelSpec(name)
        raise ctx.fail(key, f"model {name!r} needs a factory: `torch: module:function` and/or "
                            f"`keras: module:function` (built-in models: {', '.join(names.models)})")
    if name in names.models:
        raise ctx.fail(f"{key}.name", f"{name!r} is a built-in model; give your model another name")
    refs = {fw: ctx.reference(f"{key}.{fw}", data[fw]) for fw in ("torch", "keras") if fw in data}
    return ModelSpec(name, torch=refs.get("torch"), keras=refs.get("keras"))


_NAME_FORBIDDEN = "/\\\n\0"
# The rule as errors state it; the README's "Arms and pairs" quotes the same words.
NAME_RULE = "free text: any characters except '/', '\\', newline and NUL, and not blank"


def _check_free_name(ctx: _Ctx, key: str, kind: str, name: Any) -> None:
    """An arm's or grid trick's name: free text but for the characters :data:`NAME_RULE` forbids."""
    if not isinstance(name, str):
        raise ctx.fail(key, f"expected {kind} names that are {NAME_RULE}, but got {name!r} "
                            f"(a {type(name).__name__})")
    bad = [{"\n": "newline", "\0": "NUL"}.get(c, repr(c)) for c in dict.fromkeys(name) if c in _NAME_FORBIDDEN]
    if bad or not name.strip():
        why = f"contains {', '.join(bad)}" if bad else "blank"
        raise ctx.fail(key, f"expected {kind} names that are {NAME_RULE}, but got {name!r} ({why})")


def _parse_param_spec(ctx: _Ctx, key: str, raw: Any) -> ParamSpec:
    """A grid trick's param: a number (its default) or ``{default, low, high}``."""
    if not isinstance(raw, Mapping):
        return ParamSpec(ctx.number(key, raw))
    ctx.keys(key, raw, ("default", "low", "high"))
    if "default" not in raw:
        raise ctx.fail(f"{key}.default", "missing; expected the param's default value")
    low = ctx.number(f"{key}.low", raw["low"]) if "low" in raw else None
    high = ctx.number(f"{key}.high", raw["high"]) if "high" in raw else None
    if low is not None and high is not None and low > high:
        raise ctx.fail(key, f"expected low <= high, but got low {low:g} and high {high:g}")
    spec = ParamSpec(ctx.number(f"{key}.default", raw["default"]), low=low, high=high)
    if not spec.allows(spec.default):
        raise ctx.fail(f"{key}.default", f"expected a value {spec.describe()}, but got {raw['default']!r}")
    return spec


def _parse_tricks(ctx: _Ctx, names: Names, raw: Any) -> dict[str, TrickSpec]:
    """The grid's own tricks: ``name: {targets|batch|torch_loss|keras_loss: module:function, params: ...}``."""
    out: dict[str, TrickSpec] = {}
    for name, body in ctx.mapping("tricks", raw).items():
        key = f"tricks.{name}"
        _check_free_name(ctx, "tricks", "trick", name)
        if name in names.tricks:
            raise ctx.fail(key, f"{name!r} is a built-in trick; give your trick another name")
        body = ctx.mapping(key, body)
        ctx.keys(key, body, TRICK_PARTS + ("params", "description"))
        refs = {part: ctx.reference(f"{key}.{part}", body[part]) for part in TRICK_PARTS if part in body}
        if not refs:
            raise ctx.fail(key, f"expected at least one part among {', '.join(TRICK_PARTS)} "
                                f"(each a 'module:function'), but got none")
        params = {str(p): _parse_param_spec(ctx, f"{key}.params.{p}", v)
                  for p, v in ctx.mapping(f"{key}.params", body.get("params") or {}).items()}
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ctx.fail(f"{key}.description", f"expected text, but got {description!r}")
        out[name] = TrickSpec(name=name, params=params, description=description, **refs)
    return out


def _trick_params(ctx: _Ctx, key: str, trick: str, specs: Mapping[str, ParamSpec], raw: Any) -> dict[str, float]:
    """An arm's ``params:`` checked against its trick's: known names, values in range."""
    given = ctx.mapping(key, raw)
    values: dict[str, float] = {}
    for name, value in given.items():
        if name not in specs:
            raise ctx.fail(f"{key}.{name}", f"unknown param of trick {trick!r}; its params: "
                                            f"{', '.join(specs) or 'none'}")
        spec = specs[name]
        v = ctx.number(f"{key}.{name}", value)
        if not spec.allows(v):
            raise ctx.fail(f"{key}.{name}", f"trick {trick!r} expects {name} {spec.describe()}, but got {value!r}")
        values[str(name)] = v
    return values


def _parse_arms(ctx: _Ctx, names: Names, raw: Any, grid_tricks: Mapping[str, TrickSpec]
                ) -> list[tuple[str, str, Mapping[str, Any], Mapping[str, float]]]:
    """(name, trick, train overrides as written, params as written) per arm, from the list or mapping form."""
    methods = tuple(names.tricks) + tuple(grid_tricks)
    out: list[tuple[str, str, Mapping[str, Any], Mapping[str, float]]] = []
    if isinstance(raw, Mapping):
        if not raw:
            raise ctx.fail("arms", "expected at least one arm")
        for name, body in raw.items():
            key = f"arms.{name}"
            _check_free_name(ctx, "arms", "arm", name)
            body = {} if body is None else ctx.mapping(key, body)
            ctx.keys(key, body, ("method", "train", "params"))
            if "method" in body:
                method = ctx.choice(f"{key}.method", body["method"], methods)
            elif name in methods:
                method = name
            else:
                raise ctx.fail(key, f"missing `method`; expected one of {methods}")
            train = ctx.mapping(f"{key}.train", body.get("train") or {})
            specs = grid_tricks[method].params if method in grid_tricks else names.tricks[method].params
            params = _trick_params(ctx, f"{key}.params", method, specs, body.get("params") or {})
            out.append((name, method, dict(train), params))
        return out
    for i, value in enumerate(ctx.as_list("arms", raw)):
        name = ctx.choice(f"arms[{i}]", value, methods,
                          "(tricks; name arms of your own with `arms: {name: {method: ...}}`)")
        out.append((name, name, {}, {}))
    dup = sorted({n for n, _, _, _ in out if [a for a, _, _, _ in out].count(n) > 1})
    if dup:
        raise ctx.fail("arms", f"expected each entry once, but got duplicates {dup}")
    return out


def _parse_train(ctx: _Ctx, key: str, data: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
    data = ctx.mapping(key, data)
    ctx.keys(key, data, [f.name for f in dataclasses.fields(TrainConfig)])
    values: dict[str, Any] = {}
    for name, raw in data.items():
        k = f"{key}.{name}"
        if name in ("epochs", "batch_size", "monitor_size"):
            values[name] = ctx.integer(k, raw, minimum=1 if name != "monitor_size" else 0, maximum=10**7)
        elif name == "optimizer":
            values[name] = ctx.choice(k, raw, OPTIMIZERS)
        elif name == "schedule":
            values[name] = ctx.choice(k, raw, SCHEDULES)
        elif name == "lr":
            values[name] = ctx.number(k, raw, low=0.0, open_low=True)
        elif name == "momentum":
            values[name] = ctx.number(k, raw, low=0.0, high=1.0, open_high=True)
        elif name in ("weight_decay",):
            values[name] = ctx.number(k, raw, low=0.0)
        elif name == "power":
            values[name] = ctx.number(k, raw, low=0.0, open_low=True)
        elif name == "timeout":
            if raw is not None:
                values[name] = ctx.number(k, raw, low=0.0, open_low=True)
                if values[name] == float("inf"):
                    raise ctx.fail(k, f"expected a number of seconds > 0, or null for none, but got {raw!r}")
            else:
                values[name] = None
        elif name == "augment":
            values[name] = _parse_augment(ctx, k, raw)
    return dataclasses.replace(base, **values)


def _parse_augment(ctx: _Ctx, key: str, raw: Any) -> AugmentSpec | None:
    if raw is False or raw is None:
        return None
    if raw is True:
        return AugmentSpec()
    data = ctx.mapping(key, raw)
    ctx.keys(key, data, [f.name for f in dataclasses.fields(AugmentSpec)])
    values: dict[str, Any] = {}
    for name in ("width_shift", "height_shift"):
        if name in data:
            values[name] = ctx.number(f"{key}.{name}", data[name], low=0.0, high=1.0, open_high=True)
    if "horizontal_flip" in data:
        if not isinstance(data["horizontal_flip"], bool):
            raise ctx.fail(f"{key}.horizontal_flip", f"expected true or false, but got {data['horizontal_flip']!r}")
        values["horizontal_flip"] = data["horizontal_flip"]
    return AugmentSpec(**values)


def _parse_sequential(ctx: _Ctx, names: Names, raw: Any, n_seeds: int) -> SequentialSpec:
    key = "analysis.sequential"
    data = ctx.mapping(key, raw)
    ctx.keys(key, data, [f.name for f in dataclasses.fields(SequentialSpec)])
    if "looks" not in data:
        raise ctx.fail(f"{key}.looks", "missing; expected increasing seed counts, e.g. [5, 10, 15, 20]")
    looks = tuple(ctx.integer(f"{key}.looks[{i}]", v, minimum=2)
                  for i, v in enumerate(ctx.as_list(f"{key}.looks", data["looks"])))
    if any(b <= a for a, b in zip(looks, looks[1:])):
        raise ctx.fail(f"{key}.looks", f"expected strictly increasing seed counts, but got {list(looks)}")
    if looks[-1] > n_seeds:
        raise ctx.fail(f"{key}.looks", f"expected the last look <= the grid's {n_seeds} seed(s), "
                                       f"but got {looks[-1]}; add seeds or drop the look")
    if not names.spendings:
        raise ctx.fail(f"{key}.spending", "no alpha-spending function is registered")
    spending = ctx.choice(f"{key}.spending", data.get("spending", names.spendings[0]), names.spendings)
    return SequentialSpec(looks=looks, spending=spending)


def _parse_analysis(ctx: _Ctx, raw: Any, arms: Sequence[str], names: Names, n_seeds: int) -> AnalysisConfig:
    data = ctx.mapping("analysis", raw)
    ctx.keys("analysis", data, [f.name for f in dataclasses.fields(AnalysisConfig)])
    margins = dict(DEFAULT_MARGINS)
    if "margins" in data:
        for metric, value in ctx.mapping("analysis.margins", data["margins"]).items():
            if str(metric) == SD_RATIO_KEY:  # the SD ratio's band [1/m, m], not a metric
                margins[SD_RATIO_KEY] = ctx.number(f"analysis.margins.{SD_RATIO_KEY}", value, low=1.0,
                                                   open_low=True)
                continue
            margins[str(metric)] = ctx.number(f"analysis.margins.{metric}", value, low=0.0, open_low=True)
    alpha = ctx.number("analysis.alpha", data.get("alpha", 0.05), low=0.0, high=0.5,
                       open_low=True, open_high=True)
    correction = ctx.choice("analysis.correction", data.get("correction", "holm"), CORRECTIONS)
    bins = ctx.integer("analysis.ece_bins", data.get("ece_bins", 15), minimum=1)
    binning = ctx.choice("analysis.ece_binning", data.get("ece_binning", "uniform"), BINNINGS)
    pairs: list[tuple[str, str]] = []
    for i, pair in enumerate(ctx.as_list("analysis.compare", data["compare"]) if "compare" in data else []):
        key = f"analysis.compare[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise ctx.fail(key, f"expected a pair of arm names like [explicit, loss], but got {pair!r}")
        a, b = (ctx.choice(f"{key}[{j}]", v, arms, "(the grid's arms)") for j, v in enumerate(pair))
        if a == b:
            raise ctx.fail(key, f"expected two different arms, but got {pair!r}")
        if (a, b) in pairs or (b, a) in pairs:
            raise ctx.fail(key, f"pair {pair!r} is listed twice")
        pairs.append((a, b))
    sequential = _parse_sequential(ctx, names, data["sequential"], n_seeds) if "sequential" in data else None
    return AnalysisConfig(margins=margins, alpha=alpha, correction=correction, ece_bins=bins,
                          ece_binning=binning, compare=tuple(pairs), sequential=sequential)


def _parse_study(ctx: _Ctx, study: Any) -> str:
    ok = (isinstance(study, str) and study.strip() == study and study and not study.startswith(".")
          and not any(c in study for c in "/\\") and study.isprintable()
          and len(study.encode("utf-8", "surrogatepass")) <= _STUDY_NAME_BYTES)
    if not ok:
        raise ctx.fail("study", f"expected a folder-safe name (printable, no slashes, not starting with '.', "
                                f"at most {_STUDY_NAME_BYTES} bytes), but got {study!r}")
    return study


def parse_grid(data: Any, *, names: Names, source: str = "<grid>", base_dir: str | Path | None = None) -> Grid:
    """Validate a loaded YAML document against the registries' ``names``; return the frozen grid.

    ``base_dir`` anchors relative dataset paths and user modules (the grid file's folder).
    Most callers want :func:`ablate.catalog.parse_grid`, which supplies ``names``.
    """
    ctx = _Ctx(source, Path(base_dir).resolve() if base_dir is not None else None)
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else type(data).__name__
        raise ConfigError(f"{source}: expected a mapping of grid keys at top level, but got {got}")
    ctx.keys("", data, _TOP_KEYS)
    for key in _REQUIRED:
        if key not in data:
            raise ctx.fail(key, "missing required key")

    study = _parse_study(ctx, data["study"])
    datasets = tuple(_parse_dataset(ctx, names, v, i)
                     for i, v in enumerate(ctx.as_list("datasets", data["datasets"])))
    models = tuple(_parse_model(ctx, names, v, i) for i, v in enumerate(ctx.as_list("models", data["models"])))
    backends = tuple(canonical_backend(ctx.choice(f"backends[{i}]", v, names.backends))
                     for i, v in enumerate(ctx.as_list("backends", data["backends"])))
    grid_tricks = _parse_tricks(ctx, names, data["tricks"]) if "tricks" in data else {}
    arm_list = _parse_arms(ctx, names, data["arms"], grid_tricks)
    arm_names = tuple(a for a, _, _, _ in arm_list)
    for key, values in (("datasets", [d.name for d in datasets]), ("models", [m.name for m in models]),
                        ("backends", backends)):
        dup = sorted({v for v in values if list(values).count(v) > 1})
        if dup:
            raise ctx.fail(key, f"expected each entry once, but got duplicates {dup}")
    for i, model in enumerate(models):
        if not model.is_user:
            continue
        for backend in backends:
            if getattr(model, framework_of(backend)) is None:
                raise ctx.fail(f"models[{i}]", f"model {model.name!r} has no `{framework_of(backend)}:` factory, "
                                               f"but backend {backend!r} is in the grid; add one or drop the backend")

    _check_trick_frameworks(ctx, names, grid_tricks, arm_list, backends)
    smoothing_methods = frozenset(m for m, info in names.tricks.items() if info.uses_smoothing)
    smoothing_arms = [a for a, method, _, _ in arm_list if method in smoothing_methods]
    if "smoothing" in data:
        smoothing = tuple(ctx.number(f"smoothing[{i}]", v, low=0.0, high=1.0, open_low=True, open_high=True)
                          for i, v in enumerate(ctx.as_list("smoothing", data["smoothing"])))
    elif smoothing_arms:
        raise ctx.fail("smoothing", f"missing; arms {smoothing_arms} need one or more eps in (0, 1)")
    else:
        smoothing = ()
    if len(set(smoothing)) != len(smoothing):
        raise ctx.fail("smoothing", f"expected distinct values, but got {list(smoothing)}")

    raw_seeds = data["seeds"]
    seed_sources: dict[str, tuple[int, ...]] = {}
    if isinstance(raw_seeds, Mapping):
        seed_sources = _parse_seed_sources(ctx, raw_seeds)
        n_cells = math.prod(len(v) for v in seed_sources.values())
        if n_cells > 100_000:
            raise ctx.fail("seeds", f"expected at most 100000 cells per arm, but the mapping makes {n_cells}")
        seeds = tuple(range(n_cells))
    elif isinstance(raw_seeds, int) and not isinstance(raw_seeds, bool):
        seeds = tuple(range(ctx.integer("seeds", raw_seeds, minimum=1, maximum=100_000)))
    else:
        seeds = tuple(ctx.integer(f"seeds[{i}]", v, minimum=0, maximum=2**32 - 1)
                      for i, v in enumerate(ctx.as_list("seeds", raw_seeds)))
        if len(set(seeds)) != len(seeds):
            raise ctx.fail("seeds", f"expected distinct seeds, but got {list(seeds)}")
    repeats = ctx.integer("repeats", data.get("repeats", 1), minimum=1, maximum=100)
    pairing = ctx.choice("pairing", data.get("pairing", "within-backend"), PAIRINGS)

    train = _parse_train(ctx, "train", data.get("train", {}), TrainConfig())
    legacy = ctx.mapping("overrides", data.get("overrides", {}))
    arms: list[ArmSpec] = []
    arm_train: dict[str, TrainConfig] = {}
    arm_params: dict[str, dict[str, float]] = {}
    for arm, body in legacy.items():
        if arm not in arm_names:
            raise ctx.fail("overrides", f"expected keys among the grid's arms {arm_names}, but got {arm!r}")
        ctx.keys(f"overrides.{arm}", ctx.mapping(f"overrides.{arm}", body), ["train"])
    for name, method, overrides, params in arm_list:
        key = f"arms.{name}.train"
        specs = grid_tricks[method].params if method in grid_tricks else names.tricks[method].params
        arm_params[name] = {**{p: s.default for p, s in specs.items()}, **params}
        if name in legacy:
            if overrides:
                raise ctx.fail(f"overrides.{name}", f"arm {name!r} also has `train:` in `arms`; keep one "
                                                    f"(write it as `arms: {{{name}: {{method: {method}, train: ...}}}}`)")
            overrides = dict(ctx.mapping(f"overrides.{name}.train", legacy[name].get("train") or {}))
            key = f"overrides.{name}.train"
        arm_train[name] = _parse_train(ctx, key, overrides, train)
        arms.append(ArmSpec(name, method, dict(overrides), dict(params)))
    analysis = _parse_analysis(ctx, data.get("analysis", {}), arm_names, names, len(seeds))
    return Grid(study=study, datasets=datasets, models=models, backends=backends, arms=tuple(arms),
                smoothing=smoothing, seeds=seeds, repeats=repeats, train=train, arm_train=arm_train,
                analysis=analysis, smoothing_methods=smoothing_methods, pairing=pairing, source=source,
                base_dir=str(ctx.base_dir) if ctx.base_dir is not None else None,
                tricks={m: t for m, t in grid_tricks.items() if m in {a.method for a in arms}},
                arm_params=arm_params, seed_sources=seed_sources)


def _parse_seed_sources(ctx: _Ctx, raw: Mapping) -> dict[str, tuple[int, ...]]:
    """``seeds: {init: 4, order: [0, 2], split: 3}`` -> source -> its seeds (a count n means 0..n-1).

    Unnamed sources are held at seed 0, except ``augment``, which follows ``order``.
    """
    data = ctx.mapping("seeds", raw)
    if not data:
        raise ctx.fail("seeds", f"expected a count, a list, or a mapping of sources {SOURCES} to counts or "
                                f"lists, but got an empty mapping")
    ctx.keys("seeds", data, SOURCES)
    out: dict[str, tuple[int, ...]] = {}
    for source in SOURCES:
        if source not in data:
            if source != "augment":
                out[source] = (0,)
            continue
        value = data[source]
        key = f"seeds.{source}"
        if isinstance(value, int) and not isinstance(value, bool):
            out[source] = tuple(range(ctx.integer(key, value, minimum=1, maximum=100_000)))
        else:
            seeds = tuple(ctx.integer(f"{key}[{i}]", v, minimum=0, maximum=2**32 - 1)
                          for i, v in enumerate(ctx.as_list(key, value)))
            if not seeds or len(set(seeds)) != len(seeds):
                raise ctx.fail(key, f"expected distinct seeds, at least one, but got {list(seeds)}")
            out[source] = seeds
    return out


def _check_trick_frameworks(ctx: _Ctx, names: Names, grid_tricks: Mapping[str, TrickSpec],
                            arm_list, backends: Sequence[str]) -> None:
    """A trick that gives a loss for some framework must give one for every framework in the grid."""
    for arm, method, _, _ in arm_list:
        parts = grid_tricks[method].parts() if method in grid_tricks else names.tricks[method].parts
        losses = {fw for fw in ("torch", "keras") if f"{fw}_loss" in parts}
        if not losses:
            continue
        for backend in backends:
            fw = framework_of(backend)
            if fw not in losses:
                raise ctx.fail(f"arms.{arm}", f"trick {method!r} has no `{fw}_loss` part (only "
                                              f"{', '.join(sorted(f'{f}_loss' for f in losses))}), but backend "
                                              f"{backend!r} is in the grid; add a {fw}_loss or drop the backend")


def read_grid_file(path: str | Path) -> Any:
    """The YAML document in ``path``, or a one-line ConfigError."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None

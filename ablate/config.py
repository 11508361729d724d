"""The grid file: parsed once into frozen, typed, validated dataclasses.

Every error names the file, the key, what is allowed and what was given, on one line.
Nothing here touches the disk except reading the grid file, and nothing imports a
framework: whether a framework or dataset is *present* is checked separately by
:func:`check_environment`, so a grid can be validated anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ablate.errors import ConfigError

Arm = Literal["none", "explicit", "loss"]
ARMS: tuple[str, ...] = get_args(Arm)
BACKENDS: tuple[str, ...] = ("torch", "keras", "keras/tensorflow", "keras/jax", "keras/torch")
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist", "cifar10", "imagenette")
MODELS: tuple[str, ...] = ("mlp", "small-cnn", "minigooglenet", "fastai-cnn")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "polynomial", "one-cycle")
PREPROCESS: tuple[str, ...] = ("standardize", "mean_subtract", "none")
CORRECTIONS: tuple[str, ...] = ("holm", "bh")
BINNINGS: tuple[str, ...] = ("uniform", "quantile")
# within-backend: each framework draws its own initial weights (backends compared unpaired);
# cross-backend: one numpy draw per (model, seed) shared by every backend, so they pair.
PAIRINGS: tuple[str, ...] = ("within-backend", "cross-backend")
DEFAULT_MARGINS: Mapping[str, float] = {"accuracy": 0.005, "ece": 0.01, "nll": 0.02}


def canonical_backend(name: str) -> str:
    """`keras` means Keras on its TensorFlow engine; every other name is already canonical."""
    return "keras/tensorflow" if name == "keras" else name


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # one of DATASETS
    path: str | None = None  # a local copy; None uses the dataset's default location
    train_size: int | None = None  # a stratified subset of the training data
    test_size: int | None = None  # a stratified subset of the test data
    val_fraction: float = 0.1  # held out from the training data, never from the test set
    preprocess: str = "standardize"  # fitted on the training split only
    image_size: int | None = None  # imagenette only: images are resized to this square size

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class AugmentSpec:
    width_shift: float = 0.1
    height_shift: float = 0.1
    horizontal_flip: bool = True


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "polynomial"
    power: float = 1.0  # polynomial decay exponent
    augment: AugmentSpec | None = None  # None: no augmentation
    monitor_size: int = 2048  # training examples evaluated after each epoch for train NLL/accuracy


@dataclass(frozen=True)
class AnalysisConfig:
    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    alpha: float = 0.05
    correction: str = "holm"
    ece_bins: int = 15
    ece_binning: str = "uniform"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: everything a worker needs to train and store one run."""

    backend: str
    dataset: DatasetSpec
    model: str
    arm: str
    smoothing: float  # 0.0 for the `none` arm
    seed: int
    repeat: int
    train: TrainConfig
    pairing: str = "within-backend"  # one of PAIRINGS

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.pairing == "within-backend":
            del data["pairing"]  # the default leaves run ids as they were before pairing existed
        return data

    @property
    def run_id(self) -> str:
        """A stable hash of the fully resolved configuration."""
        import hashlib
        import json

        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def cell(self) -> tuple[str, str, str, str, float]:
        return (self.backend, self.dataset.name, self.model, self.arm, self.smoothing)

    def describe(self) -> str:
        eps = f" eps={self.smoothing:g}" if self.arm != "none" else ""
        rep = f" repeat={self.repeat}" if self.repeat else ""
        return (f"{self.backend} {self.dataset.name} {self.model} {self.arm}{eps} "
                f"seed={self.seed}{rep}")

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> RunSpec:
        train = dict(data["train"])
        if train.get("augment") is not None:
            train["augment"] = AugmentSpec(**train["augment"])
        return RunSpec(
            backend=data["backend"], dataset=DatasetSpec(**data["dataset"]), model=data["model"],
            arm=data["arm"], smoothing=float(data["smoothing"]), seed=int(data["seed"]),
            repeat=int(data.get("repeat", 0)), train=TrainConfig(**train),
            pairing=data.get("pairing", "within-backend"))


@dataclass(frozen=True)
class Grid:
    study: str
    datasets: tuple[DatasetSpec, ...]
    models: tuple[str, ...]
    backends: tuple[str, ...]
    arms: tuple[str, ...]
    smoothing: tuple[float, ...]
    seeds: tuple[int, ...]
    repeats: int
    train: TrainConfig
    overrides: Mapping[str, TrainConfig]  # arm -> that arm's resolved train config
    override_text: Mapping[str, Mapping[str, Any]]  # arm -> the keys the user overrode
    analysis: AnalysisConfig
    source: str = "<grid>"
    pairing: str = "within-backend"  # one of PAIRINGS

    def runs(self) -> list[RunSpec]:
        """Expand the grid. Seeds are outermost, so a partly finished sweep has whole pairs."""
        out: list[RunSpec] = []
        for repeat in range(self.repeats):
            for seed in self.seeds:
                for dataset in self.datasets:
                    for model in self.models:
                        for backend in self.backends:
                            for arm in self.arms:
                                for eps in ((0.0,) if arm == "none" else self.smoothing):
                                    out.append(RunSpec(
                                        backend=backend, dataset=dataset, model=model, arm=arm,
                                        smoothing=float(eps), seed=seed, repeat=repeat,
                                        train=self.overrides.get(arm, self.train), pairing=self.pairing))
        return out


# ---------------------------------------------------------------------------- parsing

_TOP_KEYS = ("study", "datasets", "models", "backends", "arms", "smoothing", "seeds", "repeats",
             "train", "overrides", "analysis", "pairing")
_REQUIRED = ("study", "datasets", "models", "backends", "arms", "seeds")


class _Ctx:
    """Carries the file name so every error can name it."""

    def __init__(self, source: str, base_dir: Path | None = None):
        self.source = source
        self.base_dir = base_dir

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: `{key}`: {message}")

    def choice(self, key: str, value: Any, allowed: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(key, f"expected one of {tuple(allowed)}, but got {value!r}")
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

    def integer(self, key: str, value: Any, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, but got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, but got {value!r}")
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
        bad_low = low is not None and (v <= low if open_low else v < low)
        bad_high = high is not None and (v >= high if open_high else v > high)
        if bad_low or bad_high:
            raise self.fail(key, f"expected a value {_describe_range(low, high, open_low, open_high)}, "
                                 f"but got {value!r}")
        return v


def _describe_range(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    return f"{'<' if open_high else '<='} {high:g}"


def _parse_dataset(ctx: _Ctx, value: Any, index: int) -> DatasetSpec:
    key = f"datasets[{index}]"
    if isinstance(value, str):
        value = {"name": value}
    data = ctx.mapping(key, value)
    allowed = [f.name for f in dataclasses.fields(DatasetSpec)]
    ctx.keys(key, data, allowed)
    if "name" not in data:
        raise ctx.fail(key, f"missing `name`; expected one of {DATASETS}")
    name = ctx.choice(f"{key}.name", data["name"], DATASETS)
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
        image_size = ctx.integer(f"{key}.image_size", image_size, minimum=8)
        if name != "imagenette":
            raise ctx.fail(f"{key}.image_size", f"only applies to imagenette, but dataset is {name!r}")
    return DatasetSpec(name=name, path=path, train_size=train_size, test_size=test_size,
                       val_fraction=val_fraction, preprocess=preprocess, image_size=image_size)


def _parse_train(ctx: _Ctx, key: str, data: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
    data = ctx.mapping(key, data)
    ctx.keys(key, data, [f.name for f in dataclasses.fields(TrainConfig)])
    values: dict[str, Any] = {}
    for name, raw in data.items():
        k = f"{key}.{name}"
        if name in ("epochs", "batch_size", "monitor_size"):
            values[name] = ctx.integer(k, raw, minimum=1 if name != "monitor_size" else 0)
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


def _parse_analysis(ctx: _Ctx, raw: Any) -> AnalysisConfig:
    data = ctx.mapping("analysis", raw)
    ctx.keys("analysis", data, [f.name for f in dataclasses.fields(AnalysisConfig)])
    margins = dict(DEFAULT_MARGINS)
    if "margins" in data:
        for metric, value in ctx.mapping("analysis.margins", data["margins"]).items():
            margins[str(metric)] = ctx.number(f"analysis.margins.{metric}", value, low=0.0, open_low=True)
    alpha = ctx.number("analysis.alpha", data.get("alpha", 0.05), low=0.0, high=0.5,
                       open_low=True, open_high=True)
    correction = ctx.choice("analysis.correction", data.get("correction", "holm"), CORRECTIONS)
    bins = ctx.integer("analysis.ece_bins", data.get("ece_bins", 15), minimum=1)
    binning = ctx.choice("analysis.ece_binning", data.get("ece_binning", "uniform"), BINNINGS)
    return AnalysisConfig(margins=margins, alpha=alpha, correction=correction, ece_bins=bins,
                          ece_binning=binning)


def parse_grid(data: Any, source: str = "<grid>", base_dir: str | Path | None = None) -> Grid:
    """Validate a loaded YAML document and return the frozen grid.

    ``base_dir`` anchors relative dataset paths (the grid file's folder when loaded from a file).
    """
    ctx = _Ctx(source, Path(base_dir) if base_dir is not None else None)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of grid keys at top level, but got "
                          f"{type(data).__name__}")
    ctx.keys("", data, _TOP_KEYS)
    for key in _REQUIRED:
        if key not in data:
            raise ctx.fail(key, "missing required key")

    study = data["study"]
    if not isinstance(study, str) or not study or any(c in study for c in "/\\") or study.startswith("."):
        raise ctx.fail("study", f"expected a folder-safe name (no slashes, not starting with '.'), but got {study!r}")

    datasets = tuple(_parse_dataset(ctx, v, i) for i, v in enumerate(ctx.as_list("datasets", data["datasets"])))
    models = tuple(ctx.choice(f"models[{i}]", v, MODELS)
                   for i, v in enumerate(ctx.as_list("models", data["models"])))
    backends = tuple(canonical_backend(ctx.choice(f"backends[{i}]", v, BACKENDS))
                     for i, v in enumerate(ctx.as_list("backends", data["backends"])))
    arms = tuple(ctx.choice(f"arms[{i}]", v, ARMS) for i, v in enumerate(ctx.as_list("arms", data["arms"])))
    for key, values in (("datasets", [d.name for d in datasets]), ("models", models),
                        ("backends", backends), ("arms", arms)):
        dup = sorted({v for v in values if list(values).count(v) > 1})
        if dup:
            raise ctx.fail(key, f"expected each entry once, but got duplicates {dup}")

    smoothing_arms = [a for a in arms if a != "none"]
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
    if isinstance(raw_seeds, int) and not isinstance(raw_seeds, bool):
        seeds = tuple(range(ctx.integer("seeds", raw_seeds, minimum=1)))
    else:
        seeds = tuple(ctx.integer(f"seeds[{i}]", v, minimum=0) for i, v in enumerate(ctx.as_list("seeds", raw_seeds)))
        if len(set(seeds)) != len(seeds):
            raise ctx.fail("seeds", f"expected distinct seeds, but got {list(seeds)}")
    repeats = ctx.integer("repeats", data.get("repeats", 1), minimum=1)

    train = _parse_train(ctx, "train", data.get("train", {}), TrainConfig())
    overrides: dict[str, TrainConfig] = {}
    override_text: dict[str, Mapping[str, Any]] = {}
    for arm, body in ctx.mapping("overrides", data.get("overrides", {})).items():
        if arm not in arms:
            raise ctx.fail("overrides", f"expected keys among the grid's arms {arms}, but got {arm!r}")
        body = ctx.mapping(f"overrides.{arm}", body)
        ctx.keys(f"overrides.{arm}", body, ["train"])
        overrides[arm] = _parse_train(ctx, f"overrides.{arm}.train", body.get("train", {}), train)
        override_text[arm] = dict(body.get("train", {}))
    analysis = _parse_analysis(ctx, data.get("analysis", {}))
    pairing = ctx.choice("pairing", data.get("pairing", "within-backend"), PAIRINGS)
    return Grid(study=study, datasets=datasets, models=models, backends=backends, arms=arms,
                smoothing=smoothing, seeds=seeds, repeats=repeats, train=train, overrides=overrides,
                override_text=override_text, analysis=analysis, source=source, pairing=pairing)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_grid(data, source=str(path), base_dir=path.parent)

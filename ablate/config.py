"""The grid file: parsed once into frozen, typed, validated dataclasses.

Every error names the file, the key, what is allowed and what was given, on one line.
Nothing here touches the disk except reading the grid file, and nothing imports a
framework: whether a framework or dataset is *present* is checked separately by
:func:`check_environment`, so a grid can be validated anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import math
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import ConfigError

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "polynomial", "one-cycle")
PREPROCESS: tuple[str, ...] = ("standardize", "mean_subtract", "none")
CORRECTIONS: tuple[str, ...] = ("holm", "bh")
BINNINGS: tuple[str, ...] = ("uniform", "quantile")
# within-backend: each framework draws its own initial weights (backends compared unpaired);
# cross-backend: one numpy draw per (model, seed) shared by every backend, so they pair.
PAIRINGS: tuple[str, ...] = ("within-backend", "cross-backend")
DEFAULT_MARGINS: Mapping[str, float] = {"accuracy": 0.005, "ece": 0.01, "nll": 0.02}
SOURCES = ("init", "order", "augment", "split")  # the sources of randomness a `seeds:` mapping names
SD_RATIO_KEY = "sd_ratio"  # analysis.margins.sd_ratio: the SD ratio's equivalence band [1/m, m], m > 1


def canonical_backend(name: str) -> str:
    """`keras` means Keras on its TensorFlow engine; every other name is already canonical."""
    return "keras/tensorflow" if name == "keras" else name


def framework_of(backend: str) -> str:
    """The framework a backend's models are written in: ``torch`` or ``keras``."""
    return "keras" if canonical_backend(backend).startswith("keras/") else backend


class UserFunction:
    """A function handed to the grid in Python (a notebook cell's ``def``) where a grid file names
    a ``module:function``.

    Its identity, and so its runs' ids, is ``token``: the qualified name plus a hash of its
    source, so the same cell after a kernel restart finds its runs and an edited body makes new
    ones. It travels to workers by value (cloudpickle), so functions of ``__main__`` reach
    processes that never ran the notebook.
    """

    # Not a dataclass: dataclasses.asdict, which turns a spec into a mapping, keeps it whole.
    __slots__ = ("fn", "token")

    def __init__(self, fn: Callable[..., Any], token: str):
        self.fn = fn
        self.token = token  # "module.qualname@sha256:<16 hex digits>"

    def __repr__(self) -> str:
        return f"UserFunction({self.token!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserFunction) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __str__(self) -> str:
        return self.token

    def __deepcopy__(self, memo: dict) -> UserFunction:
        return self  # dataclasses.asdict copies specs; a function is a value

    def __reduce__(self):
        import cloudpickle  # a runtime dependency; imported only when a function is sent

        return (_received, (self.token, cloudpickle.dumps(self.fn)))


_RECEIVED: dict[str, UserFunction] = {}


def _received(token: str, blob: bytes) -> UserFunction:
    """A sent UserFunction, unpickled once per process and token."""
    if token not in _RECEIVED:
        _RECEIVED[token] = UserFunction(pickle.loads(blob), token)
    return _RECEIVED[token]


def user_function(key: str, fn: Any) -> UserFunction:
    """``fn`` as a UserFunction, or a one-line ConfigError naming ``key`` and the function."""
    if isinstance(fn, UserFunction):
        return fn
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None) or "?"
    if name == "<lambda>" or name.endswith(".<lambda>"):
        raise ConfigError(f"`{key}`: got a lambda ({module}.{name}); expected a function written with `def`, "
                          "whose name and source identify its runs")
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError) as exc:
        raise ConfigError(f"`{key}`: {module}.{name} has no source that inspect.getsource can read "
                          f"({' '.join(str(exc).split())}); expected a function written with `def` in a "
                          "cell or a file, or a 'module:function' reference") from None
    captured = _captured(fn)
    if captured:  # a function made by another (in a loop, say): what it closed over counts too
        source += "\0" + captured
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return UserFunction(fn, f"{module}.{name}@sha256:{digest}")


def _plain(value: Any) -> str:
    """A stable text for a captured value: plain data by repr, a function by its source, else its type."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(_plain(v) for v in value)})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in value.items()) + "}"
    if inspect.isfunction(value):
        try:
            return inspect.getsource(value)
        except (OSError, TypeError):
            pass
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _captured(fn: Any) -> str:
    """What ``fn`` closed over (closure cells) and its default values, as text; "" for none."""
    parts = [_plain(v) for v in (getattr(fn, "__defaults__", None) or ())]
    parts += [f"{k}={_plain(v)}" for k, v in sorted((getattr(fn, "__kwdefaults__", None) or {}).items())]
    code = getattr(fn, "__code__", None)
    for name, cell in zip(code.co_freevars if code else (), getattr(fn, "__closure__", None) or ()):
        try:
            parts.append(f"{name}={_plain(cell.cell_contents)}")
        except ValueError:  # an empty cell
            parts.append(f"{name}=<empty>")
    return "\n".join(parts)


def portable(value: Any) -> Any:
    """``value`` (a spec's dict form) with every UserFunction replaced by its token, for JSON."""
    if isinstance(value, UserFunction):
        return value.token
    if isinstance(value, Mapping):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value


def user_functions(value: Any, where: str = "") -> list[tuple[str, UserFunction]]:
    """(where, function) for each UserFunction inside a spec's dict form."""
    if isinstance(value, UserFunction):
        return [(where, value)]
    if isinstance(value, Mapping):
        return [f for k, v in value.items() for f in user_functions(v, f"{where}.{k}" if where else str(k))]
    return []


@dataclass(frozen=True)
class ModelSpec:
    """A model name and, for a user model, a ``module:function`` factory (or a function) per framework.

    Built-in names leave both factories None: the models registry knows them.
    """

    name: str
    torch: str | UserFunction | None = None
    keras: str | UserFunction | None = None

    @property
    def is_user(self) -> bool:
        return self.torch is not None or self.keras is not None


@dataclass(frozen=True)
class ParamSpec:
    """A trick's numeric parameter: its default and allowed range (None: unbounded)."""

    default: float
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def allows(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "any finite number"
        return _describe_range(self.low, self.high, self.open_low, self.open_high)


TRICK_PARTS: tuple[str, ...] = ("targets", "batch", "torch_loss", "keras_loss")


@dataclass(frozen=True)
class TrickSpec:
    """A trick declared in the grid's `tricks:` mapping: a ``module:function`` per part it gives."""

    name: str
    targets: str | UserFunction | None = None
    batch: str | UserFunction | None = None
    torch_loss: str | UserFunction | None = None
    keras_loss: str | UserFunction | None = None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    description: str | None = None

    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in TRICK_PARTS if getattr(self, p) is not None)


@dataclass(frozen=True)
class TrickInfo:
    """What the grid parser needs to know of a registered trick (see :class:`Names`)."""

    uses_smoothing: bool = False  # takes ε from the grid's `smoothing:` axis
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    parts: tuple[str, ...] = ()  # the parts it gives, among TRICK_PARTS
    images_only: bool = False


@dataclass(frozen=True)
class ArmSpec:
    """A named arm: its trick (a registered or grid-declared one), its params and its own train settings."""

    name: str
    method: str
    train: Mapping[str, Any] = field(default_factory=dict)  # the keys this arm overrides, as written
    params: Mapping[str, float] = field(default_factory=dict)  # the trick params this arm sets, as written


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # a registered dataset, or any name when `loader` is given
    path: str | None = None  # a local copy; None uses the dataset's default location
    loader: str | UserFunction | None = None  # "module:function" (or a function) returning the four arrays
    train_size: int | None = None  # a stratified subset of the training data
    test_size: int | None = None  # a stratified subset of the test data
    val_fraction: float = 0.1  # held out from the training data, never from the test set
    preprocess: str = "standardize"  # fitted on the training split only
    image_size: int | None = None  # imagenette only: images are resized to this square size
    bootstrap: bool = False  # the `split` seed also resamples the training set with replacement

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
    timeout: float | None = None  # seconds a run may take before its worker is replaced; None: no limit


@dataclass(frozen=True)
class SequentialSpec:
    """A group-sequential design: analyse after ``looks`` seeds (fixed in advance), with alpha spending."""

    looks: tuple[int, ...]  # increasing seed counts >= 2; the last is the most seeds a cell may use
    spending: str  # a spending function of ablate.analysis.sequential (names via `Names.spendings`)


@dataclass(frozen=True)
class AnalysisConfig:
    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    alpha: float = 0.05
    correction: str = "holm"
    ece_bins: int = 15
    ece_binning: str = "uniform"
    compare: tuple[tuple[str, str], ...] = ()  # arm pairs to compare; () means every pair of arms
    sequential: SequentialSpec | None = None  # None: every seed runs (the fixed design)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: everything a worker needs to train and store one run."""

    backend: str
    dataset: DatasetSpec
    model: str
    arm: str  # the arm's name
    smoothing: float  # 0.0 for an arm whose method does not smooth
    seed: int
    repeat: int
    train: TrainConfig
    method: str = ""  # the arm's trick (a registered one, or `trick`'s name); "" means the arm's name
    model_factory: str | UserFunction | None = None  # "module:function" or a function: a user model
    pairing: str = "within-backend"
    origin: str | None = None  # the grid file's folder: where user modules are looked up first
    params: Mapping[str, float] = field(default_factory=dict)  # the trick's params, defaults filled in
    trick: TrickSpec | None = None  # a grid-declared trick's parts; None for a registered trick
    # One seed per source of randomness (SOURCES) in a factorial `seeds:` mapping; then `seed` is the
    # cell's index in the factorial. Empty: `seed` drives init, order and augment, and split is 0.
    sources: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.method:
            object.__setattr__(self, "method", self.arm)

    def source_seed(self, source: str) -> int:
        """The seed of one source of randomness: ``init``, ``order``, ``augment`` or ``split``."""
        if source not in SOURCES:
            raise ValueError(f"unknown source of randomness {source!r}; expected one of {SOURCES}")
        if self.sources:
            return int(self.sources[source])
        return 0 if source == "split" else self.seed

    def to_dict(self) -> dict[str, Any]:
        """The spec as a mapping; functions stay functions (a worker's task pickles them)."""
        return dataclasses.asdict(self)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-able data (a record's ``config``): each function as its token."""
        return portable(self.to_dict())

    def identity(self) -> dict[str, Any]:
        """What makes a run this run: everything but where the data and the grid file live.

        A function counts as its token (name and source hash), so a spec read back from its
        record has the run id it was stored under.
        """
        data = self.to_json()
        data.pop("origin")
        data["dataset"].pop("path")
        if data["pairing"] == "within-backend":
            data.pop("pairing")  # ids of grids from before the option stay the same
        if data["model_factory"] is None:
            data.pop("model_factory")
        if data["method"] == data["arm"]:
            data.pop("method")
        if data["dataset"]["loader"] is None:
            data["dataset"].pop("loader")
        data["train"].pop("timeout")  # a time limit does not change what a run computes
        # Fields added with tricks appear only when used, so older grids keep their ids.
        if not data["params"]:
            data.pop("params")
        if not data["sources"]:
            data.pop("sources")
        if not data["dataset"]["bootstrap"]:
            data["dataset"].pop("bootstrap")
        if data["trick"] is None:
            data.pop("trick")
        else:  # what it computes: its parts; the params' values are in `params`, their ranges are not
            data["trick"] = {k: v for k, v in data["trick"].items() if k in TRICK_PARTS and v is not None}
        return data

    @property
    def run_id(self) -> str:
        """A stable hash of the resolved configuration, independent of where files live."""
        import hashlib
        import json

        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def cell(self) -> tuple[str, str, str, str, float]:
        return (self.backend, self.dataset.name, self.model, self.arm, self.smoothing)

    def describe(self) -> str:
        eps = f" eps={self.smoothing:g}" if self.smoothing else ""
        rep = f" repeat={self.repeat}" if self.repeat else ""
        params = "".join(f" {k}={v:g}" for k, v in sorted(self.params.items()))
        seed = (f"cell={self.seed} (" + " ".join(f"{k}={self.sources[k]}" for k in SOURCES) + ")"
                if self.sources else f"seed={self.seed}")
        return f"{self.backend} {self.dataset.name} {self.model} {self.arm}{eps}{params} {seed}{rep}"

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> RunSpec:
        train = dict(data["train"])
        if train.get("augment") is not None:
            train["augment"] = AugmentSpec(**train["augment"])
        trick = data.get("trick")
        if trick is not None:
            trick = dict(trick)
            trick["params"] = {k: ParamSpec(**v) for k, v in (trick.get("params") or {}).items()}
            trick = TrickSpec(**trick)
        return RunSpec(
            backend=data["backend"], dataset=DatasetSpec(**data["dataset"]), model=data["model"],
            arm=data["arm"], smoothing=float(data["smoothing"]), seed=int(data["seed"]),
            repeat=int(data.get("repeat", 0)), train=TrainConfig(**train), method=data.get("method") or "",
            model_factory=data.get("model_factory"), pairing=data.get("pairing", "within-backend"),
            origin=data.get("origin"), params={k: float(v) for k, v in (data.get("params") or {}).items()},
            trick=trick, sources={k: int(v) for k, v in (data.get("sources") or {}).items()})


@dataclass(frozen=True)
class Names:
    """What the registries know, handed to the parser so that config imports none of them.

    Built by :func:`ablate.catalog.names`; tests may build a smaller one.
    """

    tricks: Mapping[str, TrickInfo]  # registered trick -> what the parser checks of it
    models: Sequence[str]
    datasets: Sequence[str]
    backends: Sequence[str]  # accepted spellings, `keras` included
    resizable_datasets: Sequence[str] = ()  # the datasets that take `image_size`
    spendings: Sequence[str] = ()  # alpha-spending functions for `analysis.sequential`; the first is the default


@dataclass(frozen=True)
class Grid:
    study: str
    datasets: tuple[DatasetSpec, ...]
    models: tuple[ModelSpec, ...]
    backends: tuple[str, ...]
    arms: tuple[ArmSpec, ...]
    smoothing: tuple[float, ...]
    seeds: tuple[int, ...]
    repeats: int
    train: TrainConfig
    arm_train: Mapping[str, TrainConfig]  # arm -> that arm's resolved train config
    analysis: AnalysisConfig
    smoothing_methods: frozenset[str] = frozenset()  # the tricks whose arms run once per ε
    pairing: str = "within-backend"
    source: str = "<grid>"
    base_dir: str | None = None  # the grid file's folder, absolute
    tricks: Mapping[str, TrickSpec] = field(default_factory=dict)  # the grid's own `tricks:`
    arm_params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # arm -> its trick's params
    # A `seeds:` mapping: source -> its seeds, every source of SOURCES present (an unnamed one is (0,),
    # `augment` unnamed follows `order` and is absent). Empty for `seeds: N` or a list.
    seed_sources: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def seed_cells(self) -> list[dict[str, int]]:
        """The factorial's cells in order (cell i is `seed` i): source -> seed; [] without a mapping."""
        if not self.seed_sources:
            return []
        named = [k for k in SOURCES if k in self.seed_sources]
        cells = []
        for values in itertools.product(*(self.seed_sources[k] for k in named)):
            cell = dict(zip(named, values))
            cell.setdefault("augment", cell["order"])
            cells.append({k: int(cell[k]) for k in SOURCES})
        return cells

    @property
    def randomised_sources(self) -> tuple[str, ...]:
        """The sources whose seed varies across the grid's cells (a plain design: init, order, augment, jointly)."""
        if not self.seed_sources:
            return ("init", "order", "augment") if len(self.seeds) > 1 else ()
        cells = self.seed_cells()
        return tuple(k for k in SOURCES if len({c[k] for c in cells}) > 1)

    def functions(self) -> list[tuple[str, UserFunction]]:
        """(grid key, function) for each function handed to the grid in Python."""
        out = [(f"models[{i}].{fw}", getattr(m, fw)) for i, m in enumerate(self.models) for fw in ("torch", "keras")]
        out += [(f"datasets[{i}].loader", d.loader) for i, d in enumerate(self.datasets)]
        out += [(f"tricks.{t.name}.{p}", getattr(t, p)) for t in self.tricks.values() for p in TRICK_PARTS]
        return [(key, fn) for key, fn in out if isinstance(fn, UserFunction)]

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def override_text(self) -> Mapping[str, Mapping[str, Any]]:
        """arm -> the train keys and trick params it sets, for arms that set any."""
        return {a.name: {**dict(a.train), **{f"params.{k}": v for k, v in a.params.items()}}
                for a in self.arms if a.train or a.params}

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The arm pairs to compare: `analysis.compare`, else every pair in grid order."""
        if self.analysis.compare:
            return self.analysis.compare
        names = self.arm_names
        return tuple((a, b) for i, a in enumerate(names) for b in names[i + 1:])

    def runs(self) -> list[RunSpec]:
        """Expand the grid. Seeds are outermost, so a partly finished sweep has whole pairs."""
        out: list[RunSpec] = []
        cells = self.seed_cells()
        for repeat in range(self.repeats):
            for seed in self.seeds:
                sources = cells[seed] if cells else {}
                for dataset in self.datasets:
                    for model in self.models:
                        for backend in self.backends:
                            factory = getattr(model, framework_of(backend)) if model.is_user else None
                            for arm in self.arms:
                                smooths = arm.method in self.smoothing_methods
                                for eps in (self.smoothing if smooths else (0.0,)):
                                    out.append(RunSpec(
                                        backend=backend, dataset=dataset, model=model.name, arm=arm.name,
                                        smoothing=float(eps), seed=seed, repeat=repeat,
                                        train=self.arm_train[arm.name], method=arm.method,
                                        model_factory=factory, pairing=self.pairing, origin=self.base_dir,
                                        params=dict(self.arm_params.get(arm.name, {})),
                                        trick=self.tricks.get(arm.method), sources=dict(sources)))
        return out


# ---------------------------------------------------------------------------- parsing

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
            raise self.fail(key, f"expected a value {_describe_range(low, high, open_low, open_high)}, "
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


def _describe_range(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    return f"{'<' if open_high else '<='} {high:g}"


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

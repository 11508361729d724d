"""The grid's spec: frozen, typed dataclasses, the runs they expand to, and each run's id.

:mod:`ablate.grid_parser` reads a grid file into these (every error naming the file and the
key). Nothing here touches the disk or imports a framework: whether a framework or dataset is
*present* is checked separately by :func:`check_environment`, so a grid can be validated anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
        return describe_range(self.low, self.high, self.open_low, self.open_high)


def describe_range(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    """A range in words: ``in [0, 1)``, ``> 0``, ``<= 5``."""
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    return f"{'<' if open_high else '<='} {high:g}"


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


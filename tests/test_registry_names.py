"""Each built-in name is spelled by its registry only: no second table of tricks, models or datasets.

A string constant in the package equal to a built-in trick, model or dataset name is a fact kept
outside its registry entry (a description, a colour, a minimum size, a layout, a reference arm),
which a plug-in would then silently lack. The registries themselves spell their names; the
places below are known and counted, and a new one fails this test. (Backend and executor names
are left out: "torch" and "keras" are also the framework names every backend module uses, and
"none" / "loss" / "both" are ordinary words.)
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from ablate import tricks
from ablate.backends.models import MODELS
from ablate.data.sources import BUILTIN_DATASETS

PACKAGE = Path(__file__).resolve().parents[1] / "ablate"
# Where a built-in name may be spelled, and how often: the registries, and what is not yet moved.
KNOWN = {
    "tricks.py": 6,  # the tricks registry: its built-in entries
    "backends/models.py": 4,  # the models registry: its built-in entries
    "data/sources.py": 7,  # the datasets registry: its built-in entries, two naming their keras.datasets module
    "backends/keras_models.py": 2,  # Keras' own model names (keras.Model(name=...))
    "analysis/compare.py": 1,  # power_table's default pair, explicit vs loss (the notebook's question)
    "execution/probe.py": 3,  # the probe's pair kinds, "explicit vs loss" and "none vs explicit"
}
COMMON_WORDS = {"none", "loss", "both"}


def _builtin_names() -> set[str]:
    builtin_tricks = {n for n, t in tricks.TRICKS.items() if t.colour}  # the built-ins carry a colour
    models = {n for n, e in MODELS.items() if e.factories and all(
        str(ref).startswith("ablate.") for ref in e.factories.values())}
    return (builtin_tricks | models | set(BUILTIN_DATASETS)) - COMMON_WORDS


def _spellings(names: set[str]) -> Counter:
    found: Counter = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found[rel] += 1
    return found


def test_the_scan_sees_the_builtin_names():
    names = _builtin_names()
    assert {"explicit", "mixup", "cutmix", "focal", "mlp", "small-cnn", "minigooglenet", "fastai-cnn",
            "digits", "fashion-mnist", "cifar10", "imagenette"} <= names
    assert _spellings(names)["tricks.py"] >= 4  # it would find a spelling where there is one


def test_no_new_module_spells_a_builtin_name_outside_its_registry():
    found = _spellings(_builtin_names())
    over = {rel: n for rel, n in found.items() if n > KNOWN.get(rel, 0)}
    assert not over, (f"built-in names spelled outside their registries: {over}; put the fact on the "
                      "registry entry (tricks.py, backends/models.py, data/sources.py) and ask it")


def test_registry_entries_hold_the_facts_that_were_kept_elsewhere():
    from ablate.analysis.figures._style import arm_order, arm_palette
    from ablate.backends import weights

    assert tricks.reference_names() == ("none",)
    assert set(tricks.smoothing_names()) == {"explicit", "loss", "both"}
    palette = arm_palette(["mine", "both", "none"])
    assert arm_order(["mine", "both", "none"]) == ["none", "both", "mine"]
    assert palette["both"] == tricks.get("both").colour and palette["mine"] not in tricks.colours().values()
    assert weights.layout_models() == ("mlp", "small-cnn", "minigooglenet", "fastai-cnn")
    assert all(MODELS.get(m).layout for m in weights.layout_models())

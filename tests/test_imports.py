"""Imports point one way, and importing the core pulls in no framework and no plotting library.

The layering (README, "Architecture"): ``config`` and ``errors`` are leaves, and
``grid_parser`` imports only them; ``data``, ``analysis`` and ``backends`` never import
``execution``; ``analysis`` never imports ``backends`` or ``data``; ``execution`` uses only the
metrics of ``analysis.calibration``; ``study`` sits under ``launch``, ``api`` and ``cli``, and
``api`` only re-exports; only ``analysis.figures`` imports matplotlib or seaborn, and only the
framework modules of ``backends`` import a framework. The rules are checked on the source
(AST), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "tensorflow", "keras", "jax", "ray", "matplotlib", "seaborn")
PACKAGE = Path(__file__).resolve().parents[1] / "ablate"

# module prefix -> package prefixes it must never import
FORBIDDEN = {
    "ablate.config": ("ablate.",),
    "ablate.grid_parser": ("ablate.",),
    "ablate.errors": ("ablate.",),
    "ablate.registry": ("ablate.",),
    "ablate.statuses": ("ablate.",),
    "ablate.data": ("ablate.execution", "ablate.analysis", "ablate.backends", "ablate.launch", "ablate.api",
                    "ablate.cli"),
    "ablate.analysis": ("ablate.execution", "ablate.backends", "ablate.data", "ablate.launch", "ablate.api",
                        "ablate.cli"),
    "ablate.backends": ("ablate.execution", "ablate.analysis", "ablate.data", "ablate.launch", "ablate.api",
                        "ablate.cli"),
    # launch, api and cli sit on top of the study, not the reverse
    "ablate.study": ("ablate.launch", "ablate.api", "ablate.cli"),
    # the bound settings: below the study and the launch, which both read them; no analysis
    "ablate.settings": ("ablate.study", "ablate.launch", "ablate.api", "ablate.cli", "ablate.analysis"),
    # launch runs sweeps and reaches the analysis only through the study; api re-exports launch and study
    "ablate.launch": ("ablate.api", "ablate.cli", "ablate.analysis"),
    "ablate.api": ("ablate.cli",),
    # The CLI's option parsing: above the analysis (which takes parsed values and, by the prefix
    # "ablate.cli" above, never imports it), below the commands.
    "ablate.cli_options": ("ablate.cli", "ablate.launch", "ablate.api", "ablate.study", "ablate.execution",
                           "ablate.backends", "ablate.data"),
    "ablate.execution": ("ablate.analysis.report", "ablate.analysis.compare", "ablate.analysis.figures",
                         "ablate.analysis.stats", "ablate.launch", "ablate.api", "ablate.cli", "ablate.study"),
}
ALLOWED_FROM_LEAF = {"ablate.config": ("ablate.errors",), "ablate.grid_parser": ("ablate.errors", "ablate.config"),
                     "ablate.registry": ("ablate.errors",),
                     "ablate.errors": (), "ablate.statuses": ()}
# Modules that may import a framework or plotting library, at any depth.
HEAVY_OK = ("ablate.backends.torch", "ablate.backends.keras", "ablate.backends.torch_losses",
            "ablate.backends.keras_losses", "ablate.backends.torch_models",
            "ablate.backends.keras_models", "ablate.backends.torch_pack", "ablate.backends.torch_device", "ablate.analysis.figures",
            "ablate.execution.executors.ray", "ablate.export", "ablate.data.sources")


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def _imports(module: str) -> set[str]:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", _modules())
def test_imports_point_one_way(module):
    imported = {m for m in _imports(module) if m == "ablate" or m.startswith("ablate.")}
    for prefix, banned in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            allowed = ALLOWED_FROM_LEAF.get(prefix, ())
            bad = sorted(m for m in imported if any(m.startswith(b) for b in banned)
                         and not any(m == a or m.startswith(a + ".") for a in allowed))
            assert not bad, f"{module} must not import {bad}"


@pytest.mark.parametrize("module", _modules())
def test_only_framework_modules_import_heavy_libraries(module):
    if any(module == ok or module.startswith(ok + ".") for ok in HEAVY_OK):
        return
    heavy = sorted(m for m in _imports(module) if m.split(".")[0] in HEAVY)
    assert not heavy, f"{module} imports {heavy}; only {HEAVY_OK} may"


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:' + ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.rsplit('LOADED:', 1)[1].split())


def test_import_ablate_is_light():
    assert _loaded_after("import ablate") == set()


def test_core_modules_are_light():
    light = [m for m in _modules() if not any(m == ok or m.startswith(ok + ".") for ok in HEAVY_OK)
             and m != "ablate.__main__"]
    assert _loaded_after("\n".join(f"import {m}" for m in light)) == set()


def test_cli_help_is_light():
    code = "from ablate.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == set()


def test_api_only_re_exports():
    """api.py is a docstring, imports and ``__all__``: the code lives in launch and study."""
    tree = ast.parse((PACKAGE / "api.py").read_text())
    for i, node in enumerate(tree.body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
            and isinstance(node.value.value, str)
        imports = isinstance(node, (ast.Import, ast.ImportFrom))
        names = isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
        assert docstring or imports or names, f"api.py line {node.lineno}: only imports and __all__ belong here"
    import ablate.api

    assert all(hasattr(ablate.api, name) for name in ablate.api.__all__)


# Taken before the code moved out of api.py; a change here changes the Python API.
API_SIGNATURES = {
    "load_grid": "(grid: 'str | Path | Mapping[str, Any] | Grid') -> 'Grid'",
    "plan": "(grid, *, only: 'str | None' = None, seeds: 'str | None' = None) -> 'list'",
    "prepare": "(grid, *, results: 'str | Path' = 'results', workers: 'int | None' = None, "
               "gpus: 'str | Sequence[str] | None' = None, per_gpu: 'int' = 1, retries: 'int' = 0, "
               "only: 'str | None' = None, seeds: 'str | None' = None, executor: 'str' = 'local', "
               "address: 'str | None' = None, pack: 'int | str | None' = None, fetch: 'bool' = True) -> 'Prepared'",
    "check": "(grid, **options) -> 'Prepared'",
    "run": "(grid, *, results: 'str | Path' = 'results', workers: 'int | None' = None, "
           "gpus: 'str | Sequence[str] | None' = None, per_gpu: 'int' = 1, retries: 'int' = 0, "
           "only: 'str | None' = None, seeds: 'str | None' = None, executor: 'str' = 'local', "
           "address: 'str | None' = None, pack: 'int | str | None' = None, log: 'Any' = 'stderr')",
    "sweep": "(grid, *, results: 'str | Path' = 'results', workers: 'int | None' = None, "
             "gpus: 'str | Sequence[str] | None' = None, per_gpu: 'int' = 1, retries: 'int' = 0, "
             "only: 'str | None' = None, seeds: 'str | None' = None, executor: 'str' = 'local', "
             "address: 'str | None' = None, pack: 'int | str | None' = None, log: 'Any' = 'stderr')",
    "load_study": "(path: 'str | Path', *, results: 'str | Path | None' = None)",
    "compare": "(table, *, margins: 'Mapping[str, float] | None' = None, alpha: 'float' = 0.05, "
               "correction: 'str' = 'holm', pairs: 'Sequence[tuple[str, str]] | None' = None, seed: 'int' = 0)",
    "Prepared": "(grid: 'Grid', runs: 'list', store: 'Any', run: 'str', options: 'dict[str, Any]', "
                "where: 'str', notes: 'tuple[str, ...]' = ()) -> None",
}


@pytest.mark.parametrize("name", sorted(API_SIGNATURES))
def test_api_signatures_are_unchanged(name):
    import inspect

    import ablate
    import ablate.api

    assert sorted(ablate.api.__all__) == sorted(API_SIGNATURES)
    assert str(inspect.signature(getattr(ablate.api, name))) == API_SIGNATURES[name]
    if name in ablate.__all__:
        assert getattr(ablate, name) is getattr(ablate.api, name)

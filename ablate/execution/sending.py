"""How a function defined in a notebook reaches the workers: cloudpickle, by value.

A spec's functions are :class:`ablate.config.UserFunction` values, which pickle themselves with
cloudpickle, so the pipes to local workers and Ray's object store carry them unchanged. This
module only answers, before any run, whether a function can travel, and if not, why.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any


def _referenced(fn: Callable[..., Any]) -> Iterator[tuple[str, Any]]:
    """(name, object) for what ``fn`` carries along: its defaults, closure cells and the globals its
    code (nested functions' code too) names."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    for i, value in enumerate(fn.__defaults__ or ()):
        yield f"default #{i + 1}", value
    for name, value in (fn.__kwdefaults__ or {}).items():
        yield name, value
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            yield name, cell.cell_contents
        except ValueError:  # an empty cell
            continue
    names: list[str] = []
    todo = [code]
    while todo:
        c = todo.pop()
        names += c.co_names
        todo += [k for k in c.co_consts if isinstance(k, types.CodeType)]
    scope = getattr(fn, "__globals__", {})
    for name in dict.fromkeys(names):
        if name in scope:
            yield name, scope[name]


def unsendable(fn: Callable[..., Any]) -> str | None:
    """None when cloudpickle can pickle ``fn``, else a short reason naming the object it could not pickle."""
    import cloudpickle

    try:
        cloudpickle.dumps(fn)
        return None
    except Exception as exc:  # noqa: BLE001 - any pickling failure, named below
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    for name, value in _referenced(fn):
        try:
            cloudpickle.dumps(value)
        except Exception as exc:  # noqa: BLE001
            return (f"it uses {name!r} (a {type(value).__name__}), which cloudpickle cannot pickle "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())})")
    return f"cloudpickle cannot pickle it ({reason})"

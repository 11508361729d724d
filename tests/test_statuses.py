"""Run statuses are one vocabulary (ablate.statuses), not strings spelled across the package."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from ablate import statuses
from ablate.execution import store

PACKAGE = Path(__file__).resolve().parents[1] / "ablate"


def test_one_literal_and_its_constants():
    assert statuses.STATUSES == get_args(statuses.Status) == ("completed", "failed", "diverged")
    assert {statuses.COMPLETED, statuses.FAILED, statuses.DIVERGED} == set(statuses.STATUSES)
    assert set(statuses.FINAL_STATUSES) | set(statuses.UNSUCCESSFUL) == set(statuses.STATUSES)
    assert store.STATUSES is statuses.STATUSES and store.FINAL_STATUSES is statuses.FINAL_STATUSES


def test_no_module_spells_a_status_outside_the_vocabulary():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "statuses.py":
            continue
        hits = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and node.value in statuses.STATUSES]
        if hits:
            found[rel] = len(hits)
    assert not found, f"spell statuses with ablate.statuses (COMPLETED, FAILED, DIVERGED): {found}"

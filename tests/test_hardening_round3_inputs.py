"""Issue 20, round 3 of hardening: inputs (items 1, 2, 4, 5, 12, 13, 14, 16, 17).

Each test reproduces the case the issue describes and fails on the old behaviour.
"""

from __future__ import annotations

import shlex

import pytest


# ----------------------------------------------------------------- item 16: the next: line
@pytest.mark.parametrize("study", ["-rf", "--help", "-", "two words", "plain", "a'b"])
@pytest.mark.parametrize("results", ["results", "-out", "my results"])
def test_next_line_parses_back_to_the_same_study(study, results):
    from ablate.cli import _parser, next_hint

    line = next_hint(results, study)
    assert line.startswith("next: python -m ablate report ")
    argv = shlex.split(line[len("next: python -m ablate "):])
    args = _parser().parse_args(argv)
    assert (args.command, args.study, args.results) == ("report", study, results)

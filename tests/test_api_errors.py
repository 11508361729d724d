"""The Python API's errors name its arguments; the command line names the same errors as flags."""

from __future__ import annotations

import pytest

import ablate
from ablate.errors import ArgumentError, ConfigError, as_flag
from tests.conftest import TINY_GRID


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers: expected an integer >= 1, but got 0"),
    ({"per_gpu": 0}, "per_gpu: expected an integer >= 1, but got 0"),
    ({"retries": -1}, "retries: expected an integer >= 0, but got -1"),
    ({"executor": "slurm"}, "executor: unknown executor 'slurm'"),
    ({"address": "auto"}, "address: only applies with executor ray"),
    ({"gpus": "7"}, "gpus: expected ids among"),
    ({"seeds": "3-1"}, "seeds: expected a range"),
    ({"only": "colour=red"}, "only: expected keys among"),
    ({"pack": "many"}, "pack: expected a positive integer or 'auto'"),
])
def test_api_run_errors_name_the_argument(write_grid, tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as info:
        ablate.run(write_grid(TINY_GRID), results=tmp_path / "r", log=None, **kwargs)
    assert str(info.value).startswith(message), str(info.value)
    assert "--" not in str(info.value)
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_the_command_line_spells_the_same_error_as_flags():
    err = ArgumentError("per_gpu", "expected each id once (use {per_gpu} with {executor} local)",
                        mentions=("per_gpu", "executor"))
    assert str(err) == "per_gpu: expected each id once (use per_gpu with executor local)"
    assert err.spelled(as_flag) == "--per-gpu: expected each id once (use --per-gpu with --executor local)"
    assert isinstance(err, ConfigError)


def test_the_report_names_its_sequential_argument_not_the_flag(tmp_path):
    import pandas as pd

    from ablate.analysis.report import report_from_frame
    from ablate.errors import InputError

    runs = pd.DataFrame({"arm": ["a", "b"] * 5, "seed": [s for s in range(5) for _ in "ab"],
                         "accuracy": [0.9, 0.91] * 5})
    with pytest.raises(InputError) as info:
        report_from_frame(runs, out=tmp_path / "out", title="t", figures=False, sequential=[5, 3])
    assert str(info.value).startswith("`sequential` must be increasing integers >= 2"), str(info.value)
    assert "--" not in str(info.value)

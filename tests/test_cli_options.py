"""The CLI parses its option values (ablate.cli_options); the analysis takes parsed values only."""

from __future__ import annotations

import pytest

from ablate import cli_options
from ablate.errors import ConfigError, InputError


def test_option_text_becomes_the_values_the_analysis_takes():
    assert cli_options.parse_margins(["accuracy=0.005", " ece =0.01", "sd_ratio=1.5"]) == {
        "accuracy": 0.005, "ece": 0.01, "sd_ratio": 1.5}
    assert cli_options.parse_pairs(["none:loss", " a : b "]) == [("none", "loss"), ("a", "b")]
    assert cli_options.parse_pairs([]) is None  # every pair
    assert cli_options.parse_looks("5, 10,20") == (5, 10, 20)
    assert cli_options.check_spending_option(None) == "obrien-fleming"
    assert cli_options.check_spending_option("pocock") == "pocock"


@pytest.mark.parametrize("call, error, message", [
    (lambda: cli_options.parse_margins(["accuracy=-1"]), ConfigError, "--margin: expected METRIC=VALUE"),
    (lambda: cli_options.parse_margins(["sd_ratio=1"]), ConfigError, "--margin: sd_ratio is the SD ratio's band"),
    (lambda: cli_options.parse_pairs(["a:b:c"]), ConfigError, "--compare: expected ARM_A:ARM_B"),
    (lambda: cli_options.parse_looks("5,5"), InputError, "--sequential: expected increasing integers >= 2"),
    (lambda: cli_options.check_spending_option("haybittle"), InputError, "--spending: expected one of"),
])
def test_a_bad_option_names_its_flag(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_python_api_names_the_argument_not_the_flag(tmp_path):
    from ablate.analysis import report

    path = tmp_path / "runs.csv"
    path.write_text("arm,seed,accuracy\n" + "".join(f"{a},{s},0.{5 + s}\n" for a in "ab" for s in range(4)))
    with pytest.raises(InputError, match=r"^`spending` must be one of obrien-fleming, pocock, but got 'bad'$"):
        report.report_from_table(path, out=tmp_path / "out", sequential=[2, 4], spending="bad", figures=False)
    assert not (tmp_path / "out").exists()

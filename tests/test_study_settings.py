"""StudySettings: the study's bound analysis settings, typed, with AnalysisConfig's defaults."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ablate.config import DEFAULT_MARGINS, AnalysisConfig, SequentialSpec
from ablate.execution.store import RunStore
from ablate.settings import STUDY_FILE, StudySettings


def test_defaults_come_from_analysis_config():
    settings = StudySettings.from_mapping({})
    base = AnalysisConfig()
    assert (settings.alpha, settings.correction, settings.ece_bins, settings.ece_binning) == \
        (base.alpha, base.correction, base.ece_bins, base.ece_binning)
    assert dict(settings.margins) == DEFAULT_MARGINS and settings.compare == () and settings.pairs() is None
    assert settings.sequential is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.alpha = 0.1


def test_a_studys_recorded_settings_are_read_typed(tmp_path):
    store = RunStore(tmp_path, "s")
    store.study_dir.mkdir(parents=True)
    (store.study_dir / STUDY_FILE).write_text(json.dumps({"analysis": {
        "margins": {"accuracy": 0.01, "extra": 0.2}, "alpha": 0.1, "correction": "bh", "ece_bins": "10",
        "ece_binning": "quantile", "compare": [["a", "b"]], "sequential": {"looks": [5, 10], "spending": "pocock"}}}))
    settings = StudySettings.read(store)
    assert settings.margins == {**DEFAULT_MARGINS, "accuracy": 0.01, "extra": 0.2}
    assert (settings.alpha, settings.correction, settings.ece_bins, settings.ece_binning) == (0.1, "bh", 10,
                                                                                                "quantile")
    assert settings.pairs() == [("a", "b")]
    assert settings.sequential == SequentialSpec((5, 10), "pocock")


def test_a_study_without_study_json_gets_the_defaults(tmp_path):
    assert StudySettings.read(RunStore(tmp_path, "none")) == StudySettings.from_mapping({})

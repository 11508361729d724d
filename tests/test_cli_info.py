"""``python -m ablate datasets``, ``models`` and ``--help``, run as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.data.catalogue import DATASET_NAMES, FASHION_MNIST_DEBIAN_DIR
from tests.test_notebooks import write_cifar10_py

REPO = Path(__file__).resolve().parent.parent
MINIGOOGLENET_KERAS_COUNT = "1,652,826"  # the original Keras MiniGoogLeNet(32, 32, 3, 10)'s trainable parameters


def ablate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}, timeout=300)


def table(stdout: str, columns: int) -> list[list[str]]:
    """Rows of a table printed by _print_table (cells apart by two or more spaces), header included."""
    lines = [line for line in stdout.splitlines() if line.strip() and not line.startswith("note: ")]
    return [re.split(r"\s{2,}", line.strip(), maxsplit=columns - 1) for line in lines]


def one_line_error(proc: subprocess.CompletedProcess, starts: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ablate: error: {starts}"), proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------- datasets


@pytest.fixture
def empty_caches(tmp_path) -> dict[str, str]:
    """Point the Keras and fastai caches at empty folders, so only what a test puts there is found."""
    return {"KERAS_HOME": str(tmp_path / "keras"), "FASTAI_HOME": str(tmp_path / "fastai")}


def test_datasets_lists_every_dataset_with_availability(empty_caches):
    proc = ablate("datasets", env=empty_caches)
    assert proc.returncode == 0, proc.stderr
    header, *rows = table(proc.stdout, 7)
    assert header[:6] == ["dataset", "available", "input", "classes", "train", "test"]
    by_name = {row[0]: row for row in rows}
    assert sorted(by_name) == sorted(DATASET_NAMES)
    assert all(row[1] in ("yes", "no") for row in rows)
    assert by_name["digits"][1:6] == ["yes", "8x8x1", "10", "1348", "449"]
    fashion = by_name["fashion-mnist"]
    if Path(FASHION_MNIST_DEBIAN_DIR).is_dir():
        assert fashion[1:6] == ["yes", "28x28x1", "10", "60000", "10000"]
        assert FASHION_MNIST_DEBIAN_DIR in fashion[6]
    else:
        assert fashion[1] == "no" and "dataset-fashion-mnist" in fashion[6]
    # Nothing in the empty caches: shape and classes from the official sizes, and how to get it.
    for name, shape, hint in (("cifar10", "32x32x3", "cifar-10-python.tar.gz"),
                              ("imagenette", "128x128x3", "imagenette2-160"),
                              ("mnist", "28x28x1", "path:")):
        assert by_name[name][1:6] == ["no", shape, "10", "-", "-"], by_name[name]
        assert hint in by_name[name][6]


def test_datasets_finds_cifar10_in_the_keras_cache(tmp_path, empty_caches):
    write_cifar10_py(Path(empty_caches["KERAS_HOME"]) / "datasets", per_class=1, test_per_class=2)
    proc = ablate("datasets", env=empty_caches)
    assert proc.returncode == 0, proc.stderr
    by_name = {row[0]: row for row in table(proc.stdout, 7)[1:]}
    assert by_name["cifar10"][1:6] == ["yes", "32x32x3", "10", "50", "20"]
    assert "cifar-10-batches-py" in by_name["cifar10"][6] and "python pickles" in by_name["cifar10"][6]


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def models_32x32x3() -> subprocess.CompletedProcess:
    return ablate("models", "--input", "32x32x3", "--classes", "10")


def test_models_minigooglenet_matches_the_original_keras_count(models_32x32x3):
    proc = models_32x32x3
    assert proc.returncode == 0, proc.stderr
    header, *rows = table(proc.stdout, 5)
    assert header == ["model", "backend", "input", "classes", "trainable parameters"]
    counts = {(model, backend): count for model, backend, shape, classes, count in rows}
    assert all(r[2:4] == ["32x32x3", "10"] for r in rows)
    assert counts[("minigooglenet", "torch")] == MINIGOOGLENET_KERAS_COUNT
    assert counts[("minigooglenet", "keras/tensorflow")] == MINIGOOGLENET_KERAS_COUNT
    # One line per (model, backend), and each architecture has one count in both frameworks.
    models = {m for m, _ in counts}
    assert models == {"mlp", "small-cnn", "minigooglenet", "fastai-cnn"}
    assert len(rows) == 2 * len(models)
    for model in models:
        assert counts[(model, "torch")] == counts[(model, "keras/tensorflow")], model


def test_models_too_small_input_is_a_dash_and_a_note():
    proc = ablate("models", "--input", "28x28x1", "--backends", "torch")
    assert proc.returncode == 0, proc.stderr
    counts = {row[0]: row[4] for row in table(proc.stdout, 5)[1:]}
    assert counts["minigooglenet"] == "-"
    assert counts["mlp"] == "235,146"  # 784*256+256 + 256*128+128 + 128*10+10
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "minigooglenet" in notes[0] and "31x31" in notes[0]


@pytest.mark.parametrize("bad", ["32x32", "32x32x3x1", "axbxc", "0x32x3", "", "32*32*3", "-1x32x3"])
def test_models_bad_input_is_one_line_exit_2(bad):
    proc = ablate("models", f"--input={bad}")
    one_line_error(proc, "--input: expected HxWxC like 32x32x3")
    assert proc.stdout == ""


@pytest.mark.parametrize("args, starts", [
    (["--classes", "1"], "--classes"),
    (["--backends", "tensorflow"], "Expected backend to be one of"),
    (["--backends", ","], "--backends"),
])
def test_models_bad_options_are_one_line_exit_2(args, starts):
    one_line_error(ablate("models", *args), starts)


# ----------------------------------------------------------------------------- help


def test_help_names_every_command():
    proc = ablate("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "report", "status", "datasets", "models", "ABLATE_DEBUG"):
        assert command in proc.stdout, command


def test_run_help_names_its_options():
    proc = ablate("run", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("grid", "--dry-run", "--results", "--workers", "--gpus", "--per-gpu", "--retries",
                   "--only", "--seeds"):
        assert option in proc.stdout, option


def test_models_help_names_its_options():
    proc = ablate("models", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--input", "--classes", "--backends", "HxWxC"):
        assert option in proc.stdout, option

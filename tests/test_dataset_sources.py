"""Each dataset is a source object on its registry entry: it locates, describes and reads its files,
and the catalogue asks it instead of switching on the dataset's name. A plug-in dataset, with a
loader or with a source of its own, is listed by `python -m ablate datasets`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ablate.data import catalogue, sources
from ablate.data.sources import BUILTIN_DATASETS, DATASETS
from tests.test_datasets import (
    write_cifar_bin,
    write_cifar_py,
    write_idx_folder,
    write_image_folder,
)

REPO = Path(__file__).resolve().parents[1]


def _write_mnist_npz(folder: Path) -> None:
    x_train, y_train, x_test, y_test = write_idx_folder(folder / "idx", n_train=30, n_test=20)
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


# name -> (writer of a small copy in the real format into a folder, the format found there,
#          (input shape, classes, n_train, n_test))
COPIES = {
    "fashion-mnist": (lambda d: write_idx_folder(d, n_train=50, n_test=20, h=7, w=6), "idx", ((7, 6, 1), 10, 50, 20)),
    "mnist": (_write_mnist_npz, "npz", ((6, 5, 1), 10, 30, 20)),
    "cifar10": (lambda d: write_cifar_py(d, per_batch=4, n_test=10), "cifar-py", ((32, 32, 3), 10, 20, 10)),
    "imagenette": (write_image_folder, "folder", ((128, 128, 3), 3, 13, 6)),
}


def test_every_builtin_entry_has_a_source():
    assert set(COPIES) | {"digits"} == set(BUILTIN_DATASETS)
    for name in BUILTIN_DATASETS:
        entry = DATASETS.get(name)
        assert isinstance(entry.source, sources.Source) and entry.loader is None, name
    kinds = {name: type(DATASETS.get(name).source) for name in BUILTIN_DATASETS}
    assert kinds == {"digits": sources.ScikitDigits, "fashion-mnist": sources.IdxFolder, "mnist": sources.IdxFolder,
                     "cifar10": sources.CifarBatches, "imagenette": sources.ImageFolders}


@pytest.mark.parametrize("name", sorted(COPIES))
def test_each_source_locates_describes_and_reads_a_copy_in_its_format(tmp_path, monkeypatch, name):
    monkeypatch.setenv("ABLATE_CACHE", "off")
    write, kind, described = COPIES[name]
    write(tmp_path / "copy")
    source = DATASETS.get(name).source
    assert source.find_in(tmp_path / "nowhere") is None
    found, looked = source.locate([tmp_path / "nowhere", tmp_path / "copy"])
    assert found is not None and found.kind == kind, found
    assert looked == [tmp_path / "nowhere", tmp_path / "copy"]
    assert source.describe(found) == described
    assert source.where(found).startswith(found.location) and source.where(found).endswith(")")
    x_train, y_train, x_test, y_test, _ = source.read(found, sources.DEFAULT_IMAGE_SIZE)
    shape, _, n_train, n_test = described
    assert x_train.shape == (n_train, *shape) and x_test.shape == (n_test, *shape)
    assert len(y_train) == n_train and len(y_test) == n_test


def test_cifar_binary_batches_and_the_idx_folder_of_mnist(tmp_path):
    write_cifar_bin(tmp_path / "c")
    found = DATASETS.get("cifar10").source.find_in(tmp_path / "c")
    assert (found.kind, DATASETS.get("cifar10").source.where(found)) == (
        "cifar-bin", f"{tmp_path / 'c' / 'cifar-10-batches-bin'} (binary batches)")
    write_idx_folder(tmp_path / "m")
    assert DATASETS.get("mnist").source.find_in(tmp_path / "m").kind == "idx"  # IDX files before an npz
    (tmp_path / "n").mkdir()
    np.savez(tmp_path / "n" / "mnist.npz", x_train=np.zeros((1, 2, 2)))
    assert DATASETS.get("mnist").source.find_in(tmp_path / "n").kind == "npz"
    assert DATASETS.get("fashion-mnist").source.find_in(tmp_path / "n") is None  # fashion-mnist reads no npz


def test_the_default_folders_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "f"))
    keras = tmp_path / "k" / "datasets"
    dirs = {name: DATASETS.get(name).source.default_dirs() for name in BUILTIN_DATASETS}
    assert dirs == {
        "digits": [],
        "fashion-mnist": [Path(sources.FASHION_MNIST_DEBIAN_DIR), keras / "fashion-mnist"],
        "mnist": [keras / "mnist", keras],
        "cifar10": [keras, keras / "cifar-10-batches-py-target"],
        "imagenette": [tmp_path / "f" / "data" / n for n in ("imagenette2-160", "imagenette2-320", "imagenette2")],
    }


def test_digits_is_bundled_and_refuses_a_path():
    source = DATASETS.get("digits").source
    found, looked = source.locate([Path("/anywhere")])
    assert (found, looked) == (sources.Found("sklearn", "scikit-learn"), [])
    assert source.describe(found) == DATASETS.get("digits").known and source.max_value == 16.0
    assert source.path_unused and not source.downloads
    assert [n for n in BUILTIN_DATASETS if DATASETS.get(n).source.downloads] == ["fashion-mnist", "mnist", "cifar10"]


def test_the_catalogue_spells_no_dataset_name_and_switches_on_none():
    tree = ast.parse((REPO / "ablate" / "data" / "catalogue.py").read_text())
    names = set(BUILTIN_DATASETS)
    spelled = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names]
    assert spelled == []
    switches = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Name) and node.left.id == "name"
                and any(isinstance(c, ast.Constant) for c in node.comparators)]
    assert switches == []


def _site_with_plugins(tmp_path: Path, data: Path) -> dict[str, str]:
    """An installed package whose ablate.datasets entry points give a loader (`table`) and an entry
    with a source of its own that reads IDX files from `data` and declares no sizes (`mine`)."""
    site = tmp_path / "site"
    (site / "dsplug").mkdir(parents=True)
    (site / "dsplug" / "__init__.py").write_text(textwrap.dedent(f'''
        import numpy as np
        from ablate.data.sources import DatasetEntry, IdxFolder

        MINE = DatasetEntry("mine", "my IDX copy", how_to_obtain="ask me", source=IdxFolder(({str(data)!r},)))

        def load_table():
            """a 2-class table"""
            x = np.arange(40.0).reshape(20, 2)
            return x[:12], np.arange(12) % 2, x[12:], np.arange(8) % 2
    '''))
    (site / "dsplug-0.1.dist-info").mkdir()
    (site / "dsplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: dsplug\nVersion: 0.1\n")
    (site / "dsplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[ablate.datasets]\ntable = dsplug:load_table\nmine = dsplug:MINE\n")
    return dict(os.environ, PYTHONPATH=str(site), ABLATE_CACHE="off")


def test_plugin_datasets_are_listed_by_datasets(tmp_path):
    write_idx_folder(tmp_path / "idx", n_train=50, n_test=20, h=7, w=6)
    env = _site_with_plugins(tmp_path, tmp_path / "idx")
    proc = subprocess.run([sys.executable, "-m", "ablate", "datasets"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert list(rows)[:len(BUILTIN_DATASETS)] == list(BUILTIN_DATASETS)
    assert rows["table"][1:6] == ["yes", "-", "-", "-", "-"] and "dsplug:load_table (a 2-class table)" in proc.stdout
    assert rows["mine"][1:6] == ["yes", "7x6x1", "10", "50", "20"]
    assert f"{tmp_path / 'idx'} (IDX files)" in proc.stdout


def test_a_plugin_with_a_source_loads_by_name_and_says_what_is_missing(tmp_path):
    write_idx_folder(tmp_path / "idx", n_train=50, n_test=20, h=7, w=6)
    env = _site_with_plugins(tmp_path, tmp_path / "gone")
    code = ("from ablate.data.catalogue import load_dataset, describe_datasets\n"
            f"d = load_dataset('mine', path={str(tmp_path / 'idx')!r}, val_fraction=0)\n"
            "print(d.input_shape, len(d.y_train), len(d.y_test))\n"
            "print({i.name: i for i in describe_datasets()}['mine'].location)\n"
            "load_dataset('mine')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    lines = proc.stdout.splitlines()
    assert lines[0] == "(7, 6, 1) 50 20"
    assert lines[1] == f"not found ({tmp_path / 'gone'}); ask me"
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].endswith(
        f"mine: no IDX files in {tmp_path / 'gone'} (does not exist); ask me")
    # A grid names it like a built-in: the dry run's checks take its shape from its headers.
    (tmp_path / "grid.yaml").write_text(textwrap.dedent(f"""\
        study: mine
        datasets: [{{name: mine, path: {str(tmp_path / 'idx')!r}, train_size: 40}}]
        models: [mlp]
        backends: [torch]
        arms: [none, loss]
        smoothing: [0.1]
        seeds: 1
        train: {{epochs: 1}}
    """))
    run = subprocess.run([sys.executable, "-m", "ablate", "run", str(tmp_path / "grid.yaml"), "--results",
                          str(tmp_path / "r"), "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1].startswith("2 run(s)")


def test_the_catalogue_re_exports_the_registry():
    assert catalogue.DATASETS is DATASETS and catalogue.DATASET_NAMES == BUILTIN_DATASETS

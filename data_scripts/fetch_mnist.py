#!/usr/bin/env python
"""Fetch the four canonical MNIST files into ``<cache dir>/mnist/`` and check their sha256 (DESIGN §7).

    python data_scripts/fetch_mnist.py                  # download from the first mirror that answers
    python data_scripts/fetch_mnist.py --from-dir DIR   # copy the .gz files you downloaded elsewhere

The cache dir is ``$RL_I2IT_DATA`` (default ``~/.cache/rl_i2it``). Each file is written to a temporary
name beside its target, checked, then renamed, so an interrupted or bad fetch never leaves a file that
``load_mnist`` would pick up. Files already present and correct are kept. Exit status 2 with a one-line
message on failure.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.data import cache_dir, mnist  # the manifest lives in the package: loader and script share it
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import DataError, UserError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's mirror (torchvision tries it first)
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets' mirror
    "http://yann.lecun.com/exdb/mnist/",  # the original; often refuses scripted downloads
)
TIMEOUT_S = 60.0


def _install(target: Path, expected_sha256: str, write: Callable[[Path], None], origin: str) -> None:
    """Run ``write(temp_path)``, check the temp file's sha256, then rename it to ``target`` atomically."""
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(descriptor)
    temp_path = Path(temp_name)
    try:
        write(temp_path)
        actual = sha256_of(temp_path)
        if actual != expected_sha256:
            raise DataError(f"{origin} is corrupt: sha256 {actual}, expected {expected_sha256}; "
                            f"download {target.name} again")
        os.replace(temp_path, target)  # atomic on one filesystem: readers see no file or the whole file
    finally:
        temp_path.unlink(missing_ok=True)


def _download(url: str, timeout_s: float) -> Callable[[Path], None]:
    def write(temp_path: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(temp_path, "wb") as file:
            shutil.copyfileobj(response, file)
    return write


def fetch_mnist(dest: str | Path | None = None, from_dir: str | Path | None = None,
                mirrors: Sequence[str] = MIRRORS, timeout_s: float = TIMEOUT_S) -> list[Path]:
    """Put the four verified MNIST ``.gz`` files in ``dest``.

    Parameters
    ----------
    dest : str or Path, optional
        Target folder; default ``rl_i2it.data.mnist.mnist_dir()``.
    from_dir : str or Path, optional
        Copy from this folder (files as downloaded, still gzipped) instead of the network.
    mirrors : sequence of str
        Base URLs (folders holding the four files), tried in order.
    timeout_s : float
        Per-request network timeout.

    Returns
    -------
    list of Path
        The four files in ``dest``, in manifest order.

    Raises
    ------
    DataError
        A file is missing from ``from_dir``, fails its checksum, or no mirror served a good copy.
    """
    dest = Path(dest) if dest is not None else mnist.mnist_dir()
    dest.mkdir(parents=True, exist_ok=True)
    installed = []
    for name, expected_sha256 in mnist.MNIST_SHA256.items():  # looked up now, so tests can patch it
        target = dest / name
        if target.is_file() and sha256_of(target) == expected_sha256:
            print(f"{target}: already there, checksum ok")
        elif from_dir is not None:
            source = Path(from_dir) / name
            if not source.is_file():
                raise DataError(f"{source} is missing (expected sha256 {expected_sha256}); put the four MNIST .gz "
                                f"files, as downloaded, in {from_dir}")
            _install(target, expected_sha256, lambda temp, source=source: shutil.copyfile(source, temp), str(source))
            print(f"{target}: copied from {source}, checksum ok")
        else:
            failures = []
            for mirror in mirrors:
                url = mirror.rstrip("/") + "/" + name
                try:
                    _install(target, expected_sha256, _download(url, timeout_s), url)
                    break
                except (OSError, http.client.HTTPException, DataError) as error:  # URLError is an OSError
                    failures.append(f"{url}: {error}".replace("\n", " "))
            else:
                raise DataError(f"could not fetch {name} (expected sha256 {expected_sha256}): "
                                f"{'; '.join(failures)}; download it on a networked machine and run: "
                                f"python data_scripts/fetch_mnist.py --from-dir DIR")
            print(f"{target}: downloaded from {mirror}, checksum ok")
        installed.append(target)
    return installed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-dir", type=Path, help="copy the .gz files from this folder instead of downloading")
    parser.add_argument("--dest", type=Path, help=f"target folder (default: {cache_dir() / 'mnist'})")
    parser.add_argument("--mirror", action="append", help="base URL to try instead of the built-in list (repeatable)")
    args = parser.parse_args(argv)
    try:
        fetch_mnist(args.dest, args.from_dir, args.mirror or MIRRORS)
    except UserError as error:  # DataError included: one line, no traceback (the package's CLI convention)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

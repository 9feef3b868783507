#!/usr/bin/env python
"""Fetch one of pix2pix's paired sets (facades, cityscapes, edges2shoes, ...) and unpack it, checked by sha256.

    python data_scripts/fetch_pix2pix.py facades                         # download (a networked machine)
    python data_scripts/fetch_pix2pix.py facades --from-file facades.tar.gz   # an archive fetched elsewhere
    python -m rl_i2it train --task photo --dataset pix2pix:~/.cache/rl_i2it/pix2pix/facades

The archive lands in ``<cache dir>/pix2pix/NAME.tar.gz`` and is unpacked to ``<cache dir>/pix2pix/NAME/``
(``train/``, ``test/`` or ``val/`` of A|B jpgs, what ``rl_i2it.data.paired.load_pix2pix`` reads); the cache
dir is ``$RL_I2IT_DATA`` (default ``~/.cache/rl_i2it``). Both steps are atomic: the archive is written through
``rl_i2it.checkpoint.atomic_write`` and checked *before* it is renamed into place, the folder is unpacked
beside its target and renamed, so an interrupted or bad fetch leaves nothing a loader would pick up.

Checksums: ``SHA256`` pins each archive. The Berkeley server publishes none, and this package has not
downloaded them (it is built offline), so the entries are empty until someone pins them: an unpinned archive
is refused with its computed sha256 in the message; check it against a second download (or a colleague's) and
rerun with ``--sha256 HEX``, then add it to ``SHA256`` here. Exit status 2 with a one-line message on failure.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.checkpoint import atomic_write
from rl_i2it.data import cache_dir
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import DataError, UserError

MIRRORS = (
    "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/",  # pix2pix's own download script points here
    "https://people.eecs.berkeley.edu/~tinghuiz/projects/pix2pix/datasets/",  # the original location
)
#: archive name -> sha256 (None: not pinned yet, see the module docstring)
SHA256: dict[str, str | None] = {name: None for name in
                                 ("facades", "cityscapes", "edges2shoes", "edges2handbags", "maps", "night2day")}
TIMEOUT_S = 120.0
_CHUNK = 1 << 20


def _copy_checked(reader, handle, expected: str | None, origin: str) -> str:
    """Stream ``reader`` into ``handle`` while hashing; raise (so the temporary file is dropped) on a mismatch."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: reader.read(_CHUNK), b""):
        digest.update(chunk)
        handle.write(chunk)
    actual = digest.hexdigest()
    if expected is None:
        raise DataError(f"{origin} has no pinned checksum; its sha256 is {actual}: verify it against a second "
                        f"download and rerun with --sha256 {actual}")
    if actual != expected.lower():
        raise DataError(f"{origin} is corrupt: sha256 {actual}, expected {expected}; fetch it again")
    return actual


def _unpack(archive: Path, name: str, dest: Path) -> Path:
    """Unpack ``archive`` (a ``NAME/`` tree) beside ``dest / name``, check it, and rename it into place."""
    target = dest / name
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")  # no absolute paths, links out of the tree or devices
        unpacked = work / name if (work / name).is_dir() else work
        splits = [s for s in ("train", "val", "test") if (unpacked / s).is_dir()]
        if "train" not in splits:
            raise DataError(f"{archive} holds no {name}/train folder; it is not a pix2pix aligned set")
        from rl_i2it.data.paired import load_pix2pix

        load_pix2pix(unpacked, "train", 32, "AtoB", max_images=1)  # one image: A|B readable and the right shape
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def fetch_pix2pix(name: str, dest: str | Path | None = None, from_file: str | Path | None = None,
                  sha256: str | None = None, mirrors: Sequence[str] = MIRRORS,
                  timeout_s: float = TIMEOUT_S) -> Path:
    """Put the verified archive of ``name`` in ``dest`` (default ``<cache dir>/pix2pix``) and unpack it; returns
    the unpacked folder. ``sha256`` overrides (or supplies) the pinned checksum."""
    if name not in SHA256:
        raise UserError(f"unknown pix2pix set {name!r}; choose one of {', '.join(SHA256)}")
    expected = sha256 or SHA256[name]
    dest = Path(dest) if dest is not None else cache_dir() / "pix2pix"
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{name}.tar.gz"
    if archive.is_file() and expected and sha256_of(archive) == expected.lower():
        print(f"{archive}: already there, checksum ok")
    elif from_file is not None:
        source = Path(from_file)
        if not source.is_file():
            raise DataError(f"{source} does not exist; download {name}.tar.gz from {mirrors[0]} elsewhere first")
        with open(source, "rb") as reader:
            atomic_write(archive, lambda handle: _copy_checked(reader, handle, expected, str(source)))
        print(f"{archive}: copied from {source}, checksum ok")
    else:
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{name}.tar.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    atomic_write(archive, lambda handle: _copy_checked(response, handle, expected, url))
                break
            except DataError:
                raise  # a served file with the wrong (or an unpinned) checksum: say so, do not try other mirrors
            except OSError as error:  # URLError and timeouts
                failures.append(f"{url}: {error}".replace("\n", " "))
        else:
            raise DataError(f"could not fetch {name}.tar.gz: {'; '.join(failures)}; download it on a networked "
                            f"machine and run: python data_scripts/fetch_pix2pix.py {name} --from-file FILE")
        print(f"{archive}: downloaded from {mirror}, checksum ok")
    target = _unpack(archive, name, dest)
    print(f"{target}: unpacked; train with --dataset pix2pix:{target}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"the set: {', '.join(SHA256)}")
    parser.add_argument("--from-file", type=Path, help="copy this archive instead of downloading")
    parser.add_argument("--dest", type=Path, help=f"target folder (default: {cache_dir() / 'pix2pix'})")
    parser.add_argument("--sha256", help="the archive's expected sha256 (needed while SHA256 has no pin for it)")
    parser.add_argument("--mirror", action="append", help="base URL to try instead of the built-in list (repeatable)")
    args = parser.parse_args(argv)
    try:
        fetch_pix2pix(args.name, args.dest, args.from_file, args.sha256, args.mirror or MIRRORS)
    except UserError as error:  # DataError included: one line, no traceback (the package's CLI convention)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

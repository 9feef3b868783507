#!/usr/bin/env python
"""Fetch MPI Sintel (frames, ground-truth flow, occlusions) into ``<cache dir>/sintel/`` for the video chapter.

    python data_scripts/fetch_sintel.py --sha256 HEX              # download, check against a digest you trust
    python data_scripts/fetch_sintel.py --record-sha256           # download, record the digest (trust on first use)
    python data_scripts/fetch_sintel.py --from-file ZIP --sha256 HEX   # an archive downloaded elsewhere

The archive is ``MPI-Sintel-complete.zip`` (about 5.3 GB, CC BY 3.0 frames; see http://sintel.is.tue.mpg.de).
**Its sha256 is not pinned here**: the package was built offline and never saw the file, and a made-up digest
would be worse than none. So the script checks against ``--sha256`` when given, else against the digest recorded
beside the archive by an earlier ``--record-sha256`` run (``<dest>/MPI-Sintel-complete.zip.sha256``), and refuses
to extract an archive it cannot check. Downloads go to a temporary name, are checked, then renamed; extraction
writes into a temporary folder that is renamed into place, so an interrupted run never leaves a half dataset
that ``rl_i2it.data.videos.load_sintel_scene`` would read. Only ``training/{final,clean,flow,occlusions}`` are
extracted. Exit status 2 with a one-line message on failure.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.checkpoint import atomic_write_text
from rl_i2it.data import cache_dir
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import DataError, UserError

ARCHIVE = "MPI-Sintel-complete.zip"
URLS = ("http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip",)  #: the dataset's own server
SHA256 = None  #: not pinned (see the module docstring); pass --sha256 or --record-sha256
KEPT = ("training/final/", "training/clean/", "training/flow/", "training/occlusions/")
TIMEOUT_S = 120.0


def sintel_dir() -> Path:
    return Path(cache_dir()) / "sintel"


def _download(url: str, target: Path, timeout_s: float) -> None:
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(temp, "wb") as file:
            shutil.copyfileobj(response, file, 1 << 20)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _expected_digest(archive: Path, sha256: str | None, record: bool) -> str:
    recorded = archive.with_name(archive.name + ".sha256")
    if sha256:
        return sha256.lower()
    if recorded.is_file():
        return recorded.read_text().split()[0].lower()
    if record:
        digest = sha256_of(archive)
        atomic_write_text(recorded, f"{digest}  {archive.name}\n")
        print(f"{archive}: sha256 {digest} recorded in {recorded} (trust on first use)")
        return digest
    raise UserError(f"cannot check {archive}: no --sha256 given and no recorded digest in {recorded}; pass "
                    f"--sha256 HEX (from a source you trust) or --record-sha256")


def extract(archive: Path, dest: Path) -> Path:
    """Extract ``training/{final,clean,flow,occlusions}`` of ``archive`` into ``dest/training`` atomically."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if any(m.startswith(k) for k in KEPT) and not m.endswith("/")]
            if not members:
                raise DataError(f"{archive} holds no {', '.join(KEPT)} files; is it {ARCHIVE}?")
            staging = Path(tempfile.mkdtemp(dir=dest, prefix=".training."))
            try:
                for member in members:
                    relative = Path(member).relative_to("training")
                    if ".." in relative.parts:
                        raise DataError(f"{archive} has an unsafe member name {member!r}")
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zipped.open(member) as source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                final = dest / "training"
                if final.exists():
                    shutil.rmtree(final)
                os.replace(staging, final)
            finally:
                if staging.exists():
                    shutil.rmtree(staging)
    except zipfile.BadZipFile:
        raise DataError(f"{archive} is not a zip archive; delete it and fetch it again") from None
    return dest / "training"


def fetch_sintel(dest: str | Path | None = None, from_file: str | Path | None = None, sha256: str | None = None,
                 record_sha256: bool = False, urls=URLS, timeout_s: float = TIMEOUT_S) -> Path:
    """Put a checked ``MPI-Sintel-complete.zip`` in ``dest`` and extract its training part; returns ``dest``."""
    dest = Path(dest) if dest is not None else sintel_dir()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ARCHIVE
    if from_file is not None:
        source = Path(from_file)
        if not source.is_file():
            raise DataError(f"{source} is missing; download {ARCHIVE} from {urls[0]} on a networked machine")
        if source.resolve() != archive.resolve():
            shutil.copyfile(source, archive.with_name(archive.name + ".part"))
            os.replace(archive.with_name(archive.name + ".part"), archive)
    elif not archive.is_file():
        failures = []
        for url in urls:
            try:
                _download(url, archive, timeout_s)
                break
            except (OSError, http.client.HTTPException) as error:
                failures.append(f"{url}: {error}".replace("\n", " "))
        else:
            raise DataError(f"could not fetch {ARCHIVE}: {'; '.join(failures)}; download it on a networked machine "
                            f"and run: python data_scripts/fetch_sintel.py --from-file ZIP --sha256 HEX")
    expected = _expected_digest(archive, sha256 or SHA256, record_sha256)
    actual = sha256_of(archive)
    if actual != expected:
        raise DataError(f"{archive} is corrupt: sha256 {actual}, expected {expected}; delete it and fetch it again")
    print(f"{archive}: checksum ok")
    extracted = extract(archive, dest)
    print(f"extracted {extracted} (load a scene with rl_i2it.data.videos.load_sintel_scene({str(dest)!r}, 'alley_2'))")
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=None, help="target folder (default: $RL_I2IT_DATA/sintel)")
    parser.add_argument("--from-file", default=None, help=f"a {ARCHIVE} downloaded elsewhere")
    parser.add_argument("--sha256", default=None, help="the archive's sha256 (from a source you trust)")
    parser.add_argument("--record-sha256", action="store_true", help="record the downloaded archive's sha256 and "
                                                                     "check later runs against it")
    args = parser.parse_args(argv)
    try:
        fetch_sintel(args.dest, args.from_file, args.sha256, args.record_sha256)
    except (UserError, DataError) as error:
        print(f"fetch_sintel: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Fetch an MS-COCO image archive and prepare a folder of content images for style transfer (DESIGN §7).

    python data_scripts/fetch_coco.py                              # val2017 (778 MB, 5000 images) -> coco_val2017_256/
    python data_scripts/fetch_coco.py --archive train2014          # the authors' content set (13 GB, 82 783 images)
    python data_scripts/fetch_coco.py --from-zip ~/Downloads/val2017.zip --limit 2000 --size 128

Steps: download the zip into ``$RL_I2IT_DATA/coco/`` (default ``~/.cache/rl_i2it``) through a temporary file that is
renamed only after its MD5 matches the pinned one (COCO publishes no SHA-256s; the pinned MD5s are the ones that
dataset loaders across projects agree on; the archive's sha256 is recorded in the manifest), then write the first
``--limit`` images (sorted by name), centre-cropped to a square and resized to ``--size`` px, as PNGs into
``$RL_I2IT_DATA/coco_<archive>_<size>/``, each through a temporary file (``rl_i2it.checkpoint.atomic_write``),
and last ``manifest.json`` with every file's sha256 and the archive's MD5 and sha256. Use the folder with
``python -m rl_i2it train --task image_style --set content_source=$RL_I2IT_DATA/coco_val2017_256``. Exit status 2
with a one-line message on failure. COCO images carry their Flickr licences (see cocodataset.org/#termsofuse): never commit them.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.checkpoint import atomic_write, atomic_write_text
from rl_i2it.data import cache_dir
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import DataError, UserError

#: archive -> (URL, MD5 as published)
ARCHIVES: dict[str, tuple[str, str]] = {
    "val2017": ("http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "train2017": ("http://images.cocodataset.org/zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2014": ("http://images.cocodataset.org/zips/val2014.zip", "a3d79f5ed8d289b7a7554ce06a5782b3"),
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", "0da8c0bd3d6becc4dcb32757491aca88"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_archive(url: str, target: Path, md5: str, timeout_s: float = TIMEOUT_S) -> Path:
    """Download ``url`` (any scheme urllib reads, ``file://`` included) to ``target``; the file appears only if
    its MD5 is ``md5``. An existing ``target`` with the right MD5 is kept."""
    target = Path(target)
    if target.is_file() and md5_of(target) == md5:
        print(f"{target}: already there, md5 ok")
        return target

    def write(handle) -> None:
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                handle.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(f"{url} is corrupt: md5 {digest.hexdigest()}, expected {md5}; download it again")

    try:
        atomic_write(target, write)  # temp file beside the target, renamed only when write() returns
    except OSError as error:  # URLError is an OSError
        raise DataError(f"could not download {url} ({error}); download it elsewhere and pass --from-zip") from None
    print(f"{target}: downloaded from {url}, md5 ok")
    return target


def check_archive(path: Path, md5: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass the zip you downloaded from cocodataset.org")
    actual = md5_of(path)
    if actual != md5:
        raise DataError(f"{path} is corrupt or another archive: md5 {actual}, expected {md5}; download it again")
    return path


def _square_png(data: bytes, size: int, name: str) -> bytes:
    """An image file's bytes -> PNG bytes of its centred square crop, Lanczos-resized to ``size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            side = min(image.size)
            if side < 16:
                raise DataError(f"{name} is {image.size[0]}x{image.size[1]} pixels; too small for a content image")
            left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
            square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
            out = io.BytesIO()
            square.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{name} in the archive is not a readable image ({error})") from None


def prepare(archive: Path, dest: Path, size: int = 256, limit: int | None = None) -> Path:
    """Write the first ``limit`` images of ``archive`` (sorted by name) as ``size``² PNGs and ``manifest.json``."""
    if size < 16:
        raise UserError(f"--size {size} is too small; use at least 16 (the paper: 256)")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1; got {limit}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zipped = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive} is not a zip archive; download it again") from None
    with zipped:
        names = sorted(n for n in zipped.namelist() if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise DataError(f"{archive} holds no .jpg or .png images")
        names = names[:limit] if limit else names
        files = {}
        for count, name in enumerate(names, start=1):
            png = _square_png(zipped.read(name), size, name)
            out = dest / (Path(name).stem + ".png")
            atomic_write(out, lambda handle, png=png: handle.write(png))
            files[out.name] = hashlib.sha256(png).hexdigest()
            if count % 1000 == 0:
                print(f"{count}/{len(names)} images written")
    manifest = {"source": Path(archive).name, "archive_md5": md5_of(Path(archive)),
                "archive_sha256": sha256_of(archive), "size": size, "count": len(files), "files": files,
                "licence": "MS-COCO images: Flickr terms of each image (cocodataset.org/#termsofuse); never commit"}
    atomic_write_text(dest / "manifest.json", json.dumps(manifest, indent=1))  # last: its presence means complete
    print(f"{dest}: {len(files)} images of {size}x{size}; manifest.json sha256 {sha256_of(dest / 'manifest.json')}")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", default="val2017", choices=sorted(ARCHIVES))
    parser.add_argument("--from-zip", type=Path, help="use this downloaded zip instead of the network (md5 checked)")
    parser.add_argument("--dest", type=Path, help="output folder (default: $RL_I2IT_DATA/coco_<archive>_<size>)")
    parser.add_argument("--size", type=int, default=256, help="side of the square images written (default 256)")
    parser.add_argument("--limit", type=int, help="write only the first N images (sorted by name)")
    parser.add_argument("--keep-zip", action="store_true", help="keep the downloaded zip (default: delete it after)")
    args = parser.parse_args(argv)
    url, md5 = ARCHIVES[args.archive]
    try:
        if args.from_zip is not None:
            archive = check_archive(args.from_zip, md5)
        else:
            archive = fetch_archive(url, cache_dir() / "coco" / f"{args.archive}.zip", md5)
        prepare(archive, args.dest or cache_dir() / f"coco_{args.archive}_{args.size}", args.size, args.limit)
        if args.from_zip is None and not args.keep_zip:
            archive.unlink()
            if not any(archive.parent.iterdir()):
                archive.parent.rmdir()
    except UserError as error:  # DataError included: one line, no traceback (the package's CLI convention)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

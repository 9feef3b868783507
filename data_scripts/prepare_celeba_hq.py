#!/usr/bin/env python
"""Prepare CelebA-HQ (or any folder of face photos) for the face task: square RGB PNGs of one size, checksummed.

    python data_scripts/prepare_celeba_hq.py SOURCE                     # -> $RL_I2IT_DATA/celeba_hq_128
    python data_scripts/prepare_celeba_hq.py SOURCE DEST --size 128     # any destination and size

SOURCE is a folder you downloaded yourself (CelebA-HQ's ``data1024x1024/`` or the common 128/256 resized sets;
we do not download it: CelebA is for non-commercial research only and needs its agreement). Every image
(.png/.jpg/.jpeg/.bmp/.webp, sorted by name) is centre-cropped to a square, resized with Lanczos to ``--size``
and written as ``DEST/<stem>.png``; ``DEST/manifest.json`` lists each output's sha256 (the loader,
``rl_i2it.data.faces.load_face_folder``, verifies them) and the manifest's own digest is printed. The task then
reads the folder with ``data_source="celeba-hq"`` (the default DEST) or ``data_source="DEST"``. Files are written
to temporary names and renamed, so an interrupted run never leaves a half-written image. A non-image or
unreadable file in SOURCE stops the run with exit status 2 and a one-line message naming it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.checkpoint import atomic_write, atomic_write_text
from rl_i2it.data import cache_dir
from rl_i2it.data.checksums import sha256_of
from rl_i2it.data.faces import IMAGE_SUFFIXES, face_folder_files
from rl_i2it.errors import UserError


def prepare(source: Path, dest: Path, size: int = 128, limit: int | None = None) -> dict:
    """Write ``dest/<stem>.png`` for every image of ``source`` and ``dest/manifest.json``; return the manifest."""
    from PIL import Image, UnidentifiedImageError

    if size < 16:
        raise UserError(f"--size {size} is too small; use at least 16 (the authors' is 128)")
    source, dest = Path(source), Path(dest)
    if source.resolve() == dest.resolve():
        raise UserError(f"SOURCE and DEST are the same folder ({source}); write the prepared faces elsewhere")
    files = face_folder_files(source)[:limit]
    dest.mkdir(parents=True, exist_ok=True)
    manifest = {"size": size, "source": source.name, "count": len(files), "files": {}}
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                rgb = image.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise UserError(f"{file} is unreadable or not an image ({type(error).__name__}); remove it and re-run")
        side = min(rgb.size)
        left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
        square = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
        target = dest / f"{file.stem}.png"
        atomic_write(target, lambda handle: square.save(handle, format="PNG"))
        manifest["files"][target.name] = sha256_of(target)
    text = json.dumps(manifest, indent=1, sort_keys=True)
    atomic_write_text(dest / "manifest.json", text)
    manifest["manifest_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of face images you downloaded (" +
                        ", ".join(IMAGE_SUFFIXES) + ")")
    parser.add_argument("dest", type=Path, nargs="?", default=None,
                        help="output folder (default: $RL_I2IT_DATA/celeba_hq_128)")
    parser.add_argument("--size", type=int, default=128, help="output side in pixels (default 128)")
    parser.add_argument("--limit", type=int, default=None, help="prepare only the first N images (sorted)")
    args = parser.parse_args(argv)
    dest = args.dest or cache_dir() / "celeba_hq_128"
    try:
        manifest = prepare(args.source, dest, args.size, args.limit)
    except UserError as error:
        print(f"prepare_celeba_hq: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['count']} faces of {args.size}x{args.size} to {dest}; manifest.json sha256 "
          f"{manifest['manifest_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

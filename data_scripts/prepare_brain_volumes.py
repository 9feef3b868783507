#!/usr/bin/env python
"""Prepare a public brain MRI set you downloaded (LPBA40, OASIS, ...) for ``subject="prepared:<set>/<id>"``.

    python data_scripts/prepare_brain_volumes.py --images DIR --labels DIR --name lpba40 \\
        [--label-names names.txt] [--licence "LPBA40: LONI, research use"]

Pairs ``<id>*.nii[.gz]`` in ``--images`` with the label file of the same ``<id>`` in ``--labels`` (the id
is the file name up to its first dot, with a trailing ``_label``/``_seg``/``.label`` removed). Each
volume is reoriented to RAS (``nibabel.as_closest_canonical``), scaled to uint8 (99.5th percentile =
255), its labels renumbered 1..K over the whole set (0 stays background), and written to
``<cache dir>/brain/<name>/<id>.npz`` through a temporary file and a rename. ``manifest.json`` records
the sha256 of every source and output file, the label renumbering and names, and is itself written last
and atomically, so an interrupted run never leaves a set that loads. Re-running skips subjects whose
output still matches the manifest. Volumes should already be affinely aligned (as LPBA40's and the
learn2reg OASIS volumes are): this package registers deformably only.

Exit status 2 with a one-line message for bad input (no pairs, an unreadable or non-3-D file, an image
and label map of different shapes, an empty label map).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

try:
    import rl_i2it.data  # noqa: F401
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_i2it.checkpoint import atomic_write, atomic_write_text
from rl_i2it.data.brain import check_volume, prepared_dir, read_nifti, to_uint8
from rl_i2it.data.checksums import sha256_of
from rl_i2it.errors import UserError

_SUFFIX = re.compile(r"([._-](label|labels|seg|mask))$", re.IGNORECASE)


def subject_id(path: Path) -> str:
    stem = path.name.split(".")[0]
    return _SUFFIX.sub("", stem)


def _nifti_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} does not exist")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith((".nii", ".nii.gz")):
            files[subject_id(path)] = path
        elif path.is_file() and not path.name.startswith("."):
            raise UserError(f"{path} is not a NIfTI file (.nii or .nii.gz); remove it from {folder} or convert it")
    return files


def prepare(images_dir, labels_dir, name: str, label_names_file=None, licence: str = "see the dataset's terms",
            dest=None) -> Path:
    """Prepare the set; returns the manifest's path."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UserError(f"set name {name!r} must be letters, digits, '_' or '-' (it names a folder)")
    images = _nifti_files(Path(images_dir), "images")
    labels = _nifti_files(Path(labels_dir), "labels")
    ids = sorted(set(images) & set(labels))
    if not ids:
        raise UserError(f"no subject has both an image in {images_dir} and a label map in {labels_dir} "
                        f"(images: {sorted(images)[:5]}, labels: {sorted(labels)[:5]}); name them <id>.nii.gz")
    dest = Path(dest) if dest is not None else prepared_dir(name)
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"subjects": {}}

    volumes = {}
    values = set()
    for sid in ids:
        label = read_nifti(labels[sid], canonical=True)
        if not np.allclose(label, np.round(label)):
            raise UserError(f"{labels[sid]} holds non-integer values; give the label map, not a probability map")
        label = np.round(label).astype(np.int64)
        volumes[sid] = label
        values |= set(np.unique(label).tolist()) - {0}
    ordered = sorted(values)
    renumber = {int(v): k + 1 for k, v in enumerate(ordered)}
    if label_names_file is not None:
        names = [line.strip() for line in Path(label_names_file).read_text().splitlines() if line.strip()]
        if len(names) != len(ordered):
            raise UserError(f"{label_names_file} names {len(names)} labels but the set has {len(ordered)} "
                            f"(values {ordered[:10]}...); give one name per line, in increasing label order")
    else:
        names = [f"label {v}" for v in ordered]

    subjects = {}
    for sid in ids:
        image = read_nifti(images[sid], canonical=True)
        label = volumes[sid]
        if image.ndim == 4 and image.shape[3] == 1:
            image = image[..., 0]
        lookup = np.zeros(max(ordered) + 1 if ordered else 1, np.uint16)
        for value, new in renumber.items():
            lookup[value] = new
        if len(ordered) > 255:
            raise UserError(f"the set has {len(ordered)} labels; at most 255 fit a uint8 label map")
        new_labels = lookup[np.clip(label, 0, None)].astype(np.uint8)
        check_volume(image, new_labels, str(images[sid]))
        sources = {"image": sha256_of(images[sid]), "labels": sha256_of(labels[sid])}
        target = dest / f"{sid}.npz"
        previous = old["subjects"].get(sid)
        if previous and previous.get("sources") == sources and target.is_file() and sha256_of(target) == previous["sha256"]:
            subjects[sid] = previous
            print(f"{sid}: unchanged, kept")
            continue
        atomic_write(target, lambda handle: np.savez_compressed(handle, image=to_uint8(image), labels=new_labels))
        subjects[sid] = {"file": target.name, "sha256": sha256_of(target), "sources": sources,
                         "shape": list(image.shape)}
        print(f"{sid}: {image.shape} -> {target}")
    manifest = {"name": name, "licence": licence, "label_names": names,
                "label_values": {str(v): k for v, k in renumber.items()}, "subjects": subjects}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    print(f"{len(subjects)} subjects, {len(names)} labels: use subject='prepared:{name}/<id>' "
          f"(e.g. prepared:{name}/{ids[0]})")
    return manifest_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of <id>.nii[.gz] intensity volumes")
    parser.add_argument("--labels", required=True, help="folder of <id>[_label].nii[.gz] label maps")
    parser.add_argument("--name", required=True, help="the set's name, e.g. lpba40")
    parser.add_argument("--label-names", default=None, help="a text file: one label name per line, in value order")
    parser.add_argument("--licence", default="see the dataset's terms", help="recorded in the manifest")
    parser.add_argument("--dest", default=None, help="output folder (default <cache dir>/brain/<name>)")
    args = parser.parse_args(argv)
    try:
        prepare(args.images, args.labels, args.name, args.label_names, args.licence, args.dest)
    except UserError as error:
        print(f"prepare_brain_volumes: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Brain MRI that ships inside installed packages: the MNI152 template, Colin27, dipy's circle and C.

========================  ===========================================================================
function                  returns
========================  ===========================================================================
``load_mni152()``         ``BrainVolume``: the ICBM 2009a T1 template (nilearn), tissue labels from its
                          grey/white-matter probability maps; 197 x 233 x 189 at 1 mm
``load_colin27()``        ``BrainVolume``: Debian ``mricron-data``'s brain-extracted Colin27 placed in the
                          MNI152 grid (both are in MNI space), labels by intensity clustering; optional
``load_circle_to_c()``    ``(circle, c)`` float ``(256, 256)`` in [0, 1]: dipy's classic 2-D pair
``axial_slices(vol, S)``  uint8 images and labels ``(K, 1, S, S)`` of the slices between ``z_range``
``crop_cube(vol, S)``     uint8 image and labels ``(1, 1, S, S, S)``: the brain's bounding cube resampled
``load_prepared(name)``   ``BrainVolume`` of a subject that ``data_scripts/prepare_brain_volumes.py`` put
                          in the cache dir (``brain/<set>/<subject>.npz``), checked against its manifest
========================  ===========================================================================

Labels: 0 background (and CSF), 1 grey matter, 2 white matter (``TISSUE_LABELS``); a prepared set keeps
its own labels, renumbered 1..K, with their names in ``BrainVolume.label_names``. Files are found
through the installed distributions' file lists, never downloaded. Licences: nilearn's MNI152 2009a
template and dipy's data are BSD-3-Clause; Colin27 in mricron-data is BSD-3-Clause.
"""
from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["BrainVolume", "TISSUE_LABELS", "load_mni152", "load_colin27", "load_circle_to_c", "load_subject",
           "axial_slices", "crop_cube", "check_volume", "read_nifti", "to_uint8", "load_prepared", "prepared_dir", "COLIN27_DIR", "SUBJECTS"]

TISSUE_LABELS = {1: "grey matter", 2: "white matter"}
COLIN27_DIR = Path("/usr/share/mricron/templates")
SUBJECTS = ("mni152", "colin27")
_MNI_FILES = "nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
# voxel (0, 0, 0) of Colin27 (mricron ch2bet, origin -90, -125, -71 mm) sits at MNI152 voxel (8, 9, 1)
_COLIN_OFFSET = (8, 9, 1)
# axial slices with a full cross-section of cortex and white matter (MNI z = -22 ... +48 mm)
DEFAULT_Z_RANGE = (50, 120)


@dataclass(frozen=True)
class BrainVolume:
    """One subject: ``image`` uint8 ``(X, Y, Z)`` (RAS voxel order, 1 mm) and ``labels`` uint8, same shape."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    source: str
    licence: str
    label_names: tuple[str, ...] = tuple(TISSUE_LABELS.values())  #: names of labels 1..K


def check_volume(image: np.ndarray, labels: np.ndarray, name: str = "volume") -> None:
    """One-line errors for volumes that cannot be registered."""
    if image.ndim != 3:
        raise UserError(f"{name}: expected a 3-D volume (X, Y, Z); got {image.ndim} dimensions, shape "
                        f"{image.shape}. Pass one volume, not a series or a single slice")
    if labels.shape != image.shape:
        raise UserError(f"{name}: labels have shape {labels.shape} but the image has {image.shape}; they must "
                        f"share one grid (resample the labels with nearest-neighbour interpolation)")
    if not (labels > 0).any():
        raise UserError(f"{name}: the label map is empty (all background); Dice needs at least one labelled "
                        f"voxel: check the label file or its threshold")


def _distribution_file(distribution: str, relative: str, install_hint: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"the Python package {distribution!r} is not installed; {install_hint}") from None
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise UserError(f"{distribution} is installed but lacks {relative}; reinstall it ({install_hint})")
    return path


def read_nifti(path: Path, canonical: bool = False) -> np.ndarray:
    """The voxel array of a NIfTI file (reoriented to RAS with ``canonical``); a one-line error if unreadable."""
    import nibabel

    try:
        image = nibabel.load(str(path))
        return np.asarray((nibabel.as_closest_canonical(image) if canonical else image).dataobj)
    except Exception as error:  # nibabel raises many types for unreadable files
        raise UserError(f"cannot read the NIfTI file {path} ({type(error).__name__}: {error}); "
                        f"re-download it") from None


def to_uint8(volume: np.ndarray) -> np.ndarray:
    """Intensities -> uint8 with the 99.5th percentile of the positive voxels at 255 (NaN counts as 0)."""
    volume = np.nan_to_num(volume.astype(np.float32))
    top = np.percentile(volume[volume > 0], 99.5) if (volume > 0).any() else 1.0
    return np.clip(np.round(volume / top * 255), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=2)
def load_mni152() -> BrainVolume:
    """The MNI152 2009a symmetric T1 template and its tissue labels (argmax of background, GM, WM).

    Cached (read-only use: do not modify the arrays in place).
    """
    hint = "pip install nilearn (its wheel carries the template)"
    t1, gm, wm = (read_nifti(_distribution_file("nilearn", _MNI_FILES.format(k), hint)) for k in ("t1", "gm", "wm"))
    p_gm, p_wm = gm.astype(np.float32) / 255, wm.astype(np.float32) / 255
    p_bg = np.clip(1 - p_gm - p_wm, 0, 1)
    labels = np.argmax(np.stack([p_bg, p_gm, p_wm]), axis=0).astype(np.uint8)
    return BrainVolume("mni152", to_uint8(t1), labels, "nilearn: MNI152 ICBM 2009a (sym), 1 mm", "BSD-3-Clause")


def _intensity_tissue_labels(image: np.ndarray) -> np.ndarray:
    """GM / WM of a skull-stripped T1 by 3-class 1-D k-means on the brain's intensities (CSF < GM < WM)."""
    values = image[image > 0].astype(np.float32)
    centres = np.percentile(values, [15, 50, 85])
    for _ in range(30):
        assign = np.argmin(np.abs(values[:, None] - centres[None]), axis=1)
        centres = np.array([values[assign == k].mean() if (assign == k).any() else centres[k] for k in range(3)])
    centres.sort()
    cut_csf_gm, cut_gm_wm = (centres[0] + centres[1]) / 2, (centres[1] + centres[2]) / 2
    labels = np.zeros(image.shape, np.uint8)
    labels[(image >= cut_csf_gm) & (image < cut_gm_wm)] = 1
    labels[image >= cut_gm_wm] = 2
    return labels


@functools.lru_cache(maxsize=2)
def load_colin27(directory: Path | str = COLIN27_DIR) -> BrainVolume:
    """Colin27 (``ch2bet.nii.gz``) in the MNI152 grid; needs Debian's ``mricron-data``."""
    path = Path(directory) / "ch2bet.nii.gz"
    if not path.is_file():
        raise UserError(f"Colin27 not found at {path}; install Debian's package with "
                        f"`apt-get install mricron-data` (or pass the folder holding ch2bet.nii.gz)")
    colin = read_nifti(path)
    grid = np.zeros((197, 233, 189), np.float32)
    x, y, z = _COLIN_OFFSET
    grid[x:x + colin.shape[0], y:y + colin.shape[1], z:z + colin.shape[2]] = colin
    image = to_uint8(grid)
    return BrainVolume("colin27", image, _intensity_tissue_labels(image), f"mricron-data: {path}", "BSD-3-Clause")


def load_subject(name: str) -> BrainVolume:
    """``mni152``, ``colin27`` or ``prepared:<set>/<subject>`` (see ``load_prepared``)."""
    if name == "mni152":
        return load_mni152()
    if name == "colin27":
        return load_colin27()
    if name.startswith("prepared:"):
        return load_prepared(name.removeprefix("prepared:"))
    raise UserError(f"unknown brain subject {name!r}; choose one of {', '.join(SUBJECTS)} or "
                    f"prepared:<set>/<subject> (made by data_scripts/prepare_brain_volumes.py)")


def prepared_dir(dataset: str) -> Path:
    from .cache import cache_dir

    return cache_dir() / "brain" / dataset


@functools.lru_cache(maxsize=8)
def load_prepared(key: str) -> BrainVolume:
    """A subject ``<set>/<subject>`` prepared by ``data_scripts/prepare_brain_volumes.py``, sha256-checked."""
    import json

    from .checksums import verify_file

    dataset, _, subject = key.partition("/")
    folder = prepared_dir(dataset)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"no prepared brain set {dataset!r} at {folder}; run python data_scripts/"
                        f"prepare_brain_volumes.py --images DIR --labels DIR --name {dataset}")
    manifest = json.loads(manifest_path.read_text())
    if subject not in manifest["subjects"]:
        raise UserError(f"prepared set {dataset!r} has no subject {subject!r}; it has "
                        f"{', '.join(sorted(manifest['subjects'])[:10])}")
    entry = manifest["subjects"][subject]
    path = verify_file(folder / entry["file"], entry["sha256"],
                       f"python data_scripts/prepare_brain_volumes.py ... --name {dataset}")
    with np.load(path, allow_pickle=False) as data:
        image, labels = data["image"], data["labels"]
    check_volume(image, labels, f"{dataset}/{subject}")
    return BrainVolume(f"{dataset}/{subject}", image, labels, f"prepared: {path}", manifest.get("licence", "see source"),
                       tuple(manifest["label_names"]))


def load_circle_to_c() -> tuple[np.ndarray, np.ndarray]:
    """dipy's circle and C images, float ``(256, 256)`` in [0, 1] (install ``dipy --no-deps``)."""
    hint = "pip install --no-deps dipy (only its data files are read)"
    return tuple(np.load(_distribution_file("dipy", f"dipy/data/files/{name}.npy", hint)).astype(np.float32)
                 for name in ("circle", "C"))


def _brain_box(labels: np.ndarray, axes: tuple[int, ...]) -> list[slice]:
    """A cube-shaped bounding box (over ``axes``) of the labelled voxels, kept inside the volume."""
    coords = np.nonzero(labels > 0)
    lows = [int(coords[a].min()) for a in axes]
    highs = [int(coords[a].max()) + 1 for a in axes]
    side = max(h - l for l, h in zip(lows, highs))
    box = []
    for a, low, high in zip(axes, lows, highs):
        start = max(0, min((low + high - side) // 2, labels.shape[a] - side))
        box.append(slice(start, start + side))
    return box


def _resample(image: np.ndarray, labels: np.ndarray, size: tuple[int, ...], num_labels: int):
    """Area-resample an image and the one-hot of its labels to ``size``; argmax gives the labels."""
    image_t = torch.from_numpy(image.astype(np.float32))[None, None]
    hot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), num_labels + 1).movedim(-1, 0)[None].float()
    mode = "area"
    small = F.interpolate(image_t, size=size, mode=mode)
    small_labels = F.interpolate(hot, size=size, mode=mode).argmax(1, keepdim=True)
    return small.round().clamp(0, 255).to(torch.uint8), small_labels.to(torch.uint8)


def axial_slices(volume: BrainVolume, size: int, z_range: tuple[int, int] = DEFAULT_Z_RANGE):
    """Axial slices ``z_range[0] <= z < z_range[1]`` cropped to the brain's square box and resampled.

    Returns ``(images, labels, z)``: uint8 ``(K, 1, size, size)`` twice (anterior up, left on the left of
    the image as seen from above) and the slice indices ``(K,)``.
    """
    if size < 16:
        raise UserError(f"brain slice size {size} is too small; use at least 16 pixels")
    check_volume(volume.image, volume.labels, volume.name)
    low, high = z_range
    if not 0 <= low < high <= volume.image.shape[2]:
        raise UserError(f"slice range {z_range} is outside the volume's {volume.image.shape[2]} axial slices")
    box_x, box_y = _brain_box(volume.labels, (0, 1))
    images, labels, zs = [], [], []
    for z in range(low, high):
        if not (volume.labels[:, :, z] > 0).any():
            continue
        # (X, Y) -> rows = Y flipped (anterior up), columns = X
        image = np.flipud(volume.image[box_x, box_y, z].T)
        label = np.flipud(volume.labels[box_x, box_y, z].T)
        small, small_labels = _resample(image, label, (size, size), len(volume.label_names))
        images.append(small[0])
        labels.append(small_labels[0])
        zs.append(z)
    if not images:
        raise UserError(f"no labelled voxels in slices {z_range} of {volume.name}")
    return torch.stack(images), torch.stack(labels), torch.tensor(zs)


def crop_cube(volume: BrainVolume, size: int):
    """The brain's bounding cube resampled to ``size``³: uint8 image and labels ``(1, 1, S, S, S)``."""
    if size < 8:
        raise UserError(f"brain cube size {size} is too small; use at least 8 voxels")
    check_volume(volume.image, volume.labels, volume.name)
    box = _brain_box(volume.labels, (0, 1, 2))
    image, labels = volume.image[tuple(box)], volume.labels[tuple(box)]
    return _resample(image, labels, (size, size, size), len(volume.label_names))

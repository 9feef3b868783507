"""Natural photos that ship offline (scikit-image, scikit-learn), random square crops of them, and an image reader.

=====================================  ==============================================================
call                                   returns
=====================================  ==============================================================
``natural_photos(split)``              ``list[Photo]``: RGB photos, split by photo (``"train"``,
                                       ``"test"`` or ``"all"``); ``Photo.image`` uint8 ``(3, H, W)``
``random_crops(images, n, size, g)``   uint8 ``(n, 3, size, size)``: random square crops (side
                                       ``min_scale``..1 of the shorter side), area-resized, flipped
``photo_bank(split, n, size, seed)``   the same, deterministic per ``(split, n, size, seed)``
``load_image(path)``                   uint8 ``(3, H, W)`` RGB from any image file: grey is
                                       repeated, an alpha channel is composited on white
``as_rgb(array)``                      the same conversion for an ``(H, W)``/``(H, W, C)`` array
=====================================  ==============================================================

The photos (all in the installed wheels, read by path; nothing is downloaded):

=====================  ===============  ==========  ======================================
name                   source           split       what
=====================  ===============  ==========  ======================================
astronaut              scikit-image     train       portrait, 512x512
chelsea                scikit-image     train       a cat, 451x300
rocket                 scikit-image     train       a launch, 640x427
motorcycle_left        scikit-image     train       a motorbike in a room, 741x500
china                  scikit-learn     train       a temple, 640x427
hubble_deep_field      scikit-image     train       galaxies, 1000x872
retina                 scikit-image     train       a fundus photo, 1411x1411
ihc                    scikit-image     train       stained tissue, 512x512
coffee                 scikit-image     test        a cup on a table, 600x400
flower                 scikit-learn     test        a flower, 640x427
=====================  ===============  ==========  ======================================

Held-out evaluation uses whole photos the training crops never came from (``split="test"``), so a held-out
score measures generalisation to new scenes, not to new crops of seen ones.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["Photo", "PHOTOS", "natural_photos", "random_crops", "photo_bank", "load_image", "as_rgb"]

#: name -> (package, file, split)
PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "astronaut.png", "train"),
    "chelsea": ("skimage", "chelsea.png", "train"),
    "rocket": ("skimage", "rocket.jpg", "train"),
    "motorcycle_left": ("skimage", "motorcycle_left.png", "train"),
    "china": ("sklearn", "china.jpg", "train"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg", "train"),
    "retina": ("skimage", "retina.jpg", "train"),
    "ihc": ("skimage", "ihc.png", "train"),
    "coffee": ("skimage", "coffee.png", "test"),
    "flower": ("sklearn", "flower.jpg", "test"),
}
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Photo:
    name: str
    source: str  #: "scikit-image" or "scikit-learn"
    image: torch.Tensor  #: uint8 (3, H, W) RGB


def _package_file(package: str, name: str) -> Path:
    if package == "skimage":
        try:
            import skimage.data
        except ImportError:
            raise UserError("the offline photos need scikit-image: pip install scikit-image") from None
        return Path(skimage.data.__file__).parent / name
    import sklearn.datasets
    return Path(sklearn.datasets.__file__).parent / "images" / name


def as_rgb(array: np.ndarray, what: str = "image") -> torch.Tensor:
    """An ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 array -> uint8 ``(3, H, W)`` RGB.

    Grey is repeated over the three channels; RGBA is composited on white (transparent pixels become white).
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise UserError(f"{what} has dtype {array.dtype}; expected uint8 0..255 (scale floats in [0, 1] by 255)")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 2:  # grey + alpha
        array = np.concatenate([np.repeat(array[..., :1], 3, axis=2), array[..., 1:]], axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise UserError(f"{what} has shape {array.shape}; expected (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA")
    if array.shape[2] == 4:
        alpha = array[..., 3:].astype(np.float32) / 255.0
        array = np.round(array[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1).contiguous()


def load_image(path: str | Path, min_size: int = 16) -> torch.Tensor:
    """Any image file PIL reads -> uint8 ``(3, H, W)`` RGB (see ``as_rgb``); a ``UserError`` if it cannot be read
    or is smaller than ``min_size`` pixels on a side."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image file {path} does not exist")
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in ("L", "LA", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"cannot read {path} as an image ({error}); give a PNG or JPEG file") from None
    if array.dtype != np.uint8:  # 16-bit grey and the like
        array = (array.astype(np.float64) / max(float(array.max()), 1.0) * 255).round().astype(np.uint8)
    image = as_rgb(array, str(path))
    if min(image.shape[1:]) < min_size:
        raise UserError(f"{path} is {image.shape[2]}x{image.shape[1]} pixels; use an image of at least "
                        f"{min_size}x{min_size}")
    return image


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> Photo:
    package, file, _ = PHOTOS[name]
    image = load_image(_package_file(package, file))
    return Photo(name, "scikit-image" if package == "skimage" else "scikit-learn", image)


def natural_photos(split: str = "train") -> list[Photo]:
    """The shipped RGB photos of ``split`` (``"train"``, ``"test"`` or ``"all"``), in the table's order."""
    if split not in SPLITS:
        raise UserError(f"unknown photo split {split!r}; use one of {SPLITS}")
    return [_photo(name) for name, (_, _, s) in PHOTOS.items() if split in ("all", s)]


def random_crops(images: Sequence[torch.Tensor], n: int, size: int, generator: torch.Generator, flip: bool = True,
                 min_scale: float = 0.25) -> torch.Tensor:
    """``n`` random square crops of ``images`` (each uint8 ``(3, H, W)``), resized to ``size``: uint8 ``(n, 3, size, size)``.

    Per crop: a photo uniformly, a side uniformly in ``[min_scale, 1]`` of its shorter side, a position
    uniformly, area (anti-aliased) resizing, and a horizontal flip with probability 1/2 when ``flip``.
    Deterministic given ``generator``'s state (a CPU generator).
    """
    if not images:
        raise UserError("random_crops needs at least one image")
    if size < 1 or n < 0:
        raise UserError(f"random_crops needs size >= 1 and n >= 0; got size={size}, n={n}")
    if not 0 < min_scale <= 1:
        raise UserError(f"min_scale must be in (0, 1]; got {min_scale}")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    draws = torch.rand(n, 5, generator=generator)
    for k in range(n):
        which, scale, top, left, flip_draw = draws[k].tolist()
        image = images[min(int(which * len(images)), len(images) - 1)]
        height, width = image.shape[1:]
        side = max(1, round(min(height, width) * (min_scale + (1 - min_scale) * scale)))
        y, x = int(top * (height - side + 1)), int(left * (width - side + 1))
        crop = image[:, y:y + side, x:x + side].float()[None]
        resized = F.interpolate(crop, size=(size, size), mode="area" if side >= size else "bilinear",
                                **({} if side >= size else {"align_corners": False}))
        if flip and flip_draw < 0.5:
            resized = resized.flip(-1)
        out[k] = resized[0].round_().clamp_(0, 255).to(torch.uint8)
    return out


def photo_bank(split: str, n: int, size: int, seed: int = 0, min_scale: float = 0.25) -> torch.Tensor:
    """``n`` crops of the ``split`` photos, uint8 ``(n, 3, size, size)``, the same for the same arguments."""
    generator = torch.Generator().manual_seed(seed)
    return random_crops([p.image for p in natural_photos(split)], n, size, generator, min_scale=min_scale)

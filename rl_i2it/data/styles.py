"""Style images for style transfer, all offline: photos and textures shipped by scikit-image and scikit-learn,
and procedural styles rendered by code at any size.

=================  ============  ===================================================================
name               kind          what it is (source)
=================  ============  ===================================================================
``mosaic``         procedural    Voronoi cells in a warm palette with dark leading (stained glass)
``waves``          procedural    warped sine bands through an ocean palette (a Hokusai-like rhythm)
``stripes``        procedural    wobbly diagonal stripes in a sunset palette
``noise``          procedural    multi-octave value noise through a forest palette (marbling)
``dots``           procedural    a halftone grid of dots of varying size, two colours per dot
``chelsea``        photo         Chelsea the cat (scikit-image ``chelsea.png``)
``coffee``         photo         a cup of coffee (scikit-image ``coffee.png``)
``hubble``         photo         the Hubble deep field (scikit-image ``hubble_deep_field.jpg``)
``ihc``            photo         an immunohistochemistry slide (scikit-image ``ihc.png``)
``rocket``         photo         a rocket launch (scikit-image ``rocket.jpg``)
``china``          photo         a Chinese temple (scikit-learn ``china.jpg``)
``flower``         photo         a flower (scikit-learn ``flower.jpg``)
``brick``          texture       a brick wall, grey (scikit-image ``brick.png``; converted to RGB)
``grass``          texture       grass, grey (scikit-image ``grass.png``; converted to RGB)
``gravel``         texture       gravel, grey (scikit-image ``gravel.png``; converted to RGB)
=================  ============  ===================================================================

API (stable; the image and video style tasks both use it):

==========================================  ==============================================================
call                                        returns
==========================================  ==============================================================
``style_image(name, size)``                 uint8 ``(3, size, size)``: a name above, or the path of an
                                            image file (grey and RGBA are converted, see ``as_rgb``)
``style_images(names, size)``               uint8 ``(N, 3, size, size)``, in the order given
``as_rgb(image, what, min_size)``           uint8 ``(3, H, W)`` RGB from a NumPy/torch image: grey
                                            ``(H, W)``/``(1, H, W)``/``(H, W, 1)`` repeated to three
                                            channels, RGBA composited over white, bool/float [0, 1]
                                            scaled; a one-line ``UserError`` if smaller than ``min_size``
``square_resize(image, size)``              uint8 ``(3, size, size)``: centre square crop, antialiased resize
``STYLES``                                  name -> ``StyleSpec`` (kind, source, description)
==========================================  ==============================================================

Procedural styles are drawn in coordinates relative to the image, so a style looks the same at 64 px and
at 256 px (only sharper); each is deterministic (its random numbers come from a generator seeded by its
name). Photos and textures are centre-cropped to a square and resized with antialiasing. Licences:
scikit-image's and scikit-learn's sample images are public domain or freely licensed (see
``skimage/data/README.txt`` and scikit-learn's ``load_sample_images``); procedural ones are made by code.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from . import photos

__all__ = ["StyleSpec", "STYLES", "STYLE_NAMES", "PROCEDURAL_STYLES", "DEFAULT_STYLE", "MIN_STYLE_SIZE",
           "style_image", "style_images", "check_style", "as_rgb", "square_resize", "procedural_style"]

MIN_STYLE_SIZE = 16  #: px; a style image's shorter side must reach this (a Gram matrix of a few pixels is noise)
DEFAULT_STYLE = "mosaic"


@dataclass(frozen=True)
class StyleSpec:
    name: str
    kind: str  # "procedural", "photo" or "texture"
    source: str  # where the pixels come from
    description: str


_SKIMAGE = {"chelsea": ("chelsea", "photo", "Chelsea the cat"), "coffee": ("coffee", "photo", "a cup of coffee"),
            "hubble": ("hubble_deep_field", "photo", "the Hubble deep field"),
            "ihc": ("immunohistochemistry", "photo", "an immunohistochemistry slide"),
            "rocket": ("rocket", "photo", "a rocket launch"),
            "brick": ("brick", "texture", "a brick wall (grey)"), "grass": ("grass", "texture", "grass (grey)"),
            "gravel": ("gravel", "texture", "gravel (grey)")}
_SKLEARN = {"china": ("china.jpg", "a Chinese temple"), "flower": ("flower.jpg", "a flower")}
_PROCEDURAL_TEXT = {"mosaic": "Voronoi cells in a warm palette with dark leading (stained glass)",
                    "waves": "warped sine bands through an ocean palette",
                    "stripes": "wobbly diagonal stripes in a sunset palette",
                    "noise": "multi-octave value noise through a forest palette (marbling)",
                    "dots": "a halftone grid of dots of varying size"}
PROCEDURAL_STYLES = tuple(_PROCEDURAL_TEXT)

STYLES: dict[str, StyleSpec] = {
    **{n: StyleSpec(n, "procedural", "rl_i2it.data.styles (code)", t) for n, t in _PROCEDURAL_TEXT.items()},
    **{n: StyleSpec(n, kind, f"scikit-image skimage.data.{f}()", t) for n, (f, kind, t) in _SKIMAGE.items()},
    **{n: StyleSpec(n, "photo", f"scikit-learn datasets/images/{f}", t) for n, (f, t) in _SKLEARN.items()},
}
STYLE_NAMES = tuple(STYLES)

_PALETTES = {  # RGB in 0..1, dark to light
    "warm": [(0.45, 0.05, 0.05), (0.85, 0.25, 0.1), (0.95, 0.65, 0.1), (0.2, 0.35, 0.65), (0.95, 0.9, 0.7)],
    "ocean": [(0.02, 0.08, 0.25), (0.05, 0.3, 0.55), (0.35, 0.6, 0.8), (0.85, 0.92, 0.95)],
    "sunset": [(0.25, 0.05, 0.3), (0.75, 0.2, 0.35), (0.98, 0.55, 0.2), (0.99, 0.85, 0.45)],
    "forest": [(0.05, 0.15, 0.08), (0.2, 0.4, 0.15), (0.6, 0.55, 0.25), (0.9, 0.85, 0.6)],
}


# ----------------------------------------------------------------------------------------------- checks
def as_rgb(image, what: str = "style image", min_size: int = MIN_STYLE_SIZE) -> torch.Tensor:
    """Any common image layout -> uint8 ``(3, H, W)`` RGB (a new tensor on the CPU).

    Accepts NumPy arrays or torch tensors: ``(H, W)`` grey, ``(H, W, C)`` (as image files load) or
    ``(C, H, W)`` (torch's layout) with C in 1 (grey: repeated), 2 (grey + alpha), 3 (RGB) or 4 (RGBA: composited
    over white, as ``data.photos.as_rgb`` does); uint8 0..255, bool, or float in [0, 1]. Raises a one-line
    ``UserError`` naming ``what`` otherwise, or when the shorter side is below ``min_size``.
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (2, 3, 4)):
        raise UserError(f"{what} has shape {tuple(array.shape)}; expected an image (H, W), (H, W, C) or (C, H, W) "
                        f"with 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels")
    if array.dtype == np.bool_:
        array = array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (np.isnan(array).any() or array.min() < 0 or array.max() > 1):
            raise UserError(f"{what} is float with values outside [0, 1]; scale it to [0, 1] or pass uint8 0..255")
        array = np.round(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise UserError(f"{what} has dtype {array.dtype} with values outside 0..255; convert it to uint8")
        array = array.astype(np.uint8)
    rgb = photos.as_rgb(array, what)
    height, width = rgb.shape[1:]
    if min(height, width) < min_size:
        raise UserError(f"{what} is {height}x{width} pixels; it needs at least {min_size}x{min_size} (VGG features of "
                        f"a few pixels carry no style): use a larger image")
    return rgb


def square_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> uint8 ``(3, size, size)``: the centred square crop, resized with antialiasing."""
    if size < MIN_STYLE_SIZE:
        raise UserError(f"style size {size} is below {MIN_STYLE_SIZE} px; use a larger image_size")
    _, height, width = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[:, top:top + side, left:left + side].float()[None]
    if side != size:
        square = F.interpolate(square, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)
    return square[0].round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------- procedural
def _generator(name: str) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(zlib.crc32(f"rl_i2it-style-{name}".encode()))
    return generator


def _through_palette(value: torch.Tensor, palette: str) -> torch.Tensor:
    """``(H, W)`` in [0, 1] -> ``(3, H, W)``: piecewise-linear interpolation between the palette's colours."""
    colours = torch.tensor(_PALETTES[palette])  # (K, 3)
    position = value.clamp(0, 1) * (len(colours) - 1)
    low = position.floor().long().clamp(max=len(colours) - 2)
    frac = (position - low)[..., None]
    return (colours[low] * (1 - frac) + colours[low + 1] * frac).permute(2, 0, 1)


def _value_noise(size: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """Smooth noise ``(size, size)`` in about [-1, 1]: a ``cells``² random lattice, bicubically upsampled."""
    lattice = torch.rand(1, 1, cells, cells, generator=generator) * 2 - 1
    return F.interpolate(lattice, size=(size, size), mode="bicubic", align_corners=True)[0, 0]


def procedural_style(name: str, size: int) -> torch.Tensor:
    """One procedural style as uint8 ``(3, size, size)``; deterministic, the same picture at every size."""
    if name not in _PROCEDURAL_TEXT:
        raise UserError(f"unknown procedural style {name!r}; choose one of {', '.join(PROCEDURAL_STYLES)}")
    generator = _generator(name)
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # [0, 1)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    if name == "mosaic":
        seeds = torch.rand(48, 2, generator=generator)
        colours = torch.tensor(_PALETTES["warm"])[torch.randint(0, 5, (48,), generator=generator)]
        colours = colours * (0.8 + 0.4 * torch.rand(48, 1, generator=generator))
        distance = (torch.stack([y, x], -1)[..., None, :] - seeds).pow(2).sum(-1).sqrt()  # (S, S, 48)
        nearest = distance.topk(2, dim=-1, largest=False).values
        image = colours[distance.argmin(-1)].permute(2, 0, 1)
        lead = torch.sigmoid((nearest[..., 1] - nearest[..., 0] - 0.012) * 400.0)  # 0 on the cell borders
        image = image * lead + 0.08 * (1 - lead)
    elif name == "waves":
        warp = 0.08 * _value_noise(size, 5, generator)
        value = 0.5 + 0.5 * torch.sin(2 * math.pi * (7 * (y + warp) + 0.8 * torch.sin(2 * math.pi * 2 * x)))
        foam = (torch.sin(2 * math.pi * 23 * (x + y + warp)) > 0.85).float() * 0.3
        image = _through_palette(value * 0.85 + foam, "ocean")
    elif name == "stripes":
        wobble = 0.03 * torch.sin(2 * math.pi * 3 * (x - y)) + 0.02 * _value_noise(size, 7, generator)
        band = ((x + y + wobble) * 9).floor() % 4 / 3  # four colours in turn
        image = _through_palette(band, "sunset")
    elif name == "noise":
        value = sum(_value_noise(size, cells, generator) / k for k, cells in enumerate((4, 8, 16, 32), start=1))
        value = 0.5 + 0.5 * torch.sin(4.0 * value + 6 * x)  # marbled veins
        image = _through_palette(value, "forest")
    else:  # dots
        grid = 12
        cy, cx = (y * grid) % 1 - 0.5, (x * grid) % 1 - 0.5
        radius = 0.18 + 0.25 * (0.5 + 0.5 * torch.sin(2 * math.pi * (x + 0.5 * y)))
        inside = torch.sigmoid((radius - (cx ** 2 + cy ** 2).sqrt()) * size / grid * 2)
        dot = torch.tensor(_PALETTES["sunset"][0]).view(3, 1, 1)
        paper = torch.tensor(_PALETTES["ocean"][3]).view(3, 1, 1)
        image = dot * inside + paper * (1 - inside)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


# ----------------------------------------------------------------------------------------------- loading
def _shipped_image(name: str) -> np.ndarray:
    if name in _SKIMAGE:
        import skimage.data

        return getattr(skimage.data, _SKIMAGE[name][0])()
    from sklearn.datasets import load_sample_image

    return load_sample_image(_SKLEARN[name][0])


def style_image(name: str | Path, size: int) -> torch.Tensor:
    """uint8 ``(3, size, size)``: a style by name (see the table) or the path of an image file."""
    if size < MIN_STYLE_SIZE:
        raise UserError(f"style size {size} is below {MIN_STYLE_SIZE} px; use a larger image_size")
    check_style(name)
    key = str(name)
    if key in _PROCEDURAL_TEXT:
        return procedural_style(key, size)
    if key in STYLES:
        return square_resize(as_rgb(_shipped_image(key), f"style image {key!r}"), size)
    return square_resize(photos.load_image(Path(key).expanduser(), MIN_STYLE_SIZE), size)


def check_style(name: str | Path) -> None:
    """A one-line ``UserError`` unless ``name`` is a style name or an existing file (read when it loads)."""
    key = str(name)
    if key not in STYLES and not Path(key).expanduser().is_file():
        raise UserError(f"unknown style {key!r}: neither a style name ({', '.join(STYLE_NAMES)}) nor an image file")


def style_images(names, size: int) -> torch.Tensor:
    """uint8 ``(N, 3, size, size)``: ``style_image`` of each name (or path), in order."""
    if isinstance(names, (str, Path)):
        names = [names]
    names = list(names)
    if not names:
        raise UserError("no style given; name at least one of: " + ", ".join(STYLE_NAMES))
    return torch.stack([style_image(name, size) for name in names])

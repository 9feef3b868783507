"""Paired image sets for photo translation: two generated offline, and a reader for pix2pix's real ones.

=========================================  ================================================================
call                                       returns
=========================================  ================================================================
``facades_synth(n, size, split, seed)``    ``PairedSet``: procedural facade label maps -> rendered photos
``edges2photo(n, size, split, seed)``      ``PairedSet``: Canny edge maps -> photos (natural + procedural)
``load_pix2pix(path, split, size, ...)``   ``PairedSet`` from pix2pix's aligned ``A|B`` image folders
``split_ab(image)``                        ``(A, B)``: the left and right halves of one ``A|B`` image
``load_paired(dataset, split, size, n)``   dispatch on ``edges2photo`` | ``facades_synth`` | ``pix2pix:PATH``
``check_pairs(source, target)``            a one-line ``UserError`` unless both are uint8 ``(N, 3, S, S)``
=========================================  ================================================================

A ``PairedSet`` holds ``source`` and ``target``, uint8 ``(N, 3, S, S)`` RGB, row k of one aligned with row k of
the other (the same scene, pixel for pixel), plus where it came from. No pix2pix set ships in any package, so
the two generated sets are made the way pix2pix's were:

- **facades_synth** (cf. CMP Facades): a procedural generator draws a label map (sky, wall, windows, doors,
  balconies, cornices, sills; colours in ``FACADE_PALETTE``) on a grid of floors and bays, then renders a photo
  from that same map (plaster or brick, glass with reflections and frames, wooden doors, railings, shadows
  under cornices, light falloff, noise), at twice the size and area-downsampled. Facade k depends only on
  ``(seed, split, k)``; the test split is a disjoint seed stream.
- **edges2photo** (cf. edges2shoes/handbags, whose edges came from HED): half random crops (with flips) of the
  natural photos that ship with scikit-image and scikit-learn (``data/photos.py``; train and test are different
  photos), half procedural scenes (shaded shapes on gradients); the source is the Canny edge map drawn black
  on white. Canny is scikit-image's ``feature.canny`` on the CPU, once, when the set is generated: real Canny
  (Gaussian smoothing, non-maximum suppression, hysteresis) gives thin, connected one-pixel contours like the
  sets' edge maps; a Sobel magnitude with one threshold gives thick, broken ones; and it costs about a
  millisecond per 64 px image, outside the training loop (the env only ever reads the finished bank).

``load_pix2pix`` reads ``PATH/<split>/*.jpg`` (or png) as pix2pix's ``aligned`` dataset: each file is A and B
side by side (width = 2 x height); A is the left half. Direction: pix2pix's facades are photo|label (the
label -> photo task is ``BtoA``), edges2shoes and cityscapes are edges|photo and photo|label; ``direction="auto"``
picks ``BtoA`` for a folder whose name contains ``facades`` or ``cityscapes`` and ``AtoB`` otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["PairedSet", "FACADE_PALETTE", "FACADE_CLASSES", "facades_synth", "facade_labels", "edges2photo",
           "procedural_scenes", "edge_map", "load_pix2pix", "split_ab", "load_paired", "check_pairs", "check_dataset",
           "DATASETS"]

DATASETS = ("edges2photo", "facades_synth", "pix2pix:PATH")
_SPLITS = ("train", "test")
_SPLIT_STREAM = {"train": 0, "test": 1}

FACADE_CLASSES = ("sky", "wall", "cornice", "window", "sill", "door", "balcony")
#: label colours (RGB), one per class of ``FACADE_CLASSES``, in the spirit of CMP Facades' blue-based palette
FACADE_PALETTE = np.array([(0, 0, 170), (0, 60, 255), (255, 85, 0), (0, 170, 255), (170, 255, 85),
                           (255, 170, 0), (170, 0, 0)], dtype=np.uint8)


@dataclass(frozen=True)
class PairedSet:
    name: str  #: e.g. "facades_synth", "edges2photo" or "pix2pix:facades"
    split: str
    source: torch.Tensor  #: uint8 (N, 3, S, S): label maps / edge maps
    target: torch.Tensor  #: uint8 (N, 3, S, S): the photos, aligned with ``source``
    note: str  #: where the pairs came from, for figures and result files


def check_pairs(source: torch.Tensor, target: torch.Tensor, size: int | None = None) -> None:
    """Both uint8 ``(N, 3, S, S)`` with the same N and S (and S = ``size`` if given); a one-line ``UserError``."""
    for what, images in (("source", source), ("target", target)):
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise UserError(f"{what} images have shape {shape}; expected uint8 (N, 3, S, S) RGB")
        if images.dtype != torch.uint8:
            raise UserError(f"{what} images have dtype {images.dtype}; convert them to uint8 in 0..255 "
                            f"(x.mul(255).round().to(torch.uint8) for floats in [0, 1])")
        if images.shape[2] != images.shape[3]:
            raise UserError(f"{what} images are {images.shape[3]}x{images.shape[2]}; pairs must be square S x S "
                            f"(crop or resize them)")
    if source.shape != target.shape:
        raise UserError(f"mismatched pair sizes: source {tuple(source.shape)} vs target {tuple(target.shape)}; "
                        f"every source needs a target of the same size")
    if size is not None and source.shape[-1] != size:
        raise UserError(f"pairs are {source.shape[-1]}x{source.shape[-1]}; this config uses {size}x{size}: resize "
                        f"them or set image_size={source.shape[-1]}")


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> uint8 ``(N, 3, size, size)``, area (anti-aliased) down, bilinear up."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    x = images.float()
    if min(images.shape[-2:]) >= size:
        x = F.interpolate(x, size=(size, size), mode="area")
    else:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _check_request(n: int, size: int, split: str) -> None:
    if n < 1:
        raise UserError(f"the number of pairs must be >= 1; got {n}")
    if size < 16:
        raise UserError(f"image size {size} is too small for paired photos; use at least 16")
    if split not in _SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {_SPLITS}")


# ============================================================================ procedural facades
def facade_labels(rng: np.random.Generator, size: int) -> np.ndarray:
    """One facade's class map, int ``(size, size)`` indices into ``FACADE_CLASSES``."""
    labels = np.full((size, size), FACADE_CLASSES.index("wall"), dtype=np.int64)
    roof = int(rng.uniform(0.0, 0.14) * size)
    labels[:roof] = FACADE_CLASSES.index("sky")
    floors = int(rng.integers(3, 7))
    bays = int(rng.integers(3, 7))
    floor_h = (size - roof) / floors
    bay_w = size / bays
    margin = rng.uniform(0.0, 0.4) * bay_w
    inner_w = (size - 2 * margin) / bays
    win_w = rng.uniform(0.4, 0.7) * inner_w
    win_h = rng.uniform(0.45, 0.65) * floor_h
    cornice_h = max(1, int(rng.uniform(0.03, 0.06) * size))
    door_bay = int(rng.integers(0, bays))
    shop_floor = rng.uniform() < 0.35

    def fill(y0, y1, x0, x1, cls):
        labels[max(0, int(round(y0))):max(0, int(round(y1))), max(0, int(round(x0))):max(0, int(round(x1)))] = \
            FACADE_CLASSES.index(cls)

    fill(roof, roof + cornice_h, 0, size, "cornice")  # the top cornice
    for f in range(floors):  # top floor first
        top = roof + f * floor_h
        ground = f == floors - 1
        if 0 < f and rng.uniform() < 0.4:  # a string course between floors
            fill(top, top + max(1, cornice_h // 2), 0, size, "cornice")
        balcony = not ground and rng.uniform() < 0.35
        for b in range(bays):
            centre = margin + (b + 0.5) * inner_w
            if ground and b == door_bay:
                door_w = min(inner_w * 0.8, win_w * rng.uniform(1.0, 1.4))
                fill(top + floor_h * 0.2, top + floor_h, centre - door_w / 2, centre + door_w / 2, "door")
                continue
            if ground and shop_floor:
                y0, y1, w = top + floor_h * 0.25, top + floor_h * 0.9, inner_w * 0.8
            else:
                y0 = top + (floor_h - win_h) * 0.55
                y1, w = y0 + win_h, win_w
            fill(y0, y1, centre - w / 2, centre + w / 2, "window")
            if not (ground and shop_floor):
                fill(y1, y1 + max(1, floor_h * 0.05), centre - w / 2 - 1, centre + w / 2 + 1, "sill")
            if balcony:
                fill(y1 - win_h * 0.3, y1 + floor_h * 0.08, centre - w / 2 - bay_w * 0.1, centre + w / 2 + bay_w * 0.1,
                     "balcony")
    return labels


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise: a ``cells x cells`` random grid bilinearly upsampled to ``(size, size)``, in [-1, 1]."""
    grid = torch.from_numpy(rng.uniform(-1, 1, (1, 1, cells, cells)).astype(np.float32))
    return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)[0, 0].numpy()


def _render_facade(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """The photo of a class map: float ``(size, size, 3)`` in [0, 1]."""
    size = labels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cls = {name: labels == k for k, name in enumerate(FACADE_CLASSES)}
    image = np.zeros((size, size, 3), np.float32)
    wall_colours = np.array([(0.85, 0.80, 0.70), (0.75, 0.45, 0.35), (0.80, 0.72, 0.50), (0.65, 0.65, 0.65),
                             (0.92, 0.90, 0.86), (0.60, 0.40, 0.30), (0.85, 0.70, 0.55)], np.float32)
    wall = wall_colours[rng.integers(len(wall_colours))] * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    texture = 0.06 * _smooth_noise(rng, size, 8) + 0.03 * rng.standard_normal((size, size)).astype(np.float32)
    wall_img = wall[None, None] * (1 + texture[..., None])
    if rng.uniform() < 0.35:  # brick courses
        course = max(2, size // 40)
        wall_img *= np.where((np.arange(size) % course) == 0, 0.82, 1.0)[:, None, None].astype(np.float32)
    image[cls["wall"]] = wall_img[cls["wall"]]
    sky = np.stack([0.55 + 0.2 * yy, 0.7 + 0.15 * yy, np.full_like(yy, 0.95)], -1)
    image[cls["sky"]] = sky[cls["sky"]]
    image[cls["cornice"]] = np.clip(wall * 1.15 + 0.05, 0, 1)
    image[cls["sill"]] = np.array((0.88, 0.86, 0.82), np.float32)
    glass_tint = np.array((0.15, 0.2, 0.28), np.float32) * rng.uniform(0.7, 1.3)
    reflection = 0.25 * np.clip(_smooth_noise(rng, size, 4) + (0.5 - yy) * 0.6, -0.2, 1)
    glass = glass_tint[None, None] + reflection[..., None] * np.array((0.8, 0.9, 1.0), np.float32)
    image[cls["window"]] = glass[cls["window"]]
    wood = np.array((0.40, 0.24, 0.12), np.float32) * rng.uniform(0.7, 1.3)
    panels = 1 + 0.15 * np.sin(xx * size * 0.9)
    image[cls["door"]] = (wood[None, None] * panels[..., None])[cls["door"]]
    railing = np.array((0.18, 0.18, 0.2), np.float32)
    bars = np.where((np.arange(size) % max(2, size // 32)) == 0, 0.6, 1.0).astype(np.float32)
    railings = railing[None, None] * bars[None, :, None] + 0.35 * wall[None, None] * (1 - bars[None, :, None])
    image[cls["balcony"]] = np.broadcast_to(railings, image.shape)[cls["balcony"]]
    # frames: a light border inside each window (pixels of a window next to a non-window pixel)
    window = cls["window"]
    edge = window & ~(np.roll(window, 1, 0) & np.roll(window, -1, 0) & np.roll(window, 1, 1) & np.roll(window, -1, 1))
    image[edge] = np.array((0.9, 0.9, 0.88), np.float32)
    # shadows under cornices and sills and inside the top of windows and doors
    solid = cls["cornice"] | cls["sill"] | cls["balcony"]
    shade = np.zeros((size, size), np.float32)
    depth = max(1, size // 48)
    for d in range(1, depth + 2):
        shade = np.maximum(shade, np.roll(solid, d, 0) * (0.35 / d))
    shade *= ~solid
    image *= (1 - shade)[..., None]
    light = 1 + rng.uniform(-0.15, 0.15) * (xx - 0.5) + rng.uniform(-0.1, 0.1) * (yy - 0.5)
    image *= light[..., None]
    image += 0.015 * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def facades_synth(n: int, size: int = 64, split: str = "train", seed: int = 0, start: int = 0) -> PairedSet:
    """``n`` procedural facades (label map -> photo); facade k depends only on ``(seed, split, start + k)``."""
    _check_request(n, size, split)
    sources, targets = [], []
    for k in range(start, start + n):
        rng = np.random.default_rng([seed, _SPLIT_STREAM[split], k, 0xFACADE])
        labels = facade_labels(rng, 2 * size)  # drawn and rendered at twice the size, then area-downsampled
        photo = _render_facade(rng, labels)
        sources.append(torch.from_numpy(FACADE_PALETTE[labels]).permute(2, 0, 1))
        targets.append(torch.from_numpy((photo * 255).round().astype(np.uint8)).permute(2, 0, 1))
    # label maps: nearest (every pixel keeps a palette colour); photos: area (anti-aliased)
    source = torch.stack(sources)[..., ::2, ::2].contiguous()
    target = _resize(torch.stack(targets), size)
    return PairedSet("facades_synth", split, source, target,
                     f"procedural facades (rl_i2it.data.paired), seed {seed}, {split} stream")


# ============================================================================ edges -> photo
def procedural_scenes(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` procedural RGB scenes, uint8 ``(n, 3, size, size)``: a colour gradient and 3-7 shaded shapes
    (ellipses, rectangles, triangles) with soft shading, so every edge is an object boundary."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for k in range(n):
        draw = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        a, b = draw(3), draw(3)
        direction = draw(1).item() * 2 * np.pi
        t = (xs * np.cos(direction) + ys * np.sin(direction)).clamp(0, 1)
        image = a[:, None, None] * (1 - t) + b[:, None, None] * t
        for _ in range(int(3 + draw(1).item() * 5)):
            cx, cy, rx, ry, kind = draw(5).tolist()
            rx, ry = 0.08 + 0.25 * rx, 0.08 + 0.25 * ry
            if kind < 0.4:
                mask = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
            elif kind < 0.75:
                mask = ((xs - cx).abs() <= rx) & ((ys - cy).abs() <= ry)
            else:  # a triangle: below the line through two corners, above the base
                mask = (ys <= cy + ry) & (ys - (cy - ry) >= (xs - cx).abs() * 2 * ry / rx)
            colour = draw(3)
            shading = 0.75 + 0.25 * (1 - ((xs - cx + rx / 2) ** 2 + (ys - cy + ry / 2) ** 2).sqrt() / (rx + ry))
            image = torch.where(mask, colour[:, None, None] * shading.clamp(0.5, 1.1), image)
        out[k] = image.clamp(0, 1).mul(255).round().to(torch.uint8)
    return out


def edge_map(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Canny edges of uint8 RGB ``(N, 3, S, S)`` drawn black on white: uint8 ``(N, 3, S, S)`` (scikit-image,
    CPU; ``sigma`` defaults to ``S / 64``, clamped to [1, 2], so the contours are alike at every size)."""
    from skimage.color import rgb2gray
    from skimage.feature import canny

    size = images.shape[-1]
    sigma = float(np.clip(size / 64, 1.0, 2.0)) if sigma is None else sigma
    out = torch.empty_like(images)
    for k, image in enumerate(images.cpu().numpy()):
        grey = rgb2gray(np.moveaxis(image, 0, -1))
        edges = canny(grey, sigma=sigma, low_threshold=0.05, high_threshold=0.12)
        out[k] = torch.from_numpy(np.where(edges, 0, 255).astype(np.uint8))[None].expand(3, -1, -1)
    return out


def edges2photo(n: int, size: int = 64, split: str = "train", seed: int = 0,
                photo_fraction: float = 0.5) -> PairedSet:
    """``n`` (edge map, photo) pairs: ``photo_fraction`` of them crops of the shipped photos of ``split``, the
    rest procedural scenes; deterministic per ``(n, size, split, seed)``."""
    from .photos import natural_photos, random_crops

    _check_request(n, size, split)
    generator = torch.Generator().manual_seed(int(seed) * 2 + _SPLIT_STREAM[split])
    photos = int(round(n * photo_fraction))
    crops = random_crops([p.image for p in natural_photos(split)], photos, size, generator, flip=True)
    scenes = procedural_scenes(n - photos, size, generator)
    # interleave photos and scenes so any prefix of the set has both kinds
    target = torch.cat([crops, scenes])[torch.randperm(n, generator=generator)]
    names = ", ".join(p.name for p in natural_photos(split))
    return PairedSet("edges2photo", split, edge_map(target), target,
                     f"Canny edges (scikit-image) of crops of {names} and of procedural scenes, seed {seed}")


# ============================================================================ pix2pix's aligned sets
def split_ab(image: torch.Tensor, what: str = "image") -> tuple[torch.Tensor, torch.Tensor]:
    """One ``A|B`` image, uint8 ``(3, H, 2H)`` -> ``(A, B)``, each ``(3, H, H)``: the left and right halves."""
    height, width = image.shape[-2:]
    if width != 2 * height:
        raise UserError(f"{what} is {width}x{height}; a pix2pix aligned image is A and B side by side, "
                        f"width = 2 x height (e.g. 512x256)")
    return image[..., :height], image[..., height:]


def _direction(path: Path, direction: str) -> str:
    if direction == "auto":
        name = path.name.lower()
        return "BtoA" if "facades" in name or "cityscapes" in name else "AtoB"
    if direction not in ("AtoB", "BtoA"):
        raise UserError(f"unknown direction {direction!r}; use AtoB, BtoA or auto")
    return direction


def load_pix2pix(path: str | Path, split: str = "train", size: int = 64, direction: str = "auto",
                 max_images: int | None = None) -> PairedSet:
    """pix2pix's aligned set at ``path`` (``path/<split>/*.jpg|png``, each ``A|B``): source and target uint8
    ``(N, 3, size, size)``, resized (area down, bilinear up); ``split="test"`` falls back to ``val``."""
    from .photos import load_image

    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"pix2pix dataset folder {root} does not exist; fetch one with "
                        f"python data_scripts/fetch_pix2pix.py facades (on a networked machine)")
    way = _direction(root, direction)
    folder = root / split
    if not folder.is_dir() and split == "test" and (root / "val").is_dir():
        folder = root / "val"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if folder.is_dir() else []
    if not files:
        raise UserError(f"no .jpg or .png files in {folder}; a pix2pix set has train/ and test/ (or val/) folders "
                        f"of A|B images")
    files = files[:max_images] if max_images else files
    a_images, b_images = [], []
    for file in files:
        a, b = split_ab(load_image(file), str(file))
        a_images.append(_resize(a[None], size)[0])
        b_images.append(_resize(b[None], size)[0])
    a, b = torch.stack(a_images), torch.stack(b_images)
    source, target = (a, b) if way == "AtoB" else (b, a)
    check_pairs(source, target, size)
    return PairedSet(f"pix2pix:{root.name}", split, source, target,
                     f"pix2pix aligned set {root} ({folder.name}, {len(files)} images, {way})")


def load_paired(dataset: str, split: str, size: int, n: int, seed: int = 0, direction: str = "auto") -> PairedSet:
    """The pairs of ``dataset`` (``edges2photo``, ``facades_synth`` or ``pix2pix:PATH``): ``n`` generated ones,
    or up to ``n`` of a pix2pix folder's (all of them for ``n=0``)."""
    check_dataset(dataset)
    if dataset == "edges2photo":
        return edges2photo(n, size, split, seed)
    if dataset == "facades_synth":
        return facades_synth(n, size, split, seed)
    return load_pix2pix(dataset[len("pix2pix:"):], split, size, direction, max_images=n or None)


def check_dataset(dataset: str) -> None:
    """A one-line ``UserError`` unless ``dataset`` names a generated set or ``pix2pix:PATH`` (the folder itself is
    checked when it loads)."""
    folder = dataset.startswith("pix2pix:") and len(dataset) > len("pix2pix:")
    if dataset in ("edges2photo", "facades_synth") or folder:
        return
    raise UserError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)} (PATH: a folder with "
                    f"train/ and test/ of A|B images)")

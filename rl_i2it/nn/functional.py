"""Pure tensor operations for N-dimensional (2-D and 3-D) image translation and registration.

Conventions (voxelmorph style):

=================  ===========================================================================
tensor             shape and meaning
=================  ===========================================================================
image              ``(B, C, *S)`` with ``S = (H, W)`` or ``(D, H, W)``; float
flow               ``(B, N, *S)`` with ``N = len(S)``: a displacement **in pixels**, channel k
                   moves along spatial axis k (so ``(row, col)`` in 2-D, ``(d, h, w)`` in 3-D)
mask               ``(B, 1, *S)`` or ``(B, *S)``; bool
=================  ===========================================================================

``warp(image, flow)(x) = image(x + flow(x))`` (a pull-back, sampled bilinearly).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "identity_grid",
    "warp",
    "compose_flow",
    "smoothness_loss",
    "jacobian_determinant",
    "folding_fraction",
    "ncc",
    "dice_score",
    "psnr",
    "integrate_velocity",
    "one_hot_labels",
    "warp_labels",
    "label_dice",
    "soft_dice",
]


def _check_flow(image: torch.Tensor, flow: torch.Tensor) -> int:
    ndim = flow.shape[1]
    if ndim not in (2, 3) or flow.dim() != ndim + 2:
        raise ValueError(f"flow must have shape (B, N, *S) with N = len(S) in (2, 3); got {tuple(flow.shape)}")
    if image.shape[2:] != flow.shape[2:] or image.shape[0] != flow.shape[0]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} disagree in batch or spatial size")
    return ndim


def identity_grid(spatial: tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates of every location.

    Returns ``(N, *S)``: channel k holds the index along spatial axis k.

    >>> identity_grid((2, 3))[1]
    tensor([[0., 1., 2.],
            [0., 1., 2.]])
    """
    axes = [torch.arange(n, device=device, dtype=dtype) for n in spatial]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """Resample ``image`` at ``x + flow(x)``.

    Parameters
    ----------
    image : ``(B, C, *S)`` float
    flow : ``(B, N, *S)`` pixel displacements, N = len(S)
    mode : ``"bilinear"`` (trilinear in 3-D) or ``"nearest"`` (for label maps)

    Returns
    -------
    ``(B, C, *S)``, same dtype as ``image``.

    >>> img = torch.rand(1, 1, 5, 5)
    >>> torch.allclose(warp(img, torch.zeros(1, 2, 5, 5)), img, atol=1e-6)
    True
    """
    ndim = _check_flow(image, flow)
    spatial = flow.shape[2:]
    locations = identity_grid(tuple(spatial), flow.device, flow.dtype) + flow  # (B, N, *S)
    # normalise each axis to [-1, 1] (align_corners=True: -1 and 1 are the centres of the end pixels)
    scale = torch.tensor([2.0 / max(n - 1, 1) for n in spatial], device=flow.device, dtype=flow.dtype)
    normalised = locations * scale.view(1, ndim, *([1] * ndim)) - 1.0
    # grid_sample wants (B, *S, N) with the last axis ordered (x, y[, z]) = reversed spatial axes
    grid = normalised.permute(0, *range(2, ndim + 2), 1).flip(-1)
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode=padding_mode, align_corners=True)


def compose_flow(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The single displacement that equals warping by ``first`` and then by ``second``.

    ``warp(warp(img, first), second) ≈ warp(img, compose_flow(first, second))``, exact up to interpolation;
    ``compose_flow(first, second)(x) = second(x) + first(x + second(x))``.

    Shapes: ``(B, N, *S)`` in, ``(B, N, *S)`` out.
    """
    return second + warp(first, second, padding_mode="border")


def _spatial_differences(field: torch.Tensor) -> list[torch.Tensor]:
    """Forward differences along each spatial axis of ``(B, C, *S)``."""
    ndim = field.dim() - 2
    return [torch.diff(field, dim=2 + k) for k in range(ndim)]


def smoothness_loss(flow: torch.Tensor) -> torch.Tensor:
    """Mean squared spatial gradient of a flow (the voxelmorph ``Grad('l2')`` regulariser).

    ``(B, N, *S)`` -> scalar.
    """
    diffs = _spatial_differences(flow)
    return sum(d.pow(2).mean() for d in diffs) / len(diffs)


def jacobian_determinant(flow: torch.Tensor) -> torch.Tensor:
    """Determinant of the Jacobian of the map ``x -> x + flow(x)`` (central differences).

    ``(B, N, *S)`` -> ``(B, *S)``; 1 everywhere for the identity, <= 0 where the map folds.
    """
    ndim = flow.shape[1]
    if flow.dim() != ndim + 2:
        raise ValueError(f"flow must have shape (B, N, *S) with N = len(S); got {tuple(flow.shape)}")
    # grads[i][:, k] = d flow_i / d x_k
    grads = torch.stack(torch.gradient(flow, dim=tuple(range(2, ndim + 2))), dim=2)  # (B, N, N, *S)
    eye = torch.eye(ndim, device=flow.device, dtype=flow.dtype).view(1, ndim, ndim, *([1] * ndim))
    jac = (grads + eye).permute(0, *range(3, ndim + 3), 1, 2)  # (B, *S, N, N)
    return torch.linalg.det(jac)


def folding_fraction(flow: torch.Tensor) -> torch.Tensor:
    """Fraction of locations whose Jacobian determinant is <= 0. ``(B, N, *S)`` -> ``(B,)``."""
    det = jacobian_determinant(flow)
    return (det <= 0).flatten(1).float().mean(1)


def ncc(a: torch.Tensor, b: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Local normalised cross-correlation, averaged over locations and channels.

    For every ``window``-wide box: ``(cov + eps) / sqrt((var_a + eps) * (var_b + eps))``. The explicit
    ``eps`` makes two flat patches count as equal (1) and a flat patch against a textured one as
    uncorrelated (~0), and keeps the value in ``[-1, 1]`` (Cauchy-Schwarz; clamped against rounding).

    Parameters
    ----------
    a, b : ``(B, C, *S)`` float images on the same scale (e.g. [0, 1])
    window : box width (odd); shrunk to the smallest spatial size when that is smaller

    Returns
    -------
    ``(B,)``: 1 for identical images. Use ``-ncc(...).mean()`` as a loss.
    """
    if a.shape != b.shape:
        raise ValueError(f"ncc needs equal shapes; got {tuple(a.shape)} and {tuple(b.shape)}")
    ndim = a.dim() - 2
    pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[ndim]
    smallest = min(a.shape[2:])
    window = min(window, smallest if smallest % 2 else smallest - 1)  # pooling needs window <= image size
    pad = window // 2
    # one pooling call for all five local moments
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    moments = pool(stacked, window, stride=1, padding=pad, count_include_pad=False)
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = moments.chunk(5, dim=1)
    var_a = (mean_aa - mean_a * mean_a).clamp_min(0)
    var_b = (mean_bb - mean_b * mean_b).clamp_min(0)
    cov = mean_ab - mean_a * mean_b
    cc = (cov + eps) / torch.sqrt((var_a + eps) * (var_b + eps))
    return cc.clamp(-1.0, 1.0).flatten(1).mean(1)


def dice_score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dice overlap of boolean masks, per batch element; 1 when both are empty.

    ``(B, ...)`` bool -> ``(B,)`` float. Thresholded: a reward and a metric, never a loss (no gradient).
    """
    if a.shape != b.shape:
        raise ValueError(f"dice_score needs equal shapes; got {tuple(a.shape)} and {tuple(b.shape)}")
    a = a.flatten(1).float()
    b = b.flatten(1).float()
    intersection = (a * b).sum(1)
    total = a.sum(1) + b.sum(1)
    return torch.where(total > 0, 2 * intersection / total.clamp_min(1), torch.ones_like(total))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per batch element, in dB. ``(B, ...)`` -> ``(B,)``."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))



def integrate_velocity(velocity: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Exponentiate a stationary velocity field by scaling and squaring: a diffeomorphic displacement.

    ``phi = exp(v)``: start from ``v / 2**steps`` and compose the field with itself ``steps`` times.
    ``exp(-v)`` is then (up to interpolation) the inverse of ``exp(v)``. ``(B, N, *S)`` -> ``(B, N, *S)``.
    """
    flow = velocity / (2**steps)
    for _ in range(steps):
        flow = compose_flow(flow, flow)
    return flow


def one_hot_labels(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Integer label maps ``(B, 1, *S)`` (0 = background) -> float one-hot ``(B, num_labels + 1, *S)``."""
    if labels.dim() < 4 or labels.shape[1] != 1:
        raise ValueError(f"label maps must have shape (B, 1, *S); got {tuple(labels.shape)}")
    hot = F.one_hot(labels[:, 0].long(), num_labels + 1)  # (B, *S, L+1)
    return hot.movedim(-1, 1).float()


def warp_labels(labels: torch.Tensor, flow: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Warp a label map by warping its one-hot channels bilinearly and taking the argmax.

    ``labels`` ``(B, 1, *S)`` integer, ``flow`` ``(B, N, *S)`` -> ``(B, 1, *S)`` uint8. Smoother than
    nearest-neighbour warping, and the same soft warp gives a differentiable overlap (``soft_dice``).
    """
    soft = warp(one_hot_labels(labels, num_labels), flow)
    return soft.argmax(1, keepdim=True).to(torch.uint8)


def label_dice(a: torch.Tensor, b: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Dice of every foreground label of two label maps ``(B, 1, *S)`` -> ``(B, num_labels)``."""
    return torch.stack([dice_score(a == k, b == k) for k in range(1, num_labels + 1)], dim=1)


def soft_dice(soft_a: torch.Tensor, soft_b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Differentiable Dice of soft label maps ``(B, L + 1, *S)`` (channel 0 = background, skipped).

    Returns ``(B, L)``; ``1 - soft_dice(...).mean()`` is an overlap loss (DESIGN §5: thresholded Dice
    has no gradient; softly warped one-hot labels do).
    """
    a, b = soft_a[:, 1:].flatten(2), soft_b[:, 1:].flatten(2)
    return (2 * (a * b).sum(2) + eps) / (a.sum(2) + b.sum(2) + eps)

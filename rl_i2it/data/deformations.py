"""Synthetic registration pairs: random smooth diffeomorphisms and intensity changes, torch only.

=============================================  ==================================================
function                                       returns
=============================================  ==================================================
``random_velocity(n, shape, strength, grid,``  ``(n, N, *S)`` a smooth stationary velocity field:
``generator)``                                 Gaussian noise on a coarse ``grid``, upsampled
``random_intensity(images, generator, ...)``   float ``(n, 1, *S)`` in [0, 1]: gamma, a smooth
                                               multiplicative bias field and noise
``synthetic_pairs(images, labels, ...)``       dict of a batch of pairs with a known true field
=============================================  ==================================================

How a pair is made from one slice ``I`` (labels ``L``): two velocity fields ``v_f``, ``v_m``; the fixed
image is ``I ∘ exp(v_f)``, the moving one ``I ∘ exp(v_m)``, each with its own intensity change. The field
that registers moving onto fixed (``warp(moving, u) = fixed``) is then known exactly:
``u = compose_flow(exp(-v_m), exp(v_f))``, since ``exp(-v_m)`` inverts ``exp(v_m)``. Scaling and squaring
(``nn.functional.integrate_velocity``) keeps both maps diffeomorphic at moderate strengths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..envs.common import quantise
from ..nn.functional import compose_flow, integrate_velocity, warp, warp_labels

__all__ = ["random_velocity", "random_intensity", "synthetic_pairs"]


def _smooth_noise(n: int, channels: int, shape: tuple[int, ...], grid: int, generator: torch.Generator,
                  device) -> torch.Tensor:
    coarse = torch.randn(n, channels, *([grid] * len(shape)), generator=generator, device=device)
    mode = {2: "bicubic", 3: "trilinear"}[len(shape)]
    return F.interpolate(coarse, size=shape, mode=mode, align_corners=True)


def random_velocity(n: int, shape: tuple[int, ...], strength: float, grid: int, generator: torch.Generator,
                    device=None) -> torch.Tensor:
    """A smooth velocity field ``(n, N, *S)`` in pixels: ``strength`` × unit noise on a ``grid``^N lattice."""
    return strength * _smooth_noise(n, len(shape), tuple(shape), grid, generator, device)


def random_intensity(images: torch.Tensor, generator: torch.Generator, gamma: float = 0.25, bias: float = 0.15,
                     noise: float = 0.02) -> torch.Tensor:
    """Scanner-like intensity changes of float images ``(n, 1, *S)`` in [0, 1]; the background stays 0.

    ``image ** exp(U(-gamma, gamma)) * exp(bias * smooth noise) + N(0, noise)`` inside the head.
    """
    n, shape = images.shape[0], tuple(images.shape[2:])
    device = images.device
    view = (n,) + (1,) * (images.dim() - 1)
    exponent = torch.exp((torch.rand(n, generator=generator, device=device) * 2 - 1) * gamma).view(view)
    field = torch.exp(bias * _smooth_noise(n, 1, shape, 4, generator, device))
    jitter = noise * torch.randn(images.shape, generator=generator, device=device)
    changed = images.clamp_min(0).pow(exponent) * field + jitter
    return torch.where(images > 0, changed, torch.zeros_like(images)).clamp(0, 1)


def synthetic_pairs(images: torch.Tensor, labels: torch.Tensor, num_labels: int, n: int, strength: float,
                    grid: int, generator: torch.Generator, deform_fixed: bool = True, intensity: bool = True,
                    with_truth: bool = False, integration_steps: int = 7) -> dict[str, torch.Tensor]:
    """``n`` pairs from random source images.

    Parameters
    ----------
    images, labels : uint8 ``(K, 1, *S)`` source slices or volumes and their label maps
    strength, grid : velocity amplitude (pixels) and control lattice (see ``random_velocity``)
    deform_fixed : deform the fixed image too (otherwise it is the source itself)
    with_truth : also return ``true_flow`` ``(n, N, *S)``, the field that maps moving onto fixed

    Returns
    -------
    dict with uint8 ``moving``, ``fixed``, ``moving_labels``, ``fixed_labels`` ``(n, 1, *S)``, ``source``
    ``(n,)`` (the index of the source image) and optionally ``true_flow``.
    """
    shape = tuple(images.shape[2:])
    device = images.device
    source = torch.randint(0, images.shape[0], (n,), generator=generator, device=device)
    clean = images[source].float() / 255.0
    source_labels = labels[source]
    v_moving = random_velocity(n, shape, strength, grid, generator, device)
    v_fixed = random_velocity(n, shape, strength, grid, generator, device) if deform_fixed else None
    to_moving = integrate_velocity(v_moving, integration_steps)
    moving, moving_labels = warp(clean, to_moving), warp_labels(source_labels, to_moving, num_labels)
    if deform_fixed:
        to_fixed = integrate_velocity(v_fixed, integration_steps)
        fixed, fixed_labels = warp(clean, to_fixed), warp_labels(source_labels, to_fixed, num_labels)
    else:
        to_fixed, fixed, fixed_labels = None, clean, source_labels.clone()
    if intensity:
        moving, fixed = random_intensity(moving, generator), random_intensity(fixed, generator)
    pairs = {"moving": quantise(moving), "fixed": quantise(fixed), "moving_labels": moving_labels,
             "fixed_labels": fixed_labels, "source": source}
    if with_truth:
        inverse = integrate_velocity(-v_moving, integration_steps)
        pairs["true_flow"] = inverse if to_fixed is None else compose_flow(inverse, to_fixed)
    return pairs
